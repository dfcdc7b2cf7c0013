//! Any bytes as a PyTorch checkpoint or a safetensors file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::model::alexnet::AlexNetConfig;

fuzz_target!(|data: &[u8]| {
    let (device, _) = runner::model::device::device_for(runner::vocab::DeviceChoice::Cpu).unwrap();
    let cfg = AlexNetConfig {
        widths: [2, 2, 2, 2, 2],
        hidden: 4,
        num_classes: 3,
        dropout: 0.0,
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["w.pt", "w.safetensors"] {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let mut model = cfg.init(&device);
        let _ = runner::model::load::load_weights(&mut model, &p);
    }
});
