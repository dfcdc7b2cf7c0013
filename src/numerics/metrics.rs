//! Per-voxel scores: R² exactly as scikit-learn's `r2_score(..., multioutput="raw_values")`,
//! Pearson r as `scipy.stats.pearsonr`, and the HW2 noise ceiling.

/// R² of one voxel. scikit-learn's `force_finite=True` rules: a constant
/// target scores 1.0 when predicted perfectly, 0.0 otherwise.
pub fn r2(y_true: &[f64], y_pred: &[f64]) -> f64 {
    let n = y_true.len() as f64;
    let mean = y_true.iter().sum::<f64>() / n;
    let ss_res: f64 = y_true
        .iter()
        .zip(y_pred)
        .map(|(t, p)| (t - p) * (t - p))
        .sum();
    let ss_tot: f64 = y_true.iter().map(|t| (t - mean) * (t - mean)).sum();
    if ss_tot != 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Pearson correlation of one voxel; NaN when either side is constant (as scipy).
pub fn pearson_r(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// The fraction of variance a perfect model could explain in the
/// repeat-averaged response: NC = ncsnr² / (ncsnr² + 1/k), k = repeats averaged.
pub fn noise_ceiling(ncsnr: f64, repeats: u32) -> f64 {
    let s2 = ncsnr * ncsnr;
    s2 / (s2 + 1.0 / repeats as f64)
}

/// Aggregates over voxels, ignoring NaN (a constant voxel has no Pearson r).
pub fn mean(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// `np.std` (ddof 0) of the non-NaN values, numpy's two-pass order: the
/// mean, then the mean of squared deviations.
pub fn std(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_is_numpys_population_std() {
        // np.std([1, 2, 3, 4]) = sqrt(1.25); NaN is skipped.
        assert!((std(&[1.0, 2.0, f64::NAN, 3.0, 4.0]) - 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(std(&[5.0]), 0.0);
        assert!(std(&[f64::NAN]).is_nan());
    }

    #[test]
    fn noise_ceiling_matches_hw2_formula() {
        // ncsnr = 1, k = 3: 1 / (1 + 1/3) = 0.75
        assert!((noise_ceiling(1.0, 3) - 0.75).abs() < 1e-15);
        assert_eq!(noise_ceiling(0.0, 3), 0.0);
    }

    #[test]
    fn median_and_mean_skip_nan() {
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(mean(&[1.0, f64::NAN, 3.0]), 2.0);
    }

    #[test]
    fn pearson_of_constant_is_nan() {
        assert!(pearson_r(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
        // Perfectly linear data has r = 1 whatever the scale.
        assert!((pearson_r(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn r2_force_finite_rules() {
        assert_eq!(r2(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
        assert_eq!(r2(&[2.0, 2.0], &[2.0, 3.0]), 0.0);
        // mean 2, ss_tot 2, ss_res 0.5
        assert!((r2(&[1.0, 2.0, 3.0], &[1.5, 2.0, 2.5]) - 0.75).abs() < 1e-15);
    }
}
