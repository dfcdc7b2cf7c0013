//! runner's HW2 Barcode dataset (src/barcode.rs) against the homework's Python
//! `BarcodeDataset` (fixtures made by tests/fixtures/make_barcode_fixtures.py;
//! see tests/fixtures/barcode/README.md). Everything is compared bit-exactly:
//! the numbers are integers and the pixels and labels are exact 0.0 / 1.0.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use runner::barcode::{
    self, BarcodeConfig, IMAGE_LEN, IMAGE_SIZE, PyRandom, TrainStream, val_numbers, val_order,
};

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/barcode")
        .join(format!("{name}.npy"))
}

/// An `.npy` of exactly dtype `T` (npyz checks the dtype), with its shape.
fn load<T: npyz::Deserialize>(name: &str) -> (Vec<usize>, Vec<T>) {
    let file = File::open(path(name)).unwrap_or_else(|e| panic!("{name}.npy: {e}"));
    let npy = npyz::NpyFile::new(BufReader::new(file)).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (
        shape,
        npy.into_vec::<T>()
            .unwrap_or_else(|e| panic!("{name}.npy: {e}")),
    )
}

fn load_u32(name: &str) -> Vec<u32> {
    load::<u32>(name).1
}

fn stream(seed: u64, val: &[u32], n: usize) -> Vec<u32> {
    let mut s = TrainStream::new(seed, val);
    (0..n).map(|_| s.next()).collect()
}

/// FNV-1a over 32-bit words, as the fixture script defines it.
fn fnv(values: &[u32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325, |h, &v| {
        (h ^ v as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[test]
fn raw_randrange_draws() {
    let want = load_u32("raw_draws");
    let mut rng = PyRandom::new(1110);
    let got: Vec<u32> = (0..want.len()).map(|_| rng.randrange_u32()).collect();
    assert_eq!(got, want);
    // the general path: _randbelow(2**32) -> getrandbits(33)
    let mut rng = PyRandom::new(1110);
    let got: Vec<u32> = (0..want.len())
        .map(|_| rng.randbelow(1 << 32) as u32)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn val_numbers_match() {
    let want = load_u32("val_numbers");
    assert_eq!(want.len(), 200);
    assert_eq!(val_numbers(200, 2025), want);
    // a prefix of a longer draw: the rule is "first `count` distinct"
    assert_eq!(val_numbers(1000, 2025)[..200], want[..]);
}

#[test]
fn val_order_matches() {
    let val = load_u32("val_numbers");
    let want = load_u32("val_order");
    assert_eq!(val_order(&val, 1110), want);
    assert_eq!(BarcodeConfig::default().val_order(&val), want);
}

#[test]
fn train_stream_matches() {
    let val = load_u32("val_numbers");
    let want = load_u32("train_numbers");
    assert_eq!(want.len(), 5000);
    let mut s = TrainStream::new(1110, &val);
    let got: Vec<u32> = (0..want.len()).map(|_| s.next()).collect();
    assert_eq!(got, want);
    assert_eq!(s.position(), 5000);
    // the val set's order and duplicates do not matter
    let mut shuffled = val.clone();
    shuffled.reverse();
    shuffled.extend_from_slice(&val[..10]);
    assert_eq!(stream(1110, &shuffled, 5000), want);
}

#[test]
fn rejection_path() {
    let collide = load_u32("collide_val_numbers");
    let want = load_u32("collide_train_numbers");
    let raw = load_u32("raw_draws");
    assert_eq!(collide, [raw[2], raw[6], raw[9]]);
    let mut s = TrainStream::new(1110, &collide);
    let got: Vec<u32> = (0..want.len()).map(|_| s.next()).collect();
    assert_eq!(got, want);
    assert_eq!(s.rejected(), 3);
    assert_eq!(s.position(), 20);
    assert!(got.iter().all(|n| !collide.contains(n)));
}

#[test]
fn seed_edge_cases() {
    let (_, seeds) = load::<u64>("edge_seeds");
    assert_eq!(seeds, [0, 1, (1 << 32) - 1, 1 << 32, u64::MAX]);
    let val = load_u32("val_numbers");
    let (shape, train) = load::<u32>("edge_train_numbers");
    let (_, orders) = load::<u32>("edge_val_orders");
    assert_eq!(shape, [seeds.len(), 10]);
    for (k, &seed) in seeds.iter().enumerate() {
        let rows = k * 10..(k + 1) * 10;
        assert_eq!(
            stream(seed, &val, 10),
            train[rows.clone()],
            "train, seed {seed}"
        );
        assert_eq!(
            val_order(&val[..10], seed),
            orders[rows],
            "val order, seed {seed}"
        );
    }
}

#[test]
fn images_and_labels() {
    let numbers = load_u32("image_numbers");
    assert_eq!(numbers[..3], [0, u32::MAX, 0x8000_0001]);
    assert_eq!(numbers[3], load_u32("train_numbers")[0]);
    let (pshape, profiles) = load::<f32>("row_profiles");
    let (lshape, labels) = load::<f32>("labels");
    assert_eq!(pshape, [numbers.len(), IMAGE_SIZE]);
    assert_eq!(lshape, [numbers.len(), 32]);
    let mut batch = vec![f32::NAN; numbers.len() * IMAGE_LEN];
    for (slot, &n) in batch.chunks_exact_mut(IMAGE_LEN).zip(&numbers) {
        barcode::write_image(n, slot);
    }
    for (k, &n) in numbers.iter().enumerate() {
        let profile = &profiles[k * IMAGE_SIZE..(k + 1) * IMAGE_SIZE];
        assert_eq!(barcode::row_profile(n), profile, "profile of {n:#010x}");
        let img = barcode::image(n);
        assert_eq!(img.len(), IMAGE_LEN);
        for (r, row) in img.chunks_exact(IMAGE_SIZE).enumerate() {
            // bitwise, so -0.0 or NaN could not pass
            let bits = |x: &[f32]| x.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(row),
                bits(profile),
                "{n:#010x}: channel {}, row {}",
                r / IMAGE_SIZE,
                r % IMAGE_SIZE
            );
        }
        assert_eq!(&batch[k * IMAGE_LEN..(k + 1) * IMAGE_LEN], &img[..]);
        assert_eq!(
            barcode::label(n),
            labels[k * 32..(k + 1) * 32],
            "label of {n:#010x}"
        );
    }
}

#[test]
fn train_never_hits_val() {
    let cfg = BarcodeConfig::default();
    let val = cfg.val_numbers();
    let set: HashSet<u32> = val.iter().copied().collect();
    let mut s = cfg.train_stream(&val);
    for i in 0..100_000 {
        let n = s.next();
        assert!(!set.contains(&n), "draw {i} ({n}) is a validation integer");
    }
}

#[test]
fn skip_resumes_the_stream() {
    let val = load_u32("val_numbers");
    let want = load_u32("train_numbers");
    for n in [0usize, 1, 2, 7, 311, 4999] {
        let mut s = TrainStream::new(1110, &val);
        s.skip(n as u64);
        assert_eq!(s.position(), n as u64);
        assert_eq!(s.next(), want[n], "skip({n}) then next()");
    }
    // across the rejection path too
    let collide = load_u32("collide_val_numbers");
    let cwant = load_u32("collide_train_numbers");
    for (n, &want_next) in cwant.iter().enumerate() {
        let mut s = TrainStream::new(1110, &collide);
        s.skip(n as u64);
        assert_eq!(s.next(), want_next, "skip({n}) then next(), collide");
    }
    // a resumed stream continues identically
    let mut a = TrainStream::new(1110, &val);
    let mut b = TrainStream::new(1110, &val);
    a.skip(1234);
    (0..1234).for_each(|_| {
        b.next();
    });
    for _ in 0..1000 {
        assert_eq!(a.next(), b.next());
    }
}

/// runner's defaults at full size: 50 000 validation integers, their
/// shuffle, and the first 1 000 000 training numbers (10 of whose draws are
/// rejected as validation integers).
#[test]
fn default_configuration_full_size() {
    let (_, d) = load::<u64>("default_digests");
    let cfg = BarcodeConfig::default();
    assert_eq!(
        (d[0], d[4]),
        (cfg.val_length as u64, cfg.train_length as u64)
    );

    let val = cfg.val_numbers();
    assert_eq!(val.len(), 50_000);
    assert_eq!(d[1], 50_000, "the fixture has no repeated draw");
    assert_eq!(fnv(&val), d[2], "val_numbers(50000, 2025)");
    let every100: Vec<u32> = val.iter().step_by(100).copied().collect();
    assert_eq!(every100, load_u32("default_val_every100"));

    let order = cfg.val_order(&val);
    let every100: Vec<u32> = order.iter().step_by(100).copied().collect();
    assert_eq!(every100, load_u32("default_val_order_every100"));
    assert_eq!(fnv(&order), d[3], "val order");

    let mut s = cfg.train_stream(&val);
    let train: Vec<u32> = (0..cfg.train_length).map(|_| s.next()).collect();
    let every1000: Vec<u32> = train.iter().step_by(1000).copied().collect();
    assert_eq!(every1000, load_u32("default_train_every1000"));
    assert_eq!(fnv(&train), d[6], "first 1M training numbers");
    assert_eq!(s.position() + s.rejected(), d[5], "raw draws");
    assert_eq!(s.rejected(), 10);
}
