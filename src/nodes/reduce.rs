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
    /// The Kay V4 project's feature subsample: `n_columns` columns drawn as
    /// `rng.permutation(p)[:n_columns]` (kept in that order) from an
    /// `np.random.RandomState(seed)` that first drew `after_splits`
    /// permutations of the `pool` training stimuli (the project draws its
    /// five splits from the same state first). Fitted on nothing: every
    /// split shares one.
    Subsample {
        n_columns: usize,
        seed: u32,
        after_splits: usize,
        /// Length of each earlier permutation (the subject's training
        /// stimuli); set per subject by the plan.
        pool: usize,
    },
}

impl Reduce {
    pub fn n_components(&self) -> usize {
        match self {
            Reduce::IncrementalPca { n_components, .. } | Reduce::Pca { n_components } => {
                *n_components
            }
            Reduce::Subsample { n_columns, .. } => *n_columns,
        }
    }
    /// Whether it is fitted on the split's fit stimuli (PCA) or not.
    pub fn needs_split(&self) -> bool {
        !matches!(self, Reduce::Subsample { .. })
    }
    /// The columns a subsample keeps, in the project's order.
    pub fn subsample_columns(&self, p: usize) -> Option<Vec<usize>> {
        let Reduce::Subsample {
            n_columns,
            seed,
            after_splits,
            pool,
        } = *self
        else {
            return None;
        };
        let mut rng = crate::numerics::numpy_random::RandomState::new(seed);
        for _ in 0..after_splits {
            rng.permutation(pool);
        }
        let mut perm = rng.permutation(p);
        perm.truncate(n_columns);
        Some(perm)
    }
    /// Part of the node id.
    pub fn label(&self) -> String {
        match self {
            Reduce::IncrementalPca {
                n_components,
                batch_size,
            } => format!("ipca{n_components}-b{batch_size}"),
            Reduce::Pca { n_components } => format!("pca{n_components}"),
            Reduce::Subsample {
                n_columns,
                seed,
                after_splits,
                ..
            } => format!("subsample{n_columns}-seed{seed}-after{after_splits}"),
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
            Reduce::Subsample { .. } => 8 * n * (p + k),
        }
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        if let Some(p) = self.subsample_width(ctx)? {
            return self.subsample(ctx, p);
        }
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
            Reduce::Subsample { .. } => unreachable!("subsamples return before the split is read"),
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

impl ReduceTask {
    /// The feature width, when this is a subsample (read from the file's header).
    fn subsample_width(&self, ctx: &Ctx) -> Result<Option<usize>> {
        if self.reduce.needs_split() {
            return Ok(None);
        }
        let path = self.features.file(ctx)?;
        let (shape, _) = crate::npy::read_header(&path)
            .map_err(|e| Error::data(&path, format!("reading features: {e}")))?;
        Ok(Some(shape.iter().skip(1).product()))
    }

    /// Keeps the project's columns, values untouched (float64 kept float64).
    fn subsample(&self, ctx: &Ctx, p: usize) -> Result<()> {
        let k = self.reduce.n_components();
        if k > p {
            return Err(ctx
                .fail(format!(
                    "subsample keeps n_columns = {k} of {p} feature columns; there are only {p}"
                ))
                .with_help("lower n_columns"));
        }
        let cols = self.reduce.subsample_columns(p).expect("a subsample");
        ctx.progress.set_message(format!("{k} of {p} columns"));
        let x = self.features.read_f64_as(ctx, "features")?;
        let n = x.rows_cols().0;
        let mut out = Vec::with_capacity(n * k);
        for i in 0..n {
            let row = &x.data[i * p..(i + 1) * p];
            out.extend(cols.iter().map(|&j| row[j]));
        }
        ctx.out.write_npy("features.npy", &[n, k], &out)?;
        ctx.out.write_npy(
            "columns.npy",
            &[k],
            &cols.iter().map(|&c| c as f64).collect::<Vec<_>>(),
        )?;
        ctx.out.write_json(
            "reduce.json",
            &ReduceOut {
                n_components: k,
                n_features: p,
                n_fit: 0,
                explained_variance_ratio: vec![],
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
