//! src/npz.rs against archives numpy wrote (tests/fixtures/make_npz_fixtures.py):
//! np.savez (stored) and np.savez_compressed (deflate), every numeric dtype,
//! both byte orders, Fortran order, unicode and bytes strings, and an object
//! array that must be refused.

use std::path::{Path, PathBuf};

use runner::npz::{Npz, NpzArray};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/npz")
        .join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

#[test]
fn numpy_archives_read_as_numpy_reads_them() {
    let doc = expected();
    let want = &doc["arrays"];
    let order: Vec<&str> = doc["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for file in ["stored.npz", "compressed.npz"] {
        let z = Npz::open(&fixture(file)).unwrap();
        assert_eq!(z.keys(), order, "{file}");
        for (key, entry) in want.as_object().unwrap() {
            let shape: Vec<usize> = entry["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(z.shape(key).unwrap(), shape, "{file} {key}");
            assert_eq!(
                z.dtype(key).unwrap(),
                entry["dtype"].as_str().unwrap(),
                "{file} {key}"
            );
            if let Some(values) = entry.get("values") {
                let a = z.read_f64(key).unwrap();
                assert_eq!(a.shape, shape, "{file} {key}");
                let values: Vec<f64> = values
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                // i64 -9007199254740993 is not an f64; numpy's float() rounds it as we do.
                assert_eq!(a.data, values, "{file} {key}");
            } else {
                let labels: Vec<String> = entry["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(z.read_labels(key).unwrap(), labels, "{file} {key}");
                let err = z.read_f64(key).unwrap_err().to_string();
                assert!(err.contains("string array"), "{err}");
            }
        }
        // Integer labels are exact, even past 2^53.
        assert_eq!(
            z.read_labels("i64").unwrap(),
            ["0", "1", "2", "3", "-9007199254740993"]
        );
        assert_eq!(z.read_labels("i8").unwrap(), ["-128", "0", "127"]);
        assert_eq!(z.read_labels("u2").unwrap(), ["0", "1", "65535", "300"]);
        assert_eq!(z.read_labels("flag").unwrap(), ["1", "0", "1"]);
        // Fortran order is read in C order: fortran = arange(6).reshape(2,3).T.
        assert_eq!(
            z.read_f64("fortran").unwrap().data,
            [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        assert_eq!(
            z.read_labels("grid3").unwrap(),
            ["0", "1", "2", "3", "4", "5", "6", "7"]
        );
    }
}

#[test]
fn object_arrays_are_refused_with_what_to_do() {
    let z = Npz::open(&fixture("object.npz")).unwrap();
    assert_eq!(z.keys(), ["obj", "ok"]);
    for err in [
        z.read_labels("obj").unwrap_err(),
        z.read_f64("obj").unwrap_err(),
    ] {
        let text = format!(
            "{err} {:?}",
            miette::Diagnostic::help(&err).map(|h| h.to_string())
        );
        assert!(text.contains("object array"), "{text}");
        assert!(text.contains("np.array(x, dtype=str)"), "{text}");
    }
    assert_eq!(z.read_f64("ok").unwrap().data, [0.0, 1.0, 2.0]);
}

#[test]
fn what_runner_writes_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sub/out.npz");
    runner::npz::write(
        &p,
        &[
            (
                "a",
                NpzArray::F64 {
                    shape: vec![2, 2],
                    data: vec![1.0, 2.0, 3.0, 4.0],
                },
            ),
            (
                "s",
                NpzArray::Str {
                    shape: Some(vec![1, 2]),
                    data: vec!["x".into(), "yz".into()],
                },
            ),
        ],
    )
    .unwrap();
    let z = Npz::open(&p).unwrap();
    assert_eq!(z.read_f64("a").unwrap().data, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(z.shape("s").unwrap(), [1, 2]);
    assert_eq!(z.read_labels("s").unwrap(), ["x", "yz"]);
}
