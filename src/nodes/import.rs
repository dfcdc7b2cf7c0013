//! `import`: a precomputed feature matrix from a file runner did not write
//! (an HDF5 dataset, such as Lab08's `S1_Conv1_pca100.hdf5` `features`, or
//! an `.npy`), as the subject's stimuli: a row per image of the file, the
//! rows without responses dropped as they are from the brain data, every
//! value checked finite. Written as float64 so that nothing is lost of a
//! float64 file (the lab's solver runs in float64).

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::node::{Ctx, NodeKind};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ImportTask {
    /// The file's bytes are the node's input `features`; its place is not.
    #[serde(skip)]
    pub path: PathBuf,
    /// HDF5: the datasets, stacked by rows; empty for `.npy`.
    pub datasets: Vec<String>,
    /// Drop the rows the subject dropped (upstream `subject`'s `images.json`).
    pub drop_rows: bool,
    /// Sizes for the memory estimate: rows, columns.
    #[serde(skip)]
    pub sizes: (usize, usize),
}

impl NodeKind for ImportTask {
    fn kind(&self) -> &'static str {
        "import"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        (self.sizes.0 * self.sizes.1 * 16) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let a = if self.datasets.is_empty() {
            crate::npy::read_f64(&self.path).at(&self.path)?
        } else {
            let mut parts = Vec::new();
            for d in &self.datasets {
                parts.push(crate::hdf5::read_f64(&self.path, d)?);
            }
            let p = parts[0].rows_cols().1;
            if let Some((d, a)) = self
                .datasets
                .iter()
                .zip(&parts)
                .find(|(_, a)| a.rows_cols().1 != p)
            {
                return Err(Error::data(
                    &self.path,
                    format!(
                        "dataset `{d}` has {} features per image but `{}` has {p}",
                        a.rows_cols().1,
                        self.datasets[0]
                    ),
                ));
            }
            let n: usize = parts.iter().map(|a| a.rows_cols().0).sum();
            let mut data = Vec::with_capacity(n * p);
            for a in parts {
                data.extend(a.data);
            }
            crate::npy::Array::new(vec![n, p], data)
        };
        let (n, p) = a.rows_cols();
        let rows: Vec<usize> = if self.drop_rows {
            let images: super::subject::Lab08Images =
                ctx.input("subject")?.read_json("images.json")?;
            if images.n_rows != n {
                return Err(Error::data(
                    &self.path,
                    format!(
                        "has {n} rows but the subject's image table has {}",
                        images.n_rows
                    ),
                )
                .with_help(
                    "feature rows are the images of the subject's image table, in its order",
                ));
            }
            images.kept
        } else {
            (0..n).collect()
        };
        let mut out = Vec::with_capacity(rows.len() * p);
        for &i in &rows {
            let row = &a.data[i * p..(i + 1) * p];
            if let Some(j) = row.iter().position(|x| !x.is_finite()) {
                return Err(Error::data(
                    &self.path,
                    format!("image row {i}, column {j} is {}", row[j]),
                )
                .with_help("features must be finite for every image with responses"));
            }
            out.extend_from_slice(row);
        }
        ctx.out.write_npy("features.npy", &[rows.len(), p], &out)
    }
}
