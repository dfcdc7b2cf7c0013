//! Any bytes as a subject's subject.json.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("subject.json");
    if let Ok(meta) = runner::nsd::SubjectMeta::parse(data, path) {
        let dir = runner::nsd::SubjectDir {
            dir: std::path::PathBuf::from("/nonexistent"),
            meta,
        };
        let splits: Vec<String> = dir.meta.splits.keys().cloned().collect();
        let _ = dir.check_splits(&splits);
        let _ = dir.n_images();
        let _ = dir.check_brain(&splits, &dir.meta.hemis.clone(), &|_| 0);
        let _ = dir.check_images();
    }
});
