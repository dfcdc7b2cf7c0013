//! `extract` of a sequential net on gratings (seed 004): for every stimulus
//! of an `npz_responses` subject, the seed's `grating(angle)` at the
//! stimulus's orientation (the subject node's `orientations.npy`), run
//! through the net; a feature matrix per tap (`<tap>.npy`, stimuli ×
//! flattened units, float32) as the image extract node writes.

use std::path::PathBuf;

use burn::prelude::*;
use serde::Serialize;

use super::extract::ExtractOut;
use crate::error::Result;
use crate::gratings::{GratingSpec, grating};
use crate::model::sequential::{SequentialConfig, load_weights};
use crate::node::{Ctx, NodeKind};
use crate::vocab::DeviceChoice;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct GratingExtractTask {
    pub arch: String,
    pub model: SequentialConfig,
    /// Random-init seed; None when weights come from a checkpoint or a train node.
    pub seed: Option<u64>,
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    pub grating: GratingSpec,
    pub taps: Vec<String>,
    #[serde(skip)]
    pub batch_size: usize,
    #[serde(skip)]
    pub device: DeviceChoice,
}

impl NodeKind for GratingExtractTask {
    fn kind(&self) -> &'static str {
        "extract"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        let per_image: usize = self
            .model
            .shapes()
            .map(|s| s.iter().map(|x| x.iter().product::<usize>()).sum())
            .unwrap_or(0);
        (8 * per_image * self.batch_size.max(1) + (64 << 20)) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let theta = ctx.input("subject")?.read_f64("orientations.npy")?.data;
        let (h, w) = self.grating.size();
        if self.model.input != [1, h, w] {
            return Err(ctx.fail(format!(
                "gratings are 1 × {h} × {w} but the net takes {:?}",
                self.model.input
            )));
        }
        let (device, backend) = crate::model::device::device_for(self.device)?;
        if let Some(seed) = self.seed {
            device.seed(seed);
        }
        let mut net = self.model.init(&device);
        if let Some(path) = &self.checkpoint {
            load_weights(&mut net, &self.model, path)?;
        }
        if let Ok(trained) = ctx.input("weights") {
            load_weights(
                &mut net,
                &self.model,
                &super::train::checkpoint_of(trained)?,
            )?;
        }
        let taps: Vec<&str> = self.taps.iter().map(String::as_str).collect();
        let widths: Vec<usize> = taps
            .iter()
            .map(|t| {
                self.model
                    .tap_width(t)
                    .ok_or_else(|| ctx.fail(format!("`{t}` is not a layer of the net")))
            })
            .collect::<Result<_>>()?;
        let n = theta.len();
        let mut cols: Vec<Vec<f32>> = widths.iter().map(|&d| Vec::with_capacity(n * d)).collect();
        ctx.progress.set_length(n as u64);
        for chunk in theta.chunks(self.batch_size.max(1)) {
            let pixels: Vec<f32> = chunk
                .iter()
                .flat_map(|&a| grating(a, &self.grating))
                .collect();
            let x =
                Tensor::<4>::from_data(TensorData::new(pixels, [chunk.len(), 1, h, w]), &device);
            for (out, t) in cols.iter_mut().zip(net.forward_taps(x, &taps)) {
                out.extend(
                    t.into_data()
                        .try_to_vec::<f32>()
                        .map_err(|e| ctx.fail(format!("{e:?}")))?,
                );
            }
            ctx.progress.inc(chunk.len() as u64);
        }
        for ((tap, d), data) in self.taps.iter().zip(&widths).zip(&cols) {
            ctx.out.write_npy(&format!("{tap}.npy"), &[n, *d], data)?;
        }
        ctx.out.write_json(
            "extract.json",
            &ExtractOut {
                n_images: n,
                backend: backend.to_string(),
                widths: self.taps.iter().cloned().zip(widths).collect(),
            },
        )
    }
}
