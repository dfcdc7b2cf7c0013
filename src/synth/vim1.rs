//! Deterministic synthetic vim-1 data (Kay et al. 2008, CRCNS) in the files'
//! own layout, read by [`crate::vim1`]: the real dataset cannot ship with
//! runner, so the Kay V4 workflow's tests and examples run on these.
//!
//! ```text
//! <out>/EstimatedResponses.mat     MAT v7.3 (HDF5 behind MATLAB's 512-byte header):
//!                                  dataTrnS1, dataValS1 (h5py: images × voxels, float64),
//!                                  roiS1 (h5py: 1 × voxels, codes 0..7, 6 = V4); S2 likewise
//! <out>/Stimuli.mat                MAT v7.3: stimTrn, stimVal (images × H × W, in [-0.5, 0.5])
//! <out>/alexnet_conv3_features.h5  plain HDF5: train, val (images × 6 × 6 × 32 float32, NHWC),
//!                                  a small stand-in for TensorFlow AlexNet conv3 (× 14 × 14 × 384)
//! ```
//!
//! Everything follows from the images, so every part agrees with the others:
//!
//! - **Stimuli**: a few Gabor patches, Gaussian blobs and soft edges per
//!   image, at random positions, orientations, spatial frequencies and
//!   contrasts, clipped to [-0.5, 0.5] (the seed adds 0.5 before its net).
//! - **Features**: oriented energy (a quadrature pair of Gabor filters at 8
//!   orientations × 4 spatial frequencies, 32 channels) sampled every
//!   `size / 16` pixels and averaged over each cell of a 6 × 6 grid: what a
//!   conv layer's rectified, pooled maps are, small enough to run at once.
//! - **Responses**: each voxel pools the z-scored features over a Gaussian
//!   receptive field on the grid with its own channel weights (V4: wider
//!   fields, mixed tuning), plus the RMS contrast of the pixels under the
//!   same field (so a net's own features of the stimuli predict them too),
//!   z-scored, plus Gaussian noise of a per-voxel size, then scaled and
//!   offset as BOLD betas are. A PLS with 25 components on 250 of the 300
//!   training images predicts the other 50 with a median squared Pearson r of
//!   about 0.3 across the V4 voxels (the unit test checks it).
//! - **NaN**: as the real file has, a few S1 V4 voxels are NaN in one
//!   training image (the seed drops them) and one only in a validation image
//!   (dropped and counted apart by [`crate::vim1::read_responses`]).
//!   S2 has none.

use std::f64::consts::{PI, TAU};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;
use rayon::prelude::*;

use crate::npy::Array;

pub const RESPONSES: &str = "EstimatedResponses.mat";
pub const STIMULI: &str = "Stimuli.mat";
pub const FEATURES: &str = "alexnet_conv3_features.h5";

/// The feature map: GRID × GRID cells × CHANNELS (8 orientations × 4
/// spatial frequencies); flattened in C order, 1152 columns.
pub const GRID: usize = 6;
const N_ORI: usize = 8;
const N_FREQ: usize = 4;
pub const CHANNELS: usize = N_ORI * N_FREQ;
/// Filter spatial frequencies in cycles per image, so any image size gives
/// the same features.
const CYCLES: [f64; N_FREQ] = [4.0, 6.5, 10.0, 16.0];
/// Energy is sampled on a SAMPLES × SAMPLES lattice.
const SAMPLES: usize = 16;
/// vim-1's code for V4.
pub const V4: i64 = 6;
/// The codes of the other voxels, in turn.
const OTHER_CODES: [i64; 7] = [0, 1, 2, 3, 4, 5, 7];
/// S1's V4 voxels NaN in one training image, and NaN only in a validation
/// image.
pub const S1_NAN_TRAIN: usize = 3;
pub const S1_NAN_VAL: usize = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Vim1SynthConfig {
    pub seed: u64,
    /// Training images (vim-1: 1750).
    pub n_trn: usize,
    /// Validation images (vim-1: 120).
    pub n_val: usize,
    /// Side of the stimuli (vim-1: 128).
    pub image_size: usize,
    /// Voxels of S1 and S2 (vim-1: 25915 and 26329).
    pub voxels: [usize; 2],
    /// Of them, V4 voxels (code 6).
    pub v4: [usize; 2],
}

impl Default for Vim1SynthConfig {
    fn default() -> Self {
        Vim1SynthConfig {
            seed: 0,
            n_trn: 300,
            n_val: 40,
            image_size: 64,
            voxels: [400, 300],
            v4: [80, 60],
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Vim1SynthReport {
    pub out_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// S1's voxels (0-based columns) NaN in a training image, and only in a
    /// validation image.
    pub nan_train: Vec<usize>,
    pub nan_val: Vec<usize>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg)
}

fn to_io(e: crate::error::Error) -> io::Error {
    match e {
        crate::error::Error::Io { source, path } => {
            io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => io::Error::other(other.to_string()),
    }
}

impl Vim1SynthConfig {
    pub fn validate(&self) -> io::Result<()> {
        if self.n_trn < 2 || self.n_val < 2 {
            return Err(invalid(format!(
                "{} training and {} validation images: each needs at least 2",
                self.n_trn, self.n_val
            )));
        }
        if self.image_size < SAMPLES {
            return Err(invalid(format!(
                "{}-pixel stimuli: at least {SAMPLES} are needed for the features",
                self.image_size
            )));
        }
        for (s, (&v, &v4)) in self.voxels.iter().zip(&self.v4).enumerate() {
            // S1's NaN voxels are V4, and some V4 voxel should stay.
            let least = if s == 0 {
                S1_NAN_TRAIN + S1_NAN_VAL + 1
            } else {
                1
            };
            if v4 < least || v4 > v {
                return Err(invalid(format!(
                    "S{}: {v4} V4 voxels of {v}: between {least} and all of them",
                    s + 1
                )));
            }
        }
        Ok(())
    }
}

fn normal(rng: &mut Pcg64) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

fn shuffle<T>(rng: &mut Pcg64, v: &mut [T]) {
    for i in 0..v.len() {
        let j = rng.random_range(i..v.len());
        v.swap(i, j);
    }
}

/// One stimulus, row-major size × size: 2–4 elements on a mid-grey field.
fn stimulus(rng: &mut Pcg64, size: usize) -> Vec<f64> {
    let s = size as f64;
    let mut img = vec![rng.random_range(-0.08..0.08); size * size];
    for _ in 0..rng.random_range(2..=4usize) {
        let (cx, cy) = (
            rng.random_range(0.1 * s..0.9 * s),
            rng.random_range(0.1 * s..0.9 * s),
        );
        let theta = rng.random_range(0.0..PI);
        let (ct, st) = (theta.cos(), theta.sin());
        match rng.random_range(0..3u32) {
            0 => {
                // Gabor patch: 3–16 cycles per image, envelope 1–2 cycles.
                let f = (rng.random_range(3f64.ln()..16f64.ln())).exp() / s;
                let sigma = (rng.random_range(0.5..1.0) / f).clamp(2.0, s / 4.0);
                let contrast = rng.random_range(0.1..0.5);
                let phase = rng.random_range(0.0..TAU);
                for y in 0..size {
                    for x in 0..size {
                        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                        let env = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
                        let u = dx * ct + dy * st;
                        img[y * size + x] += contrast * env * (TAU * f * u + phase).cos();
                    }
                }
            }
            1 => {
                // Blob, light or dark.
                let sigma = rng.random_range(0.03 * s..0.16 * s);
                let amp =
                    rng.random_range(0.1..0.4) * if rng.random::<bool>() { 1.0 } else { -1.0 };
                for y in 0..size {
                    for x in 0..size {
                        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                        img[y * size + x] +=
                            amp * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
                    }
                }
            }
            _ => {
                // Soft edge within a Gaussian window.
                let window = rng.random_range(s / 8.0..s / 3.0);
                let width = rng.random_range(0.5..3.0);
                let amp = rng.random_range(0.1..0.4);
                for y in 0..size {
                    for x in 0..size {
                        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                        let env = (-(dx * dx + dy * dy) / (2.0 * window * window)).exp();
                        img[y * size + x] += amp * env * ((dx * ct + dy * st) / width).tanh();
                    }
                }
            }
        }
    }
    for p in &mut img {
        *p = p.clamp(-0.5, 0.5);
    }
    img
}

/// A quadrature pair of Gabor kernels (zero mean), side 2·half + 1.
struct Kernel {
    half: usize,
    even: Vec<f64>,
    odd: Vec<f64>,
}

fn kernels(size: usize) -> Vec<Kernel> {
    let mut out = Vec::with_capacity(CHANNELS);
    // Channel order: frequency-major, then orientation.
    for &cycles in &CYCLES {
        let f = cycles / size as f64;
        let sigma = 0.45 / f;
        let half = (2.0 * sigma).ceil() as usize;
        let side = 2 * half + 1;
        for o in 0..N_ORI {
            let theta = o as f64 * PI / N_ORI as f64;
            let (ct, st) = (theta.cos(), theta.sin());
            let (mut even, mut odd) = (vec![0.0; side * side], vec![0.0; side * side]);
            for y in 0..side {
                for x in 0..side {
                    let (dx, dy) = (x as f64 - half as f64, y as f64 - half as f64);
                    let env = (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
                    let u = dx * ct + dy * st;
                    even[y * side + x] = env * (TAU * f * u).cos();
                    odd[y * side + x] = env * (TAU * f * u).sin();
                }
            }
            // No response to uniform luminance; unit energy per kernel.
            for k in [&mut even, &mut odd] {
                let m = k.iter().sum::<f64>() / k.len() as f64;
                k.iter_mut().for_each(|v| *v -= m);
                let norm = k.iter().map(|v| v * v).sum::<f64>().sqrt();
                k.iter_mut().for_each(|v| *v /= norm);
            }
            out.push(Kernel { half, even, odd });
        }
    }
    out
}

/// Centre of lattice sample `i` (pixels) and the grid cell it falls in.
fn sample_at(i: usize, size: usize) -> (usize, usize) {
    let px = (2 * i + 1) * size / (2 * SAMPLES);
    (px, (px * GRID / size).min(GRID - 1))
}

/// One image's features, GRID × GRID × CHANNELS (NHWC without the N):
/// oriented energy averaged over each cell's lattice samples; the image is
/// taken as mid-grey (0) beyond its border.
fn features(img: &[f64], size: usize, kernels: &[Kernel]) -> Vec<f32> {
    let mut sum = vec![0.0f64; GRID * GRID * CHANNELS];
    let mut count = vec![0usize; GRID * GRID];
    for sy in 0..SAMPLES {
        let (py, gy) = sample_at(sy, size);
        for sx in 0..SAMPLES {
            let (px, gx) = sample_at(sx, size);
            count[gy * GRID + gx] += 1;
            for (c, k) in kernels.iter().enumerate() {
                let side = 2 * k.half + 1;
                let (mut e, mut o) = (0.0, 0.0);
                for ky in 0..side {
                    let y = py as isize + ky as isize - k.half as isize;
                    if y < 0 || y >= size as isize {
                        continue;
                    }
                    let row = &img[y as usize * size..(y as usize + 1) * size];
                    for kx in 0..side {
                        let x = px as isize + kx as isize - k.half as isize;
                        if x < 0 || x >= size as isize {
                            continue;
                        }
                        let v = row[x as usize];
                        e += v * k.even[ky * side + kx];
                        o += v * k.odd[ky * side + kx];
                    }
                }
                sum[(gy * GRID + gx) * CHANNELS + c] += (e * e + o * o).sqrt();
            }
        }
    }
    sum.iter()
        .enumerate()
        .map(|(i, &v)| (v / count[i / CHANNELS].max(1) as f64) as f32)
        .collect()
}

/// Mean and SD of each column of the first `n` rows (the training images).
fn column_stats(x: &[f64], n: usize, cols: usize) -> Vec<(f64, f64)> {
    (0..cols)
        .map(|c| {
            let m = (0..n).map(|i| x[i * cols + c]).sum::<f64>() / n as f64;
            let v = (0..n).map(|i| (x[i * cols + c] - m).powi(2)).sum::<f64>() / n as f64;
            (m, v.sqrt().max(1e-12))
        })
        .collect()
}

/// One subject's responses, images (training, then validation) × voxels,
/// and the voxels' ROI codes.
fn subject(
    rng: &mut Pcg64,
    cfg: &Vim1SynthConfig,
    s: usize,
    images: &[f64],
    feats: &[f64],
) -> (Vec<f64>, Vec<i64>) {
    let (n, size) = (cfg.n_trn + cfg.n_val, cfg.image_size);
    let (v, v4) = (cfg.voxels[s], cfg.v4[s]);
    let p = GRID * GRID * CHANNELS;
    let mut codes: Vec<i64> = (0..v)
        .map(|j| {
            if j < v4 {
                V4
            } else {
                OTHER_CODES[(j - v4) % OTHER_CODES.len()]
            }
        })
        .collect();
    shuffle(rng, &mut codes);
    let mut resp = vec![0.0; n * v];
    for (j, &code) in codes.iter().enumerate() {
        let is_v4 = code == V4;
        // Receptive field on the grid (cell units), wider in V4.
        let (gx, gy) = (rng.random_range(0.5..5.5), rng.random_range(0.5..5.5));
        let rf = if is_v4 {
            rng.random_range(0.9..1.8)
        } else {
            rng.random_range(0.5..1.1)
        };
        let mut spatial = [0.0; GRID * GRID];
        for (cell, w) in spatial.iter_mut().enumerate() {
            let (x, y) = ((cell % GRID) as f64 + 0.5, (cell / GRID) as f64 + 0.5);
            *w = (-((x - gx).powi(2) + (y - gy).powi(2)) / (2.0 * rf * rf)).exp();
        }
        let total: f64 = spatial.iter().sum();
        spatial.iter_mut().for_each(|w| *w /= total);
        // Channel weights: V4 mixed over all channels; the others tuned to an
        // orientation and a frequency, with some of the rest.
        let (pref_o, pref_f) = (rng.random_range(0..N_ORI), rng.random_range(0..N_FREQ));
        let channel: Vec<f64> = (0..CHANNELS)
            .map(|c| {
                let (f, o) = (c / N_ORI, c % N_ORI);
                let d = (o as isize - pref_o as isize).rem_euclid(N_ORI as isize);
                let d_ori = d.min(N_ORI as isize - d) as f64;
                let tuned = (-(d_ori * d_ori) / 2.0 - (f as f64 - pref_f as f64).powi(2)).exp();
                if is_v4 {
                    normal(rng)
                } else {
                    2.0 * tuned + 0.3 * normal(rng)
                }
            })
            .collect();
        let mut lin = vec![0.0; n];
        for (i, l) in lin.iter_mut().enumerate() {
            let row = &feats[i * p..(i + 1) * p];
            *l = spatial
                .iter()
                .enumerate()
                .map(|(cell, &w)| {
                    w * (0..CHANNELS)
                        .map(|c| channel[c] * row[cell * CHANNELS + c])
                        .sum::<f64>()
                })
                .sum();
        }
        // RMS contrast of the pixels under the same field (pixel units).
        let cell_px = size as f64 / GRID as f64;
        let (cx, cy, sig) = (gx * cell_px, gy * cell_px, rf * cell_px);
        let weight: Vec<f64> = (0..size * size)
            .map(|q| {
                let (x, y) = ((q % size) as f64 + 0.5, (q / size) as f64 + 0.5);
                (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * sig * sig)).exp()
            })
            .collect();
        let wsum: f64 = weight.iter().sum();
        let contrast: Vec<f64> = (0..n)
            .map(|i| {
                let img = &images[i * size * size..(i + 1) * size * size];
                let m = img.iter().zip(&weight).map(|(a, w)| a * w).sum::<f64>() / wsum;
                let var = img
                    .iter()
                    .zip(&weight)
                    .map(|(a, w)| w * (a - m).powi(2))
                    .sum::<f64>()
                    / wsum;
                var.sqrt()
            })
            .collect();
        let z = |x: &[f64]| {
            let (m, sd) = column_stats(x, cfg.n_trn, 1)[0];
            x.iter().map(|a| (a - m) / sd).collect::<Vec<f64>>()
        };
        let (lin, contrast) = (z(&lin), z(&contrast));
        let mix = if is_v4 { 0.25 } else { 0.4 };
        let signal: Vec<f64> = lin
            .iter()
            .zip(&contrast)
            .map(|(a, b)| (1.0 - mix) * a + mix * b)
            .collect();
        let signal = z(&signal);
        let noise = rng.random_range(0.5..1.1);
        let (gain, offset) = (rng.random_range(0.5..2.0), 0.3 * normal(rng));
        for i in 0..n {
            resp[i * v + j] = offset + gain * (signal[i] + noise * normal(rng));
        }
    }
    (resp, codes)
}

/// `images × voxels` rows `range` as MATLAB holds them: voxels × images.
fn voxels_by_images(resp: &[f64], v: usize, range: std::ops::Range<usize>) -> Array<f64> {
    let n = range.len();
    let mut t = vec![0.0; n * v];
    for (r, i) in range.enumerate() {
        for j in 0..v {
            t[j * n + r] = resp[i * v + j];
        }
    }
    Array::new(vec![v, n], t)
}

pub fn generate(cfg: &Vim1SynthConfig, out: &Path) -> io::Result<Vim1SynthReport> {
    cfg.validate()?;
    std::fs::create_dir_all(out)?;
    let (n_trn, n, size) = (cfg.n_trn, cfg.n_trn + cfg.n_val, cfg.image_size);

    let mut rng = Pcg64::seed_from_u64(cfg.seed ^ 0x0071_1a10);
    let images: Vec<f64> = (0..n).flat_map(|_| stimulus(&mut rng, size)).collect();
    let kernels = kernels(size);
    let p = GRID * GRID * CHANNELS;
    let feats32: Vec<f32> = images
        .par_chunks(size * size)
        .flat_map_iter(|img| features(img, size, &kernels))
        .collect();
    // Responses are made from the features as stored (float32), z-scored
    // with the training images' statistics.
    let raw: Vec<f64> = feats32.iter().map(|&x| x as f64).collect();
    let stats = column_stats(&raw, n_trn, p);
    let feats: Vec<f64> = raw
        .iter()
        .enumerate()
        .map(|(q, &x)| {
            let (m, sd) = stats[q % p];
            (x - m) / sd
        })
        .collect();

    let mut vars: Vec<(String, Array<f64>)> = Vec::new();
    let (mut nan_train, mut nan_val) = (Vec::new(), Vec::new());
    for s in 0..2 {
        let mut rng = Pcg64::seed_from_u64(cfg.seed ^ (0x0071_1a20 + s as u64));
        let (mut resp, codes) = subject(&mut rng, cfg, s, &images, &feats);
        let v = cfg.voxels[s];
        if s == 0 {
            let mut v4: Vec<usize> = (0..v).filter(|&j| codes[j] == V4).collect();
            shuffle(&mut rng, &mut v4);
            nan_train = v4[..S1_NAN_TRAIN].to_vec();
            nan_val = v4[S1_NAN_TRAIN..S1_NAN_TRAIN + S1_NAN_VAL].to_vec();
            for &j in &nan_train {
                resp[rng.random_range(0..n_trn) * v + j] = f64::NAN;
            }
            for &j in &nan_val {
                resp[rng.random_range(n_trn..n) * v + j] = f64::NAN;
            }
            nan_train.sort_unstable();
            nan_val.sort_unstable();
        }
        let subj = format!("S{}", s + 1);
        vars.push((
            format!("dataTrn{subj}"),
            voxels_by_images(&resp, v, 0..n_trn),
        ));
        vars.push((
            format!("dataVal{subj}"),
            voxels_by_images(&resp, v, n_trn..n),
        ));
        let roi: Vec<f64> = codes.iter().map(|&c| c as f64).collect();
        vars.push((format!("roi{subj}"), Array::new(vec![v, 1], roi)));
    }

    let mut files = Vec::new();
    let responses = out.join(RESPONSES);
    let refs: Vec<(&str, &Array<f64>)> = vars.iter().map(|(k, a)| (k.as_str(), a)).collect();
    crate::mat::write_v73(&responses, &refs).map_err(to_io)?;
    files.push(responses);

    let stim = out.join(STIMULI);
    let split = n_trn * size * size;
    let trn = Array::new(vec![n_trn, size, size], images[..split].to_vec());
    let val = Array::new(vec![cfg.n_val, size, size], images[split..].to_vec());
    crate::mat::write_v73(&stim, &[("stimTrn", &trn), ("stimVal", &val)]).map_err(to_io)?;
    files.push(stim);

    let h5 = out.join(FEATURES);
    let (f_trn, f_val) = feats32.split_at(n_trn * p);
    crate::hdf5::write_f32(
        &h5,
        &[
            ("train", &[n_trn, GRID, GRID, CHANNELS], f_trn),
            ("val", &[cfg.n_val, GRID, GRID, CHANNELS], f_val),
        ],
    )?;
    files.push(h5);
    Ok(Vim1SynthReport {
        out_dir: out.to_path_buf(),
        files,
        nan_train,
        nan_val,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_read_back_as_vim1_ships_them() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Vim1SynthConfig::default();
        let report = generate(&cfg, dir.path()).unwrap();
        assert_eq!(report.files.len(), 3);
        let er = dir.path().join(RESPONSES);
        assert_eq!(crate::mat::kind(&er).unwrap(), crate::mat::MatKind::V73);
        // h5py's view is the real file's: images × voxels and 1 × voxels.
        assert_eq!(crate::hdf5::shape(&er, "dataTrnS1").unwrap(), [300, 400]);
        assert_eq!(crate::hdf5::shape(&er, "dataValS1").unwrap(), [40, 400]);
        assert_eq!(crate::hdf5::shape(&er, "roiS1").unwrap(), [1, 400]);
        assert_eq!(crate::hdf5::shape(&er, "dataTrnS2").unwrap(), [300, 300]);

        let s1 = crate::vim1::read_responses(&er, "S1").unwrap();
        assert_eq!((s1.dropped_train_nan, s1.dropped_val_nan), (3, 1));
        assert_eq!(s1.train.shape, [300, 396]);
        assert_eq!(s1.val.shape, [40, 396]);
        assert_eq!(s1.roi.iter().filter(|&&c| c == V4).count(), 76);
        let dropped: Vec<usize> = (0..400).filter(|j| !s1.voxel.contains(j)).collect();
        let mut want = [report.nan_train.clone(), report.nan_val.clone()].concat();
        want.sort_unstable();
        assert_eq!(dropped, want);
        assert!(s1.roi.iter().all(|c| (0..=7).contains(c)));
        assert!(
            s1.train
                .data
                .iter()
                .chain(&s1.val.data)
                .all(|x| x.is_finite())
        );
        let s2 = crate::vim1::read_responses(&er, "S2").unwrap();
        assert_eq!((s2.dropped_train_nan, s2.dropped_val_nan), (0, 0));
        assert_eq!(
            (s2.train.shape.clone(), s2.val.shape.clone()),
            (vec![300, 300], vec![40, 300])
        );
        assert_eq!(s2.roi.iter().filter(|&&c| c == V4).count(), 60);
        // Every other code is there too.
        for c in OTHER_CODES {
            assert!(s2.roi.contains(&c), "code {c}");
        }

        let st = dir.path().join(STIMULI);
        assert_eq!(crate::mat::kind(&st).unwrap(), crate::mat::MatKind::V73);
        let trn = crate::vim1::read_stimuli(&st, "stimTrn").unwrap();
        assert_eq!(trn.shape, [300, 64, 64]);
        assert!(trn.data.iter().all(|x| (-0.5..=0.5).contains(x)));
        let sd = {
            let m = trn.data.iter().sum::<f64>() / trn.data.len() as f64;
            (trn.data.iter().map(|x| (x - m).powi(2)).sum::<f64>() / trn.data.len() as f64).sqrt()
        };
        assert!(sd > 0.05, "stimuli have structure: sd {sd}");
        assert_eq!(
            crate::vim1::read_stimuli(&st, "stimVal").unwrap().shape,
            [40, 64, 64]
        );

        let h5 = dir.path().join(FEATURES);
        assert_eq!(crate::hdf5::shape(&h5, "train").unwrap(), [300, 6, 6, 32]);
        assert_eq!(crate::hdf5::shape(&h5, "val").unwrap(), [40, 6, 6, 32]);
        assert!(
            !crate::hdf5::read_f64(&h5, "train")
                .unwrap()
                .data
                .iter()
                .any(|x| !x.is_finite())
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_other_data() {
        let cfg = Vim1SynthConfig {
            n_trn: 20,
            n_val: 4,
            voxels: [30, 10],
            v4: [10, 3],
            ..Default::default()
        };
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate(&cfg, a.path()).unwrap();
        generate(&cfg, b.path()).unwrap();
        generate(
            &Vim1SynthConfig {
                seed: 1,
                ..cfg.clone()
            },
            c.path(),
        )
        .unwrap();
        for f in [RESPONSES, STIMULI, FEATURES] {
            let bytes = std::fs::read(a.path().join(f)).unwrap();
            assert_eq!(bytes, std::fs::read(b.path().join(f)).unwrap(), "{f}");
            assert_ne!(bytes, std::fs::read(c.path().join(f)).unwrap(), "{f}");
        }
        let e = generate(&Vim1SynthConfig { v4: [4, 3], ..cfg }, a.path()).unwrap_err();
        assert!(e.to_string().contains("S1: 4 V4 voxels of 30"), "{e}");
    }

    /// The signal is learnable as the Kay V4 workflow learns it: PLS with
    /// 25 components from the conv3 stand-in features, 5 random splits of
    /// the training images into 250 fit and 50 test, the squared Pearson r
    /// of each V4 voxel's test predictions averaged over splits.
    #[test]
    fn pls_on_the_features_predicts_v4() {
        let dir = tempfile::tempdir().unwrap();
        generate(&Vim1SynthConfig::default(), dir.path()).unwrap();
        let x = crate::hdf5::read_f64(&dir.path().join(FEATURES), "train").unwrap();
        let r = crate::vim1::read_responses(&dir.path().join(RESPONSES), "S1").unwrap();
        let (n, p) = x.rows_cols();
        let v4: Vec<usize> = (0..r.roi.len()).filter(|&k| r.roi[k] == V4).collect();
        let w = r.train.shape[1];
        let mut rng = Pcg64::seed_from_u64(7);
        let mut r2 = vec![0.0; v4.len()];
        for _ in 0..5 {
            let mut order: Vec<usize> = (0..n).collect();
            shuffle(&mut rng, &mut order);
            let (fit, test) = order.split_at(250);
            let xm =
                |rows: &[usize]| faer::Mat::from_fn(rows.len(), p, |i, j| x.data[rows[i] * p + j]);
            let y =
                faer::Mat::from_fn(fit.len(), v4.len(), |i, k| r.train.data[fit[i] * w + v4[k]]);
            let model = crate::numerics::pls::fit(xm(fit).as_ref(), y.as_ref(), 25, true).unwrap();
            let pred = model.predict(xm(test).as_ref());
            for (k, &c) in v4.iter().enumerate() {
                let truth: Vec<f64> = test.iter().map(|&i| r.train.data[i * w + c]).collect();
                let guess: Vec<f64> = (0..test.len()).map(|i| pred[(i, k)]).collect();
                r2[k] += crate::numerics::metrics::pearson_r(&truth, &guess).powi(2) / 5.0;
            }
        }
        let med = crate::numerics::metrics::median(&r2);
        assert!((0.15..0.6).contains(&med), "median test r² {med}");
    }
}
