//! The train node: training lowers the loss, a killed run resumes and ends
//! exactly where an uninterrupted one ends, the export carries torchvision
//! names, the key covers what changes the weights, and bad `train` tables
//! are reported at their line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use runner::model::alexnet::AlexNetConfig;
use runner::train::spec::{BarcodeData, Optimizer, Schedule, TrainSpec};
use runner::vocab::DeviceChoice;
use serde_json::Value;

/// The net of the through-the-binary tests (few channels: fast).
fn tiny_net() -> AlexNetConfig {
    AlexNetConfig {
        widths: [8, 16, 16, 16, 16],
        hidden: 64,
        num_classes: 32,
        dropout: 0.0,
    }
}

/// Wide enough to get off the ln 2 plateau within 50 steps and well clear of
/// it by 100 (~80 s on 2 cores).
fn small_net() -> AlexNetConfig {
    AlexNetConfig {
        widths: [16, 32, 48, 48, 32],
        hidden: 256,
        num_classes: 32,
        dropout: 0.0,
    }
}

fn spec(steps: u64) -> TrainSpec {
    TrainSpec {
        dataset: BarcodeData {
            train_length: 2048,
            val_length: 256,
            seed: 1110,
            val_seed: 2025,
        },
        batch_size: 32,
        steps,
        lr: 1e-3,
        optimizer: Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        schedule: Schedule::Constant,
        eval_every: steps,
        checkpoint_every: steps,
        device: DeviceChoice::Cpu,
    }
}

#[test]
fn a_short_training_run_lowers_the_loss() {
    let work = tempfile::tempdir().unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let out = runner::train::train(&spec(100), &small_net(), 0, work.path(), &bar).unwrap();
    let (first, last) = (&out.history[0], out.history.last().unwrap());
    eprintln!("step 0: {first:?}\nstep 100: {last:?}");
    assert_eq!((first.step, last.step, last.samples), (0, 100, 3200));
    // Untrained: logits near 0, so BCE ≈ ln 2 and bits at chance.
    assert!(
        (first.val_loss - std::f64::consts::LN_2).abs() < 0.01,
        "{first:?}"
    );
    assert!((first.val_bit_acc - 0.5).abs() < 0.03, "{first:?}");
    // Training's float path differs between CPUs (README, Reproducibility):
    // after 50 steps val loss was 0.6736–0.6887 on three paths, after 100
    // 0.6201 and 0.6210 (bit accuracy 0.6145 and 0.5991) on the two measured
    // ones. These bounds sit 0.04 beyond every measured value, and far from
    // chance (bit accuracy at chance over 256 × 32 bits has σ ≈ 0.006).
    assert!(
        last.val_loss < std::f64::consts::LN_2 - 0.028,
        "val loss did not drop: {first:?} → {last:?}"
    );
    assert!(last.val_bit_acc > 0.56, "{last:?}");
    assert!(
        // The mean over all 100 steps: ≈ 0.668 and 0.673 measured.
        last.train_loss.unwrap() < std::f64::consts::LN_2 - 0.005,
        "{last:?}"
    );
}

// ---------------------------------------------------------------------------
// Through the binary
// ---------------------------------------------------------------------------

use common::runner;

fn experiment(train_extra: &str) -> String {
    format!(
        r#"[experiment]
name = "t"
cache = "cache"
results = "results"

[subjects.s1]
path = "data/s1"

[models.barcode]
arch = "alexnet"
widths = [8, 16, 16, 16, 16]
hidden = 64
num_classes = 32
dropout = 0.5
seed = 5

[models.barcode.train]
train_length = 64
val_length = 64
batch_size = 16
epochs = 3
optimizer = "sgd"
lr = 0.01
momentum = 0.9
weight_decay = 5e-4
schedule = "step"
lr_step_epochs = 2
eval_every = 2
{train_extra}

[features.barcode]
kind = "extract"
model = "barcode"
layers = ["fc1"]

[rois.V1]
column = "prf-visualrois"
labels = ["V1"]
match = "substring"

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [1.0, 100.0]
"#
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    fn new(train_extra: &str) -> Env {
        let (tmp, dir) = common::synth_subject([40, 10, 20]);
        fs::write(dir.join("exp.toml"), experiment(train_extra)).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn exec(&self) -> (Value, String) {
        let out = runner()
            .args(["exec", "exp.toml", "--json"])
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "exec failed:\n{err}");
        (serde_json::from_slice(&out.stdout).unwrap(), err)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// The learning curve without its wall-clock column.
    fn curve(&self) -> Vec<String> {
        fs::read_to_string(self.path("results/barcode_learning_curves.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    }
}

fn saved_step(cache: &Path) -> Option<u64> {
    let work = cache.join("work");
    for e in fs::read_dir(work).ok()?.flatten() {
        let p = e.path().join("progress.json");
        if let Ok(b) = fs::read(&p)
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
        {
            return v["step"].as_u64();
        }
    }
    None
}

#[test]
fn a_killed_training_run_resumes_and_ends_where_an_uninterrupted_run_ends() {
    let reference = Env::new("checkpoint_every = 1");
    reference.exec();
    let want_curve = reference.curve();
    let want_weights = fs::read(reference.path("results/barcode_model.safetensors")).unwrap();
    // Header, step 0, then every 2 of the 3 × 4 steps.
    assert_eq!(want_curve.len(), 1 + 1 + 12 / 2, "{want_curve:?}");

    let env = Env::new("checkpoint_every = 1");
    let mut child = runner()
        .args(["exec", "exp.toml"])
        .current_dir(&env.dir)
        .env("RUNNER_TEST_STEP_MS", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let killed_at = loop {
        if let Some(step) = saved_step(&env.path("cache"))
            && step >= 3
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
    assert!(killed_at < 12, "killed after training finished");
    assert!(
        !env.path("results/barcode_learning_curves.csv").exists(),
        "a killed run left results"
    );

    let (_, stderr) = env.exec();
    let resumed: u64 = stderr
        .split("resumed from step ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume message in:\n{stderr}"));
    assert!((3..12).contains(&resumed), "resumed from {resumed}");
    let summary: Value =
        serde_json::from_slice(&fs::read(env.path("results/barcode_train.json")).unwrap()).unwrap();
    assert_eq!(summary["resumed_from_step"], resumed);
    // Same samples, same dropout masks, same optimizer state: the same numbers.
    assert_eq!(env.curve(), want_curve);
    assert!(
        fs::read(env.path("results/barcode_model.safetensors")).unwrap() == want_weights,
        "the resumed run's weights differ from the uninterrupted run's"
    );
    // The scratch state is gone once the entry is committed.
    assert_eq!(fs::read_dir(env.path("cache/work")).unwrap().count(), 0);
}

#[test]
fn the_export_has_torchvision_names_and_layouts_and_reloads_to_the_same_net() {
    let env = Env::new("");
    env.exec();
    let path = env.path("results/barcode_model.safetensors");
    let bytes = fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let shape = |k: &str| -> Vec<u64> {
        header[k]["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("no {k} in {header}"))
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    let mut keys: Vec<&String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "classifier.1.bias",
            "classifier.1.weight",
            "classifier.4.bias",
            "classifier.4.weight",
            "classifier.6.bias",
            "classifier.6.weight",
            "features.0.bias",
            "features.0.weight",
            "features.10.bias",
            "features.10.weight",
            "features.3.bias",
            "features.3.weight",
            "features.6.bias",
            "features.6.weight",
            "features.8.bias",
            "features.8.weight",
        ]
    );
    // PyTorch layouts: conv out×in×k×k, Linear out×in.
    assert_eq!(shape("features.0.weight"), [8, 3, 11, 11]);
    assert_eq!(shape("classifier.1.weight"), [64, 16 * 36]);
    assert_eq!(shape("classifier.6.weight"), [32, 64]);
    assert_eq!(header["features.0.weight"]["dtype"], "F32");

    // Loading the export through the checkpoint path gives the trained net:
    // its logits on a Barcode image equal those of the net loaded directly
    // with burn's own names reversed.
    let device = Device::flex();
    let mut a = tiny_net().init(&device);
    runner::model::load::load_weights(&mut a, &path).unwrap();
    let mut b = tiny_net().init(&device);
    let mut store = SafetensorsStore::from_file(&path)
        .with_from_adapter(burn::store::PyTorchToBurnAdapter)
        .with_key_remapping(r"^features\.0\.", "conv1.")
        .with_key_remapping(r"^features\.3\.", "conv2.")
        .with_key_remapping(r"^features\.6\.", "conv3.")
        .with_key_remapping(r"^features\.8\.", "conv4.")
        .with_key_remapping(r"^features\.10\.", "conv5.")
        .with_key_remapping(r"^classifier\.1\.", "fc1.")
        .with_key_remapping(r"^classifier\.4\.", "fc2.")
        .with_key_remapping(r"^classifier\.6\.", "fc3.");
    let r = b.load_from(&mut store).unwrap();
    assert!(r.missing.is_empty() && r.unused.is_empty(), "{r:?}");
    let x = Tensor::<4>::from_data(
        TensorData::new(runner::barcode::image(0xdead_beef), [1, 3, 224, 224]),
        &device,
    );
    let (la, lb) = (a.forward(x.clone()).into_data(), b.forward(x).into_data());
    assert_eq!(la, lb);
    // And the trained net is not the random init it started from.
    let init = tiny_net().init(&device);
    let w0 = init
        .fc3
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let w1 = a.fc3.weight.val().into_data().try_to_vec::<f32>().unwrap();
    assert_ne!(w0, w1);

    // The other results of the run.
    for f in [
        "barcode_learning_curves.png",
        "barcode_learning_curves.svg",
        "barcode_conv1_filters.png",
    ] {
        assert!(
            fs::metadata(env.path(&format!("results/{f}")))
                .unwrap()
                .len()
                > 1000,
            "{f}"
        );
    }
    let png = fs::read(env.path("results/barcode_conv1_filters.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = fs::read_to_string(env.path("results/barcode_learning_curves.svg")).unwrap();
    assert!(svg.contains("validation accuracy") && svg.contains("BCE loss"));
    let curve = env.curve();
    assert_eq!(
        curve[0],
        "step,epoch,samples,lr,train_loss,val_loss,val_bit_acc,val_exact_match"
    );
    // 4 steps per epoch, 3 epochs; StepLR ×0.1 after 2 epochs.
    let last: Vec<&str> = curve.last().unwrap().split(',').collect();
    assert_eq!(&last[..4], ["12", "3", "192", "0.001"]);
}

fn plan_keys(env: &Env) -> Vec<(String, String)> {
    let out = runner()
        .args(["plan", "exp.toml", "--json"])
        .current_dir(&env.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_train_key_covers_what_changes_the_weights_and_nothing_else() {
    let env = Env::new("");
    let base = plan_keys(&env);
    let key = |keys: &[(String, String)], id: &str| {
        keys.iter()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .1
            .clone()
    };
    assert_eq!(base[0].0, "train/barcode", "train comes first: {base:?}");
    // How often state is saved, and on which device, change no key.
    fs::write(
        env.path("exp.toml"),
        experiment("checkpoint_every = 1\ndevice = \"cpu\""),
    )
    .unwrap();
    assert_eq!(plan_keys(&env), base);
    // The learning rate changes the train key and every extract downstream.
    fs::write(
        env.path("exp.toml"),
        experiment("").replace("lr = 0.01", "lr = 0.02"),
    )
    .unwrap();
    let lr = plan_keys(&env);
    assert_ne!(key(&lr, "train/barcode"), key(&base, "train/barcode"));
    assert_ne!(
        key(&lr, "extract/s1/barcode"),
        key(&base, "extract/s1/barcode")
    );
    assert_eq!(key(&lr, "roi/s1/V1"), key(&base, "roi/s1/V1"));
    // So do the dataset seed and the init seed.
    fs::write(env.path("exp.toml"), experiment("data_seed = 7")).unwrap();
    assert_ne!(
        key(&plan_keys(&env), "train/barcode"),
        key(&base, "train/barcode")
    );
    fs::write(
        env.path("exp.toml"),
        experiment("").replace("seed = 5", "seed = 6"),
    )
    .unwrap();
    assert_ne!(
        key(&plan_keys(&env), "train/barcode"),
        key(&base, "train/barcode")
    );
}

fn exec_err(env: &Env) -> (Output, String) {
    let out = runner()
        .args(["exec", "exp.toml"])
        .current_dir(&env.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out, err)
}

#[test]
fn bad_train_tables_are_reported_at_their_line() {
    let env = Env::new("");
    let cases: [(String, &str); 5] = [
        (
            experiment("steps = 10"),
            "give `epochs` or `steps`, not both",
        ),
        (
            experiment("").replace("num_classes = 32", "num_classes = 10"),
            "the Barcode task has 32 outputs",
        ),
        (
            experiment("").replace("optimizer = \"sgd\"", "optimizer = \"rmsprop\""),
            "unknown optimizer `rmsprop` (sgd, adam)",
        ),
        (
            experiment("betas = [0.9, 0.99]"),
            "betas are Adam's; this optimizer is SGD",
        ),
        (experiment("lr_warmup = 3"), "unknown field `lr_warmup`"),
    ];
    for (text, want) in cases {
        fs::write(env.path("exp.toml"), &text).unwrap();
        let (out, err) = exec_err(&env);
        assert!(!out.status.success());
        assert!(err.contains(want), "want {want:?} in:\n{err}");
        assert!(err.contains("exp.toml:"), "no file:line:col in:\n{err}");
        assert!(
            !env.path("cache/entries").exists()
                || fs::read_dir(env.path("cache/entries")).unwrap().count() == 0
        );
    }
}
