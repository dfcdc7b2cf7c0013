//! `decompose`: one layer's features, decomposed once for every ROI and α
//! of a ridge analysis (see `ridge::decompose`). Rows of the feature matrix
//! follow the subject's stimulus order; the `split` input says which rows fit
//! and which are scored.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Ctx, NodeKind};
use crate::numerics::ridge;

pub const VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct DecomposeTask {
    pub features: crate::node::FeatureRef,
    pub fit_intercept: bool,
    /// Also project the fit rows themselves (after the scored and validation
    /// rows), so that the fit predicts its own training stimuli exactly as
    /// `RidgeCV(...).fit(X, Y).predict(X)`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predict_train: bool,
    /// Sizes for the memory estimate: fit and score stimuli, features.
    #[serde(skip)]
    pub sizes: (u64, u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecomposeOut {
    pub mode: ridge::Mode,
    pub fit_intercept: bool,
    pub intercept_dim: Option<usize>,
    pub n_train: usize,
    pub n_test: usize,
    pub n_features: usize,
}

impl NodeKind for DecomposeTask {
    fn kind(&self) -> &'static str {
        "decompose"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // f64 copies of both feature blocks, the Gram matrix and its
        // eigenvectors, the cross products; plus the f32 file.
        let (nt, ne, p) = self.sizes;
        // Predicting the fit rows too: their copy and their cross products.
        let ne = if self.predict_train { ne + nt } else { ne };
        8 * (nt * p + ne * p + 4 * nt * nt + ne * nt) + 4 * (nt + ne) * p
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.progress.set_message("reading features");
        let x = self.features.read(ctx)?;
        let file = &self.features.path;
        let (n_rows, p) = x.rows_cols();
        if p == 0 || x.shape.len() < 2 {
            return Err(Error::data(
                file,
                format!(
                    "shape {:?} has no feature columns; expected images × features",
                    x.shape
                ),
            ));
        }
        let split = crate::nodes::split::read(ctx.input("split")?)?;
        // Rows predicted: the scored ones, then any validation set.
        let train = split.fit;
        let mut test: Vec<usize> = split.score.into_iter().chain(split.validation).collect();
        if self.predict_train {
            test.extend(&train);
        }
        let needed = train.iter().chain(&test).max().map_or(0, |m| m + 1);
        if n_rows < needed {
            return Err(Error::data(
                file,
                format!("has {n_rows} rows but the subject's splits need {needed}"),
            ));
        }
        let gather = |idx: &[usize]| -> Result<Vec<f64>> {
            let mut out = Vec::with_capacity(idx.len() * p);
            for &i in idx {
                let row = &x.data[i * p..(i + 1) * p];
                if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                    return Err(Error::data(
                        file,
                        format!("non-finite feature {} at row {i}, column {j}", row[j]),
                    )
                    .with_help(
                        "features must be finite; check the extraction that wrote this file",
                    ));
                }
                out.extend(row.iter().map(|&v| v as f64));
            }
            Ok(out)
        };
        let (xtr, xte) = (gather(&train)?, gather(&test)?);
        drop(x);
        ctx.progress
            .set_message(format!("decomposing {}×{p}", train.len()));
        let dec = ridge::decompose(xtr, xte, train.len(), test.len(), p, self.fit_intercept)
            .map_err(|e| ctx.fail(e))?;
        let r = dec.basis.ncols();
        ctx.out.write_npy(
            "basis.npy",
            &[train.len(), r],
            &ridge::to_row_major(dec.basis.as_ref()),
        )?;
        ctx.out.write_npy("eig.npy", &[r], &dec.eig)?;
        ctx.out.write_npy(
            "cross.npy",
            &[test.len(), train.len()],
            &ridge::to_row_major(dec.cross.as_ref()),
        )?;
        ctx.out.write_json(
            "decompose.json",
            &DecomposeOut {
                mode: dec.mode,
                fit_intercept: dec.fit_intercept,
                intercept_dim: dec.intercept_dim,
                n_train: train.len(),
                n_test: test.len(),
                n_features: p,
            },
        )
    }
}

/// Rebuilds the decomposition from a cached entry.
pub fn load(entry: &crate::cache::Entry) -> Result<ridge::Decomposition> {
    let meta: DecomposeOut = entry.read_json("decompose.json")?;
    let basis = entry.read_f64("basis.npy")?;
    let eig = entry.read_f64("eig.npy")?;
    let cross = entry.read_f64("cross.npy")?;
    let (bn, br) = basis.rows_cols();
    let (cn, cr) = cross.rows_cols();
    Ok(ridge::Decomposition {
        mode: meta.mode,
        fit_intercept: meta.fit_intercept,
        basis: ridge::from_row_major(&basis.data, bn, br),
        eig: eig.data,
        intercept_dim: meta.intercept_dim,
        cross: ridge::from_row_major(&cross.data, cn, cr),
    })
}
