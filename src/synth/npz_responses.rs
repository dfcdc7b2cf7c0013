//! Deterministic synthetic mouse V1 responses to gratings in the layout of
//! Stringer et al.'s `W3D4_stringer_oribinned1.npz` (seed 004), read through
//! [`crate::npz`]: the real file cannot ship with runner.
//!
//! ```text
//! <out>/W3D4_stringer_oribinned1.npz   (np.savez layout, stored)
//!     resp     float32 (360, N)  stimuli × neurons, each neuron z-scored over stimuli
//!     stimuli  float64 (360,)    grating direction in degrees: 0.5, 1.5, …, 359.5
//!     plane    int64   (N,)      imaging plane of each neuron, 0..3 (a label array)
//! ```
//!
//! Each neuron has von Mises orientation tuning (period 180°) with a small
//! direction bias,
//! `r(θ) = b + A · exp(κ (cos 2(θ − θ_pref) − 1)) · (1 + δ cos(θ − θ_pref)) + ε`,
//! with θ_pref ~ U(0°, 360°), κ ~ U(0.5, 4), A ~ LogNormal(0, 0.5),
//! δ ~ U(0, 0.3) (so the peak at θ_pref is up to 30 % above the one at
//! θ_pref + 180°), b ~ U(0, 0.5) and ε Gaussian with a per-neuron standard
//! deviation ~ U(0.1, 0.6). [`PURE_NOISE_PERCENT`] % of the neurons (at least
//! one) have A = 0: pure noise. Then every neuron is z-scored over the 360
//! stimuli (mean 0, population standard deviation 1), as the real file is.
//! Everything follows from the seed (Pcg64).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal, StandardNormal};
use rand_pcg::Pcg64;

use crate::npz::NpzArray;

pub const FILE: &str = "W3D4_stringer_oribinned1.npz";
/// Stimuli: one direction bin per degree, as the real file.
pub const N_STIMULI: usize = 360;
/// Default neurons (the real file has about 20,000).
pub const N_NEURONS: usize = 1000;
/// Imaging planes, labelled 0..PLANES.
pub const PLANES: i64 = 4;
/// Neurons without tuning, in percent.
pub const PURE_NOISE_PERCENT: usize = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct NpzResponsesSynthConfig {
    pub seed: u64,
    pub n_neurons: usize,
}

impl Default for NpzResponsesSynthConfig {
    fn default() -> Self {
        NpzResponsesSynthConfig {
            seed: 0,
            n_neurons: N_NEURONS,
        }
    }
}

/// One neuron's generating parameters (the truth the tests recover).
#[derive(Debug, Clone, PartialEq)]
pub struct Neuron {
    /// Preferred direction in degrees, [0, 360).
    pub pref_deg: f64,
    pub kappa: f64,
    /// Tuning amplitude before z-scoring (0 for pure-noise neurons).
    pub amplitude: f64,
    pub direction_bias: f64,
    pub baseline: f64,
    pub noise_sd: f64,
    pub plane: i64,
}

/// What was written, and the truth behind it.
#[derive(Debug, Clone)]
pub struct NpzResponsesSynthReport {
    pub path: PathBuf,
    pub neurons: Vec<Neuron>,
    /// Indices of the pure-noise neurons, ascending.
    pub pure_noise: Vec<usize>,
}

/// The stimulus directions, degrees: 0.5, 1.5, …, 359.5.
pub fn stimuli() -> Vec<f64> {
    (0..N_STIMULI).map(|i| i as f64 + 0.5).collect()
}

/// The noiseless tuning curve of a neuron (before z-scoring).
pub fn tuning(n: &Neuron, theta_deg: f64) -> f64 {
    let d = (theta_deg - n.pref_deg).to_radians();
    n.baseline
        + n.amplitude
            * (n.kappa * ((2.0 * d).cos() - 1.0)).exp()
            * (1.0 + n.direction_bias * d.cos())
}

/// The z-scored responses (stimuli × neurons, row-major) and the truth,
/// without writing anything.
pub fn simulate(cfg: &NpzResponsesSynthConfig) -> io::Result<(Vec<f32>, NpzResponsesSynthReport)> {
    let n = cfg.n_neurons;
    if n == 0 {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "0 neurons: at least 1 is needed".to_string(),
        ));
    }
    let mut rng = Pcg64::seed_from_u64(cfg.seed ^ 0x5717_9e20);
    let amp = LogNormal::new(0.0, 0.5).expect("valid log-normal");
    let mut neurons: Vec<Neuron> = (0..n)
        .map(|_| Neuron {
            pref_deg: rng.random_range(0.0..360.0),
            kappa: rng.random_range(0.5..4.0),
            amplitude: amp.sample(&mut rng),
            direction_bias: rng.random_range(0.0..0.3),
            baseline: rng.random_range(0.0..0.5),
            noise_sd: rng.random_range(0.1..0.6),
            plane: rng.random_range(0..PLANES),
        })
        .collect();
    // The pure-noise neurons: a partial Fisher–Yates draw.
    let k = (n * PURE_NOISE_PERCENT).div_ceil(100).max(1).min(n);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = rng.random_range(i..n);
        idx.swap(i, j);
    }
    let mut pure_noise = idx[..k].to_vec();
    pure_noise.sort_unstable();
    for &j in &pure_noise {
        neurons[j].amplitude = 0.0;
    }
    let theta = stimuli();
    let mut resp = vec![0f32; N_STIMULI * n];
    let mut col = vec![0f64; N_STIMULI];
    for (j, neuron) in neurons.iter().enumerate() {
        for (c, &t) in col.iter_mut().zip(&theta) {
            let e: f64 = rng.sample(StandardNormal);
            *c = tuning(neuron, t) + neuron.noise_sd * e;
        }
        let mean = col.iter().sum::<f64>() / N_STIMULI as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / N_STIMULI as f64;
        let sd = var.sqrt();
        for (s, v) in col.iter().enumerate() {
            resp[s * n + j] = ((v - mean) / sd) as f32;
        }
    }
    Ok((
        resp,
        NpzResponsesSynthReport {
            path: PathBuf::new(),
            neurons,
            pure_noise,
        },
    ))
}

/// Writes `<out>/W3D4_stringer_oribinned1.npz`.
pub fn generate(cfg: &NpzResponsesSynthConfig, out: &Path) -> io::Result<NpzResponsesSynthReport> {
    let (resp, mut report) = simulate(cfg)?;
    std::fs::create_dir_all(out)?;
    let path = out.join(FILE);
    crate::npz::write(
        &path,
        &[
            (
                "resp",
                NpzArray::F32 {
                    shape: vec![N_STIMULI, cfg.n_neurons],
                    data: resp,
                },
            ),
            (
                "stimuli",
                NpzArray::F64 {
                    shape: vec![N_STIMULI],
                    data: stimuli(),
                },
            ),
            (
                "plane",
                NpzArray::I64 {
                    shape: vec![cfg.n_neurons],
                    data: report.neurons.iter().map(|n| n.plane).collect(),
                },
            ),
        ],
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    report.path = path;
    Ok(report)
}

/// Orientation distance in degrees, in [0, 90].
pub fn orientation_distance(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(180.0);
    d.min(180.0 - d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npz::Npz;

    /// A circular boxcar of ±w bins.
    fn smooth(y: &[f64], w: usize) -> Vec<f64> {
        let n = y.len();
        (0..n)
            .map(|i| (0..=2 * w).map(|k| y[(i + n + k - w) % n]).sum::<f64>() / (2 * w + 1) as f64)
            .collect()
    }

    /// |mean z(θ) e^{2iθ}|: 0 for no orientation tuning, 1/√2 for a pure
    /// cos 2θ curve of unit variance.
    fn orientation_strength(y: &[f64], theta: &[f64]) -> f64 {
        let (c, s) = y.iter().zip(theta).fold((0.0, 0.0), |(c, s), (v, t)| {
            let a = 2.0 * t.to_radians();
            (c + v * a.cos(), s + v * a.sin())
        });
        (c * c + s * s).sqrt() / y.len() as f64
    }

    #[test]
    fn the_file_has_the_real_files_keys_shapes_and_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = NpzResponsesSynthConfig {
            seed: 3,
            n_neurons: 200,
        };
        let report = generate(&cfg, dir.path()).unwrap();
        assert_eq!(report.path, dir.path().join(FILE));
        let z = Npz::open(&report.path).unwrap();
        assert_eq!(z.keys(), ["resp", "stimuli", "plane"]);
        assert_eq!(z.shape("resp").unwrap(), [360, 200]);
        assert_eq!(z.dtype("resp").unwrap(), "<f4");
        assert_eq!(z.dtype("stimuli").unwrap(), "<f8");
        assert_eq!(z.dtype("plane").unwrap(), "<i8");
        let stim = z.read_f64("stimuli").unwrap();
        assert_eq!(stim.shape, [360]);
        assert_eq!((stim.data[0], stim.data[359]), (0.5, 359.5));
        let planes = z.read_labels("plane").unwrap();
        assert_eq!(planes.len(), 200);
        for p in ["0", "1", "2", "3"] {
            assert!(planes.iter().any(|q| q == p), "no neuron in plane {p}");
        }
        assert_eq!(report.pure_noise.len(), 2);
        // z-scored over stimuli: every neuron has mean 0 and sd 1.
        let resp = z.read_f64("resp").unwrap();
        for j in 0..200 {
            let col: Vec<f64> = (0..360).map(|s| resp.data[s * 200 + j]).collect();
            let m = col.iter().sum::<f64>() / 360.0;
            let sd = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 360.0).sqrt();
            assert!(
                m.abs() < 1e-5 && (sd - 1.0).abs() < 1e-5,
                "neuron {j}: {m} {sd}"
            );
        }
        // Deterministic from the seed; another seed differs.
        let again = simulate(&cfg).unwrap().0;
        let as32: Vec<f32> = resp.data.iter().map(|&v| v as f32).collect();
        assert_eq!(again, as32);
        let other = simulate(&NpzResponsesSynthConfig { seed: 4, ..cfg })
            .unwrap()
            .0;
        assert_ne!(other, as32);
    }

    #[test]
    fn preferred_orientations_are_recoverable_and_noise_neurons_are_untuned() {
        let cfg = NpzResponsesSynthConfig::default();
        let (resp, report) = simulate(&cfg).unwrap();
        let n = cfg.n_neurons;
        let theta = stimuli();
        let (mut tuned, mut near, mut dir_right) = (0, 0, 0);
        let mut strengths = Vec::new();
        for (j, neuron) in report.neurons.iter().enumerate() {
            let y: Vec<f64> = (0..N_STIMULI).map(|s| resp[s * n + j] as f64).collect();
            let strength = orientation_strength(&y, &theta);
            if neuron.amplitude == 0.0 {
                assert!(
                    strength < 0.2,
                    "pure-noise neuron {j} looks tuned: {strength}"
                );
                continue;
            }
            strengths.push(strength);
            // Well tuned: signal well above noise and not too broad.
            if neuron.amplitude / neuron.noise_sd < 3.0 || neuron.kappa < 1.0 {
                continue;
            }
            tuned += 1;
            let s = smooth(&y, 5);
            let best = (0..N_STIMULI)
                .max_by(|&a, &b| s[a].total_cmp(&s[b]))
                .unwrap();
            if orientation_distance(theta[best], neuron.pref_deg) <= 10.0 {
                near += 1;
            }
            // The larger of the two orientation peaks is the preferred direction.
            let at = |deg: f64| {
                let i = (deg.rem_euclid(360.0)).floor() as usize;
                s[i]
            };
            if neuron.direction_bias > 0.15 && at(neuron.pref_deg) > at(neuron.pref_deg + 180.0) {
                dir_right += 1;
            }
        }
        assert!(tuned > 300, "only {tuned} well-tuned neurons");
        assert!(
            near as f64 >= 0.95 * tuned as f64,
            "{near} of {tuned} well-tuned neurons peak within 10° of their preferred orientation"
        );
        let biased = report
            .neurons
            .iter()
            .filter(|u| {
                u.amplitude > 0.0
                    && u.amplitude / u.noise_sd >= 3.0
                    && u.kappa >= 1.0
                    && u.direction_bias > 0.15
            })
            .count();
        assert!(
            dir_right as f64 >= 0.8 * biased as f64,
            "{dir_right} of {biased} direction-biased neurons prefer their direction"
        );
        strengths.sort_by(f64::total_cmp);
        let median = strengths[strengths.len() / 2];
        assert!(median > 0.3, "median orientation strength {median}");
    }
}
