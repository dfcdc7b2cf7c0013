//! Seed 004's pieces against the seed's own Python (fixtures from
//! tests/fixtures/make_grating_fixtures.py): the gratings, the initial
//! filters, the CNN's forward pass from a PyTorch state dict, the errors of
//! a checkpoint that does not fit, and training on the grating task.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use runner::gratings::{GratingSpec, grating};
use runner::model::sequential::{
    Op, SequentialConfig, center_surround_gabor, load_weights, seed_cnn,
};
use runner::npy;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gratings")
        .join(name)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gratings_equal_the_seeds_bit_for_bit() {
    let angles = npy::read_f64(&fixture("angles.npy")).unwrap().data;
    let want = npy::read_f32(&fixture("gratings.npy")).unwrap();
    assert_eq!(want.shape, [angles.len(), 48, 64]);
    for (i, &a) in angles.iter().enumerate() {
        let got = grating(a, &GratingSpec::default());
        let w = &want.data[i * 48 * 64..(i + 1) * 48 * 64];
        let wrong = got.iter().zip(w).filter(|(g, w)| g != w).count();
        assert_eq!(wrong, 0, "angle {a}: {wrong} pixels differ");
    }
}

#[test]
fn initial_filters_equal_the_seeds_to_float32_precision() {
    // The seed mixes float32 and float64 (its grid is float32, its Gabor
    // cosines float64); runner computes in float64 and stores float32, so
    // the two agree to a few float32 ulps of values ≤ 1.
    for (file, out, k) in [("filters.npy", 6, 7), ("filters_8.npy", 8, 5)] {
        let want = npy::read_f32(&fixture(file)).unwrap();
        assert_eq!(want.shape, [out, 1, k, k]);
        let got = center_surround_gabor(out, k, 1.1);
        let d = max_abs_diff(&got, &want.data);
        assert!(d <= 1e-6, "{file}: max |Δ| = {d}");
    }
}

fn forward(cfg: &SequentialConfig, weights: &Path) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Device::default();
    let mut net = cfg.init(&device);
    load_weights(&mut net, cfg, weights).unwrap();
    let g = npy::read_f32(&fixture("gratings.npy")).unwrap();
    let n = g.shape[0];
    let x = Tensor::<4>::from_data(TensorData::new(g.data, [n, 1, 48, 64]), &device);
    let taps = net.forward_taps(x.clone(), &["pool", "fc"]);
    let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let mut it = taps.into_iter();
    let (pool, fc) = (v(it.next().unwrap()), v(it.next().unwrap()));
    (pool, fc, v(net.forward(x)))
}

#[test]
fn the_seed_cnn_from_a_pytorch_state_dict_gives_pytorchs_activations() {
    // float32 convolution and matmul sum in another order than PyTorch's
    // kernels: agreement to 1e-5 of the largest activation (the measured
    // value is printed).
    let cfg = seed_cnn();
    for weights in ["seed_cnn.safetensors", "seed_cnn.pt"] {
        let (pool, fc, out) = forward(&cfg, &fixture(weights));
        for (name, got) in [("pool", &pool), ("fc", &fc), ("out", &out)] {
            let want = npy::read_f32(&fixture(&format!("{name}.npy"))).unwrap();
            let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let d = max_abs_diff(got, &want.data) / scale;
            eprintln!("{weights} {name}: max |Δ| / max |torch| = {d:.2e}");
            assert!(d < 1e-5, "{weights} {name}: max |Δ| / max = {d}");
        }
        assert_eq!(pool.len(), 12 * 288);
        assert_eq!(fc.len(), 12 * 10);
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_lists_each_key_with_both_shapes() {
    let mut cfg = seed_cnn();
    cfg.layers[4].op = Op::Linear {
        in_features: 288,
        out_features: 12,
        bias: true,
    };
    cfg.layers[6].op = Op::Linear {
        in_features: 12,
        out_features: 1,
        bias: true,
    };
    let device = Device::default();
    for weights in ["seed_cnn.safetensors", "seed_cnn.pt"] {
        let mut net = cfg.init(&device);
        let e = load_weights(&mut net, &cfg, &fixture(weights)).unwrap_err();
        let msg = format!("{e}");
        assert!(
            msg.contains(
                "fc.weight has shape [10, 288] in the checkpoint but the model expects [12, 288]"
            ),
            "{weights}: {msg}"
        );
        assert!(msg.contains("out.weight"), "{weights}: {msg}");
    }
    // Renamed layers: the checkpoint's keys are reported as missing / unused.
    let mut renamed = seed_cnn();
    renamed.layers[4].name = "hidden".into();
    let mut net = renamed.init(&device);
    let msg = format!(
        "{}",
        load_weights(&mut net, &renamed, &fixture("seed_cnn.pt")).unwrap_err()
    );
    assert!(
        msg.contains("hidden.weight is missing from the checkpoint"),
        "{msg}"
    );
    assert!(
        msg.contains("fc.weight is in the checkpoint but not in the model"),
        "{msg}"
    );
    // Not a checkpoint at all.
    let msg = format!(
        "{}",
        load_weights(&mut net, &renamed, &fixture("README.md")).unwrap_err()
    );
    assert!(msg.contains("not a readable PyTorch checkpoint"), "{msg}");
}

#[test]
fn the_seeds_recipe_learns_the_tilt_task() {
    use runner::train::grating::{GratingTrainSpec, train_grating};
    use runner::train::spec::{Optimizer, Schedule};
    let spec = GratingTrainSpec {
        n_train: 1000,
        n_val: 500,
        data_seed: 12,
        val_seed: 2025,
        grating: GratingSpec::default(),
        batch_size: 100,
        epochs: 25,
        lr: 5e-4,
        optimizer: Optimizer::Sgd {
            momentum: 0.99,
            weight_decay: 0.0,
            nesterov: false,
        },
        schedule: Schedule::Constant,
        eval_every: 50,
        checkpoint_every: 1_000_000,
        device: runner::vocab::DeviceChoice::Cpu,
    };
    let work = tempfile::tempdir().unwrap();
    let out = train_grating(
        &spec,
        &seed_cnn(),
        12,
        work.path(),
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    let first = &out.history[0];
    let last = out.history.last().unwrap();
    assert_eq!(last.step, 250);
    eprintln!(
        "grating tilt: held-out loss {:.4} → {:.4}, accuracy {:.3} → {:.3}",
        first.val_loss, last.val_loss, first.val_accuracy, last.val_accuracy
    );
    assert!(last.val_loss < 0.5 * first.val_loss, "{:?}", out.history);
    assert!(
        last.val_accuracy > 0.9,
        "held-out accuracy {}",
        last.val_accuracy
    );
    let train: Vec<f64> = out.history.iter().filter_map(|r| r.train_loss).collect();
    assert!(train.last().unwrap() < &train[0], "{train:?}");
}
