//! End-to-end: build a temp dir with a synthetic subject, run the `runner`
//! binary, and assert stdout, stderr, the run logs and the files it writes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const ROIS: &str = r#"
[rois.V1]
column = "prf-visualrois"
labels = ["V1"]
match = "substring"
min_ncsnr = 0.2

[rois.V4]
column = "prf-visualrois"
labels = ["V4"]
match = "substring"
min_ncsnr = 0.2

[rois.ventral]
column = "streams"
labels = ["ventral"]
match = "exact"
min_ncsnr = 0.2
"#;

fn experiment(alpha_grid: &str) -> String {
    format!(
        r#"# a comment that must not change any key
[experiment]
name = "t"
cache = "cache"
results = "results"

[subjects.s1]
path = "data/s1"

[features.toy]
kind = "npy"
dir = "data/s1/features/toy"
layers = ["pixels", "edges", "global"]
{ROIS}
[analyses.ridge]
kind = "ridge_cv"
alpha_grid = {alpha_grid}
aggregate = "mean"

[[plots]]
kind = "heatmap"
metric = "r2_over_nc"
rois = ["V1", "V4", "ventral"]
"#
    )
}

const GRID: &str = "[1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5]";
/// subject + 3 rois + split + 3 decompose + 9 fits + 9 scores + table + plot
const NODES: u64 = 1 + 3 + 1 + 3 + 9 + 9 + 1 + 1;

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

use common::{ran_kinds, runner};

impl Env {
    fn new() -> Env {
        let (tmp, dir) = common::synth_subject([120, 40, 60]);
        fs::write(dir.join("exp.toml"), experiment(GRID)).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }

    fn exec(&self) -> Value {
        let out = self.run(&["exec", "exp.toml", "--json"]);
        assert!(
            out.status.success(),
            "exec failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }
}

/// The node kinds that ran (not reused) in a run log.

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn second_exec_runs_nothing_and_writes_results() {
    let env = Env::new();
    let first = env.exec();
    assert_eq!(first["ran"], NODES);
    assert_eq!(first["reused"], 0);
    let second = env.exec();
    assert_eq!(second["ran"], 0);
    assert_eq!(second["reused"], NODES);
    assert_eq!(
        Path::new(second["results_dir"].as_str().unwrap()),
        env.path("results")
    );
    for f in [
        "results.parquet",
        "results.csv",
        "results_wide.csv",
        "voxel_scores.parquet",
        "heatmap_r2_over_nc_toy.png",
        "heatmap_r2_over_nc_toy.svg",
    ] {
        assert!(env.path("results").join(f).is_file(), "missing {f}");
    }
    let csv = fs::read_to_string(env.path("results/results.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "analysis,subject,hemisphere,source,layer,layer_index,roi,split,set,metric,aggregate,value,n_voxels,node_key"
    );
    // 9 fits × (r2, r2_over_nc, pearson_r, noise_ceiling, alpha)
    assert_eq!(lines.count(), 9 * 5);
    let wide = fs::read_to_string(env.path("results/results_wide.csv")).unwrap();
    let mut lines = wide.lines();
    assert_eq!(
        lines.next().unwrap(),
        "analysis,subject,source,layer,roi,hemisphere,split,set,n_voxels,r2,r2_over_nc,pearson_r,noise_ceiling,alpha"
    );
    assert_eq!(lines.count(), 9);
    let png = fs::read(env.path("results/heatmap_r2_over_nc_toy.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = fs::read_to_string(env.path("results/heatmap_r2_over_nc_toy.svg")).unwrap();
    assert!(
        svg.contains("ventral") && svg.contains("edges") && svg.contains("<text"),
        "labels in svg"
    );
}

#[test]
fn the_synthetic_brain_prefers_edges_early_and_global_late() {
    // The synthetic subject's V1 voxels are built from local edge energy and
    // its ventral voxels from global image statistics; the fits must see that.
    let env = Env::new();
    env.exec();
    let csv = fs::read_to_string(env.path("results/results_wide.csv")).unwrap();
    let score = |layer: &str, roi: &str| -> f64 {
        let row = csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|c| c[3] == layer && c[4] == roi)
            .unwrap();
        row[10].parse().unwrap()
    };
    assert!(score("edges", "V1") > score("global", "V1"));
    assert!(score("edges", "V1") > score("pixels", "V1"));
    assert!(score("global", "ventral") > score("edges", "ventral"));
    assert!(
        score("edges", "V1") > 0.2,
        "V1 from edges: {}",
        score("edges", "V1")
    );
}

#[test]
fn changing_the_alpha_grid_reruns_only_fit_score_table_plot() {
    let env = Env::new();
    env.exec();
    fs::write(
        env.path("exp.toml"),
        experiment("[1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]"),
    )
    .unwrap();
    let plan = env.run(&["plan", "exp.toml"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.lines().any(|l| l.starts_with("stale")
            && l.contains("fit/ridge/s1/toy/edges/V1")
            && l.contains("params changed: alpha_grid")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("fresh") && l.contains("decompose/s1/toy/edges")),
        "{plan}"
    );
    let s = env.exec();
    assert_eq!(s["ran"], 9 + 9 + 1 + 1);
    assert_eq!(
        ran_kinds(Path::new(s["run_log"].as_str().unwrap())),
        ["fit", "plot", "score", "table"]
    );
}

#[test]
fn a_comment_or_table_reorder_changes_no_key() {
    let env = Env::new();
    env.exec();
    let text = experiment(GRID);
    // Move [rois.V1] to the end and add comments.
    let v1 = "[rois.V1]\ncolumn = \"prf-visualrois\"\nlabels = [\"V1\"]\nmatch = \"substring\"\nmin_ncsnr = 0.2\n";
    let moved = text.replace(v1, "") + "\n# moved\n" + v1;
    assert_ne!(moved, text);
    fs::write(env.path("exp.toml"), moved).unwrap();
    assert_eq!(env.exec()["ran"], 0);
}

#[test]
fn one_byte_of_one_feature_file_reruns_only_its_dependents() {
    let env = Env::new();
    env.exec();
    let f = env.path("data/s1/features/toy/global.npy");
    let mut bytes = fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&f, bytes).unwrap();
    let s = env.exec();
    // decompose(global) + 3 fits + 3 scores + table + plot
    assert_eq!(s["ran"], 1 + 3 + 3 + 1 + 1);
    let explain = env.run(&["explain", "exp.toml", "fit/ridge/s1/toy/edges/V1"]);
    assert!(String::from_utf8_lossy(&explain.stdout).contains("status:       fresh"));
}

#[test]
fn toml_errors_name_file_line_and_column() {
    let env = Env::new();
    let bad = experiment(GRID).replace("alpha_grid =", "alpha_gird =");
    fs::write(env.path("exp.toml"), bad).unwrap();
    let out = env.run(&["exec", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let line = experiment(GRID)
        .lines()
        .position(|l| l.starts_with("alpha_grid"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("exp.toml:{line}:1: unknown field `alpha_gird`")),
        "{err}"
    );
    assert!(
        !env.path("results").exists(),
        "nothing written on a config error"
    );

    let bad = experiment(GRID).replace("match = \"exact\"", "match = 3");
    fs::write(env.path("exp.toml"), bad).unwrap();
    let err = stderr(&env.run(&["exec", "exp.toml"]));
    assert!(
        err.contains("exp.toml:") && err.contains("rois.ventral.match"),
        "{err}"
    );
}

#[test]
fn data_errors_say_what_to_fix() {
    let env = Env::new();
    // Missing feature file: points at the `dir` in the TOML.
    fs::remove_file(env.path("data/s1/features/toy/edges.npy")).unwrap();
    let err = stderr(&env.run(&["exec", "exp.toml"]));
    assert!(
        err.contains("no file") && err.contains("edges.npy") && err.contains("exp.toml:"),
        "{err}"
    );

    // Wrong number of rows.
    runner::npy::write(
        &env.path("data/s1/features/toy/edges.npy"),
        &[10, 4],
        &[0f32; 40],
    )
    .unwrap();
    let err = stderr(&env.run(&["exec", "exp.toml"]));
    assert!(
        err.contains("has 10 rows but subject `s1` has 220 images"),
        "{err}"
    );

    // NaN in a feature matrix: names file, row and column; nothing is cached for it.
    let mut x = vec![0.5f32; 220 * 4];
    x[7 * 4 + 2] = f32::NAN;
    runner::npy::write(&env.path("data/s1/features/toy/edges.npy"), &[220, 4], &x).unwrap();
    let out = env.run(&["exec", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("non-finite feature NaN at row 7, column 2"),
        "{err}"
    );

    // A missing subject directory points at `path`.
    fs::write(
        env.path("exp.toml"),
        experiment(GRID).replace("data/s1\"\n", "data/nope\"\n"),
    )
    .unwrap();
    let err = stderr(&env.run(&["plan", "exp.toml"]));
    assert!(
        err.contains("subject directory") && err.contains("does not exist"),
        "{err}"
    );
}

fn fit_entry(env: &Env, id: &str) -> PathBuf {
    let explain = env.run(&["explain", "exp.toml", id]);
    common::entry_dir(&explain.stdout, &env.path("cache"))
}

#[test]
fn a_corrupt_entry_is_detected_and_recomputed() {
    let env = Env::new();
    env.exec();
    let before = fs::read(env.path("results/results.csv")).unwrap();
    let entry = fit_entry(&env, "fit/ridge/s1/toy/edges/V4");
    let f = entry.join("pred.test.npy");
    let mut bytes = fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&f, bytes).unwrap();
    let out = env.run(&["exec", "exp.toml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["recomputed_corrupt"], 1);
    assert_eq!(s["ran"], 1);
    assert!(stderr(&out).contains("fit/ridge/s1/toy/edges/V4: cached entry was corrupt"));
    assert_eq!(fs::read(env.path("results/results.csv")).unwrap(), before);
}

#[test]
fn two_concurrent_execs_share_the_cache_and_compute_each_node_once() {
    let env = Env::new();
    let spawn = || {
        runner()
            .args(["exec", "exp.toml", "--json"])
            .current_dir(&env.dir)
            .env("RUNNER_TEST_SLOW_MS", "20")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let a: Value = serde_json::from_slice(&a.stdout).unwrap();
    let b: Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(
        a["ran"].as_u64().unwrap() + b["ran"].as_u64().unwrap(),
        NODES
    );
    assert_eq!(
        a["reused"].as_u64().unwrap() + b["reused"].as_u64().unwrap(),
        NODES
    );
}

#[test]
fn kill_minus_9_then_exec_completes_with_the_same_results() {
    let reference = Env::new();
    reference.exec();
    let want = fs::read(reference.path("results/results.csv")).unwrap();

    let env = Env::new();
    for delay_ms in [150u64, 400, 800] {
        let mut child = runner()
            .args(["exec", "exp.toml", "--jobs", "2"])
            .current_dir(&env.dir)
            .env("RUNNER_TEST_SLOW_MS", "60")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let s = env.exec();
    assert!(
        s["reused"].as_u64().unwrap() > 0,
        "the killed runs left complete entries"
    );
    assert_eq!(fs::read(env.path("results/results.csv")).unwrap(), want);
    // Every entry in the cache is complete and verifies.
    let status = env.run(&["status", "--cache", "cache"]);
    assert!(status.status.success());
    let again = env.exec();
    assert_eq!(again["ran"], 0);
}

#[test]
fn gc_keeps_what_experiments_use() {
    let env = Env::new();
    env.exec();
    fs::write(env.path("exp2.toml"), experiment("[1.0, 10.0]")).unwrap();
    let out = env.run(&["exec", "exp2.toml", "--json"]);
    assert!(out.status.success());
    let out = env.run(&["gc", "exp.toml"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // exp2's fits, scores, table and plot are removed; shared nodes stay.
    assert!(text.starts_with("removed 20 entries"), "{text}");
    assert_eq!(env.exec()["ran"], 0);
    let status =
        String::from_utf8_lossy(&env.run(&["status", "--cache", "cache"]).stdout).to_string();
    assert!(status.contains(&format!("entries: {NODES}")), "{status}");
}

#[test]
fn explain_names_the_changed_component() {
    let env = Env::new();
    env.exec();
    fs::write(env.path("exp.toml"), experiment("[1.0, 10.0]")).unwrap();
    let out = env.run(&["explain", "exp.toml", "score/ridge/s1/toy/edges/V1"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("kind:         score"), "{text}");
    assert!(
        text.contains("status:       stale — upstream `fit` changed"),
        "{text}"
    );
    let out = env.run(&["explain", "exp.toml", "fit/nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no node `fit/nope`"));
}

#[test]
fn results_of_removed_plots_do_not_linger() {
    let env = Env::new();
    env.exec();
    assert!(env.path("results/heatmap_r2_over_nc_toy.png").is_file());
    let text = experiment(GRID).replace("metric = \"r2_over_nc\"", "metric = \"r2\"");
    fs::write(env.path("exp.toml"), text).unwrap();
    let s = env.exec();
    assert_eq!(s["ran"], 1, "only the plot node is new");
    assert!(env.path("results/heatmap_r2_toy.png").is_file());
    assert!(!env.path("results/heatmap_r2_over_nc_toy.png").exists());
    assert!(env.path("results/results.csv").is_file());
}

#[test]
fn plan_output_snapshot() {
    let env = Env::new();
    env.exec();
    fs::write(env.path("exp.toml"), experiment("[1.0, 10.0]")).unwrap();
    let out = env.run(&["plan", "exp.toml"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Keys change with every code version; the structure and reasons must not.
    insta::with_settings!({filters => vec![(r"\b[0-9a-f]{12}\b", "[key]")]}, {
        insta::assert_snapshot!(text);
    });
}

#[test]
fn median_aggregate_and_per_voxel_alpha_are_what_the_table_says() {
    let env = Env::new();
    let text = experiment(GRID)
        .replace("aggregate = \"mean\"", "aggregate = \"median\"")
        .replace("alpha_grid =", "alpha_per_voxel = true\nalpha_grid =");
    fs::write(env.path("exp.toml"), text).unwrap();
    env.exec();
    let table =
        runner::nodes::table::read_results(fs::read(env.path("results/results.parquet")).unwrap())
            .unwrap();
    let voxels = runner::nodes::table::read_results(
        fs::read(env.path("results/voxel_scores.parquet")).unwrap(),
    )
    .unwrap();
    let strs = |df: &polars::prelude::DataFrame, c: &str| -> Vec<String> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    };
    let nums = |df: &polars::prelude::DataFrame, c: &str| -> Vec<f64> {
        df.column(c)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    };
    let (metric, agg) = (strs(&table, "metric"), strs(&table, "aggregate"));
    // Scores are medians; α (per voxel here) is summarised by its median too.
    assert!(agg.iter().all(|a| a == "median"), "{agg:?}");
    let (layers, rois, value) = (
        strs(&table, "layer"),
        strs(&table, "roi"),
        nums(&table, "value"),
    );
    let (vl, vr, vm, vv) = (
        strs(&voxels, "layer"),
        strs(&voxels, "roi"),
        strs(&voxels, "metric"),
        nums(&voxels, "value"),
    );
    let mut checked = 0;
    for i in (0..layers.len()).filter(|&i| metric[i] == "r2") {
        let mut mine: Vec<f64> = (0..vl.len())
            .filter(|&j| vl[j] == layers[i] && vr[j] == rois[i] && vm[j] == "r2")
            .map(|j| vv[j])
            .collect();
        mine.sort_by(f64::total_cmp);
        let m = mine.len();
        let median = if m % 2 == 1 {
            mine[m / 2]
        } else {
            (mine[m / 2 - 1] + mine[m / 2]) / 2.0
        };
        assert!(
            (median - value[i]).abs() < 1e-12,
            "{} {}: table {} vs median {median}",
            layers[i],
            rois[i],
            value[i]
        );
        checked += 1;
    }
    assert_eq!(checked, 9);
    // Per-voxel α: voxels of one ROI do not all share one α.
    let alphas_v1_edges: Vec<f64> = (0..vl.len())
        .filter(|&j| vl[j] == "edges" && vr[j] == "V1" && vm[j] == "alpha")
        .map(|j| vv[j])
        .collect();
    assert!(
        alphas_v1_edges.len() > 1 && alphas_v1_edges.iter().any(|a| *a != alphas_v1_edges[0]),
        "{alphas_v1_edges:?}"
    );
}

#[test]
fn nan_in_brain_data_is_an_error_naming_the_file() {
    let env = Env::new();
    let f = env.path("data/s1/brain/train.lh.npy");
    let mut a = runner::npy::read_f32(&f).unwrap();
    for x in a.data.iter_mut().take(a.shape[1] * a.shape[2]) {
        *x = f32::NAN;
    }
    runner::npy::write(&f, &a.shape, &a.data).unwrap();
    let out = env.run(&["exec", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("train.lh.npy: non-finite response NaN at image 0, repeat 0"),
        "{err}"
    );
    assert!(!env.path("results").exists());
}

#[test]
fn an_roi_that_selects_nothing_is_refused_by_ridge_at_plan_time() {
    let env = Env::new();
    let text = experiment(GRID).replace("labels = [\"V4\"]", "labels = [\"V44\"]");
    fs::write(env.path("exp.toml"), text).unwrap();
    let out = env.run(&["plan", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "analyses.ridge: ROI `V4` of subject `s1` selects no voxel: no label in `prf-visualrois` contains any of [\"V44\"] with ncsnr > 0.2"
        ),
        "{err}"
    );
    assert!(
        err.contains("labels present:") && err.contains("hV4"),
        "{err}"
    );
}
