//! Any text as an experiment file, through validation and planning, next to
//! a small synthetic subject: errors are fine, panics are bugs.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A temp dir with `data/s1`, a tiny synthetic subject (with its toy and
/// random-net features).
fn workspace() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let cfg = runner::synth::SynthConfig {
            n_train: 12,
            n_val: 4,
            n_test: 6,
            image_size: 16,
            voxels_lh: 10,
            voxels_rh: 8,
            subject: "s1".into(),
            ..Default::default()
        };
        runner::synth::generate(&cfg, &dir.join("data/s1")).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = workspace().join("e.toml");
    if let Ok(exp) = runner::config::parse(&file, text.to_string()) {
        let _ = runner::compile::compile(&exp);
    }
});
