//! `train`: an AlexNet trained by runner on HW2's Barcode task. Its cache
//! entry is the checkpoint, so every extract node of the model depends on it
//! and training runs once per (dataset, model, optimizer, schedule, seed,
//! code version).
//!
//! Entry files:
//! * `model.safetensors`: the weights under torchvision's state-dict names and
//!   layouts (`features.0.weight`, `classifier.6.bias`, Linear as out × in),
//!   so `model.load_state_dict(safetensors.torch.load_file(...))` loads them.
//! * `learning_curves.csv`, `.png`, `.svg`: one row per evaluation.
//! * `conv1_filters.png`: the first layer's filters (HW1's picture).
//! * `train.json`: the run's summary (backend, time, resumption, final metrics).

use std::fmt::Write as _;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::alexnet::AlexNetConfig;
use crate::node::{Ctx, NodeKind};
use crate::train::spec::TrainSpec;
use crate::train::{EvalRow, plots};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct TrainTask {
    pub arch: String,
    pub model: AlexNetConfig,
    /// Seed of the initial weights and of the dropout masks.
    pub seed: u64,
    pub train: TrainSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub backend: String,
    pub steps: u64,
    pub samples: u64,
    /// Wall-clock seconds of training, summed over resumed runs.
    pub seconds: f64,
    pub resumed_from_step: Option<u64>,
    pub final_eval: EvalRow,
}

impl NodeKind for TrainTask {
    fn kind(&self) -> &'static str {
        "train"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    /// Peak memory, roughly: weights, gradients and two optimizer buffers,
    /// plus a batch's images and activations kept for the backward pass.
    fn mem_bytes(&self) -> u64 {
        let [c1, c2, c3, c4, c5] = self.model.widths;
        let params = 3 * c1 * 121
            + c1 * c2 * 25
            + c2 * c3 * 9
            + c3 * c4 * 9
            + c4 * c5 * 9
            + c5 * 36 * self.model.hidden
            + self.model.hidden * self.model.hidden
            + self.model.hidden * self.model.num_classes;
        let acts = 3 * 224 * 224 + 4 * (c1 * 55 * 55 + c2 * 27 * 27 + (c3 + c4 + c5) * 13 * 13);
        (4 * 5 * params + 4 * 3 * acts * self.train.batch_size) as u64
    }

    fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.progress.set_style(
            indicatif::ProgressStyle::with_template(
                "  {prefix} [{bar:25}] {pos}/{len} steps {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let out = crate::train::train(&self.train, &self.model, self.seed, ctx.work, ctx.progress)
            .map_err(|e| e.in_node(ctx.node))?;
        if let Some(step) = out.resumed_from {
            ctx.note(format!("resumed from step {step} of {}", self.train.steps));
        }
        if let Some(why) = &out.discarded_state {
            ctx.note(format!(
                "saved training state not used ({why}); trained from the start"
            ));
        }

        // The export: torchvision names, PyTorch layouts.
        let path = ctx.out.path("model.safetensors");
        // One metadata entry: a multi-key map is written in hash order, and
        // the same weights should give the same bytes.
        let mut store = SafetensorsStore::from_file(&path)
            .with_to_adapter(BurnToPyTorchAdapter)
            .clear_metadata()
            .metadata("format", "pt");
        for (from, to) in crate::model::load::export_remaps() {
            store = store.with_key_remapping(&from, &to);
        }
        out.model
            .save_into(&mut store)
            .map_err(|e| ctx.fail(format!("exporting weights: {e}")))?;

        let mut csv = String::from(
            "step,epoch,samples,lr,train_loss,val_loss,val_bit_acc,val_exact_match,seconds\n",
        );
        for r in &out.history {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{:.3}",
                r.step,
                r.epoch,
                r.samples,
                r.lr,
                r.train_loss.map(|l| l.to_string()).unwrap_or_default(),
                r.val_loss,
                r.val_bit_acc,
                r.val_exact_match,
                r.seconds
            );
        }
        ctx.out.write_bytes("learning_curves.csv", csv.as_bytes())?;

        let last = out
            .history
            .last()
            .cloned()
            .expect("at least the step-0 row");
        let title = format!(
            "AlexNet on Barcode — {} steps × batch {}, val bit acc {:.3}, exact match {:.3}",
            last.step, self.train.batch_size, last.val_bit_acc, last.val_exact_match
        );
        for ext in ["png", "svg"] {
            plots::learning_curves(
                &ctx.out.path(&format!("learning_curves.{ext}")),
                &title,
                &out.history,
            )
            .map_err(|e| ctx.fail(format!("drawing learning curves: {e}")))?;
        }
        let w = out
            .model
            .conv1
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ctx.fail(format!("{e:?}")))?;
        plots::filter_grid(
            &ctx.out.path("conv1_filters.png"),
            &w,
            self.model.widths[0],
            11,
        )
        .map_err(|e| ctx.fail(format!("drawing conv1 filters: {e}")))?;

        ctx.out.write_json(
            "train.json",
            &TrainSummary {
                backend: out.backend.to_string(),
                steps: last.step,
                samples: last.samples,
                seconds: out.seconds,
                resumed_from_step: out.resumed_from,
                final_eval: last,
            },
        )
    }
}

/// The trained weights file inside a train entry, verified against its blake3.
pub fn checkpoint_of(entry: &crate::cache::Entry) -> Result<std::path::PathBuf> {
    entry
        .read("model.safetensors")
        .map_err(|e| Error::usage(format!("trained weights are unreadable: {e}")))?;
    Ok(entry.path("model.safetensors"))
}
/// `train` of a sequential net on seed 004's grating task (see
/// `crate::train::grating`). Entry files as the Barcode node's:
/// `model.safetensors` under the layers' names (`conv.weight`, `fc.bias`,
/// PyTorch layouts), `learning_curves.{csv,png,svg}`, `filters.png` (the
/// first conv layer's filters), `train.json`.
#[derive(Debug, Clone, Serialize)]
pub struct GratingTrainTask {
    pub arch: String,
    pub model: crate::model::sequential::SequentialConfig,
    pub seed: u64,
    pub train: crate::train::grating::GratingTrainSpec,
}

pub const GRATING_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GratingTrainSummary {
    pub backend: String,
    pub steps: u64,
    pub samples: u64,
    pub seconds: f64,
    pub resumed_from_step: Option<u64>,
    pub final_eval: crate::train::grating::GratingEvalRow,
}

impl NodeKind for GratingTrainTask {
    fn kind(&self) -> &'static str {
        "train"
    }
    fn version(&self) -> u32 {
        GRATING_VERSION
    }
    fn mem_bytes(&self) -> u64 {
        // A batch's activations at every layer, kept for the backward pass.
        let per_image: usize = self
            .model
            .shapes()
            .map(|s| s.iter().map(|x| x.iter().product::<usize>()).sum())
            .unwrap_or(0);
        (4 * 4 * per_image * self.train.batch_size.max(100) + (64 << 20)) as u64
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        use crate::model::sequential::Op;
        ctx.progress.set_style(
            indicatif::ProgressStyle::with_template(
                "  {prefix} [{bar:25}] {pos}/{len} steps {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        let out = crate::train::grating::train_grating(
            &self.train,
            &self.model,
            self.seed,
            ctx.work,
            ctx.progress,
        )
        .map_err(|e| e.in_node(ctx.node))?;
        if let Some(step) = out.resumed_from {
            ctx.note(format!(
                "resumed from step {step} of {}",
                self.train.steps()
            ));
        }
        if let Some(why) = &out.discarded_state {
            ctx.note(format!(
                "saved training state not used ({why}); trained from the start"
            ));
        }
        crate::model::sequential::save_safetensors(
            &out.model,
            &self.model,
            &ctx.out.path("model.safetensors"),
        )?;
        let mut csv =
            String::from("step,epoch,samples,lr,train_loss,val_loss,val_accuracy,seconds\n");
        for r in &out.history {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{:.3}",
                r.step,
                r.epoch,
                r.samples,
                r.lr,
                r.train_loss.map(|l| l.to_string()).unwrap_or_default(),
                r.val_loss,
                r.val_accuracy,
                r.seconds
            );
        }
        ctx.out.write_bytes("learning_curves.csv", csv.as_bytes())?;
        let last = out.history.last().cloned().expect("the step-0 row");
        let title = format!(
            "{} on grating tilt — {} epochs × {} gratings, held-out accuracy {:.3}",
            ctx.node.trim_start_matches("train/"),
            self.train.epochs,
            self.train.n_train,
            last.val_accuracy
        );
        for ext in ["png", "svg"] {
            plots::learning_curves(
                &ctx.out.path(&format!("learning_curves.{ext}")),
                &title,
                &out.history,
            )
            .map_err(|e| ctx.fail(format!("drawing learning curves: {e}")))?;
        }
        // The first conv layer's filters, as the seed shows them.
        if let (
            Some(conv),
            Some(Op::Conv2d {
                out_channels,
                kernel_size,
                ..
            }),
        ) = (
            out.model.convs.first(),
            self.model
                .layers
                .iter()
                .map(|l| &l.op)
                .find(|o| matches!(o, Op::Conv2d { .. })),
        ) {
            let w = conv
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| ctx.fail(format!("{e:?}")))?;
            let kk = kernel_size * kernel_size;
            let per = w.len() / (*out_channels).max(1);
            // One input channel: grey tiles (the same plane as R, G and B).
            let rgb: Option<Vec<f32>> = match per {
                p if p == kk => Some(w.chunks(kk).flat_map(|f| f.repeat(3)).collect()),
                p if p == 3 * kk => Some(w.clone()),
                _ => None,
            };
            if let Some(rgb) = rgb {
                plots::filter_grid(
                    &ctx.out.path("filters.png"),
                    &rgb,
                    *out_channels,
                    *kernel_size,
                )
                .map_err(|e| ctx.fail(format!("drawing filters: {e}")))?;
            }
        }
        ctx.out.write_json(
            "train.json",
            &GratingTrainSummary {
                backend: out.backend.to_string(),
                steps: last.step,
                samples: last.samples,
                seconds: out.seconds,
                resumed_from_step: out.resumed_from,
                final_eval: last,
            },
        )
    }
}
