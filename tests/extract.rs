//! Extraction as a cached node: runs the binary on a synthetic subject with
//! tiny AlexNets (the golden-test checkpoints), and checks the cached feature
//! matrices against the library's forward pass on the same images.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use burn::prelude::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alexnet/checkpoints")
}

fn experiment(checkpoint: &Path, batch_size: usize) -> String {
    format!(
        r#"
[experiment]
name = "x"
cache = "cache"
results = "results"

[subjects.s1]
path = "data/s1"

[models.random]
arch = "alexnet"
widths = [8, 24, 32, 32, 16]
hidden = 64
num_classes = 32
seed = 7

[models.trained]
arch = "alexnet"
widths = [8, 24, 32, 32, 16]
hidden = 64
num_classes = 32
checkpoint = "{}"

[features.random]
kind = "extract"
model = "random"
layers = ["conv_pool_after_layer2", "fc1"]
batch_size = {batch_size}

[features.trained]
kind = "extract"
model = "trained"
layers = ["conv_pool_after_layer_12", "fc2"]
batch_size = {batch_size}

[rois.V1]
column = "prf-visualrois"
labels = ["V1"]
match = "substring"
min_ncsnr = 0.2

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [1.0, 100.0, 1e4]

[[plots]]
kind = "heatmap"
"#,
        checkpoint.display()
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    fn new(checkpoint: &Path, batch_size: usize) -> Env {
        let (tmp, dir) = common::synth_subject([40, 10, 20]);
        fs::write(dir.join("exp.toml"), experiment(checkpoint, batch_size)).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::cargo_bin("runner")
            .unwrap()
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    fn exec(&self) -> Value {
        let out = self.run(&["exec", "exp.toml", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The verified bytes of a tap in the extract node's cache entry.
    fn tap(&self, source: &str, tap: &str) -> runner::npy::Array<f32> {
        let out = self.run(&["explain", "exp.toml", &format!("extract/s1/{source}")]);
        let path =
            common::entry_dir(&out.stdout, &self.dir.join("cache")).join(format!("{tap}.npy"));
        runner::npy::read_f32(&path).unwrap()
    }
}

#[test]
fn extracted_taps_are_the_forward_pass_of_every_image_in_stimulus_order() {
    let ckpt = fixtures().join("hw_small_bare.pt");
    let env = Env::new(&ckpt, 8);
    let s = env.exec();
    // 2 extract + 4 decompose + 4 fits + 4 scores + subject + roi + split + table + plot
    assert_eq!(s["ran"], 2 + 4 + 4 + 4 + 5);

    let cfg = runner::model::alexnet::AlexNetConfig {
        widths: [8, 24, 32, 32, 16],
        hidden: 64,
        num_classes: 32,
        dropout: 0.5,
    };
    let device = runner::model::device::device_for(runner::vocab::DeviceChoice::Auto)
        .unwrap()
        .0;
    let mut net = cfg.init(&device);
    runner::model::load::load_weights(&mut net, &ckpt).unwrap();
    let pre = runner::preprocess::Preprocess::hw2();
    let mut pixels = Vec::new();
    let mut n = 0;
    for split in ["train", "val", "test"] {
        let imgs =
            runner::npy::read_u8(&env.dir.join(format!("data/s1/images/{split}.npy"))).unwrap();
        let (h, w) = (imgs.shape[1], imgs.shape[2]);
        for i in 0..imgs.shape[0] {
            pixels.extend(pre.apply(&imgs.data[i * h * w * 3..(i + 1) * h * w * 3], h, w));
            n += 1;
        }
    }
    assert_eq!(n, 70);
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, 224, 224]), &device);
    let want = net.forward_taps(x, &["features.12", "classifier.4"]);
    for (tap, t) in ["conv_pool_after_layer_12", "fc2"].iter().zip(want) {
        let want = t.into_data().try_to_vec::<f32>().unwrap();
        let got = env.tap("trained", tap);
        assert_eq!(got.shape[0], 70, "{tap}");
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let max_abs = got
            .data
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            max_abs <= 1e-5 * scale.max(1.0),
            "{tap}: batches of 8 vs one batch of 70: {max_abs}"
        );
    }
    assert_eq!(env.exec()["ran"], 0);
}

#[test]
fn the_checkpoint_bytes_are_part_of_the_key_and_bad_checkpoints_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("net.safetensors");
    fs::copy(fixtures().join("hw_small.safetensors"), &ckpt).unwrap();
    let env = Env::new(&ckpt, 16);
    env.exec();

    // Same tensors, other bytes: the trained extract and what depends on it re-run.
    fs::copy(
        fixtures().join("hw_small_bare.pt"),
        tmp.path().join("net.pt"),
    )
    .unwrap();
    fs::write(
        env.dir.join("exp.toml"),
        experiment(&tmp.path().join("net.pt"), 16),
    )
    .unwrap();
    let s = env.exec();
    assert_eq!(s["ran"], 1 + 2 + 2 + 2 + 1 + 1, "{s}");

    // The torchvision layout's weights do not fit the HW layout.
    fs::write(
        env.dir.join("exp.toml"),
        experiment(&fixtures().join("tv_small_bare.pt"), 16),
    )
    .unwrap();
    let out = env.run(&["exec", "exp.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoint does not fit the model"), "{err}");
    assert!(err.contains("features.8.weight has shape [16, 32, 3, 3] in the checkpoint but the model expects [32, 32, 3, 3]"), "{err}");

    fs::write(
        env.dir.join("exp.toml"),
        experiment(&tmp.path().join("missing.pt"), 16),
    )
    .unwrap();
    let err = String::from_utf8_lossy(&env.run(&["plan", "exp.toml"]).stderr).to_string();
    assert!(
        err.contains("models.trained: no checkpoint at") && err.contains("exp.toml:"),
        "{err}"
    );
}

#[test]
fn random_init_is_reproducible_from_its_seed() {
    let ckpt = fixtures().join("hw_small_bare.pt");
    let a = Env::new(&ckpt, 32);
    a.exec();
    let b = Env::new(&ckpt, 5);
    b.exec();
    let (x, y) = (a.tap("random", "fc1").data, b.tap("random", "fc1").data);
    let max_abs = x
        .iter()
        .zip(&y)
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    let scale = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 0.0 && max_abs <= 1e-5 * scale,
        "same seed, batch 32 vs 5: {max_abs}"
    );

    // Another seed is another net.
    let c = Env::new(&ckpt, 32);
    let text = fs::read_to_string(c.dir.join("exp.toml"))
        .unwrap()
        .replace("seed = 7", "seed = 8");
    fs::write(c.dir.join("exp.toml"), text).unwrap();
    c.exec();
    let z = c.tap("random", "fc1").data;
    let diff = x
        .iter()
        .zip(&z)
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(diff > 1e-3 * scale, "seed 7 and seed 8 gave the same net");
}

#[test]
fn adding_an_analysis_reuses_every_extraction_and_decomposition() {
    let ckpt = fixtures().join("hw_small_bare.pt");
    let env = Env::new(&ckpt, 8);
    env.exec();
    // A per-voxel-α ridge and an OLS on the same features, side by side.
    let text = experiment(&ckpt, 8).replace(
        "[[plots]]\nkind = \"heatmap\"\n",
        "[analyses.ridge_voxelwise]\nkind = \"ridge_cv\"\nalpha_grid = [1.0, 100.0, 1e4]\nalpha_per_voxel = true\n\n[analyses.ols]\nkind = \"linear\"\nreduce = { method = \"pca\", n_components = 10 }\nmetrics = [\"r2\", \"pearson_r\"]\n\n[[plots]]\nkind = \"heatmap\"\nanalysis = \"ridge\"\n",
    );
    fs::write(env.dir.join("exp.toml"), text).unwrap();
    let s = env.exec();
    let log = fs::read_to_string(s["run_log"].as_str().unwrap()).unwrap();
    let ran: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "node" && v["outcome"] != "reused")
        .collect();
    let kind_ran = |k: &str| ran.iter().filter(|v| v["kind"] == k).count();
    assert_eq!(kind_ran("extract"), 0, "extractions are shared");
    assert_eq!(
        kind_ran("decompose"),
        0,
        "the new ridge shares the decompositions"
    );
    assert_eq!(kind_ran("fit"), 4, "4 layers × 1 ROI, per-voxel α");
    assert_eq!(kind_ran("reduce"), 4);
    assert_eq!(kind_ran("linear_fit"), 4);
    let csv = fs::read_to_string(env.dir.join("results/results.csv")).unwrap();
    for analysis in ["ridge", "ridge_voxelwise", "ols"] {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("{analysis},s1,both,"))),
            "{analysis} rows"
        );
    }
}
