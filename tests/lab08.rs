//! Lab08 (seed 003) through the binary: the lab's own files (written by
//! h5py, pandas and numpy: `tests/fixtures/make_lab08_fixtures.py`) against
//! the seed's numpy pipeline, cache reuse when a partition is added, NaN
//! image rows, bad files, and the synthetic subject with its volume maps.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;
use serde_json::Value;

use common::{ran_kinds, runner};

const ROIS: &str = r#"
[rois.all]
all = true

[rois.V1v]
column = "retino"
labels = ["V1v"]
match = "exact"

[rois.V2v]
column = "retino"
labels = ["V2v"]
match = "exact"

[rois.FFA-2]
column = "face"
labels = ["FFA-2"]
match = "exact"

[rois.EBA]
column = "body"
labels = ["EBA"]
match = "exact"
"#;

fn experiment(varpart: &str, extra: &str) -> String {
    format!(
        r#"
[experiment]
name = "lab"
cache = "cache"
results = "results"

[subjects.subj01]
format = "lab08"
path = "data/subj01"

[features.alexnet]
kind = "hdf5"
path = "data/{{subject}}/S1_{{layer}}_pca100.hdf5"
layers = ["Conv1", "Conv2", "Conv3", "Conv4", "Conv5"]
{ROIS}
[analyses.lab08]
kind = "ridge_holdout"
varpart = {varpart}
{extra}
"#
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl Env {
    /// A temp dir with a fixture subject at data/subj01 and `lab.toml`.
    fn with(fixture_dir: &str, toml: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        copy_dir(
            &fixture(fixture_dir).join("subj01"),
            &dir.join("data/subj01"),
        );
        fs::write(dir.join("lab.toml"), toml).unwrap();
        Env { _tmp: tmp, dir }
    }
    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }
    fn exec(&self) -> (Value, String) {
        let out = self.run(&["exec", "lab.toml", "--json"]);
        assert!(out.status.success(), "exec failed:\n{}", stderr(&out));
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }
    fn subject(&self) -> PathBuf {
        self.dir.join("data/subj01")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn npy(path: &Path) -> Vec<f64> {
    runner::npy::read_f64(path).unwrap().data
}

/// (source, layer, roi, metric) → per-voxel values (voxel order) from voxel_scores.parquet.
/// Text columns `names`, and the `voxel` and `value` columns, of voxel_scores.parquet.
fn voxel_columns(dir: &Path, names: &[&str]) -> (Vec<Vec<String>>, Vec<i64>, Vec<f64>) {
    let f = fs::File::open(dir.join("results/voxel_scores.parquet")).unwrap();
    let df = ParquetReader::new(f).finish().unwrap();
    let text = names
        .iter()
        .map(|c| {
            df.column(c)
                .unwrap()
                .str()
                .unwrap()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect()
        })
        .collect();
    let value = df
        .column("value")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    let voxel = df
        .column("voxel")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    (text, voxel, value)
}

fn voxel_scores(dir: &Path) -> BTreeMap<(String, String, String, String), Vec<(i64, f64)>> {
    let (text, voxel, value) = voxel_columns(dir, &["source", "layer", "roi", "metric"]);
    let [src, layer, roi, metric] = &text[..] else {
        unreachable!("four columns asked")
    };
    let mut out: BTreeMap<_, Vec<(i64, f64)>> = BTreeMap::new();
    for i in 0..voxel.len() {
        out.entry((
            src[i].clone(),
            layer[i].clone(),
            roi[i].clone(),
            metric[i].clone(),
        ))
        .or_default()
        .push((voxel[i], value[i]));
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| x.0);
    }
    out
}

fn per_voxel(
    scores: &BTreeMap<(String, String, String, String), Vec<(i64, f64)>>,
    layer: &str,
    metric: &str,
) -> Vec<f64> {
    scores
        .get(&("alexnet".into(), layer.into(), "all".into(), metric.into()))
        .unwrap_or_else(|| panic!("no {layer}/{metric} in voxel_scores"))
        .iter()
        .map(|x| x.1)
        .collect()
}

/// results.csv rows as maps.
fn results(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let text = fs::read_to_string(dir.join("results/results.csv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            head.iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn value(
    rows: &[BTreeMap<String, String>],
    layer: &str,
    roi: &str,
    metric: &str,
    agg: &str,
) -> f64 {
    let r = rows
        .iter()
        .find(|r| {
            r["layer"] == layer && r["roi"] == roi && r["metric"] == metric && r["aggregate"] == agg
        })
        .unwrap_or_else(|| panic!("no row {layer} {roi} {metric} {agg}"));
    r["value"].parse().unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(
            d <= tol,
            "{what}, voxel {i}: runner {g} vs seed {w} (|Δ| {d:e} > {tol:e})"
        );
    }
}

const LAYERS: [&str; 5] = ["Conv1", "Conv2", "Conv3", "Conv4", "Conv5"];

/// The seed's numbers, from its own files. Tolerance: the seed z-scores in
/// the features' float32 and runner in float64 (both then solve in float64);
/// `expected/summary.json` `float64_zscore` records that the two z-scores
/// move R² by at most 4.6e-8 on this fixture and change no λ, so R² and the
/// partition's components (sums of up to seven R²) must agree to 1e-6 and
/// every λ exactly.
#[test]
fn the_lab_matches_the_seeds_numpy_pipeline() {
    let env = Env::with(
        "lab08",
        &experiment(r#"[["Conv1", "Conv4"], ["Conv1", "Conv3", "Conv5"]]"#, ""),
    );
    let (_, err) = env.exec();
    let exp = fixture("lab08/expected");
    let scores = voxel_scores(&env.dir);
    let lambdas = npy(&exp.join("lambdas.npy"));
    let summary: Value =
        serde_json::from_str(&fs::read_to_string(exp.join("summary.json")).unwrap()).unwrap();
    let tol = 1e-6;
    let moved = summary["float64_zscore"]["max_abs_delta_r2"]
        .as_f64()
        .unwrap();
    assert!(
        moved < tol / 10.0,
        "the fixture's float32/float64 gap {moved} leaves no margin"
    );
    for layer in LAYERS {
        let r2 = per_voxel(&scores, layer, "r2");
        close(
            &r2,
            &npy(&exp.join(format!("r2_{layer}.npy"))),
            tol,
            &format!("R² {layer}"),
        );
        // The same λ for every voxel, negative ones included.
        let want: Vec<f64> = npy(&exp.join(format!("best_lambda_{layer}.npy")))
            .iter()
            .map(|&b| lambdas[b as usize])
            .collect();
        let got = per_voxel(&scores, layer, "lambda");
        let differ = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| (*g - *w).abs() > 1e-6 * w.abs().max(1.0))
            .count();
        assert_eq!(
            differ, 0,
            "{layer}: {differ} voxels chose another λ\nrunner {got:?}\nseed {want:?}"
        );
    }
    assert!(
        err.contains("3 of the λ grid's 20 values are negative (-9.900e-3, -9.454e-3, -7.024e-3)"),
        "{err}"
    );
    // The joint models and both partitions.
    for (set, file) in [
        ("Conv1+Conv4", "r2_concat_Conv1_Conv4"),
        ("Conv1+Conv3+Conv5", "r2_concat_Conv1_Conv3_Conv5"),
    ] {
        close(
            &per_voxel(&scores, set, "r2"),
            &npy(&exp.join(format!("{file}.npy"))),
            tol,
            set,
        );
    }
    let two = |m: &str| per_voxel(&scores, "Conv1+Conv4", m);
    close(
        &two("unique_Conv1"),
        &npy(&exp.join("unique_Conv1.npy")),
        tol,
        "unique_Conv1",
    );
    close(
        &two("unique_Conv4"),
        &npy(&exp.join("unique_Conv4.npy")),
        tol,
        "unique_Conv4",
    );
    close(
        &two("shared_Conv1_Conv4"),
        &npy(&exp.join("shared_Conv1_Conv4.npy")),
        tol,
        "shared",
    );
    for part in [
        "unique_Conv1",
        "unique_Conv3",
        "unique_Conv5",
        "shared_Conv1_Conv3",
        "shared_Conv1_Conv5",
        "shared_Conv3_Conv5",
        "shared_Conv1_Conv3_Conv5",
    ] {
        let got = per_voxel(&scores, "Conv1+Conv3+Conv5", part);
        let want = npy(&exp.join(format!("varpart3_{part}.npy")));
        close(&got, &want, tol, part);
    }
    // Best layer: the voxel counts per layer in 'all' are the seed's.
    let best = npy(&exp.join("best_layer.npy"));
    let rows = results(&env.dir);
    for (l, layer) in LAYERS.iter().enumerate() {
        let want = best.iter().filter(|&&b| b as usize == l).count() as f64;
        let got = value(&rows, layer, "all", "best_layer_count", "mean");
        assert_eq!(got, want, "{layer} wins {got} voxels, the seed says {want}");
        let frac = value(&rows, layer, "all", "best_layer_fraction", "mean");
        assert!((frac - want / best.len() as f64).abs() < 1e-12);
    }
    // The printed tables: min / max / median R² per layer over all voxels.
    for layer in LAYERS {
        for agg in ["min", "max", "median"] {
            let want = summary["r2_all"][layer][agg].as_f64().unwrap();
            let got = value(&rows, layer, "all", "r2", agg);
            assert!((got - want).abs() < tol, "{layer} {agg}: {got} vs {want}");
        }
        // Question 1: the median R² of each layer in V1v.
        let want = summary["median_r2_V1v"][layer].as_f64().unwrap();
        let got = value(&rows, layer, "V1v", "r2", "median");
        assert!((got - want).abs() < tol, "V1v {layer}: {got} vs {want}");
    }
    // R² over the lab's noise ceiling (percent / 100).
    let r2 = per_voxel(&scores, "Conv1", "r2");
    let nc = per_voxel(&scores, "Conv1", "noise_ceiling");
    let ratio = per_voxel(&scores, "Conv1", "r2_over_nc");
    for i in 0..r2.len() {
        assert!((ratio[i] - r2[i] / nc[i]).abs() < 1e-12);
        assert!(nc[i] > 0.0 && nc[i] <= 1.0);
    }
}

#[test]
fn the_split_is_the_seeds() {
    let env = Env::with("lab08", &experiment("[]", ""));
    env.exec();
    let out = env.run(&[
        "explain",
        "lab.toml",
        "split/subj01/shared1000-holdout0.1-seed171301",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = common::entry_dir(&out.stdout, &env.dir.join("cache"));
    let split: Value =
        serde_json::from_str(&fs::read_to_string(entry.join("split.json")).unwrap()).unwrap();
    let idx = |k: &str| -> Vec<f64> {
        split[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let exp = fixture("lab08/expected");
    assert_eq!(idx("fit"), npy(&exp.join("split_trn.npy")));
    assert_eq!(idx("holdout"), npy(&exp.join("split_out.npy")));
    assert_eq!(idx("score"), npy(&exp.join("split_val.npy")));
}

#[test]
fn adding_a_partition_reruns_only_the_new_fits() {
    let env = Env::with("lab08", &experiment(r#"[["Conv1", "Conv4"]]"#, ""));
    env.exec();
    fs::write(
        env.dir.join("lab.toml"),
        experiment(r#"[["Conv1", "Conv4"], ["Conv2", "Conv5"]]"#, ""),
    )
    .unwrap();
    let (s, _) = env.exec();
    let kinds = ran_kinds(Path::new(s["run_log"].as_str().unwrap()));
    assert_eq!(
        kinds,
        [
            "holdout_fit",
            "holdout_score",
            "plot",
            "table",
            "varpart",
            "volume_maps"
        ]
        .into_iter()
        .filter(|k| *k != "plot")
        .collect::<Vec<_>>(),
        "{s}"
    );
    // One new fit: Conv2+Conv5 (Conv2 and Conv5 alone were fitted already).
    let log = fs::read_to_string(s["run_log"].as_str().unwrap()).unwrap();
    let fits: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"holdout_fit\"") && !l.contains("\"reused\""))
        .collect();
    assert_eq!(fits.len(), 1, "{fits:?}");
    assert!(fits[0].contains("Conv2+alexnet/Conv5"), "{}", fits[0]);
}

#[test]
fn a_nan_image_row_is_dropped_with_a_note() {
    let env = Env::with(
        "lab08_nan",
        &experiment("[]", "best_layer = false\nmaps = false"),
    );
    let (_, err) = env.exec();
    let exp: Value = serde_json::from_str(
        &fs::read_to_string(fixture("lab08_nan/expected/dropped_rows.json")).unwrap(),
    )
    .unwrap();
    let rows = |v: &Value| -> Vec<usize> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_u64().unwrap() as usize)
            .collect()
    };
    let dropped = rows(&exp["dropped_rows"]);
    let shown = dropped
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let want = format!(
        "dropped {} image rows without responses (NaN betas, n_reps = 0) from the betas and every feature matrix: rows {shown}",
        dropped.len()
    );
    assert!(err.contains(&want), "{err}");
    // Said again on a cached run: the note is the data's, not the run's.
    let (_, err2) = env.exec();
    assert!(err2.contains(&want), "{err2}");
    // The split is drawn over every image row, as the seed's, then the
    // dropped rows leave it: stimulus i is image row kept[i].
    let n = exp["n_images"].as_u64().unwrap() as usize;
    let kept: Vec<usize> = (0..n).filter(|r| !dropped.contains(r)).collect();
    let out = env.run(&[
        "explain",
        "lab.toml",
        "split/subj01/shared1000-holdout0.1-seed171301",
    ]);
    let entry = common::entry_dir(&out.stdout, &env.dir.join("cache"));
    let split: Value =
        serde_json::from_str(&fs::read_to_string(entry.join("split.json")).unwrap()).unwrap();
    for (ours, seeds) in [("fit", "trn"), ("holdout", "out"), ("score", "val")] {
        let got: Vec<usize> = rows(&split[ours]).into_iter().map(|i| kept[i]).collect();
        assert_eq!(got, rows(&exp["seed_split_rows"][seeds]), "{ours}");
    }
}

fn exec_fails(env: &Env) -> String {
    let out = env.run(&["exec", "lab.toml"]);
    assert!(!out.status.success(), "exec should fail");
    assert!(
        !env.dir.join("results/results.csv").exists(),
        "nothing published"
    );
    stderr(&out)
}

#[test]
fn a_feature_file_with_the_wrong_rows_names_the_file() {
    let env = Env::with("lab08", &experiment("[]", ""));
    let f = env.subject().join("S1_Conv3_pca100.hdf5");
    runner::hdf5::write_2d_f32(&f, "features", 299, 8, &vec![0.5; 299 * 8]).unwrap();
    let err = exec_fails(&env);
    assert!(err.contains("S1_Conv3_pca100.hdf5"), "{err}");
    assert!(
        err.contains("has 299 rows but subject `subj01` has 300 images"),
        "{err}"
    );
}

#[test]
fn a_mask_that_does_not_match_the_betas_names_the_file() {
    use runner::pickle::{NdArray, PyValue};
    let env = Env::with("lab08", &experiment("[]", ""));
    let f = env.subject().join("S1_voxel_roi_info.npy");
    let PyValue::Dict(mut items) = runner::pickle::read_object(&f).unwrap() else {
        panic!("a dict")
    };
    // One more voxel in the mask than the betas have.
    for (k, v) in items.iter_mut() {
        if let (PyValue::Str(k), PyValue::Array(a)) = (k, v) {
            if k == "voxel_mask" {
                let first_off = a.data.iter().position(|&b| b == 0).unwrap();
                a.data[first_off] = 1;
            }
            if k == "noise_ceiling_avgreps" {
                *a = NdArray {
                    descr: "<f8".into(),
                    shape: vec![a.shape[0] + 1],
                    fortran_order: false,
                    data: vec![0u8; 8 * (a.shape[0] + 1)],
                };
            }
        }
    }
    runner::pickle::write_object(&f, &PyValue::Dict(items)).unwrap();
    let err = exec_fails(&env);
    assert!(err.contains("S1_betas_avg_bigmask.hdf5"), "{err}");
    assert!(err.contains("voxels but voxel_mask in"), "{err}");
    assert!(err.contains("S1_voxel_roi_info.npy selects 61"), "{err}");
}

#[test]
fn an_unreadable_hdf5_file_names_the_file() {
    let env = Env::with("lab08", &experiment("[]", ""));
    fs::write(
        env.subject().join("S1_betas_avg_bigmask.hdf5"),
        b"not an hdf5 file at all",
    )
    .unwrap();
    let err = exec_fails(&env);
    assert!(err.contains("S1_betas_avg_bigmask.hdf5"), "{err}");
    assert!(err.contains("cannot be read as HDF5"), "{err}");
}

#[test]
fn val_holdout_refuses_a_subject_without_image_flags() {
    let env = Env::with(
        "lab08",
        &experiment(
            "[]",
            "split = { method = \"val_holdout\", column = \"nope\" }",
        ),
    );
    let err = exec_fails(&env);
    assert!(
        err.contains("subject `subj01` has no boolean image column `nope`"),
        "{err}"
    );
    assert!(err.contains("shared1000"), "{err}");
}

/// The README's example: `runner synth --layout lab08` then the lab's TOML,
/// with every map written.
#[test]
fn the_synthetic_lab_runs_with_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = runner()
        .args([
            "synth",
            "--layout",
            "lab08",
            "data/subj01",
            "--n-train",
            "360",
            "--n-test",
            "40",
            "--voxels-lh",
            "120",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = experiment(r#"[["Conv1", "Conv4"]]"#, "");
    fs::write(dir.join("lab.toml"), &toml).unwrap();
    let out = runner()
        .args(["exec", "lab.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let maps = dir.join("results/maps");
    for stem in [
        "r2_Conv1",
        "r2_Conv1+Conv4",
        "best_layer_alexnet",
        "unique_Conv1",
        "unique_Conv4",
        "shared_Conv1_Conv4",
    ] {
        for ext in ["nii.gz", "png"] {
            let f = maps.join(format!("lab08_subj01_{stem}.{ext}"));
            assert!(f.is_file(), "missing {}", f.display());
        }
    }
    // The synthetic voxels prefer different layers: more than one layer wins.
    let rows = results(dir);
    let winners = LAYERS
        .iter()
        .filter(|l| value(&rows, l, "all", "best_layer_count", "mean") > 0.0)
        .count();
    assert!(winners >= 3, "only {winners} layers win any voxel");
}

#[test]
fn refit_and_a_free_intercept_change_the_fit() {
    let opts = "best_layer = false\nmaps = false";
    let seed = Env::with("lab08", &experiment("[]", opts));
    seed.exec();
    let base = per_voxel(&voxel_scores(&seed.dir), "Conv1", "r2");
    for extra in ["refit = true", "penalize_intercept = false"] {
        let env = Env::with("lab08", &experiment("[]", &format!("{opts}\n{extra}")));
        env.exec();
        let r2 = per_voxel(&voxel_scores(&env.dir), "Conv1", "r2");
        let moved = r2
            .iter()
            .zip(&base)
            .filter(|(a, b)| (*a - *b).abs() > 1e-9)
            .count();
        assert!(moved > 0, "{extra} changed no voxel's R²");
        assert!(r2.iter().all(|x| x.is_finite()), "{extra}: {r2:?}");
    }
}

/// `file:line:col` of the first occurrence of `needle` in `text`.
fn at(file: &str, text: &str, needle: &str) -> String {
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap();
    format!("{file}:{}:{}", i + 1, line.find(needle).unwrap() + 1)
}

#[test]
fn bad_lab08_tables_point_at_the_file() {
    let plan_fails = |toml: &str, needle: String| {
        let env = Env::with("lab08", toml);
        let out = env.run(&["plan", "lab.toml"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&needle),
            "expected `{needle}` in:\n{}",
            stderr(&out)
        );
    };
    let one = experiment(r#"[["Conv1"]]"#, "");
    plan_fails(
        &one,
        format!(
            "{}: a partition has 2 or 3 feature sets; [Conv1] has 1",
            at("lab.toml", &one, "[[\"Conv1\"]]")
        ),
    );
    let unknown = experiment(r#"[["Conv1", "fc7"]]"#, "");
    plan_fails(
        &unknown,
        "varpart names `fc7`, which is no layer of this analysis's features for subject `subj01`"
            .into(),
    );
    let hemis =
        experiment("[]", "").replace("format = \"lab08\"", "format = \"lab08\"\nhemis = [\"lh\"]");
    plan_fails(
        &hemis,
        format!(
            "{}: `hemis` does not apply to format \"lab08\"",
            at("lab.toml", &hemis, "[\"lh\"]")
        ),
    );
    let grid = experiment("[]", "lambda_grid = \"sklearn\"");
    plan_fails(
        &grid,
        format!(
            "{}: unknown λ grid `sklearn`",
            at("lab.toml", &grid, "\"sklearn\"")
        ),
    );
}

#[test]
fn npy_features_of_a_lab08_subject_are_its_image_rows() {
    // The same Conv1 matrix as .npy: the same fit as from the HDF5 file.
    let toml = experiment("[]", "best_layer = false\nmaps = false").replace(
        "[features.alexnet]\nkind = \"hdf5\"\npath = \"data/{subject}/S1_{layer}_pca100.hdf5\"\nlayers = [\"Conv1\", \"Conv2\", \"Conv3\", \"Conv4\", \"Conv5\"]",
        "[features.alexnet]\nkind = \"npy\"\ndir = \"npy/{subject}\"\nlayers = [\"Conv1\"]",
    );
    assert!(toml.contains("kind = \"npy\""));
    let env = Env::with("lab08", &toml);
    let a =
        runner::hdf5::read_f64(&env.subject().join("S1_Conv1_pca100.hdf5"), "features").unwrap();
    fs::create_dir_all(env.dir.join("npy/subj01")).unwrap();
    let f32s: Vec<f32> = a.data.iter().map(|&x| x as f32).collect();
    runner::npy::write(&env.dir.join("npy/subj01/Conv1.npy"), &a.shape, &f32s).unwrap();
    env.exec();
    let r2 = per_voxel(&voxel_scores(&env.dir), "Conv1", "r2");
    close(
        &r2,
        &npy(&fixture("lab08/expected/r2_Conv1.npy")),
        1e-6,
        "R² from .npy",
    );
    // A net cannot run on a subject without images.
    let ex = toml.replace(
        "[features.alexnet]\nkind = \"npy\"\ndir = \"npy/{subject}\"\nlayers = [\"Conv1\"]",
        "[models.net]\narch = \"alexnet\"\n\n[features.alexnet]\nkind = \"extract\"\nmodel = \"net\"\nlayers = [\"features.2\"]",
    );
    fs::write(env.dir.join("lab.toml"), ex).unwrap();
    let out = env.run(&["plan", "lab.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("features.alexnet: subject `subj01` (lab08) ships no images to run `net` on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn other_analyses_use_the_labs_noise_ceiling() {
    // RidgeCV on the lab's fit images, scored on shared1000: R²/NC uses
    // noise_ceiling_avgreps / 100, as ridge_holdout does.
    let toml = experiment("[]", "best_layer = false\nmaps = false")
        + "\n[analyses.cv]\nkind = \"ridge_cv\"\nfeatures = [\"alexnet\"]\nrois = [\"V1v\"]\nalpha_grid = [0.1, 1.0, 10.0]\n";
    let env = Env::with("lab08", &toml);
    env.exec();
    let (text, _, value) = voxel_columns(&env.dir, &["analysis", "layer", "metric"]);
    let (analysis, layer, metric) = (&text[0], &text[1], &text[2]);
    let pick = |a: &str, m: &str| -> Vec<f64> {
        (0..value.len())
            .filter(|&i| analysis[i] == a && layer[i] == "Conv1" && metric[i] == m)
            .map(|i| value[i])
            .collect()
    };
    let (r2, nc, ratio) = (
        pick("cv", "r2"),
        pick("cv", "noise_ceiling"),
        pick("cv", "r2_over_nc"),
    );
    assert_eq!(r2.len(), 8, "V1v has 8 voxels");
    for i in 0..r2.len() {
        assert!((ratio[i] - r2[i] / nc[i]).abs() < 1e-12);
    }
    // The same noise ceiling as the lab analysis gives those voxels.
    let lab_nc = pick("lab08", "noise_ceiling");
    assert!(nc.iter().all(|x| lab_nc.contains(x)), "{nc:?}");
}
