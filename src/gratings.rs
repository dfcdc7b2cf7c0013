//! The oriented gratings of seed 004 (the tilt-discrimination CNN): the
//! seed's `grating(angle)` and a random training set of tilted gratings.
//!
//! `grating` follows the seed's numpy code operation by operation in f64
//! (`xx, yy = meshgrid(sf * arange(0, wpix * res) / res, sf * arange(0, hpix * res) / res)`,
//! `cos(xx * cos(θ) + yy * sin(θ))`, `g[g < 0] = 0; g[g > 0] = 1`) and only
//! then stores f32, as `torch.tensor(g, dtype=torch.float32)` does; the
//! images equal the seed's bit for bit (tests/gratings.rs).
//!
//! `tilt_set` draws the orientations with a Rust generator (PCG64, below);
//! its stream is not numpy's, so the training set has the seed's
//! distribution but not its exact draws.

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

/// The seed's `grating(angle, sf, res)` parameters: `wpix, hpix = 640, 480`
/// at `res = 1.0`, scaled by `res`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GratingSpec {
    /// Spatial frequency (cycles·2π per full-resolution pixel), seed: 1/28.
    pub sf: f64,
    /// Resolution: the image is (height_px·res) × (width_px·res), seed: 0.1.
    pub res: f64,
    pub width_px: usize,
    pub height_px: usize,
}

impl Default for GratingSpec {
    fn default() -> Self {
        GratingSpec {
            sf: 1.0 / 28.0,
            res: 0.1,
            width_px: 640,
            height_px: 480,
        }
    }
}

/// Length of numpy's `arange(0, stop)`: `ceil(stop)`, none when stop ≤ 0.
fn arange_len(stop: f64) -> usize {
    if stop > 0.0 { stop.ceil() as usize } else { 0 }
}

impl GratingSpec {
    /// (height, width) of the image: the lengths of
    /// `arange(0, hpix * res)` and `arange(0, wpix * res)`; (48, 64) for the seed.
    pub fn size(&self) -> (usize, usize) {
        (
            arange_len(self.height_px as f64 * self.res),
            arange_len(self.width_px as f64 * self.res),
        )
    }
}

/// The binarised grating at `angle_deg` (angle from vertical, degrees):
/// height × width, row-major, values 0 or 1 (a pixel whose cosine is exactly
/// 0 stays 0, as the seed's two masks leave it).
pub fn grating(angle_deg: f64, spec: &GratingSpec) -> Vec<f32> {
    let (h, w) = spec.size();
    // np.deg2rad(x) = x * (π / 180), as f64::to_radians.
    let angle = angle_deg * (std::f64::consts::PI / 180.0);
    let (c, s) = (angle.cos(), angle.sin());
    let coord = |i: usize| spec.sf * i as f64 / spec.res;
    let xs: Vec<f64> = (0..w).map(coord).collect();
    let mut out = Vec::with_capacity(h * w);
    for i in 0..h {
        let yy = coord(i);
        for &xx in &xs {
            let g = (xx * c + yy * s).cos();
            out.push(if g > 0.0 { 1.0 } else { 0.0 });
        }
    }
    out
}

/// `n` random orientations and their tilt labels, as the seed's training
/// set: `ori = (rand(n) - 0.5) * 180` (degrees, uniform in [−90, 90)) and
/// `tilt = ori > 0` (1.0 = tilted right).
///
/// The uniforms come from `rand_pcg::Pcg64::seed_from_u64(seed)`, one
/// `random::<f64>()` (53-bit, [0, 1)) per orientation, in order. This is not
/// numpy's Mersenne Twister: the same seed does not give the seed's draws.
pub fn tilt_set(n: usize, seed: u64) -> (Vec<f64>, Vec<f32>) {
    let mut rng = Pcg64::seed_from_u64(seed);
    let ori: Vec<f64> = (0..n)
        .map(|_| (rng.random::<f64>() - 0.5) * 180.0)
        .collect();
    let tilt = ori
        .iter()
        .map(|&o| if o > 0.0 { 1.0 } else { 0.0 })
        .collect();
    (ori, tilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_image_is_48_by_64() {
        assert_eq!(GratingSpec::default().size(), (48, 64));
        let g = grating(0.0, &GratingSpec::default());
        assert_eq!(g.len(), 48 * 64);
        // Vertical grating (angle 0): constant down each column.
        assert!((0..64).all(|x| (0..48).all(|y| g[y * 64 + x] == g[x])));
    }

    #[test]
    fn tilt_sets_are_reproducible_and_in_range() {
        let (a, ta) = tilt_set(500, 12);
        let (b, _) = tilt_set(500, 12);
        assert_eq!(a, b);
        assert!(a.iter().all(|o| (-90.0..90.0).contains(o)));
        let right = ta.iter().filter(|&&t| t == 1.0).count();
        assert!((200..300).contains(&right), "{right}");
        assert_ne!(tilt_set(5, 13).0, a[..5]);
    }
}
