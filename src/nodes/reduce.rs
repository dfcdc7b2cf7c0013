//! `reduce`: a feature matrix projected onto its principal components, fitted
//! on the split's fit stimuli only (no peeking at scored stimuli) and applied
//! to every stimulus. `incremental_pca` is the Algonauts devkit's
//! `IncrementalPCA`: `partial_fit` over the fit stimuli in batches, in the
//! split's order, so that memory holds one batch of features, never the
//! matrix. `pca` fits all fit stimuli at once. Component signs follow
//! scikit-learn's `svd_flip`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Ctx, FeatureRef, NodeKind};
use crate::numerics::pca::{IncrementalPca, Pca};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Reduce {
    IncrementalPca {
        n_components: usize,
        batch_size: usize,
    },
    Pca {
        n_components: usize,
    },
}

impl Reduce {
    pub fn n_components(&self) -> usize {
        match self {
            Reduce::IncrementalPca { n_components, .. } | Reduce::Pca { n_components } => {
                *n_components
            }
        }
    }
    /// Part of the node id.
    pub fn label(&self) -> String {
        match self {
            Reduce::IncrementalPca {
                n_components,
                batch_size,
            } => format!("ipca{n_components}-b{batch_size}"),
            Reduce::Pca { n_components } => format!("pca{n_components}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReduceTask {
    pub reduce: Reduce,
    pub features: FeatureRef,
    #[serde(skip)]
    pub n_stimuli: usize,
    #[serde(skip)]
    pub width: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReduceOut {
    pub n_components: usize,
    pub n_features: usize,
    pub n_fit: usize,
    pub explained_variance_ratio: Vec<f64>,
}

impl NodeKind for ReduceTask {
    fn kind(&self) -> &'static str {
        "reduce"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let k = self.reduce.n_components() as u64;
        let (p, n) = (self.width, self.n_stimuli as u64);
        match self.reduce {
            // A batch, the stacked matrix and the components, in f64.
            Reduce::IncrementalPca { batch_size, .. } => {
                8 * p * (3 * (k + batch_size as u64 + 1) + 2 * k) + 4 * n * k
            }
            Reduce::Pca { .. } => 12 * n * p + 8 * p * k,
        }
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let split = super::split::read(ctx.input("split")?)?;
        let path = self.features.file(ctx)?;
        let mut rows = crate::npy::RowReader::open(&path)
            .map_err(|e| Error::data(&path, format!("reading features: {e}")))?;
        let read = |rows: &mut crate::npy::RowReader, idx: &[usize]| {
            rows.read_rows(idx)
                .map_err(|e| Error::data(&path, format!("reading features: {e}")))
        };
        let p = rows.cols;
        let k = self.reduce.n_components();
        let fit = &split.fit;
        if k > fit.len().min(p) {
            return Err(ctx
                .fail(format!(
                    "n_components = {k} but the fit set has {} stimuli × {p} features; PCA finds at most min(n, p) components",
                    fit.len()
                ))
                .with_help("lower n_components"));
        }
        enum Fitted {
            I(IncrementalPca),
            F(Pca),
        }
        let fitted = match &self.reduce {
            Reduce::IncrementalPca { batch_size, .. } => {
                let mut pca = IncrementalPca::new(k);
                let batches = fit.chunks(*batch_size);
                let n_batches = batches.len();
                for (b, chunk) in batches.enumerate() {
                    ctx.progress
                        .set_message(format!("partial_fit {}/{n_batches}", b + 1));
                    let x = read(&mut rows, chunk)?;
                    check_finite(&x, p, chunk, &path)?;
                    pca.partial_fit(&x, chunk.len(), p)
                        .map_err(|e| ctx.fail(format!("incremental PCA, batch {}: {e}", b + 1)))?;
                }
                Fitted::I(pca)
            }
            Reduce::Pca { .. } => {
                ctx.progress
                    .set_message(format!("PCA of {}×{p}", fit.len()));
                let x = read(&mut rows, fit)?;
                check_finite(&x, p, fit, &path)?;
                Fitted::F(Pca::fit(&x, fit.len(), p, k).map_err(|e| ctx.fail(format!("PCA: {e}")))?)
            }
        };
        ctx.progress.set_message("transforming");
        let mut out = Vec::with_capacity(self.n_stimuli * k);
        let all: Vec<usize> = (0..rows.rows).collect();
        for chunk in all.chunks(256) {
            let x = read(&mut rows, chunk)?;
            out.extend(match &fitted {
                Fitted::I(p) => p.transform(&x, chunk.len()),
                Fitted::F(p) => p.transform(&x, chunk.len()),
            });
        }
        ctx.out.write_npy("features.npy", &[rows.rows, k], &out)?;
        let ratio = match &fitted {
            Fitted::I(p) => p
                .fitted()
                .map(|f| f.explained_variance_ratio.clone())
                .unwrap_or_default(),
            Fitted::F(p) => p.explained_variance_ratio.clone(),
        };
        ctx.out.write_json(
            "reduce.json",
            &ReduceOut {
                n_components: k,
                n_features: p,
                n_fit: fit.len(),
                explained_variance_ratio: ratio,
            },
        )
    }
}

fn check_finite(x: &[f32], p: usize, rows: &[usize], path: &std::path::Path) -> Result<()> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::data(
            path,
            format!(
                "non-finite feature at row {}, column {}",
                rows[i / p],
                i % p
            ),
        )),
    }
}
