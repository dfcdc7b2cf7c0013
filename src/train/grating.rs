//! Training a sequential net on seed 004's grating task: is a grating
//! tilted right of vertical? The seed's recipe: 1000 gratings at uniform
//! orientations in [−90, 90), label = orientation > 0, `nn.BCELoss` on the
//! net's sigmoid output, SGD with momentum, batches of 100 from a fresh
//! permutation every epoch (`torch.randperm` + `torch.split`: the last
//! batch is short).
//!
//! Reproducibility as the Barcode trainer's: the initial weights come from
//! `seed`, the training and held-out orientations from `data_seed` and
//! `val_seed`, each epoch's permutation from (`data_seed`, epoch); a run
//! resumed from saved state takes the same steps as one never interrupted.
//! None of these streams is numpy's or torch's (see README).

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::spec::{Optimizer, Schedule};
use super::state::{Progress, StateDir};
use crate::error::{Error, Result};
use crate::gratings::{GratingSpec, grating, tilt_set};
use crate::model::sequential::{SequentialConfig, SequentialNet};
use crate::vocab::DeviceChoice;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GratingTrainSpec {
    /// Training gratings (seed: 1000).
    pub n_train: usize,
    /// Held-out gratings for the learning curve.
    pub n_val: usize,
    pub data_seed: u64,
    pub val_seed: u64,
    pub grating: GratingSpec,
    pub batch_size: usize,
    pub epochs: u64,
    pub lr: f64,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Evaluate every this many steps (and after the last).
    pub eval_every: u64,
    #[serde(skip)]
    pub checkpoint_every: u64,
    #[serde(skip)]
    pub device: DeviceChoice,
}

impl GratingTrainSpec {
    pub fn steps_per_epoch(&self) -> u64 {
        self.n_train.div_ceil(self.batch_size) as u64
    }
    pub fn steps(&self) -> u64 {
        self.epochs * self.steps_per_epoch()
    }
}

/// One point of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GratingEvalRow {
    pub step: u64,
    pub epoch: f64,
    pub samples: u64,
    pub lr: f64,
    /// Mean BCE over the steps since the previous evaluation (none at step 0).
    pub train_loss: Option<f64>,
    pub val_loss: f64,
    /// Fraction of held-out gratings with (p > 0.5) == tilted right.
    pub val_accuracy: f64,
    pub seconds: f64,
}

pub struct GratingOutcome {
    pub model: SequentialNet,
    pub history: Vec<GratingEvalRow>,
    pub resumed_from: Option<u64>,
    pub discarded_state: Option<String>,
    pub backend: &'static str,
    pub seconds: f64,
}

/// A set of gratings, each rendered once: the images (n × h × w, the
/// seed's `grating()` at each orientation) and their tilt labels.
pub struct GratingSet {
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<f32>,
    pub tilt: Vec<f32>,
}

impl GratingSet {
    pub fn render(ori: &[f64], tilt: Vec<f32>, spec: &GratingSpec) -> GratingSet {
        let (h, w) = spec.size();
        let pixels = ori.iter().flat_map(|&a| grating(a, spec)).collect();
        GratingSet { h, w, pixels, tilt }
    }

    pub fn len(&self) -> usize {
        self.tilt.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tilt.is_empty()
    }

    /// Rows `idx` as an N × 1 × H × W tensor, with their labels (N × 1).
    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<4>, Tensor<2>) {
        let per = self.h * self.w;
        let pixels: Vec<f32> = idx
            .iter()
            .flat_map(|&i| self.pixels[i * per..(i + 1) * per].iter().copied())
            .collect();
        let labels: Vec<f32> = idx.iter().map(|&i| self.tilt[i]).collect();
        (
            Tensor::from_data(
                TensorData::new(pixels, [idx.len(), 1, self.h, self.w]),
                device,
            ),
            Tensor::from_data(TensorData::new(labels, [idx.len(), 1]), device),
        )
    }
}

/// `nn.BCELoss` (mean): −[y log p + (1 − y) log(1 − p)], each log clamped
/// at −100 as PyTorch does, so a saturated sigmoid gives a finite loss.
/// The log's argument is first clamped to f32's smallest normal number: a
/// p of exactly 0 or 1 would otherwise give log's gradient 1/0 and a NaN
/// step (PyTorch's backward divides by max(p(1 − p), 1e-12) instead). This
/// changes nothing but saturated outputs (where log ≥ −87.3, not −100).
pub fn bce(p: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    let tiny = f32::MIN_POSITIVE;
    let log_p = p.clone().clamp_min(tiny).log().clamp_min(-100.0);
    let log_q = p
        .neg()
        .add_scalar(1.0)
        .clamp_min(tiny)
        .log()
        .clamp_min(-100.0);
    let one_minus_y = y.clone().neg().add_scalar(1.0);
    (y * log_p + one_minus_y * log_q).neg().mean()
}

/// Held-out loss and accuracy of `model` (plain device).
pub fn evaluate(
    model: &SequentialNet,
    set: &GratingSet,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64)> {
    let (mut loss_sum, mut right) = (0f64, 0usize);
    let all: Vec<usize> = (0..set.len()).collect();
    for chunk in all.chunks(batch_size.max(1)) {
        let (x, y) = set.batch(chunk, device);
        let p = model.forward(x);
        let loss: f32 = bce(p.clone(), y).into_scalar::<f32>();
        loss_sum += loss as f64 * chunk.len() as f64;
        let p = p
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::usage(format!("{e:?}")))?;
        right += p
            .iter()
            .zip(chunk)
            .filter(|(p, i)| (**p > 0.5) == (set.tilt[**i] == 1.0))
            .count();
    }
    let n = set.len().max(1) as f64;
    Ok((loss_sum / n, right as f64 / n))
}

/// The training order of one epoch: a permutation seeded by (data_seed, epoch).
fn permutation(n: usize, data_seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Pcg64::seed_from_u64(data_seed ^ (epoch + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut rng);
    p
}

/// Trains (or resumes training) and returns the net with its learning curve.
pub fn train_grating(
    spec: &GratingTrainSpec,
    cfg: &SequentialConfig,
    seed: u64,
    work_dir: &Path,
    progress: &ProgressBar,
) -> Result<GratingOutcome> {
    let (plain, backend) = crate::model::device::device_for(spec.device)?;
    let device = plain.clone().autodiff();
    device.seed(seed);
    let mut model = cfg.init(&device);
    let steps = spec.steps();
    let spe = spec.steps_per_epoch();
    let mut optim: ModuleOptimizer = super::optimizer(&spec.optimizer);
    let mut sched = super::scheduler(&spec.schedule, spec.lr, spe, steps)?;

    // Rendered once: every epoch and every evaluation reuses the images.
    let (ori, tilt) = tilt_set(spec.n_train, spec.data_seed);
    let train_set = GratingSet::render(&ori, tilt, &spec.grating);
    let (val_ori, val_tilt) = tilt_set(spec.n_val, spec.val_seed);
    let val_set = GratingSet::render(&val_ori, val_tilt, &spec.grating);

    let states = StateDir::new(work_dir);
    let (saved, discarded_state) = states.load::<GratingEvalRow>()?;
    let mut prog: Progress<GratingEvalRow> = Progress {
        step: 0,
        samples: 0,
        history: Vec::new(),
        loss_sum: 0.0,
        loss_steps: 0,
        seconds: 0.0,
        files: Vec::new(),
    };
    let mut resumed_from = None;
    if let Some(s) = saved {
        let (p, o, sc) = super::restore(s, &mut model, optim, sched)?;
        (optim, sched) = (o, sc);
        resumed_from = Some(p.step);
        prog = p;
    }
    let seconds_before = prog.seconds;
    let clock = Instant::now();
    let elapsed = |s: f64| s + clock.elapsed().as_secs_f64();
    let eval_row = |model: &SequentialNet,
                    step: u64,
                    samples: u64,
                    lr: f64,
                    train_loss: Option<f64>|
     -> Result<GratingEvalRow> {
        let (val_loss, val_accuracy) =
            evaluate(&model.valid(), &val_set, spec.batch_size.max(100), &plain)?;
        Ok(GratingEvalRow {
            step,
            epoch: step as f64 / spe as f64,
            samples,
            lr,
            train_loss,
            val_loss,
            val_accuracy,
            seconds: elapsed(seconds_before),
        })
    };

    progress.set_length(steps);
    progress.set_position(prog.step);
    if prog.history.is_empty() {
        progress.set_message("evaluating the untrained net");
        let row = eval_row(&model, 0, 0, spec.lr, None)?;
        prog.history.push(row);
    }
    let delay = super::step_delay();
    // The epoch's order, drawn when the epoch starts (or the run resumes in it).
    let mut order: Option<(u64, Vec<usize>)> = None;
    while prog.step < steps {
        let epoch = prog.step / spe;
        let pos = (prog.step % spe) as usize;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, permutation(spec.n_train, spec.data_seed, epoch)));
        }
        let order = &order.as_ref().expect("drawn above").1;
        let idx = &order[pos * spec.batch_size..((pos + 1) * spec.batch_size).min(spec.n_train)];
        let step_lr = sched.step();
        let lr = step_lr.base();
        let (x, y) = train_set.batch(idx, &device);
        let loss = bce(model.forward(x), y);
        let loss_value: f32 = loss.clone().into_scalar::<f32>();
        if !loss_value.is_finite() {
            return Err(Error::usage(format!(
                "training diverged: the loss is {loss_value} at step {} (lr {lr})",
                prog.step + 1
            ))
            .with_help("lower `lr` or `momentum`"));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(step_lr, model, grads);
        prog.step += 1;
        prog.samples += idx.len() as u64;
        prog.loss_sum += loss_value as f64;
        prog.loss_steps += 1;
        progress.set_position(prog.step);
        let last = prog.history.last().expect("step-0 row");
        progress.set_message(format!(
            "loss {loss_value:.4} · held-out accuracy {:.3} (step {})",
            last.val_accuracy, last.step
        ));
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let done = prog.step == steps;
        if prog.step % spec.eval_every == 0 || done {
            let row = eval_row(
                &model,
                prog.step,
                prog.samples,
                lr,
                Some(prog.loss_sum / prog.loss_steps.max(1) as f64),
            )?;
            prog.history.push(row);
            prog.loss_sum = 0.0;
            prog.loss_steps = 0;
        }
        if !done && prog.step % spec.checkpoint_every == 0 {
            super::save_state(
                &states,
                &prog,
                elapsed(seconds_before),
                &model,
                &optim,
                &sched,
            )?;
        }
    }
    Ok(GratingOutcome {
        model: model.valid(),
        history: prog.history,
        resumed_from,
        discarded_state,
        backend,
        seconds: elapsed(seconds_before),
    })
}
