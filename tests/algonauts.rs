//! The Algonauts 2023 workflow through the binary, on a synthetic subject in
//! the challenge's layout: the run, its cache reuse, the submission tree and
//! zip, a second analysis sharing the extraction, and bad layouts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{ran_kinds, runner};

const EXPERIMENT: &str = r#"
[experiment]
name = "algo"
cache = "cache"
results = "results"

[subjects.subj01]
format = "algonauts2023"
path = "data/subj01"

[models.alexnet]
arch = "alexnet"
seed = 0

[features.alexnet]
kind = "extract"
model = "alexnet"
preprocess = "algonauts"
layers = ["features.2"]
batch_size = 50

[rois.V1v]
column = "prf-visualrois"
labels = ["V1v"]
match = "exact"

[rois.mTL-words]
column = "floc-words"
labels = ["mTL-words"]
match = "exact"

[rois.aTL-faces]
column = "floc-faces"
labels = ["aTL-faces"]
match = "exact"

[rois.all-vertices]
all = true

[analyses.encoding]
kind = "linear"
split = { method = "holdout", train_percent = 90, seed = 4 }
reduce = { method = "incremental_pca", n_components = 30, batch_size = 100 }
submission = { refit = "train" }

[[plots]]
kind = "roi_bars"
metric = "pearson_r"
formats = ["png"]
"#;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let out = runner()
            .args(["synth", "--layout", "algonauts2023", "data/subj01"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        fs::write(dir.join("algo.toml"), EXPERIMENT).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }

    fn exec(&self) -> (Value, String) {
        let out = self.run(&["exec", "algo.toml", "--json"]);
        assert!(out.status.success(), "exec failed:\n{}", stderr(&out));
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// (roi, hemisphere) → value of `metric` in results.csv.
fn value(csv: &str, roi: &str, hemi: &str, metric: &str) -> f64 {
    let row = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|c| c[6] == roi && c[2] == hemi && c[9] == metric)
        .unwrap_or_else(|| panic!("no row {roi} {hemi} {metric}"));
    row[11].parse().unwrap_or(f64::NAN)
}

#[test]
fn the_devkit_workflow_runs_and_a_second_exec_runs_nothing() {
    let env = Env::new();
    let (first, err) = env.exec();
    // mTL-words is in lh only, aTL-faces on no vertex: NaN and a warning.
    assert!(
        err.contains("no voxel in mTL-words (rh), aTL-faces: scored NaN"),
        "{err}"
    );
    let csv = fs::read_to_string(env.path("results/results.csv")).unwrap();
    assert!(value(&csv, "mTL-words", "rh", "pearson_r").is_nan());
    assert!(value(&csv, "aTL-faces", "both", "pearson_r").is_nan());
    assert!(value(&csv, "mTL-words", "lh", "pearson_r").is_finite());
    // Early visual vertices follow local image energy, which conv1 features
    // carry: a linear readout finds them on the held-out 10 %.
    for hemi in ["lh", "rh"] {
        let r = value(&csv, "V1v", hemi, "pearson_r");
        assert!(r > 0.3, "V1v {hemi}: median r {r}");
    }
    let n_all: f64 = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|c| c[6] == "all-vertices" && c[2] == "both")
        .unwrap()[12]
        .parse()
        .unwrap();
    assert_eq!(n_all, 250.0, "120 lh + 130 rh vertices");

    // The split on record: the devkit's 90 % of 200, in numpy's shuffled order.
    let entries = first["nodes"].as_u64().unwrap();
    let (second, _) = env.exec();
    assert_eq!(second["ran"], 0);
    assert_eq!(second["reused"], entries);

    for f in [
        "results_wide.csv",
        "voxel_scores.parquet",
        "roi_bars_encoding_pearson_r_subj01_alexnet_features.2.png",
        "encoding_subj01_alexnet_features.2.lh.pearson_r.fsaverage.npy",
        "encoding_subj01_alexnet_features.2.rh.pearson_r.fsaverage.npy",
    ] {
        assert!(env.path("results").join(f).is_file(), "missing {f}");
    }
    // Accuracy written back into fsaverage space: the challenge vertices only.
    let map = runner::npy::read_f32(
        &env.path("results/encoding_subj01_alexnet_features.2.lh.pearson_r.fsaverage.npy"),
    )
    .unwrap();
    assert_eq!(map.shape, [500]);
    assert!(map.data.iter().filter(|v| **v != 0.0).count() <= 120);
    assert!(map.data.iter().filter(|v| **v != 0.0).count() > 100);
}

#[test]
fn the_submission_is_the_challenge_tree_and_zip() {
    let env = Env::new();
    env.exec();
    let root = env.path("results/algonauts_2023_challenge_submission");
    for (hemi, v) in [("lh", 120), ("rh", 130)] {
        let f = root.join(format!("subj01/{hemi}_pred_test.npy"));
        let (shape, descr) = runner::npy::read_header(&f).unwrap();
        assert_eq!(shape, [20, v], "{hemi}");
        assert_eq!(
            descr.trim_matches('\''),
            "<f4",
            "float32 as the challenge asks"
        );
    }
    let zip = fs::File::open(env.path("results/algonauts_2023_challenge_submission.zip")).unwrap();
    let mut zip = zip::ZipArchive::new(zip).unwrap();
    let mut names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    names.sort();
    // The root holds the subjNN/ folders themselves: no parent folder.
    assert_eq!(
        names,
        [
            "subj01/",
            "subj01/lh_pred_test.npy",
            "subj01/rh_pred_test.npy"
        ]
    );
    let mut inside = Vec::new();
    std::io::Read::read_to_end(
        &mut zip.by_name("subj01/lh_pred_test.npy").unwrap(),
        &mut inside,
    )
    .unwrap();
    assert_eq!(
        inside,
        fs::read(root.join("subj01/lh_pred_test.npy")).unwrap()
    );
}

#[test]
fn a_second_analysis_reuses_the_extraction_and_the_pca() {
    let env = Env::new();
    env.exec();
    let more = format!(
        "{EXPERIMENT}\n[analyses.ridge]\nkind = \"ridge_cv\"\nalpha_grid = [0.1, 10.0, 1000.0]\nmetrics = [\"pearson_r\", \"r2\"]\nsplit = {{ method = \"holdout\", train_percent = 90, seed = 4 }}\nreduce = {{ method = \"incremental_pca\", n_components = 30, batch_size = 100 }}\nrois = [\"V1v\", \"all-vertices\"]\n"
    )
    .replace("kind = \"roi_bars\"", "kind = \"roi_bars\"\nanalysis = \"encoding\"");
    fs::write(env.path("algo.toml"), more).unwrap();
    let (s, _) = env.exec();
    let kinds = ran_kinds(Path::new(s["run_log"].as_str().unwrap()));
    // No extract, split or reduce node: the new analysis reads their entries.
    assert_eq!(
        kinds,
        ["decompose", "fit", "plot", "score", "table"],
        "{kinds:?}"
    );
    let csv = fs::read_to_string(env.path("results/results.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("ridge,subj01,both,alexnet,features.2,0,V1v,,test,pearson_r")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("encoding,subj01,lh,alexnet,features.2,0,V1v,,test,pearson_r"))
    );
}

#[test]
fn kfold_scores_every_response_out_of_fold() {
    let env = Env::new();
    let text = EXPERIMENT
        .replace(
            "split = { method = \"holdout\", train_percent = 90, seed = 4 }",
            "split = { method = \"kfold\", k = 4, seed = 4 }",
        )
        .replace("submission = { refit = \"train\" }\n", "");
    fs::write(env.path("algo.toml"), text).unwrap();
    let (s, _) = env.exec();
    let log = fs::read_to_string(s["run_log"].as_str().unwrap()).unwrap();
    let fits = log.matches("\"kind\":\"linear_fit\"").count();
    assert_eq!(fits, 4, "one fit per fold");
    let csv = fs::read_to_string(env.path("results/results.csv")).unwrap();
    assert!(value(&csv, "V1v", "both", "pearson_r") > 0.3);
}

#[test]
fn bad_layouts_name_the_file() {
    let cases: [(&str, &dyn Fn(&Path)); 3] = [
        ("rh_training_fmri.npy", &|d: &Path| {
            fs::remove_file(d.join("training_split/training_fmri/rh_training_fmri.npy")).unwrap()
        }),
        ("lh.prf-visualrois_challenge_space.npy", &|d: &Path| {
            runner::npy::write(
                &d.join("roi_masks/lh.prf-visualrois_challenge_space.npy"),
                &[7],
                &[0i64; 7],
            )
            .unwrap()
        }),
        ("mapping_floc-faces.npy", &|d: &Path| {
            // A pickled list where the devkit expects a dict.
            fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/algonauts_mappings/list.npy"),
                d.join("roi_masks/mapping_floc-faces.npy"),
            )
            .unwrap();
        }),
    ];
    for (file, break_it) in cases {
        let env = Env::new();
        break_it(&env.path("data/subj01"));
        let out = env.run(&["plan", "algo.toml"]);
        assert!(!out.status.success(), "{file}: plan should fail");
        let err = stderr(&out);
        assert!(err.contains(file), "{file}: {err}");
        assert!(
            !env.path("cache/entries").exists(),
            "{file}: nothing was computed"
        );
    }
}

#[test]
fn r2_over_nc_on_a_subject_without_noise_ceiling_is_a_clear_error() {
    let env = Env::new();
    let text = EXPERIMENT.replace(
        "submission = { refit = \"train\" }",
        "metrics = [\"pearson_r\", \"r2_over_nc\"]",
    );
    fs::write(env.path("algo.toml"), text).unwrap();
    let out = env.run(&["plan", "algo.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("analyses.encoding asks for r2_over_nc, but subject `subj01` (algonauts2023) has no noise ceiling"),
        "{err}"
    );
}

#[test]
fn refitting_on_train_and_val_changes_only_the_submission() {
    let env = Env::new();
    env.exec();
    let sub = env.path("results/algonauts_2023_challenge_submission/subj01/lh_pred_test.npy");
    let before = fs::read(&sub).unwrap();
    let text = EXPERIMENT.replace("refit = \"train\"", "refit = \"train+val\"");
    fs::write(env.path("algo.toml"), text).unwrap();
    let (s, _) = env.exec();
    let log = fs::read_to_string(s["run_log"].as_str().unwrap()).unwrap();
    let ran: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "node" && v["outcome"] != "reused")
        .collect();
    let ids: Vec<&str> = ran.iter().map(|v| v["node"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "linear_fit/subj01/alexnet/features.2/refit-all",
            "submission/encoding"
        ],
        "the scored fit, the PCA and the table are reused"
    );
    let after = fs::read(&sub).unwrap();
    assert_eq!(after.len(), before.len());
    assert_ne!(
        after, before,
        "180 + 20 stimuli give other predictions than 180"
    );
}
