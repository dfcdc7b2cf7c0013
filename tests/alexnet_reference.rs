//! runner's AlexNet (burn, flex backend) against PyTorch 2.9 / torchvision 0.24
//! activations from tests/fixtures/make_alexnet_fixtures.py.
//!
//! Tolerance: for every tap, max |Δ| ≤ 1e-4 · max |ref| and ‖Δ‖/‖ref‖ ≤ 1e-5.
//! The reference is float32; the same net in float64 differs from it by at
//! most 4.9e-6 at |x| ≤ 7.9 (fixtures' taps.json), so 1e-4 relative leaves
//! room for a different but correct float32 summation order and nothing more.

#![allow(clippy::result_large_err)] // runner::error::Error carries TOML source spans

use std::path::{Path, PathBuf};

use burn::prelude::*;
use runner::model::alexnet::{AlexNet, AlexNetConfig, HW2_TAPS, resolve_tap};
use runner::model::load::load_weights;
use runner::npy;
use runner::preprocess::Preprocess;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alexnet")
}

fn config(variant: &str) -> AlexNetConfig {
    match variant {
        "tv_small" => AlexNetConfig {
            widths: [8, 24, 32, 16, 16],
            hidden: 64,
            num_classes: 10,
            dropout: 0.5,
        },
        "hw_small" => AlexNetConfig {
            widths: [8, 24, 32, 32, 16],
            hidden: 64,
            num_classes: 32,
            dropout: 0.5,
        },
        _ => unreachable!(),
    }
}

/// The device extraction would use in this build (flex, or libtorch with `--features tch`),
/// so the same golden test checks every backend.
fn device() -> Device {
    runner::model::device::device_for(runner::vocab::DeviceChoice::Auto)
        .unwrap()
        .0
}

fn load(variant: &str, file: &str) -> runner::error::Result<AlexNet> {
    let device = device();
    let mut net = config(variant).init(&device);
    load_weights(&mut net, &fixtures().join("checkpoints").join(file))?;
    Ok(net)
}

/// The four fixture images through the HW2 preprocessing, as one batch.
fn batch() -> Tensor<4> {
    let pre = Preprocess::hw2();
    let mut data = Vec::new();
    for i in 0..4 {
        let img = npy::read_u8(&fixtures().join(format!("images/img{i}.npy"))).unwrap();
        data.extend(pre.apply(&img.data, img.shape[0], img.shape[1]));
    }
    Tensor::from_data(TensorData::new(data, [4, 3, 224, 224]), &device())
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

const TAPS: [&str; 14] = [
    "features.0",
    "features.2",
    "features.3",
    "features.5",
    "features.6",
    "features.8",
    "features.10",
    "features.12",
    "avgpool",
    "classifier.1",
    "classifier.2",
    "classifier.4",
    "classifier.5",
    "classifier.6",
];

fn check_variant(variant: &str) {
    let net = load(variant, &format!("{variant}_bare.pt")).unwrap();
    let got = net.forward_taps(batch(), &TAPS);
    for (tap, t) in TAPS.iter().zip(got) {
        let want =
            npy::read_f32(&fixtures().join(format!("activations/{variant}/{tap}.npy"))).unwrap();
        assert_eq!(t.dims().to_vec(), want.shape, "{variant} {tap}: shape");
        let got = values(t);
        let scale = want
            .data
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()))
            .max(1e-12);
        let max_abs = got
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let num: f64 = got
            .iter()
            .zip(&want.data)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = want.data.iter().map(|b| (*b as f64).powi(2)).sum();
        let rel = (num / den.max(1e-300)).sqrt();
        println!("{variant} {tap:<13} max|Δ| {max_abs:.2e} (scale {scale:.2}) ‖Δ‖/‖ref‖ {rel:.2e}");
        assert!(
            max_abs <= 1e-4 * scale,
            "{variant} {tap}: max |Δ| {max_abs} vs scale {scale}"
        );
        assert!(rel <= 1e-5, "{variant} {tap}: ‖Δ‖/‖ref‖ = {rel}");
    }
}

#[test]
fn torchvision_layout_matches_pytorch_at_every_tap() {
    check_variant("tv_small");
}

#[test]
fn hw_layout_matches_pytorch_at_every_tap() {
    check_variant("hw_small");
}

#[test]
fn hw2_tap_names_are_the_modules_they_alias() {
    let net = load("hw_small", "hw_small_bare.pt").unwrap();
    let aliases: Vec<&str> = HW2_TAPS
        .iter()
        .map(|(a, _)| resolve_tap(a).unwrap())
        .collect();
    let by_alias = net.forward_taps(batch(), &aliases);
    for ((alias, module), t) in HW2_TAPS.iter().zip(by_alias) {
        let want =
            npy::read_f32(&fixtures().join(format!("activations/hw_small/{module}.npy"))).unwrap();
        let got = values(t);
        let max_abs = got
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(max_abs < 1e-4, "{alias}: {max_abs}");
    }
}

#[test]
fn every_checkpoint_form_loads_the_same_weights() {
    let reference = values(
        load("hw_small", "hw_small_bare.pt")
            .unwrap()
            .forward_taps(batch(), &["classifier.6"])
            .remove(0),
    );
    for file in [
        "hw_small_model_state_dict.pt",
        "hw_small_state_dict_module.pt",
        "hw_small.safetensors",
    ] {
        let net = load("hw_small", file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = values(net.forward_taps(batch(), &["classifier.6"]).remove(0));
        assert_eq!(got, reference, "{file}");
    }
    let tv = values(
        load("tv_small", "tv_small.safetensors")
            .unwrap()
            .forward_taps(batch(), &["classifier.6"])
            .remove(0),
    );
    let want = npy::read_f32(&fixtures().join("activations/tv_small/classifier.6.npy")).unwrap();
    let max_abs = tv
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(max_abs < 1e-4, "safetensors logits: {max_abs}");
}

#[test]
fn a_checkpoint_of_the_wrong_layout_lists_the_mismatched_keys() {
    // tv_small's conv4 is 32→16; the HW layout wants 32→32.
    let err = load("hw_small", "tv_small_bare.pt")
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoint does not fit the model"), "{err}");
    assert!(
        err.contains("features.8.weight has shape [16, 32, 3, 3] in the checkpoint but the model expects [32, 32, 3, 3]"),
        "{err}"
    );
    assert!(err.contains("classifier.6.weight"), "{err}");
}

#[test]
fn a_truncated_checkpoint_is_a_clear_error() {
    let err = load("hw_small", "truncated.pt").unwrap_err().to_string();
    assert!(
        err.contains("truncated.pt: not a readable PyTorch checkpoint"),
        "{err}"
    );
    let err = load("hw_small", "nope.pt").unwrap_err().to_string();
    assert!(err.contains("nope.pt"), "{err}");
}
