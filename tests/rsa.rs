//! Seed 004 from one file, as a user runs it: a synthetic Stringer-like
//! `.npz`, the seed's CNN trained by runner on the grating task, RSA and
//! tuning curves, and the errors a student meets first.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{ran_kinds, runner};
use serde_json::Value;

const LAYERS: &str = r#"layers = [
  { name = "conv", type = "conv2d", in_channels = 1, out_channels = 6, kernel_size = 7, padding = 3, init = "center_surround_gabor" },
  { name = "conv_relu", type = "relu" },
  { name = "pool", type = "maxpool2d", kernel_size = 8 },
  { name = "flatten", type = "flatten" },
  { name = "fc", type = "linear", in_features = FC_IN, out_features = 10 },
  { name = "fc_relu", type = "relu" },
  { name = "out", type = "linear", in_features = 10, out_features = 1 },
  { name = "sigmoid", type = "sigmoid" },
]"#;

/// The assignment's experiment, with a shorter training (`epochs`) so that
/// the suite stays fast; `extra_train` goes into the train table.
fn experiment(
    compare: &str,
    responses: &str,
    fc_in: usize,
    epochs: u32,
    extra_train: &str,
) -> String {
    format!(
        r#"[experiment]
name = "rsa_test"
cache = "cache"
results = "results"

[subjects.v1]
format = "npz_responses"
path = "data/W3D4_stringer_oribinned1.npz"
responses = "{responses}"
stimulus = "stimuli"
stimulus_max = 180
stimulus_offset = -90
labels = ["plane"]

[models.cnn]
arch = "sequential"
seed = 12
{layers}

[models.cnn.train]
task = "grating_tilt"
n_train = 1000
n_val = 200
epochs = {epochs}
batch_size = 100
lr = 5e-4
momentum = 0.99
{extra_train}

[features.cnn]
kind = "extract"
model = "cnn"
stimuli = "gratings"
layers = ["pool", "fc"]

[rois.all_neurons]
all = true

[rois.plane0]
column = "plane"
labels = ["0"]
match = "exact"

[analyses.rsa]
kind = "rsa"
compare = {compare}
bootstrap = 200

[analyses.tuning]
kind = "tuning_curves"
top_k = 3
rois = ["all_neurons"]

[[plots]]
kind = "rdms"
analysis = "rsa"

[[plots]]
kind = "rsa_bars"
analysis = "rsa"

[[plots]]
kind = "tuning_curves"
analysis = "tuning"
"#,
        layers = LAYERS.replace("FC_IN", &fc_in.to_string()),
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    fn new(text: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let out = runner()
            .args(["synth", "--layout", "npz_responses", "data"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "synth failed: {}", stderr(&out));
        fs::write(dir.join("exp.toml"), text).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }

    fn exec(&self) -> (Value, String) {
        let out = self.run(&["exec", "exp.toml", "--json"]);
        assert!(out.status.success(), "exec failed:\n{}", stderr(&out));
        (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// (layer, roi, metric, aggregate) → value, from results.csv.
    fn results(&self) -> Vec<(String, String, String, String, f64)> {
        let text = fs::read_to_string(self.path("results/results.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (l, r, m, a, v) = (
            col("layer"),
            col("roi"),
            col("metric"),
            col("aggregate"),
            col("value"),
        );
        lines
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                (
                    f[l].to_string(),
                    f[r].to_string(),
                    f[m].to_string(),
                    f[a].to_string(),
                    f[v].parse().unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    fn value(&self, layer: &str, roi: &str, metric: &str, agg: &str) -> f64 {
        self.results()
            .into_iter()
            .find(|x| x.0 == layer && x.1 == roi && x.2 == metric && x.3 == agg)
            .unwrap_or_else(|| panic!("no {layer}/{roi}/{metric}/{agg} in results.csv"))
            .4
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn the_assignment_runs_from_one_file_and_a_new_comparison_reruns_no_training() {
    let env = Env::new(&experiment(
        "[\"pearson\", \"kendall_tau_a\"]",
        "resp",
        288,
        4,
        "",
    ));
    let (s, _) = env.exec();
    let kinds = ran_kinds(Path::new(s["run_log"].as_str().unwrap()));
    for k in [
        "extract", "plot", "rdm", "rsa", "subject", "table", "train", "tuning",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} node ran: {kinds:?}");
    }
    // Every comparison of every layer × ROI, with an interval around it.
    for layer in ["pool", "fc"] {
        for roi in ["all_neurons", "plane0"] {
            for m in ["rdm_pearson", "rdm_kendall_tau_a"] {
                let v = env.value(layer, roi, m, "value");
                let (lo, hi) = (
                    env.value(layer, roi, m, "ci_low"),
                    env.value(layer, roi, m, "ci_high"),
                );
                assert!((-1.0..=1.0).contains(&v), "{layer} {roi} {m} = {v}");
                assert!(lo <= hi && lo.is_finite() && hi.is_finite(), "{lo} {hi}");
            }
        }
    }
    // Both sides are orientation-tuned: their RDMs agree on which
    // orientations are close (synthetic V1 is von Mises-tuned; the pool
    // units are rectified oriented filters).
    let pool = env.value("pool", "all_neurons", "rdm_pearson", "value");
    assert!(pool > 0.3, "pool vs V1: Pearson r of the RDMs {pool}");
    for f in [
        "results/rdms_rsa_v1_all_neurons.png",
        "results/rdms_rsa_v1_plane0.svg",
        "results/rsa_bars_rsa_pearson_v1_all_neurons.png",
        "results/tuning_curves_tuning_v1.png",
        "results/cnn_learning_curves.csv",
        "results/cnn_model.safetensors",
    ] {
        assert!(env.path(f).is_file(), "{f} missing");
    }
    // The tuning CSV: 3 neurons and 3 units per layer, 180 orientations
    // from −89.5 to 89.5, the most selective first.
    let csv = fs::read_to_string(env.path("results/tuning_curves_tuning.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), (3 + 3 + 3) * 180);
    let neurons: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1].is_empty()).collect();
    assert_eq!(neurons.len(), 3 * 180);
    assert_eq!(neurons[0][6], "-89.5");
    assert_eq!(neurons[179][6], "89.5");
    let osi: Vec<f64> = neurons
        .chunks(180)
        .map(|c| c[0][5].parse().unwrap())
        .collect();
    assert!(osi.windows(2).all(|w| w[0] >= w[1]), "{osi:?}");

    // Another comparison: only the comparison nodes and what reads them.
    fs::write(
        env.path("exp.toml"),
        experiment("[\"pearson\", \"spearman\"]", "resp", 288, 4, ""),
    )
    .unwrap();
    let (s, _) = env.exec();
    assert_eq!(
        ran_kinds(Path::new(s["run_log"].as_str().unwrap())),
        ["plot", "rsa", "table"]
    );
    let rho = env.value("pool", "all_neurons", "rdm_spearman", "value");
    assert!((-1.0..=1.0).contains(&rho));
    // The same Pearson as before: comparisons do not share state.
    assert_eq!(
        env.value("pool", "all_neurons", "rdm_pearson", "value"),
        pool
    );
}

#[test]
fn an_npz_without_the_named_array_says_which_arrays_it_has() {
    let env = Env::new(&experiment("\"pearson\"", "responses", 288, 1, ""));
    let out = env.run(&["exec", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("has no array `responses` (the responses); it has: resp, stimuli, plane"),
        "{err}"
    );
    assert!(err.contains("W3D4_stringer_oribinned1.npz"), "{err}");
    assert!(!env.path("results").exists());
}

#[test]
fn a_cnn_whose_layers_do_not_chain_names_the_layer_and_both_shapes() {
    let env = Env::new(&experiment("\"pearson\"", "resp", 300, 1, ""));
    let out = env.run(&["plan", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("exp.toml:"), "no file:line:col in {err}");
    assert!(
        err.contains("`fc`") && err.contains("300") && err.contains("288"),
        "{err}"
    );
}

#[test]
fn plots_and_analyses_of_the_wrong_family_are_refused() {
    let text = experiment("\"pearson\"", "resp", 288, 1, "").replace(
        "kind = \"tuning_curves\"\nanalysis = \"tuning\"",
        "kind = \"tuning_curves\"\nanalysis = \"rsa\"",
    );
    let env = Env::new(&text);
    let out = env.run(&["plan", "exp.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("plot kind \"tuning_curves\" draws tuning curves (kind = \"tuning_curves\"), but analyses.rsa is an RSA"),
        "{err}"
    );
}

/// The step of the saved training state in the cache's work directory.
fn saved_step(cache: &Path) -> Option<u64> {
    for e in fs::read_dir(cache.join("work")).ok()?.flatten() {
        if let Ok(b) = fs::read(e.path().join("progress.json"))
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
        {
            return v["step"].as_u64();
        }
    }
    None
}

#[test]
fn a_killed_grating_training_resumes_and_ends_where_an_uninterrupted_one_ends() {
    let text = experiment(
        "\"pearson\"",
        "resp",
        288,
        3,
        "checkpoint_every = 1\neval_every = 5",
    );
    let reference = Env::new(&text);
    reference.exec();
    let want = fs::read(reference.path("results/cnn_model.safetensors")).unwrap();

    let env = Env::new(&text);
    let mut child = runner()
        .args(["exec", "exp.toml"])
        .current_dir(&env.dir)
        .env("RUNNER_TEST_STEP_MS", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let killed_at = loop {
        if let Some(step) = saved_step(&env.path("cache"))
            && step >= 4
        {
            break step;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no training state appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL, mid-training
    child.wait().unwrap();
    assert!(killed_at < 30, "killed after training finished");
    let (_, err) = env.exec();
    let resumed: u64 = err
        .split("resumed from step ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume message in:\n{err}"));
    assert!((4..30).contains(&resumed), "resumed from {resumed}");
    assert!(
        fs::read(env.path("results/cnn_model.safetensors")).unwrap() == want,
        "the resumed run's weights differ from the uninterrupted run's"
    );
}

#[test]
fn bad_net_and_task_tables_are_errors_at_their_line() {
    let base = experiment("\"pearson\"", "resp", 288, 1, "");
    for (from, to, want) in [
        (
            "{ name = \"conv_relu\", type = \"relu\" }",
            "{ name = \"conv_relu\", type = \"relu\", kernel_size = 3 }",
            "layer `conv_relu` (relu) has no `kernel_size`",
        ),
        (
            "{ name = \"pool\", type = \"maxpool2d\", kernel_size = 8 }",
            "{ name = \"pool\", type = \"avgpool\", kernel_size = 8 }",
            "unknown layer type `avgpool`",
        ),
        (
            "{ name = \"flatten\", type = \"flatten\" },\n",
            "",
            "put a flatten layer before it",
        ),
        (
            "{ name = \"sigmoid\", type = \"sigmoid\" },\n",
            "",
            "grating_tilt trains with binary cross-entropy on one probability",
        ),
        (
            "task = \"grating_tilt\"",
            "task = \"barcode\"",
            "unknown training task `barcode` for a sequential net",
        ),
        (
            "stimuli = \"gratings\"\n",
            "",
            "is a sequential net, which runs on gratings",
        ),
        (
            "layers = [\"pool\", \"fc\"]",
            "layers = [\"pool\", \"fc2\"]",
            "`fc2` is not a layer of model `cnn`",
        ),
        (
            "compare = \"pearson\"",
            "compare = \"cosine\"",
            "unknown comparison `cosine`",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let env = Env::new(&base.replacen(from, to, 1));
        let out = env.run(&["plan", "exp.toml"]);
        assert!(!out.status.success(), "{to}");
        let err = stderr(&out);
        assert!(err.contains(want), "{to}: {err}");
        assert!(
            err.contains("exp.toml:"),
            "no file:line:col for {to}: {err}"
        );
    }
}

#[test]
fn a_stimulus_with_a_constant_pattern_is_reported_and_left_out() {
    use runner::npz::{Npz, NpzArray, write};
    let env = Env::new(&experiment("\"pearson\"", "resp", 288, 1, ""));
    let file = env.path("data/W3D4_stringer_oribinned1.npz");
    let npz = Npz::open(&file).unwrap();
    let resp = npz.read_f64("resp").unwrap();
    let (rows, n) = (resp.shape[0], resp.shape[1]);
    let mut data: Vec<f32> = resp.data.iter().map(|&x| x as f32).collect();
    // Stimulus row 5 (0.5 + 5 = 5.5°, kept as −84.5°): the same response in every neuron.
    data[5 * n..6 * n].fill(0.25);
    let stim = npz.read_f64("stimuli").unwrap().data;
    let plane: Vec<i64> = npz
        .read_labels("plane")
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    drop(npz);
    write(
        &file,
        &[
            (
                "resp",
                NpzArray::F32 {
                    shape: vec![rows, n],
                    data,
                },
            ),
            (
                "stimuli",
                NpzArray::F64 {
                    shape: vec![rows],
                    data: stim,
                },
            ),
            (
                "plane",
                NpzArray::I64 {
                    shape: vec![n],
                    data: plane,
                },
            ),
        ],
    )
    .unwrap();
    let (_, err) = env.exec();
    assert!(
        err.contains("1 of 180 stimuli have a constant pattern over the 1000 units (correlation distance undefined): stimuli 5; comparisons leave them out"),
        "{err}"
    );
    let v = env.value("pool", "all_neurons", "rdm_pearson", "value");
    assert!(v.is_finite() && (-1.0..=1.0).contains(&v), "{v}");
}
