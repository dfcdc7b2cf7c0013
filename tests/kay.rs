//! Kay V4 (seed 001) through the binary: the small vim-1 fixture (written by
//! h5py and scipy: `tests/fixtures/make_vim1_fixtures.py`) against the
//! project's pipeline in scikit-learn (`tests/fixtures/make_kay_reference.py`),
//! either kind of .mat file, what re-runs when a PLS setting changes, and
//! files that are not MATLAB files.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{ran_kinds, runner};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The project's analyses on the fixture's sizes: 30 training images, 6
/// scored per split, 100 of 128 feature columns, 3 PLS components.
fn experiment(n_components: usize) -> String {
    format!(
        r#"
[experiment]
name = "kay"
cache = "cache"
results = "results"

[subjects.S1]
format = "vim1"
path = "data/vim1"

[features.tf_conv3]
kind = "hdf5"
path = "data/conv3_features.h5"
datasets = ["train", "val"]
layers = ["conv3"]

[rois.V4]
column = "roi"
labels = ["V4"]
match = "exact"

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [1e-4, 1e-3, 1e-2, 1e-1, 1]
metrics = ["pearson_r2"]
aggregate = "median"
split = {{ method = "random_splits", n_splits = 5, n_test = 6, seed = 0 }}

[analyses.pls]
kind = "pls"
n_components = {n_components}
scale = false
metrics = ["pearson_r2"]
split = {{ method = "random_splits", n_splits = 5, n_test = 6, seed = 0 }}
reduce = {{ method = "subsample", n_columns = 100, seed = 0, after_splits = 5 }}

[analyses.pls_v4_average]
kind = "pls"
n_components = 1
target = "roi_mean"
metrics = ["pearson_r2"]
sets = ["train", "validation"]
reduce = {{ method = "subsample", n_columns = 100, seed = 0, after_splits = 5 }}

[[plots]]
kind = "set_bars"
analyses = ["ridge", "pls"]
metric = "pearson_r2"
formats = ["png"]

[[plots]]
kind = "scatter"
analysis = "pls_v4_average"
formats = ["png"]
"#
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    /// A temp dir with the fixture's `kind` (v73 or v5) vim-1 files at
    /// data/vim1, the features at data/, and `kay.toml`.
    fn with(kind: &str, toml: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let vim1 = dir.join("data/vim1");
        fs::create_dir_all(&vim1).unwrap();
        for e in fs::read_dir(fixture("vim1").join(kind)).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), vim1.join(e.file_name())).unwrap();
        }
        fs::copy(
            fixture("kay/conv3_features.h5"),
            dir.join("data/conv3_features.h5"),
        )
        .unwrap();
        fs::write(dir.join("kay.toml"), toml).unwrap();
        Env { _tmp: tmp, dir }
    }
    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }
    fn exec(&self) -> (Value, String) {
        let out = self.run(&["exec", "kay.toml", "--json"]);
        assert!(out.status.success(), "exec failed:\n{}", stderr(&out));
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
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

/// Every reference row of expected.json found in runner's table, within
/// `tol` absolute. The scores are squared correlations in [0, 1]: runner's
/// PLS and ridge match scikit-learn's predictions to ~1e-10 relative
/// (tests/pls_reference, tests/ridge_reference), so 1e-8 leaves room for
/// the correlation's own rounding and nothing for a different split,
/// subsample or fit.
fn check_against_reference(dir: &Path, tol: f64) {
    let want: Value =
        serde_json::from_str(&fs::read_to_string(fixture("kay/expected.json")).unwrap()).unwrap();
    let rows = results(dir);
    let mut checked = 0;
    for w in want["rows"].as_array().unwrap() {
        let s = |k: &str| w[k].as_str().unwrap().to_string();
        let got = rows
            .iter()
            .find(|r| {
                r["analysis"] == s("analysis")
                    && r["subject"] == "S1"
                    && r["roi"] == "V4"
                    && r["hemisphere"] == "both"
                    && r["split"] == s("split")
                    && r["set"] == s("set")
                    && r["metric"] == s("metric")
                    && r["aggregate"] == s("aggregate")
            })
            .unwrap_or_else(|| panic!("runner has no row for {w}"));
        let g: f64 = got["value"].parse().unwrap();
        let v = w["value"].as_f64().unwrap();
        assert!(
            (g - v).abs() <= tol,
            "{w}: runner {g} vs scikit-learn {v} (|Δ| {:e})",
            (g - v).abs()
        );
        let n: usize = got["n_voxels"].parse().unwrap();
        let want_n = if s("analysis") == "pls_v4_average" {
            1
        } else {
            want["n_v4_voxels"].as_u64().unwrap() as usize
        };
        assert_eq!(n, want_n, "{w}: voxel count");
        checked += 1;
    }
    assert_eq!(checked, 128);
}

#[test]
fn the_projects_pipeline_matches_scikit_learn_from_either_mat_version() {
    for kind in ["v73", "v5"] {
        let env = Env::with(kind, &experiment(3));
        let (_, err) = env.exec();
        // The NaN rule, said for the V4 voxels (2 NaN in a training image,
        // 1 only in a validation image).
        assert!(
            err.contains("S1: V4 keeps 15 of 18 voxels: 2 NaN in a training image (dropped, as the project does), 1 NaN only in a validation image"),
            "{kind}: {err}"
        );
        check_against_reference(&env.dir, 1e-8);
        // The split indices are on record: split 0's test images are numpy's.
        for f in [
            "set_bars_pearson_r2_S1_tf_conv3_conv3_V4.png",
            "scatter_pls_v4_average_S1_tf_conv3_conv3_V4_validation.png",
        ] {
            let png = fs::read(env.dir.join("results").join(f))
                .unwrap_or_else(|_| panic!("{kind}: no {f}"));
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
    }
}

#[test]
fn the_split_indices_are_numpys_and_on_record() {
    let env = Env::with("v73", &experiment(3));
    env.exec();
    let out = env.run(&["explain", "kay.toml", "split/S1/random5x6-seed0-0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = common::entry_dir(&out.stdout, &env.dir.join("cache"));
    let split: Value =
        serde_json::from_str(&fs::read_to_string(entry.join("split.json")).unwrap()).unwrap();
    // np.sort(np.random.RandomState(0).permutation(30)[:6]).
    let mut perm: Vec<usize> = runner::numerics::numpy_random::RandomState::new(0).permutation(30);
    perm.truncate(6);
    perm.sort();
    let score: Vec<usize> = split["score"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(score, perm);
    assert_eq!(split["fit"].as_array().unwrap().len(), 24);
    let val: Vec<u64> = split["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(val, (30..38).collect::<Vec<u64>>());
}

#[test]
fn changing_n_components_reruns_only_the_pls_fits_and_what_follows() {
    let env = Env::with("v73", &experiment(3));
    env.exec();
    fs::write(env.dir.join("kay.toml"), experiment(4)).unwrap();
    let (s, _) = env.exec();
    let kinds = ran_kinds(Path::new(s["run_log"].as_str().unwrap()));
    assert_eq!(
        kinds,
        ["plot", "pls_fit", "score", "split_stats", "table"],
        "only PLS and what reads it"
    );
    // Exactly the five split fits of `pls`, not the V4 average's.
    let log = fs::read_to_string(s["run_log"].as_str().unwrap()).unwrap();
    let fits = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "node" && v["kind"] == "pls_fit" && v["outcome"] != "reused")
        .count();
    assert_eq!(fits, 5);
}

#[test]
fn a_file_that_is_not_a_mat_file_is_named() {
    let env = Env::with("v73", &experiment(3));
    fs::write(
        env.dir.join("data/vim1/EstimatedResponses.mat"),
        b"<html>404 Not Found</html>",
    )
    .unwrap();
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("EstimatedResponses.mat")
            && err.contains(
                "is not a MATLAB file: no `MATLAB` header and no HDF5 signature at byte 512"
            ),
        "{err}"
    );
    assert!(!env.dir.join("results/results.csv").exists());
}

#[test]
fn vim1_errors_say_what_to_fix() {
    // No responses file in the directory.
    let env = Env::with("v73", &experiment(3));
    fs::remove_file(env.dir.join("data/vim1/EstimatedResponses.mat")).unwrap();
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no EstimatedResponses.mat in the vim-1 directory"),
        "{err}"
    );
    assert!(err.contains("runner synth --layout vim1"), "{err}");
    // A subject the file does not hold.
    let env = Env::with(
        "v73",
        &experiment(3).replace("[subjects.S1]", "[subjects.S3]"),
    );
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("roiS3"), "{}", stderr(&out));
    // Too many scored images for the training set.
    let env = Env::with("v73", &experiment(3).replace("n_test = 6", "n_test = 30"));
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("random_splits scores n_test = 30 of the 30 training stimuli"),
        "{}",
        stderr(&out)
    );
    // More kept columns than the features have.
    let env = Env::with(
        "v73",
        &experiment(3).replace("n_columns = 100", "n_columns = 500"),
    );
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("subsample keeps n_columns = 500 of 128 feature columns"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn runners_alexnet_extracts_conv3_from_the_stimuli_mat() {
    // The v5 fixture ships Stimuli.mat (30 + 8 images of 16 × 16).
    let toml = r#"
[experiment]
name = "kay"
cache = "cache"
results = "results"

[subjects.S1]
format = "vim1"
path = "data/vim1"

[models.small]
arch = "alexnet"
widths = [8, 16, 16, 16, 16]
hidden = 32
num_classes = 10
seed = 0

[features.net]
kind = "extract"
model = "small"
preprocess = "vim1"
layers = ["conv3"]

[rois.V4]
column = "roi"
labels = ["V4"]
match = "exact"

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [0.1, 1.0, 10.0]
metrics = ["pearson_r2", "r2"]
sets = ["train", "test"]
"#;
    let env = Env::with("v5", toml);
    env.exec();
    let out = env.run(&["explain", "kay.toml", "extract/S1/net"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = common::entry_dir(&out.stdout, &env.dir.join("cache"));
    let x = runner::npy::read_f32(&entry.join("conv3.npy")).unwrap();
    // 38 stimuli (training then validation) × 16 channels × 13 × 13 (conv3
    // of a 224 input in torchvision's layout).
    assert_eq!(x.shape, [38, 16 * 13 * 13]);
    assert!(
        x.data.iter().all(|v| v.is_finite() && *v >= 0.0),
        "after a ReLU"
    );
    // vim-1's given split: fit the 30 training images, score the 8
    // validation images, labelled as such ("test" means the validation set).
    let rows = results(&env.dir);
    let sets: Vec<&str> = rows
        .iter()
        .filter(|r| r["metric"] == "pearson_r2" && r["aggregate"] == "mean")
        .map(|r| r["set"].as_str())
        .collect();
    assert_eq!(sets, ["train", "validation"]);

    // The torchvision pipelines cannot read float stimuli.
    fs::write(
        env.dir.join("kay.toml"),
        toml.replace("preprocess = \"vim1\"", "preprocess = \"hw2\""),
    )
    .unwrap();
    let out = env.run(&["exec", "kay.toml"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "subject `S1`'s stimuli are vim-1 grayscale arrays; they need preprocess = \"vim1\""
        ),
        "{}",
        stderr(&out)
    );
}
