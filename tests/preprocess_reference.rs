//! runner's image preprocessing against torchvision 0.24 / Pillow 12.3, and
//! the Kay V4 project's vim-1 input against TensorFlow 2.21.
//!
//! Fixtures: tests/fixtures/alexnet (made by make_alexnet_fixtures.py). The
//! resize must be bit-exact; the float tensors are compared through
//! torchvision's own ToTensor+Normalize table (`normalize_lut.npy`), which the
//! script checked reproduces torchvision's full Compose output bit for bit.
//! tests/fixtures/vim1_preprocess (make_vim1_preprocess_fixtures.py): TF's
//! `tf.compat.v1.image.resize_images` of the project's shifted, tiled stimuli.

use std::path::{Path, PathBuf};

use runner::npy;
use runner::preprocess::{
    IMAGENET_MEAN, IMAGENET_STD, Preprocess, Resize, center_crop, center_crop_offsets,
    normalize_value, resize_bilinear_pil, vim1_tensor,
};

const IMAGES: usize = 4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alexnet")
}

/// The fixture's preprocessing variants, as the script defines them.
fn variants() -> Vec<(&'static str, Preprocess)> {
    vec![
        ("hw2", Preprocess::hw2()),
        (
            "hw2_short256",
            Preprocess {
                resize: Resize::ShorterSide(256),
                crop: Some(224),
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
        ),
        ("algonauts", Preprocess::algonauts()),
    ]
}

fn image(i: usize) -> (Vec<u8>, usize, usize) {
    let a = npy::read_u8(&fixtures().join(format!("images/img{i}.npy"))).unwrap();
    assert_eq!(a.shape.len(), 3);
    assert_eq!(a.shape[2], 3);
    (a.data, a.shape[0], a.shape[1])
}

struct CropCase {
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    top: isize,
    left: isize,
}

fn crop_cases() -> Vec<CropCase> {
    let text =
        std::fs::read_to_string(fixtures().join("preprocessed/center_crop_cases.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let u = |k: &str| c[k].as_u64().unwrap() as usize;
            let i = |k: &str| c[k].as_i64().unwrap() as isize;
            CropCase {
                h: u("h"),
                w: u("w"),
                out_h: u("out_h"),
                out_w: u("out_w"),
                top: i("top"),
                left: i("left"),
            }
        })
        .collect()
}

/// torchvision's normalised value for each (channel, uint8 value).
fn lut() -> Vec<f32> {
    let a = npy::read_f32(&fixtures().join("preprocessed/normalize_lut.npy")).unwrap();
    assert_eq!(a.shape, vec![3, 256]);
    a.data
}

#[test]
fn resize_is_bit_exact_with_pillow() {
    let mut checked = 0;
    // Covers downscaling (img0, img2; antialiased), the near-identity 227→224
    // (algonauts img1) and upscaling (img1→256, img3 64×80 → every target).
    for (name, pre) in variants() {
        for i in 0..IMAGES {
            // The fixtures keep every image for hw2 and two (one up-, one
            // downsampling) for the other variants.
            let file = fixtures().join(format!("resized/{name}/img{i}.npy"));
            if !file.exists() && name != "hw2" {
                continue;
            }
            checked += 1;
            let (img, h, w) = image(i);
            let want = npy::read_u8(&file).unwrap();
            let (oh, ow) = pre.resize.output_size(h, w);
            assert_eq!(want.shape, vec![oh, ow, 3], "{name} img{i}: output size");
            let got = resize_bilinear_pil(&img, h, w, oh, ow);
            let bad: Vec<usize> = (0..got.len()).filter(|&k| got[k] != want.data[k]).collect();
            assert!(
                bad.is_empty(),
                "{name} img{i} ({h}×{w} → {oh}×{ow}): {} of {} bytes differ; first at pixel \
                 ({}, {}) channel {}: got {}, Pillow {}",
                bad.len(),
                got.len(),
                bad[0] / 3 / ow,
                bad[0] / 3 % ow,
                bad[0] % 3,
                got[bad[0]],
                want.data[bad[0]]
            );
        }
    }
    assert_eq!(checked, 4 + 2 + 2, "resize fixtures present");
}

#[test]
fn center_crop_matches_torchvision() {
    // Cases include odd margins (Python's round() sends x.5 to even) and crops
    // larger than the image (torchvision zero-pads first).
    for c in crop_cases() {
        let what = format!("{}×{} → {}×{}", c.h, c.w, c.out_h, c.out_w);
        assert_eq!(
            center_crop_offsets(c.h, c.w, c.out_h, c.out_w),
            (c.top, c.left),
            "{what}"
        );
        // Index image, 0 reserved for padding, as the script measured it.
        let idx: Vec<u32> = (1..=(c.h * c.w) as u32).collect();
        let got = center_crop(&idx, c.h, c.w, 1, c.out_h, c.out_w);
        for y in 0..c.out_h {
            for x in 0..c.out_w {
                let (sy, sx) = (c.top + y as isize, c.left + x as isize);
                let inside = (0..c.h as isize).contains(&sy) && (0..c.w as isize).contains(&sx);
                let want = if inside {
                    (sy as usize * c.w + sx as usize + 1) as u32
                } else {
                    0
                };
                assert_eq!(got[y * c.out_w + x], want, "{what} at ({y}, {x})");
            }
        }
    }
}

#[test]
fn normalization_matches_torchvision_for_every_value() {
    let lut = lut();
    let mut max_diff = 0f32;
    for c in 0..3 {
        for v in 0..=255u8 {
            let got = normalize_value(v, IMAGENET_MEAN[c], IMAGENET_STD[c]);
            let want = lut[c * 256 + v as usize];
            max_diff = max_diff.max((got - want).abs());
            // Same float32 ops in the same order on the same integer: expect identical bits.
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "channel {c} value {v}: {got} vs {want}"
            );
        }
    }
    println!("ToTensor+Normalize: max |Δ| over all 3×256 values = {max_diff:e}");
}

#[test]
fn full_pipeline_matches_torchvision() {
    // Tolerance 1e-6: both sides are float32 results of the same uint8 inputs
    // through the same two float32 operations, so only an ordering difference
    // (e.g. a multiply by 1/255 instead of a divide) could move the last bit
    // (≈2.4e-7 at |x| ≤ 2.7). Observed: 0 (bit-identical).
    let lut = lut();
    let crops = crop_cases();
    let mut max_diff = 0f32;
    for (name, pre) in variants() {
        for i in 0..IMAGES {
            let file = fixtures().join(format!("resized/{name}/img{i}.npy"));
            if !file.exists() && name != "hw2" {
                continue;
            }
            let (img, h, w) = image(i);
            // Expected tensor from torchvision's pieces only: its resize, its
            // crop offsets, its ToTensor+Normalize values.
            let r = npy::read_u8(&file).unwrap();
            let (rh, rw) = (r.shape[0], r.shape[1]);
            let (pixels, oh, ow) = match pre.crop {
                Some(s) => {
                    let c = crops
                        .iter()
                        .find(|c| (c.h, c.w, c.out_h, c.out_w) == (rh, rw, s, s))
                        .unwrap_or_else(|| panic!("no crop case for {rh}×{rw} → {s}"));
                    let (top, left) = (c.top as usize, c.left as usize);
                    let mut p = Vec::with_capacity(s * s * 3);
                    for y in top..top + s {
                        p.extend_from_slice(&r.data[(y * rw + left) * 3..(y * rw + left + s) * 3]);
                    }
                    (p, s, s)
                }
                None => (r.data, rh, rw),
            };
            assert_eq!(pre.output_size(h, w), (oh, ow), "{name} img{i}");
            let got = pre.apply(&img, h, w);
            assert_eq!(got.len(), 3 * oh * ow, "{name} img{i}");
            let n = oh * ow;
            for c in 0..3 {
                for k in 0..n {
                    let want = lut[c * 256 + pixels[k * 3 + c] as usize];
                    let d = (got[c * n + k] - want).abs();
                    max_diff = max_diff.max(d);
                    assert!(
                        d <= 1e-6,
                        "{name} img{i} channel {c} pixel {k}: {} vs {want}",
                        got[c * n + k]
                    );
                }
            }
        }
    }
    println!("Preprocess::apply vs torchvision: max |Δ| = {max_diff:e}");
}

/// `(stimulus, size)` pairs the vim-1 fixture script wrote: 13×21 and 64×64 to
/// 224 (upsampling), and to 37 16×16, 13×21 (up), 64×64 (down), 40×29 (down
/// in height, up in width) and 37×37 (same size: TF skips the resize).
const VIM1_CASES: [(&str, usize); 7] = [
    ("r13x21", 224),
    ("sq64", 224),
    ("sq16", 37),
    ("r13x21", 37),
    ("sq64", 37),
    ("r40x29", 37),
    ("sq37", 37),
];

#[test]
fn vim1_tensor_matches_tensorflow_resize_images() {
    // Tolerance: none, bitwise. Both sides cast the float64 `stim + .5` to
    // float32 per pixel and run the same float32 operations in the same
    // order (TF's legacy ResizeBilinear: f32 weights, separate mul and add,
    // no FMA), so any difference would be a porting error, not rounding.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vim1_preprocess");
    let mut max_diff = 0f32;
    for (name, size) in VIM1_CASES {
        let input = npy::read_f64(&dir.join(format!("input_{name}.npy"))).unwrap();
        assert_eq!(input.shape.len(), 2, "{name}: one H×W stimulus");
        let (h, w) = (input.shape[0], input.shape[1]);
        let want = npy::read_f32(&dir.join(format!("tf_{name}_{size}.npy"))).unwrap();
        assert_eq!(want.shape, vec![size, size], "{name} → {size}");
        let got = vim1_tensor(&input.data, h, w, size);
        let n = size * size;
        assert_eq!(got.len(), 3 * n, "{name} → {size}");
        for c in 0..3 {
            let plane = &got[c * n..(c + 1) * n];
            for (k, (&g, &t)) in plane.iter().zip(&want.data).enumerate() {
                max_diff = max_diff.max((g - t).abs());
                assert_eq!(
                    g.to_bits(),
                    t.to_bits(),
                    "{name} {h}×{w} → {size} channel {c} pixel ({}, {}): {g} vs TF {t}",
                    k / size,
                    k % size
                );
            }
        }
    }
    println!("vim1_tensor vs TensorFlow resize_images: max |Δ| = {max_diff:e}");
}
