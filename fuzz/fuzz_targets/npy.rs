//! Any bytes as an `.npy` file (headers with absurd shapes included) or a pickle.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = runner::npy::parse_f64(data);
    let _ = runner::npy::parse_f32(data);
    // numpy object arrays and plain pickles (runner's own pickle machine).
    let _ = runner::pickle::parse_object(data);
    let _ = runner::pickle::parse_mapping(data);
    // The path readers check the header against the file length first.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), data).unwrap();
    let _ = runner::npy::read_header(f.path());
    let _ = runner::npy::read_u8(f.path());
});
