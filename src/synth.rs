//! A deterministic synthetic NSD subject in runner's "runner-nsd-v1" layout.
//!
//! Real NSD data cannot ship with runner, so the example experiment and the
//! tests run on a subject generated here: dead-leaves images, a fixed "toy
//! visual system" whose activations are also written as precomputed model
//! features, and voxels whose responses are hidden functions of those
//! activations plus repeat noise. Early areas are driven linearly by local
//! oriented energy and higher areas nonlinearly by image-level statistics, so a
//! ridge fit of `toy/edges` wins in V1–V3 while `toy/global` wins in the
//! ventral, lateral and parietal streams: the pattern the example heatmap shows.
//!
//! ```text
//! <out>/subject.json                 format, subject, source, splits, hemis, repeats, image_shape
//! <out>/images/<split>.npy           uint8   N×H×W×3
//! <out>/brain/<split>.<hemi>.npy     float32 N×R×V_hemi (z-scored per voxel, as NSD betas)
//! <out>/voxels.csv                   hemi,index,ncsnr,nsdgeneral,streams,prf-visualrois
//! <out>/features/<model>/<layer>.npy float32, rows = all images in split order train, val, test
//! ```
//! The converter for the real HW2 pickle writes the same layout (minus `features/`).

use std::f64::consts::{FRAC_1_SQRT_2, PI, TAU};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

use crate::npy;

pub mod algonauts;
pub mod lab08;
pub mod npz_responses;
pub mod vim1;

pub const FORMAT: &str = "runner-nsd-v1";
const SPLITS: [&str; 3] = ["train", "val", "test"];
const HEMIS: [&str; 2] = ["lh", "rh"];

/// Side of the spatial grid that `pixels` and `edges` pool into.
const GRID: usize = 8;
const N_ORI: usize = 4;
const N_SCALE: usize = 2;
const N_EDGE: usize = N_SCALE * N_ORI * GRID * GRID;
const N_GLOBAL: usize = 24;
/// Side of the grayscale image the random net sees.
const NET_IN: usize = 16;
const RF1: usize = 512;
const RF2: usize = 128;

// Column groups of the `global` layer.
const G_COLOUR: std::ops::Range<usize> = 0..6; // mean then std of R, G, B
const G_ORI: std::ops::Range<usize> = 6..14; // whole-image energy per (scale, orientation)
const G_HIST: std::ops::Range<usize> = 14..22; // 8-bin luminance histogram
const G_SAT: usize = 22;
const G_CONTRAST: usize = 23;

#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub seed: u64,
    pub subject: String,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub image_size: usize,
    pub repeats: usize,
    pub voxels_lh: usize,
    pub voxels_rh: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            subject: "synth01".into(),
            n_train: 240,
            n_val: 60,
            n_test: 100,
            image_size: 64,
            repeats: 3,
            voxels_lh: 320,
            voxels_rh: 280,
        }
    }
}

impl SynthConfig {
    pub fn n_images(&self) -> usize {
        self.n_train + self.n_val + self.n_test
    }

    fn split_sizes(&self) -> [usize; 3] {
        [self.n_train, self.n_val, self.n_test]
    }

    pub fn validate(&self) -> io::Result<()> {
        let fail = |msg: String| Err(io::Error::new(ErrorKind::InvalidInput, msg));
        if self.split_sizes().contains(&0) {
            return fail(format!(
                "every split needs at least one image (n_train = {}, n_val = {}, n_test = {}); set each to 1 or more",
                self.n_train, self.n_val, self.n_test
            ));
        }
        if self.repeats < 2 {
            return fail(format!(
                "repeats = {}, but the noise ceiling (ncsnr) needs at least 2 repeats per image; set repeats to 2 or more",
                self.repeats
            ));
        }
        if self.image_size < 16 {
            return fail(format!(
                "image_size = {} is too small for the 8×8 feature grid at two scales; set image_size to 16 or more",
                self.image_size
            ));
        }
        if self.voxels_lh == 0 || self.voxels_rh == 0 {
            return fail(format!(
                "each hemisphere needs at least one voxel (voxels_lh = {}, voxels_rh = {}); set both to 1 or more",
                self.voxels_lh, self.voxels_rh
            ));
        }
        if self.subject.trim().is_empty() {
            return fail(
                "subject name is empty; give the subject a name such as \"synth01\"".into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct SynthReport {
    pub out_dir: PathBuf,
    pub n_images: usize,
    pub n_voxels: usize,
    /// Every file written, relative to `out_dir`, sorted.
    pub files: Vec<PathBuf>,
    /// Per voxel, lh then rh as in voxels.csv: the ncsnr written there.
    pub ncsnr: Vec<f64>,
    /// Per voxel: the generating 1/σ (0 for pure-noise voxels), to check ncsnr against.
    pub true_ncsnr: Vec<f64>,
}

/// Writes a synthetic subject to `out_dir`, which must not exist yet.
///
/// Everything is written into a hidden sibling directory first and renamed into
/// place at the end, so an interrupted run never leaves a half-written subject.
pub fn generate(cfg: &SynthConfig, out_dir: &Path) -> io::Result<SynthReport> {
    cfg.validate()?;
    let mut report = staged(out_dir, |dir| write_subject(cfg, dir))?;
    report.out_dir = out_dir.to_path_buf();
    Ok(report)
}

/// Runs `write` on a fresh hidden sibling of `out_dir` and renames it to
/// `out_dir`, which must not exist; the sibling is removed on error or panic.
fn staged<R>(out_dir: &Path, write: impl FnOnce(&Path) -> io::Result<R>) -> io::Result<R> {
    let exists_err = || {
        io::Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} already exists; delete it or pass a different path",
                out_dir.display()
            ),
        )
    };
    if out_dir.symlink_metadata().is_ok() {
        return Err(exists_err());
    }
    let name = out_dir.file_name().ok_or_else(|| {
        io::Error::new(
            ErrorKind::InvalidInput,
            format!(
                "output path {} does not end in a directory name",
                out_dir.display()
            ),
        )
    })?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(|e| with_path(e, "cannot create", parent))?;

    // The counter keeps concurrent calls in one process (parallel tests) apart.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut staging = Staging {
        armed: true,
        path: parent.join(format!(
            ".{}.partial-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            CALLS.fetch_add(1, Ordering::Relaxed)
        )),
    };
    fs::create_dir(&staging.path).map_err(|e| with_path(e, "cannot create", &staging.path))?;
    let result = write(&staging.path)?;

    // rename() would silently replace an empty directory created meanwhile.
    if out_dir.symlink_metadata().is_ok() {
        return Err(exists_err());
    }
    fs::rename(&staging.path, out_dir)
        .map_err(|e| with_path(e, "cannot move subject to", out_dir))?;
    staging.armed = false;
    Ok(result)
}

/// Removes the staging directory on error or panic; disarmed once renamed.
struct Staging {
    path: PathBuf,
    armed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// NSD's noise-ceiling SNR of one voxel from its z-scored responses, laid out
/// image-major (`responses[i * repeats + r]`).
///
/// sd_noise = sqrt(mean over images of the across-repeat variance, ddof = 1),
/// sd_signal = sqrt(max(0, 1 − sd_noise²)), ncsnr = sd_signal / sd_noise. The
/// "1 −" assumes the responses have unit variance, which NSD's z-scoring gives.
pub fn ncsnr_from_repeats(responses: &[f32], n_images: usize, repeats: usize) -> f64 {
    assert!(
        repeats >= 2,
        "ncsnr needs at least 2 repeats, got {repeats}"
    );
    assert_eq!(
        responses.len(),
        n_images * repeats,
        "responses must be n_images × repeats"
    );
    let mut noise_var = 0.0;
    for trials in responses.chunks_exact(repeats) {
        let mean = trials.iter().map(|&x| x as f64).sum::<f64>() / repeats as f64;
        let ss: f64 = trials.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
        noise_var += ss / (repeats - 1) as f64;
    }
    noise_var /= n_images as f64;
    (1.0 - noise_var).max(0.0).sqrt() / noise_var.sqrt()
}

// ---------------------------------------------------------------- randomness

#[derive(Clone, Copy)]
enum Stream {
    Image = 1,
    Net = 2,
    Voxels = 3,
    Noise = 4,
    // The Algonauts 2023 subject (algonauts.rs).
    AlgonautsImage = 5,
    AlgonautsLayout = 6,
    AlgonautsVertices = 7,
    AlgonautsNoise = 8,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent generator per purpose (and per image or hemisphere), so that
/// e.g. changing the voxel count leaves the images untouched.
fn rng_for(seed: u64, stream: Stream, index: u64) -> Pcg64 {
    let key = splitmix64(seed) ^ splitmix64(((stream as u64) << 40) ^ index);
    Pcg64::seed_from_u64(splitmix64(key))
}

fn gauss(rng: &mut Pcg64) -> f64 {
    rng.sample(StandardNormal)
}

// -------------------------------------------------------------------- images

/// Dead leaves: opaque discs with radius density ∝ r⁻³ give the scale-invariant
/// occlusion statistics of natural images, so the features behave roughly as
/// they would on photographs.
fn render_dead_leaves(rng: &mut Pcg64, s: usize, canvas: &mut [f64], out: &mut [u8]) {
    // Per-image tint, brightness and contrast give the image-level statistics
    // (and so the `global` layer) real variance across images.
    let tint = [20.0 * gauss(rng), 20.0 * gauss(rng), 20.0 * gauss(rng)];
    let base: f64 = rng.random_range(80.0..170.0);
    let contrast: f64 = rng.random_range(20.0..70.0);
    for px in canvas.chunks_exact_mut(3) {
        for c in 0..3 {
            px[c] = base + tint[c];
        }
    }
    let (rmin, rmax) = (1.5f64, s as f64 / 3.0);
    let (a, b) = (rmin.powi(-2), rmax.powi(-2));
    let n_discs: usize = rng.random_range(200..=400);
    for _ in 0..n_discs {
        let u: f64 = rng.random();
        let r = (a - u * (a - b)).powf(-0.5); // inverse CDF of r⁻³ on [rmin, rmax]
        let cx: f64 = rng.random_range(0.0..s as f64);
        let cy: f64 = rng.random_range(0.0..s as f64);
        let lum = base + contrast * gauss(rng);
        let colour = [0, 1, 2].map(|c| lum + tint[c] + 15.0 * gauss(rng));
        // A linear shading ramp gives each disc some internal texture.
        let phi: f64 = rng.random_range(0.0..TAU);
        let ramp = 0.5 * contrast * rng.random::<f64>() / r;
        let (gx, gy) = (ramp * phi.cos(), ramp * phi.sin());
        let r2 = r * r;
        let y0 = (cy - r).floor().max(0.0) as usize;
        let y1 = ((cy + r).ceil() as usize).min(s);
        let x0 = (cx - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil() as usize).min(s);
        for y in y0..y1 {
            let dy = y as f64 + 0.5 - cy;
            for x in x0..x1 {
                let dx = x as f64 + 0.5 - cx;
                if dx * dx + dy * dy <= r2 {
                    let shade = gx * dx + gy * dy;
                    let px = &mut canvas[(y * s + x) * 3..][..3];
                    for c in 0..3 {
                        px[c] = colour[c] + shade;
                    }
                }
            }
        }
    }
    for (o, &v) in out.iter_mut().zip(canvas.iter()) {
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
}

// ------------------------------------------------------------------ features

/// Activations of every layer, one row per image (row-major).
#[derive(Default)]
struct Banks {
    pixels: Vec<f64>,
    edges: Vec<f64>,
    global: Vec<f64>,
    net_in: Vec<f64>,
}

/// Appends the m×m block means of an n×n image to `out`.
fn block_means(src: &[f64], n: usize, m: usize, out: &mut Vec<f64>) {
    let start = out.len();
    out.resize(start + m * m, 0.0);
    let mut count = vec![0usize; m * m];
    for y in 0..n {
        let row = (y * m / n) * m;
        for x in 0..n {
            let cell = row + x * m / n;
            out[start + cell] += src[y * n + x];
            count[cell] += 1;
        }
    }
    for (v, &c) in out[start..].iter_mut().zip(&count) {
        *v /= c as f64;
    }
}

/// Squared responses of steered first-derivative (Sobel) filters, pooled into
/// the grid cells (`edges`, channel = scale·4 + orientation) and over the whole
/// image (`whole`).
fn oriented_energy(g: &[f64], n: usize, scale: usize, edges: &mut [f64], whole: &mut [f64]) {
    const DIRS: [(f64, f64); N_ORI] = [
        (1.0, 0.0),
        (FRAC_1_SQRT_2, FRAC_1_SQRT_2),
        (0.0, 1.0),
        (-FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    ];
    let last = n as isize - 1;
    let at = |y: isize, x: isize| g[y.clamp(0, last) as usize * n + x.clamp(0, last) as usize];
    let mut count = [0usize; GRID * GRID];
    for y in 0..n {
        let cy = y * GRID / n;
        let yi = y as isize;
        for x in 0..n {
            let cell = cy * GRID + x * GRID / n;
            let xi = x as isize;
            let gx = at(yi - 1, xi + 1) + 2.0 * at(yi, xi + 1) + at(yi + 1, xi + 1)
                - at(yi - 1, xi - 1)
                - 2.0 * at(yi, xi - 1)
                - at(yi + 1, xi - 1);
            let gy = at(yi + 1, xi - 1) + 2.0 * at(yi + 1, xi) + at(yi + 1, xi + 1)
                - at(yi - 1, xi - 1)
                - 2.0 * at(yi - 1, xi)
                - at(yi - 1, xi + 1);
            count[cell] += 1;
            for (o, &(c, s)) in DIRS.iter().enumerate() {
                let e = (c * gx + s * gy).powi(2);
                edges[(scale * N_ORI + o) * GRID * GRID + cell] += e;
                whole[scale * N_ORI + o] += e;
            }
        }
    }
    for ch in 0..N_ORI {
        let cells = &mut edges[(scale * N_ORI + ch) * GRID * GRID..][..GRID * GRID];
        for (v, &c) in cells.iter_mut().zip(&count) {
            *v /= c as f64;
        }
        whole[scale * N_ORI + ch] /= (n * n) as f64;
    }
}

/// Appends one image's `pixels`, `edges`, `global` and net-input rows.
fn image_features(
    img: &[u8],
    s: usize,
    gray: &mut Vec<f64>,
    half: &mut Vec<f64>,
    banks: &mut Banks,
) {
    gray.clear();
    gray.extend(
        img.chunks_exact(3)
            .map(|p| (0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64) / 255.0),
    );
    block_means(gray, s, GRID, &mut banks.pixels);
    block_means(gray, s, NET_IN, &mut banks.net_in);

    let h = s / 2;
    half.clear();
    half.extend((0..h * h).map(|k| {
        let (y, x) = (2 * (k / h), 2 * (k % h));
        (gray[y * s + x] + gray[y * s + x + 1] + gray[(y + 1) * s + x] + gray[(y + 1) * s + x + 1])
            / 4.0
    }));
    let mut edges = [0.0; N_EDGE];
    let mut global = [0.0; N_GLOBAL];
    oriented_energy(gray, s, 0, &mut edges, &mut global[G_ORI]);
    oriented_energy(half, h, 1, &mut edges, &mut global[G_ORI]);
    banks.edges.extend_from_slice(&edges);

    let npx = (s * s) as f64;
    let (mut sum, mut sq, mut sat) = ([0.0; 3], [0.0; 3], 0.0);
    for p in img.chunks_exact(3) {
        for c in 0..3 {
            let v = p[c] as f64 / 255.0;
            sum[c] += v;
            sq[c] += v * v;
        }
        sat += (p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2])) as f64 / 255.0;
    }
    for c in 0..3 {
        let mean = sum[c] / npx;
        global[G_COLOUR.start + c] = mean;
        global[G_COLOUR.start + 3 + c] = (sq[c] / npx - mean * mean).max(0.0).sqrt();
    }
    let mut lum_sum = 0.0;
    for &g in gray.iter() {
        global[G_HIST.start + ((g * 8.0) as usize).min(7)] += 1.0 / npx;
        lum_sum += g;
    }
    let lum_mean = lum_sum / npx;
    global[G_SAT] = sat / npx;
    global[G_CONTRAST] = (gray.iter().map(|g| (g - lum_mean).powi(2)).sum::<f64>() / npx).sqrt();
    banks.global.extend_from_slice(&global);
}

/// A random-init two-layer ReLU net on the 16×16 grayscale image: the
/// "untrained network" baseline every real model comparison needs.
fn random_net(seed: u64, net_in: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut rng = rng_for(seed, Stream::Net, 0);
    let d_in = NET_IN * NET_IN;
    let w1: Vec<f64> = (0..RF1 * d_in)
        .map(|_| gauss(&mut rng) / (d_in as f64).sqrt())
        .collect();
    let w2: Vec<f64> = (0..RF2 * RF1)
        .map(|_| gauss(&mut rng) * (2.0 / RF1 as f64).sqrt())
        .collect();
    let n = net_in.len() / d_in;
    let (mut rf1, mut rf2) = (Vec::with_capacity(n * RF1), Vec::with_capacity(n * RF2));
    let mut x = vec![0.0; d_in];
    for row in net_in.chunks_exact(d_in) {
        // Centred input, as networks see normalised images.
        for (xi, &p) in x.iter_mut().zip(row) {
            *xi = p - 0.5;
        }
        let h0 = rf1.len();
        rf1.extend(w1.chunks_exact(d_in).map(|w| dot(w, &x).max(0.0)));
        let h = &rf1[h0..];
        rf2.extend(w2.chunks_exact(RF1).map(|w| dot(w, h).max(0.0)));
    }
    (rf1, rf2)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

// -------------------------------------------------------------------- voxels

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Noise,
    V1,
    V2,
    V3,
    Hv4,
    Mid,
    Ventral,
    Lateral,
    Parietal,
    Other,
}

/// Share of each hemisphere's voxels; sized so that every ROI keeps ≥ 30
/// nsdgeneral voxels with decent ncsnr in the default subject.
const QUOTAS: [(Family, f64); 10] = [
    (Family::Noise, 0.10),
    (Family::V1, 0.13),
    (Family::V2, 0.12),
    (Family::V3, 0.11),
    (Family::Hv4, 0.10),
    (Family::Mid, 0.06),
    (Family::Ventral, 0.13),
    (Family::Lateral, 0.12),
    (Family::Parietal, 0.10),
    (Family::Other, 0.03),
];

/// Fraction of nsdgeneral voxels that carry no signal at all.
const DEAD_FRACTION: f64 = 0.08;

struct Voxel {
    labels: [&'static str; 3], // nsdgeneral, streams, prf-visualrois
    signal: Option<Vec<f64>>,  // unit variance over images; None = pure noise
}

/// Layer activations z-scored over images, so that random readout weights
/// give every feature a comparable say.
struct Drives {
    n: usize,
    edges: Vec<f64>,
    coarse: Vec<f64>,    // edges pooled to 4×4 cells
    quadrants: Vec<f64>, // edges pooled to 2×2 cells
    global: Vec<f64>,
}

fn zscore_columns(x: &[f64], n: usize) -> Vec<f64> {
    let d = x.len() / n;
    let mut z = x.to_vec();
    for j in 0..d {
        let mean = (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| (x[i * d + j] - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 };
        for i in 0..n {
            z[i * d + j] = (x[i * d + j] - mean) * inv;
        }
    }
    z
}

/// Averages `edges` rows over factor×factor blocks of grid cells.
fn pool_edges(edges: &[f64], factor: usize) -> Vec<f64> {
    let m = GRID / factor;
    let mut out = Vec::with_capacity(edges.len() / (factor * factor));
    for row in edges.chunks_exact(N_EDGE) {
        for ch in row.chunks_exact(GRID * GRID) {
            for cy in 0..m {
                for cx in 0..m {
                    let mut acc = 0.0;
                    for y in cy * factor..(cy + 1) * factor {
                        acc += ch[y * GRID + cx * factor..][..factor].iter().sum::<f64>();
                    }
                    out.push(acc / (factor * factor) as f64);
                }
            }
        }
    }
    out
}

/// Rows of `x` (n × w.len()) times `w`, standardised to zero mean, unit variance.
fn drive(x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = x.chunks_exact(w.len()).map(|row| dot(row, w)).collect();
    standardise(&mut v);
    v
}

fn standardise(v: &mut [f64]) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let inv = if sd > 0.0 { 1.0 / sd } else { 0.0 };
    v.iter_mut().for_each(|x| *x = (*x - mean) * inv);
}

fn random_weights(rng: &mut Pcg64, d: usize) -> Vec<f64> {
    (0..d).map(|_| gauss(rng)).collect()
}

/// Draws one voxel's labels and hidden response function.
fn draw_voxel(fam: Family, rng: &mut Pcg64, z: &Drives) -> Voxel {
    let dead = fam != Family::Noise && rng.random_bool(DEAD_FRACTION);
    let (labels, signal) = match fam {
        Family::Noise => (["Unknown", "Unknown", "Unknown"], None),
        Family::V1 | Family::V2 | Family::V3 | Family::Hv4 => {
            // pRF size grows along the hierarchy, and V1 prefers the fine scale.
            let (sizes, scale_w, names) = match fam {
                Family::V1 => ((0.5, 0.8), [0.75, 0.25], ["V1v", "V1d"]),
                Family::V2 => ((0.9, 1.3), [0.5, 0.5], ["V2v", "V2d"]),
                Family::V3 => ((1.4, 2.0), [0.3, 0.7], ["V3v", "V3d"]),
                _ => ((2.2, 3.2), [0.5, 0.5], ["hV4", "hV4"]),
            };
            let top = (GRID - 1) as f64;
            let (cx, cy): (f64, f64) = (rng.random_range(0.0..=top), rng.random_range(0.0..=top));
            let sigma: f64 = rng.random_range(sizes.0..sizes.1);
            let pref: f64 = rng.random_range(0.0..PI);
            let sharp: f64 = rng.random_range(0.3..1.0);
            let mut w = vec![0.0; N_EDGE];
            for (k, wk) in w.iter_mut().enumerate() {
                let (ch, cell) = (k / (GRID * GRID), k % (GRID * GRID));
                let (scale, ori) = (ch / N_ORI, ch % N_ORI);
                let (dy, dx) = ((cell / GRID) as f64 - cy, (cell % GRID) as f64 - cx);
                let tuning = 1.0 + sharp * (2.0 * (ori as f64 * PI / 4.0 - pref)).cos();
                *wk =
                    scale_w[scale] * tuning * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
            }
            // A suppressive surround (as in difference-of-Gaussians pRF models)
            // cancels image-wide contrast, so the voxel reports local structure
            // that image-level statistics cannot predict.
            let surround: f64 = rng.random_range(0.8..1.0);
            for ch in w.chunks_exact_mut(GRID * GRID) {
                let mean = ch.iter().sum::<f64>() / ch.len() as f64;
                ch.iter_mut().for_each(|x| *x -= surround * mean);
            }
            let mut s = drive(&z.edges, &w);
            // Ventral banks map the upper visual field (image rows above centre).
            let prf = names[usize::from(cy >= top / 2.0)];
            let mut stream = "early";
            if fam == Family::Hv4 {
                // V4 responds to texture energy rather than linear contrast, and to colour.
                let offset: f64 = rng.random_range(-0.3..0.5);
                s.iter_mut()
                    .for_each(|x| *x = (*x + offset).max(0.0).powi(2));
                standardise(&mut s);
                let mut cw = vec![0.0; N_GLOBAL];
                cw[G_COLOUR].iter_mut().for_each(|x| *x = gauss(rng));
                cw[G_SAT] = gauss(rng);
                let colour = drive(&z.global, &cw);
                let mix: f64 = rng.random_range(0.4..0.8);
                s.iter_mut()
                    .zip(&colour)
                    .for_each(|(x, c)| *x += mix * c.tanh());
                stream = "midventral";
            } else if fam == Family::V3 && rng.random_bool(0.2) {
                stream = if prf == "V3v" {
                    "midventral"
                } else {
                    "midparietal"
                };
            }
            (["nsdgeneral", stream, prf], Some(s))
        }
        Family::Mid => {
            let edges = drive(&z.coarse, &random_weights(rng, z.coarse.len() / z.n));
            let global = drive(&z.global, &random_weights(rng, N_GLOBAL));
            let gain: f64 = rng.random_range(0.7..1.5);
            let s = edges
                .iter()
                .zip(&global)
                .map(|(e, g)| (gain * (0.6 * e + 0.4 * g)).tanh())
                .collect();
            let stream = ["midventral", "midlateral", "midparietal"][rng.random_range(0..3)];
            (["nsdgeneral", stream, "Unknown"], Some(s))
        }
        Family::Ventral | Family::Lateral | Family::Parietal | Family::Other => {
            // Each stream weighs the image-level statistics differently.
            let mut emphasis = [0.25; N_GLOBAL];
            let (stream, favoured): (&str, Vec<usize>) = match fam {
                Family::Ventral => ("ventral", G_COLOUR.chain(G_HIST).chain([G_SAT]).collect()),
                Family::Lateral => ("lateral", (3..6).chain(G_ORI).chain([G_CONTRAST]).collect()),
                Family::Parietal => ("parietal", G_ORI.chain([G_CONTRAST]).collect()),
                _ => ("Unknown", Vec::new()),
            };
            favoured.iter().for_each(|&k| emphasis[k] = 1.0);
            let mut s = vec![0.0; z.n];
            for _ in 0..3 {
                let w: Vec<f64> = emphasis.iter().map(|e| e * gauss(rng)).collect();
                let d = drive(&z.global, &w);
                let (a, gain, bias): (f64, f64, f64) = (
                    gauss(rng),
                    rng.random_range(0.7..1.6),
                    rng.random_range(-0.5..0.5),
                );
                s.iter_mut()
                    .zip(&d)
                    .for_each(|(x, d)| *x += a * (gain * d + bias).tanh());
            }
            standardise(&mut s);
            // A little spatial layout: parietal cares about which quadrant holds the structure.
            let (layout, share) = match fam {
                Family::Parietal => (&z.quadrants, 0.35),
                _ => (&z.coarse, 0.2),
            };
            let e = drive(layout, &random_weights(rng, layout.len() / z.n));
            s.iter_mut().zip(&e).for_each(|(x, e)| *x += share * e);
            (["nsdgeneral", stream, "Unknown"], Some(s))
        }
    };
    let signal = signal.filter(|_| !dead).map(|mut s| {
        standardise(&mut s);
        s
    });
    Voxel { labels, signal }
}

/// `n` voxels' families in the NSD subject's proportions (`QUOTAS`), shuffled.
fn shuffled_families(rng: &mut Pcg64, n: usize) -> Vec<Family> {
    let mut families = Vec::with_capacity(n);
    let mut cum = 0.0;
    for &(fam, share) in &QUOTAS {
        cum += share;
        let end = ((cum * n as f64).round() as usize).min(n);
        families.resize(end.max(families.len()), fam);
    }
    families.resize(n, Family::Other);
    for i in (1..families.len()).rev() {
        families.swap(i, rng.random_range(0..=i));
    }
    families
}

/// One hemisphere's voxels in a shuffled order (NSD's voxel order is spatial,
/// so ROIs interleave in the columns).
fn draw_hemisphere(rng: &mut Pcg64, n_vox: usize, z: &Drives) -> Vec<Voxel> {
    shuffled_families(rng, n_vox)
        .into_iter()
        .map(|f| draw_voxel(f, rng, z))
        .collect()
}

// -------------------------------------------------------------------- output

fn write_subject(cfg: &SynthConfig, dir: &Path) -> io::Result<SynthReport> {
    let (s, n, reps) = (cfg.image_size, cfg.n_images(), cfg.repeats);
    let img_len = s * s * 3;
    let mut images = vec![0u8; n * img_len];
    let mut banks = Banks::default();
    let (mut canvas, mut gray, mut half) = (vec![0.0; img_len], Vec::new(), Vec::new());
    for (i, img) in images.chunks_exact_mut(img_len).enumerate() {
        let mut rng = rng_for(cfg.seed, Stream::Image, i as u64);
        render_dead_leaves(&mut rng, s, &mut canvas, img);
        image_features(img, s, &mut gray, &mut half, &mut banks);
    }
    let (rf1, rf2) = random_net(cfg.seed, &banks.net_in);
    let z = Drives {
        n,
        edges: zscore_columns(&banks.edges, n),
        coarse: zscore_columns(&pool_edges(&banks.edges, 2), n),
        quadrants: zscore_columns(&pool_edges(&banks.edges, 4), n),
        global: zscore_columns(&banks.global, n),
    };

    let mut out = Out {
        dir,
        files: Vec::new(),
    };
    let sizes = cfg.split_sizes();
    let mut start = 0;
    for (split, &len) in SPLITS.iter().zip(&sizes) {
        let part = &images[start * img_len..(start + len) * img_len];
        out.file(&format!("images/{split}.npy"), |p| {
            npy::write(p, &[len, s, s, 3], part)
        })?;
        start += len;
    }
    let layers: [(&str, &[f64], usize); 5] = [
        ("toy/pixels", &banks.pixels, GRID * GRID),
        ("toy/edges", &banks.edges, N_EDGE),
        ("toy/global", &banks.global, N_GLOBAL),
        ("random/rf1", &rf1, RF1),
        ("random/rf2", &rf2, RF2),
    ];
    for (name, data, width) in layers {
        let f: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        out.file(&format!("features/{name}.npy"), |p| {
            npy::write(p, &[n, width], &f)
        })?;
    }

    let mut csv = String::from("hemi,index,ncsnr,nsdgeneral,streams,prf-visualrois\n");
    let (mut ncsnr, mut true_ncsnr) = (Vec::new(), Vec::new());
    for (h, (hemi, n_vox)) in HEMIS.iter().zip([cfg.voxels_lh, cfg.voxels_rh]).enumerate() {
        let (resp, voxels) = simulate_hemisphere(cfg, h, n_vox, &z);
        for (v, vox) in voxels.iter().enumerate() {
            let ([general, streams, prf], est) = (vox.labels, vox.ncsnr);
            writeln!(csv, "{hemi},{v},{est:?},{general},{streams},{prf}")
                .map_err(io::Error::other)?;
            ncsnr.push(vox.ncsnr);
            true_ncsnr.push(vox.true_ncsnr);
        }
        let mut start = 0;
        for (split, &len) in SPLITS.iter().zip(&sizes) {
            let mut brain = Vec::with_capacity(len * reps * n_vox);
            for k in start * reps..(start + len) * reps {
                brain.extend((0..n_vox).map(|v| resp[v * n * reps + k]));
            }
            let shape = [len, reps, n_vox];
            out.file(&format!("brain/{split}.{hemi}.npy"), |p| {
                npy::write(p, &shape, &brain)
            })?;
            start += len;
        }
    }
    out.file("voxels.csv", |p| fs::write(p, &csv))?;
    let json = subject_json(cfg)?;
    out.file("subject.json", |p| fs::write(p, &json))?;
    out.files.sort();

    Ok(SynthReport {
        out_dir: dir.to_path_buf(),
        n_images: n,
        n_voxels: cfg.voxels_lh + cfg.voxels_rh,
        files: out.files,
        ncsnr,
        true_ncsnr,
    })
}

/// Writes files under the staging directory and records their relative paths.
struct Out<'a> {
    dir: &'a Path,
    files: Vec<PathBuf>,
}

impl Out<'_> {
    fn file(&mut self, rel: &str, write: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| with_path(e, "cannot create", parent))?;
        }
        write(&path).map_err(|e| with_path(e, "cannot write", &path))?;
        self.files.push(rel.into());
        Ok(())
    }
}

struct VoxelOut {
    labels: [&'static str; 3],
    ncsnr: f64,
    true_ncsnr: f64,
}

/// One hemisphere's z-scored trials, voxel-major (`resp[v][i * repeats + r]`,
/// images in split order), and what voxels.csv and the report say about each voxel.
fn simulate_hemisphere(
    cfg: &SynthConfig,
    h: usize,
    n_vox: usize,
    z: &Drives,
) -> (Vec<f32>, Vec<VoxelOut>) {
    let (n, reps) = (cfg.n_images(), cfg.repeats);
    let voxels = draw_hemisphere(&mut rng_for(cfg.seed, Stream::Voxels, h as u64), n_vox, z);
    let mut noise = rng_for(cfg.seed, Stream::Noise, h as u64);
    let mut resp = vec![0f32; n_vox * n * reps];
    let mut trials = vec![0.0f64; n * reps];
    let mut info = Vec::with_capacity(n_vox);
    for (vox, out) in voxels.iter().zip(resp.chunks_exact_mut(n * reps)) {
        // True ncsnr log-uniform on [0.1, 2], roughly the spread over real nsdgeneral voxels.
        let snr = noise.random_range(0.1f64.ln()..2f64.ln()).exp();
        let (sigma, truth) = if vox.signal.is_some() {
            (1.0 / snr, snr)
        } else {
            (1.0, 0.0)
        };
        for (k, t) in trials.iter_mut().enumerate() {
            let signal = vox.signal.as_ref().map_or(0.0, |s| s[k / reps]);
            *t = signal + sigma * gauss(&mut noise);
        }
        // NSD betas are z-scored per voxel, and ncsnr's "1 −" relies on it.
        standardise(&mut trials);
        out.iter_mut()
            .zip(&trials)
            .for_each(|(o, &t)| *o = t as f32);
        // Computed from the stored f32 values, so it can be reproduced from the files.
        let ncsnr = ncsnr_from_repeats(out, n, reps);
        info.push(VoxelOut {
            labels: vox.labels,
            ncsnr,
            true_ncsnr: truth,
        });
    }
    (resp, info)
}

/// Written by hand rather than through serde_json's map so that the key order
/// is fixed whatever serde_json features the build unifies to.
fn subject_json(cfg: &SynthConfig) -> io::Result<String> {
    let s = cfg.image_size;
    Ok(format!(
        "{{\n  \"format\": \"{FORMAT}\",\n  \"subject\": {},\n  \"source\": {},\n  \
         \"splits\": {{\"train\": {}, \"val\": {}, \"test\": {}}},\n  \
         \"hemis\": [\"lh\", \"rh\"],\n  \"repeats\": {},\n  \"image_shape\": [{s}, {s}, 3]\n}}\n",
        serde_json::to_string(&cfg.subject)?,
        serde_json::to_string(&format!("runner synth seed={}", cfg.seed))?,
        cfg.n_train,
        cfg.n_val,
        cfg.n_test,
        cfg.repeats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_rows(dir: &Path) -> Vec<Vec<String>> {
        let text = fs::read_to_string(dir.join("voxels.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("hemi,index,ncsnr,nsdgeneral,streams,prf-visualrois")
        );
        lines
            .map(|l| l.split(',').map(String::from).collect())
            .collect()
    }

    /// The ROI a voxel counts towards in the coverage check, if any.
    fn roi(row: &[String]) -> Option<&'static str> {
        let prf = row[5].as_str();
        let roi = match (row[4].as_str(), prf) {
            (_, "V1v" | "V1d") => "V1",
            (_, "V2v" | "V2d") => "V2",
            (_, "V3v" | "V3d") => "V3",
            (_, "hV4") => "hV4",
            ("ventral", _) => "ventral",
            ("lateral", _) => "lateral",
            ("parietal", _) => "parietal",
            _ => return None,
        };
        Some(roi)
    }

    fn ranks(x: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
        let mut r = vec![0.0; x.len()];
        idx.iter()
            .enumerate()
            .for_each(|(rank, &i)| r[i] = rank as f64);
        r
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        standardise(&mut a);
        standardise(&mut b);
        dot(&a, &b) / a.len() as f64
    }

    #[test]
    fn files_have_the_documented_shapes_and_dtypes() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("subj");
        let cfg = SynthConfig::default();
        let report = generate(&cfg, &out).unwrap();
        let (n, s, r) = (cfg.n_images(), cfg.image_size, cfg.repeats);
        let sizes = [
            ("train", cfg.n_train),
            ("val", cfg.n_val),
            ("test", cfg.n_test),
        ];
        let mut expect: Vec<(String, Vec<usize>, &str)> = Vec::new();
        for (split, len) in sizes {
            expect.push((format!("images/{split}.npy"), vec![len, s, s, 3], "'|u1'"));
            expect.push((
                format!("brain/{split}.lh.npy"),
                vec![len, r, cfg.voxels_lh],
                "'<f4'",
            ));
            expect.push((
                format!("brain/{split}.rh.npy"),
                vec![len, r, cfg.voxels_rh],
                "'<f4'",
            ));
        }
        for (layer, width) in [
            ("toy/pixels", 64),
            ("toy/edges", 512),
            ("toy/global", 24),
            ("random/rf1", 512),
            ("random/rf2", 128),
        ] {
            expect.push((format!("features/{layer}.npy"), vec![n, width], "'<f4'"));
        }
        for (rel, shape, dtype) in &expect {
            assert_eq!(
                npy::read_header(&out.join(rel)).unwrap(),
                (shape.clone(), dtype.to_string()),
                "{rel}"
            );
        }
        let mut listed: Vec<String> = expect.iter().map(|e| e.0.clone()).collect();
        listed.extend(["subject.json".into(), "voxels.csv".into()]);
        listed.sort();
        let reported: Vec<String> = report
            .files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(reported, listed);
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "staging directory left behind"
        );

        let meta: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("subject.json")).unwrap()).unwrap();
        let want = serde_json::json!({
            "format": "runner-nsd-v1", "subject": "synth01", "source": "runner synth seed=0",
            "splits": {"train": 240, "val": 60, "test": 100}, "hemis": ["lh", "rh"],
            "repeats": 3, "image_shape": [64, 64, 3]
        });
        assert_eq!(meta, want);

        // Recomputing ncsnr from the brain files reproduces voxels.csv exactly,
        // which pins down the N×R×V layout and the split order.
        let rows = csv_rows(&out);
        assert_eq!(rows.len(), cfg.voxels_lh + cfg.voxels_rh);
        let mut k = 0;
        for (hemi, n_vox) in [("lh", cfg.voxels_lh), ("rh", cfg.voxels_rh)] {
            let parts: Vec<_> = sizes
                .iter()
                .map(|(split, _)| {
                    npy::read_f32(&out.join(format!("brain/{split}.{hemi}.npy"))).unwrap()
                })
                .collect();
            for v in 0..n_vox {
                let trials: Vec<f32> = parts
                    .iter()
                    .flat_map(|a| a.data.iter().skip(v).step_by(n_vox).copied())
                    .collect();
                let mean = trials.iter().map(|&x| x as f64).sum::<f64>() / trials.len() as f64;
                let var = trials
                    .iter()
                    .map(|&x| (x as f64 - mean).powi(2))
                    .sum::<f64>()
                    / trials.len() as f64;
                assert!(
                    mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
                    "{hemi} voxel {v} is not z-scored"
                );
                assert_eq!(rows[k][0], hemi);
                assert_eq!(rows[k][1], v.to_string());
                assert_eq!(
                    rows[k][2].parse::<f64>().unwrap(),
                    ncsnr_from_repeats(&trials, n, r)
                );
                k += 1;
            }
        }
    }

    #[test]
    fn every_roi_has_enough_good_voxels() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("subj");
        generate(&SynthConfig::default(), &out).unwrap();
        let rows = csv_rows(&out);
        for row in &rows {
            let known = ["nsdgeneral", "Unknown"].contains(&row[3].as_str())
                && [
                    "early",
                    "midventral",
                    "midlateral",
                    "midparietal",
                    "ventral",
                    "lateral",
                    "parietal",
                    "Unknown",
                ]
                .contains(&row[4].as_str())
                && ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4", "Unknown"]
                    .contains(&row[5].as_str());
            assert!(known, "unexpected labels {row:?}");
            if row[5] != "Unknown" {
                assert!(row[4] == "early" || row[4].starts_with("mid"), "{row:?}");
            }
            if row[3] == "Unknown" {
                assert!(row[4] == "Unknown" && row[5] == "Unknown", "{row:?}");
            }
        }
        let unknown = rows.iter().filter(|r| r[3] == "Unknown").count() as f64 / rows.len() as f64;
        assert!((0.05..0.15).contains(&unknown), "{unknown}");
        for name in ["V1", "V2", "V3", "hV4", "ventral", "lateral", "parietal"] {
            let mut snr: Vec<f64> = rows
                .iter()
                .filter(|r| r[3] == "nsdgeneral" && roi(r) == Some(name))
                .map(|r| r[2].parse().unwrap())
                .collect();
            snr.sort_by(f64::total_cmp);
            let good = snr.iter().filter(|&&x| x > 0.2).count();
            println!(
                "{name:>9}: {:3} voxels, {good:3} with ncsnr > 0.2, median ncsnr {:.3}",
                snr.len(),
                snr[snr.len() / 2]
            );
            assert!(good >= 30, "{name} has only {good} voxels with ncsnr > 0.2");
        }
    }

    #[test]
    fn same_config_gives_identical_bytes_and_seed_changes_data() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = SynthConfig::default();
        let a = generate(&cfg, &tmp.path().join("a")).unwrap();
        let b = generate(&cfg, &tmp.path().join("b")).unwrap();
        assert_eq!(a.files, b.files);
        for rel in &a.files {
            let (x, y) = (
                fs::read(a.out_dir.join(rel)).unwrap(),
                fs::read(b.out_dir.join(rel)).unwrap(),
            );
            assert!(x == y, "{} differs between identical runs", rel.display());
        }
        let c = generate(&SynthConfig { seed: 1, ..cfg }, &tmp.path().join("c")).unwrap();
        for rel in [
            "images/train.npy",
            "brain/test.rh.npy",
            "features/random/rf1.npy",
            "voxels.csv",
        ] {
            assert_ne!(
                fs::read(a.out_dir.join(rel)).unwrap(),
                fs::read(c.out_dir.join(rel)).unwrap(),
                "{rel}"
            );
        }
    }

    #[test]
    fn ncsnr_matches_hand_computed_cases() {
        // Image 0: repeats 0.5, -0.5 → variance (ddof 1) 0.5; image 1: 1, 1 → 0.
        // Noise variance 0.25: sd_noise 0.5, sd_signal √0.75, ncsnr √3
        // (ddof 0 would give √7).
        let got = ncsnr_from_repeats(&[0.5, -0.5, 1.0, 1.0], 2, 2);
        assert!((got - 3f64.sqrt()).abs() < 1e-12, "{got}");
        // Three repeats 0, 1, 2 have variance 1: all noise.
        assert_eq!(ncsnr_from_repeats(&[0.0, 1.0, 2.0], 1, 3), 0.0);
        // Noise variance above 1 clips the signal at zero rather than going NaN.
        assert_eq!(ncsnr_from_repeats(&[2.0, -2.0], 1, 2), 0.0);
    }

    #[test]
    fn estimated_ncsnr_tracks_true_snr() {
        let tmp = tempfile::tempdir().unwrap();
        let report = generate(&SynthConfig::default(), &tmp.path().join("s")).unwrap();
        let (est, truth): (Vec<f64>, Vec<f64>) = report
            .ncsnr
            .iter()
            .zip(&report.true_ncsnr)
            .filter(|&(_, &t)| t > 0.0)
            .map(|(&e, &t)| (e, t))
            .unzip();
        assert!(est.len() > 400);
        let spearman = pearson(&ranks(&est), &ranks(&truth));
        let r = pearson(&est, &truth);
        println!(
            "signal voxels {}: spearman {spearman:.3}, pearson {r:.3}",
            est.len()
        );
        assert!(
            spearman > 0.8 && r > 0.8,
            "spearman {spearman}, pearson {r}"
        );
        let noise: Vec<f64> = report
            .ncsnr
            .iter()
            .zip(&report.true_ncsnr)
            .filter(|&(_, &t)| t == 0.0)
            .map(|(&e, _)| e)
            .collect();
        // Sampling error alone lifts a pure-noise voxel's ncsnr to ~0.1–0.2.
        let worst = noise.iter().copied().fold(0.0, f64::max);
        println!("pure-noise voxels {}: max ncsnr {worst:.3}", noise.len());
        assert!(worst < 0.3, "pure-noise voxel with ncsnr {worst}");
    }

    #[test]
    fn bad_config_and_existing_dir_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = [
            SynthConfig {
                n_val: 0,
                ..Default::default()
            },
            SynthConfig {
                repeats: 1,
                ..Default::default()
            },
            SynthConfig {
                image_size: 15,
                ..Default::default()
            },
            SynthConfig {
                voxels_rh: 0,
                ..Default::default()
            },
        ];
        for (cfg, word) in bad
            .iter()
            .zip(["n_val", "repeats", "image_size", "voxels_rh"])
        {
            let err = generate(cfg, &tmp.path().join("x")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(word), "{err}");
        }
        assert!(!tmp.path().join("x").exists());

        // The smallest valid subject, also checking odd sizes pool cleanly.
        let tiny = SynthConfig {
            n_train: 1,
            n_val: 1,
            n_test: 1,
            image_size: 17,
            repeats: 2,
            voxels_lh: 1,
            voxels_rh: 1,
            ..Default::default()
        };
        let out = tmp.path().join("tiny");
        generate(&tiny, &out).unwrap();
        let err = generate(&tiny, &out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string()
                .contains("delete it or pass a different path"),
            "{err}"
        );
    }
}
