//! CUDA extraction against the CPU reference. Runs only in a `--features tch`
//! build on a machine with a CUDA GPU; elsewhere it is reported as ignored
//! (no feature) or skips with a message (no GPU).

#![allow(clippy::result_large_err)]

#[cfg(feature = "tch")]
#[test]
fn cuda_taps_match_the_pytorch_reference() {
    use burn::prelude::*;
    use runner::vocab::DeviceChoice;
    use std::path::Path;

    if !tch::Cuda::is_available() {
        eprintln!("skipped: libtorch sees no CUDA device");
        return;
    }
    let (device, name) = runner::model::device::device_for(DeviceChoice::Cuda).unwrap();
    assert_eq!(name, "libtorch CUDA");
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alexnet");
    let cfg = runner::model::alexnet::AlexNetConfig {
        widths: [8, 24, 32, 32, 16],
        hidden: 64,
        num_classes: 32,
        dropout: 0.5,
    };
    let mut net = cfg.init(&device);
    runner::model::load::load_weights(&mut net, &fx.join("checkpoints/hw_small_bare.pt")).unwrap();
    let pre = runner::preprocess::Preprocess::hw2();
    let mut data = Vec::new();
    for i in 0..4 {
        let img = runner::npy::read_u8(&fx.join(format!("images/img{i}.npy"))).unwrap();
        data.extend(pre.apply(&img.data, img.shape[0], img.shape[1]));
    }
    let x = Tensor::<4>::from_data(TensorData::new(data, [4, 3, 224, 224]), &device);
    for (tap, t) in ["features.2", "classifier.1", "classifier.6"]
        .iter()
        .zip(net.forward_taps(x, &["features.2", "classifier.1", "classifier.6"]))
    {
        let got = t.into_data().try_to_vec::<f32>().unwrap();
        let want =
            runner::npy::read_f32(&fx.join(format!("activations/hw_small/{tap}.npy"))).unwrap();
        let scale = want.data.iter().fold(0f32, |m, x| m.max(x.abs()));
        let max_abs = got
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // cuDNN may pick TF32 kernels: allow 1e-3 relative to the tap's scale on GPU.
        assert!(
            max_abs <= 1e-3 * scale,
            "{tap}: max |Δ| {max_abs} (scale {scale})"
        );
    }
}

#[cfg(not(feature = "tch"))]
#[test]
#[ignore = "needs a `--features tch` build and a CUDA GPU"]
fn cuda_taps_match_the_pytorch_reference() {}
