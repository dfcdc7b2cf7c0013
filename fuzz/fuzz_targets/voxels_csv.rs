//! Any bytes as a subject's voxels.csv.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("voxels.csv");
    if let Ok(t) = runner::nsd::VoxelTable::parse_csv(data.to_vec(), path) {
        // What the subject node does with a table it accepted.
        let keep: Vec<usize> = (0..t.len()).collect();
        let _ = t.select(&keep).to_dataframe();
    }
});
