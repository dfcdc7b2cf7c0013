//! `score`: per-voxel R², R²/NC and Pearson r of one fit's test predictions.

use serde::{Deserialize, Serialize};

use super::{Ctx, as_indices};
use crate::error::Result;
use crate::metrics;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct ScoreTask {
    /// k in NC = ncsnr²/(ncsnr² + 1/k); None = the subject's repeat count.
    pub nc_repeats: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreOut {
    pub n_voxels: usize,
    pub nc_repeats: u32,
}

impl ScoreTask {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let subject = ctx.input("subject")?;
        let meta: super::subject::SubjectOut = subject.read_json("subject.json")?;
        let voxels = super::subject::read_voxels(subject)?;
        let idx = as_indices(&ctx.input("roi")?.read_f64("indices.npy")?);
        let y_test = subject.read_f64("y_test.npy")?;
        let y_pred = ctx.input("fit")?.read_f64("y_pred.npy")?;
        let (n, v_all) = y_test.rows_cols();
        let v = idx.len();
        if y_pred.shape != [n, v] {
            return Err(ctx.fail(format!(
                "predictions are {:?} but the test set is {n} images × {v} voxels",
                y_pred.shape
            )));
        }
        let k = self.nc_repeats.unwrap_or(meta.repeats as u32);
        let (mut r2, mut r2nc, mut r, mut nc) =
            (vec![0.0; v], vec![0.0; v], vec![0.0; v], vec![0.0; v]);
        let mut truth = vec![0.0; n];
        let mut pred = vec![0.0; n];
        for (c, &j) in idx.iter().enumerate() {
            for i in 0..n {
                truth[i] = y_test.data[i * v_all + j];
                pred[i] = y_pred.data[i * v + c];
            }
            r2[c] = metrics::r2(&truth, &pred);
            nc[c] = metrics::noise_ceiling(voxels.ncsnr[j], k);
            r2nc[c] = r2[c] / nc[c];
            r[c] = metrics::pearson_r(&pred, &truth);
        }
        ctx.out.write_npy("r2.npy", &[v], &r2)?;
        ctx.out.write_npy("r2_over_nc.npy", &[v], &r2nc)?;
        ctx.out.write_npy("pearson_r.npy", &[v], &r)?;
        ctx.out.write_npy("noise_ceiling.npy", &[v], &nc)?;
        ctx.out.write_json(
            "score.json",
            &ScoreOut {
                n_voxels: v,
                nc_repeats: k,
            },
        )
    }
}
