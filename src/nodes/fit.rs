//! `fit`: RidgeCV for one (layer, ROI): α chosen by leave-one-out error on
//! the training set, then test predictions. Only predictions are stored —
//! the features × voxels weights are never formed.

use serde::{Deserialize, Serialize};

use super::{Ctx, as_indices};
use crate::error::Result;
use crate::ridge;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct FitTask {
    pub alpha_grid: Vec<f64>,
    pub alpha_per_voxel: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitOut {
    pub n_voxels: usize,
    /// The shared α, or the median per-voxel α.
    pub alpha: f64,
    pub alpha_per_voxel: bool,
    /// Voxels whose α is the smallest / largest of the grid.
    pub at_lower_edge: usize,
    pub at_upper_edge: usize,
}

/// The smallest and largest α: the grid need not be sorted.
fn grid_edges(grid: &[f64]) -> (f64, f64) {
    grid.iter()
        .fold((f64::INFINITY, 0f64), |(l, h), &a| (l.min(a), h.max(a)))
}

impl FitOut {
    /// A sentence for the user when the grid probably does not bracket the optimum.
    pub fn edge_warning(&self, grid: &[f64]) -> Option<String> {
        let (lo, hi) = grid_edges(grid);
        let which = |n: usize, edge: &str, a: f64| {
            (n > 0).then(|| {
                if self.alpha_per_voxel {
                    format!(
                        "{n} of {} voxels chose α = {a:e}, the {edge} edge of alpha_grid",
                        self.n_voxels
                    )
                } else {
                    format!("chosen α = {a:e} is the {edge} edge of alpha_grid")
                }
            })
        };
        let parts: Vec<String> = [
            which(self.at_lower_edge, "lower", lo),
            which(self.at_upper_edge, "upper", hi),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| format!("{}; widen the grid", parts.join("; ")))
    }
}

impl FitTask {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let dec = super::decompose::load(ctx.input("decompose")?)?;
        let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
        let y = ctx.input("subject")?.read_f32("y_train.npy")?;
        let (n, v_all) = y.rows_cols();
        if n != dec.basis.nrows() {
            return Err(ctx.fail(format!(
                "features have {} training rows but brain data has {n}",
                dec.basis.nrows()
            )));
        }
        let v = idx.len();
        let mut y_roi = Vec::with_capacity(n * v);
        for i in 0..n {
            let row = &y.data[i * v_all..(i + 1) * v_all];
            y_roi.extend(idx.iter().map(|&j| row[j] as f64));
        }
        drop(y);
        ctx.progress
            .set_message(format!("{} α × {v} voxels", self.alpha_grid.len()));
        let cv = ridge::ridge_cv(&dec, &y_roi, v, &self.alpha_grid, self.alpha_per_voxel);
        let alphas: Vec<f64> = cv.alpha_index.iter().map(|&i| self.alpha_grid[i]).collect();
        // A tiny α on (near-)singular features overflows the solve: its LOO
        // error is inf/NaN, or its predictions are so large their squares
        // overflow. Say so rather than report R² = −inf.
        let bad_voxel = (0..v).find(|&j| {
            !cv.loo_mse[(cv.alpha_index[j], j)].is_finite()
                || !(0..cv.y_pred.nrows())
                    .map(|i| cv.y_pred[(i, j)] * cv.y_pred[(i, j)])
                    .sum::<f64>()
                    .is_finite()
        });
        if let Some(j) = bad_voxel {
            return Err(ctx
                .fail(format!(
                    "ridge is numerically singular: at α = {:e} voxel {j} gets non-finite leave-one-out errors or predictions too large to score",
                    alphas[j]
                ))
                .with_help("raise the smallest α in alpha_grid (features are float32: an α below ~1e-10 × their variance is lost in rounding)"));
        }
        let bad_alpha =
            (0..self.alpha_grid.len()).find(|&a| (0..v).any(|j| !cv.loo_mse[(a, j)].is_finite()));
        if let Some(a) = bad_alpha {
            ctx.note(format!(
                "α = {:e} gives non-finite leave-one-out errors (numerically singular); it was never chosen",
                self.alpha_grid[a]
            ));
        }
        // The grid need not be sorted: edges are its smallest and largest values.
        let (lo, hi) = grid_edges(&self.alpha_grid);
        ctx.out.write_npy(
            "y_pred.npy",
            &[dec.cross.nrows(), v],
            &ridge::to_row_major(cv.y_pred.as_ref()),
        )?;
        ctx.out.write_npy("alpha.npy", &[v], &alphas)?;
        ctx.out.write_npy(
            "loo_mse.npy",
            &[self.alpha_grid.len(), v],
            &ridge::to_row_major(cv.loo_mse.as_ref()),
        )?;
        ctx.out.write_json(
            "fit.json",
            &FitOut {
                n_voxels: v,
                alpha: crate::metrics::median(&alphas),
                alpha_per_voxel: self.alpha_per_voxel,
                at_lower_edge: alphas.iter().filter(|&&a| a == lo).count(),
                at_upper_edge: alphas.iter().filter(|&&a| a == hi).count(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::FitOut;

    #[test]
    fn edge_warnings_name_the_edge() {
        let grid = [10.0, 0.1, 1.0];
        let shared = FitOut {
            n_voxels: 5,
            alpha: 10.0,
            alpha_per_voxel: false,
            at_lower_edge: 0,
            at_upper_edge: 5,
        };
        assert_eq!(
            shared.edge_warning(&grid).unwrap(),
            "chosen α = 1e1 is the upper edge of alpha_grid; widen the grid"
        );
        let per_voxel = FitOut {
            n_voxels: 5,
            alpha: 1.0,
            alpha_per_voxel: true,
            at_lower_edge: 2,
            at_upper_edge: 0,
        };
        assert_eq!(
            per_voxel.edge_warning(&grid).unwrap(),
            "2 of 5 voxels chose α = 1e-1, the lower edge of alpha_grid; widen the grid"
        );
        let inside = FitOut {
            n_voxels: 5,
            alpha: 1.0,
            alpha_per_voxel: false,
            at_lower_edge: 0,
            at_upper_edge: 0,
        };
        assert!(inside.edge_warning(&grid).is_none());
    }
}
