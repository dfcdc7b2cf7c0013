//! Training an AlexNet on HW2's Barcode task with burn autodiff: the loop,
//! its evaluation, and resumable state. The train node (`nodes::train`)
//! wraps this with the cache; plots of the run live in `plots`.
//!
//! Reproducibility: the initial weights come from `seed`; each step's
//! dropout masks from a seed derived from (`seed`, step); the samples from
//! the dataset's own stream. So a run resumed from saved state takes the same
//! steps as one that was never interrupted.

pub mod grating;
pub mod plots;
pub mod spec;
pub mod state;

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::lr_scheduler::step::StepLrSchedulerConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::barcode::{self, BITS, IMAGE_LEN, IMAGE_SIZE, TrainStream};
use crate::error::{Error, Result};
use crate::model::alexnet::{AlexNet, AlexNetConfig};
use spec::{Optimizer, Schedule, TrainSpec};
use state::{Progress, StateDir};

/// One point of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub step: u64,
    pub epoch: f64,
    pub samples: u64,
    /// Learning rate of the last step (the first step's at step 0).
    pub lr: f64,
    /// Mean BCE over the steps since the previous evaluation (none at step 0).
    pub train_loss: Option<f64>,
    pub val_loss: f64,
    /// Fraction of the 32 bits right, over the validation set.
    pub val_bit_acc: f64,
    /// Fraction of validation images with all 32 bits right.
    pub val_exact_match: f64,
    pub seconds: f64,
}

pub struct Outcome {
    /// The trained net, on a plain (non-autodiff) device.
    pub model: AlexNet,
    pub history: Vec<EvalRow>,
    /// The step a resumed run started from.
    pub resumed_from: Option<u64>,
    /// Why saved state was not used, when there was some.
    pub discarded_state: Option<String>,
    pub backend: &'static str,
    pub seconds: f64,
}

/// Test hook: sleep this long after every step, so a test can kill a run mid-training.
pub(crate) fn step_delay() -> Option<std::time::Duration> {
    std::env::var("RUNNER_TEST_STEP_MS")
        .ok()?
        .parse()
        .ok()
        .map(std::time::Duration::from_millis)
}

pub(crate) fn optimizer(optimizer: &Optimizer) -> ModuleOptimizer {
    match *optimizer {
        Optimizer::Sgd {
            momentum,
            weight_decay,
            nesterov,
        } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov,
            }))
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .init(),
        Optimizer::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => AdamConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .init(),
    }
}

/// The learning-rate schedule over a run of `steps` optimizer steps.
pub(crate) fn scheduler(
    schedule: &Schedule,
    lr: f64,
    steps_per_epoch: u64,
    steps: u64,
) -> Result<ModuleLrScheduler> {
    let r = match *schedule {
        Schedule::Constant => Ok(ConstantLr::from(lr).into()),
        Schedule::Step {
            every_epochs,
            gamma,
        } => StepLrSchedulerConfig::new(lr, (every_epochs * steps_per_epoch) as usize)
            .with_gamma(gamma)
            .init(),
        Schedule::Cosine { min_lr } => CosineAnnealingLrSchedulerConfig::new(lr, steps as usize)
            .with_min_lr(min_lr)
            .init(),
    };
    r.map_err(|e| Error::usage(format!("learning-rate schedule: {e}")))
}

/// A batch of Barcode images (N×3×224×224, 0 = black, 1 = white, as the
/// homework's dataset returns them) and their 32-bit labels.
fn batch(numbers: &[u32], device: &Device) -> (Tensor<4>, Tensor<2, Int>) {
    let mut pixels = vec![0f32; numbers.len() * IMAGE_LEN];
    pixels
        .par_chunks_exact_mut(IMAGE_LEN)
        .zip(numbers)
        .for_each(|(img, &n)| barcode::write_image(n, img));
    let labels: Vec<i64> = numbers
        .iter()
        .flat_map(|&n| barcode::label(n).map(|b| b as i64))
        .collect();
    (
        Tensor::from_data(
            TensorData::new(pixels, [numbers.len(), 3, IMAGE_SIZE, IMAGE_SIZE]),
            device,
        ),
        Tensor::from_data(TensorData::new(labels, [numbers.len(), BITS]), device),
    )
}

/// Validation loss, bit accuracy and exact-match accuracy of `model` (plain device).
pub fn evaluate(
    model: &AlexNet,
    numbers: &[u32],
    batch_size: usize,
    device: &Device,
) -> Result<(f64, f64, f64)> {
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device);
    let (mut loss_sum, mut bits_right, mut exact) = (0f64, 0u64, 0u64);
    for chunk in numbers.chunks(batch_size.max(1)) {
        let (x, y) = batch(chunk, device);
        let logits = model.forward(x);
        let loss: f32 = bce.forward(logits.clone(), y).into_scalar::<f32>();
        loss_sum += loss as f64 * chunk.len() as f64;
        let l = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::usage(format!("{e:?}")))?;
        for (row, &n) in l.chunks_exact(BITS).zip(chunk) {
            let label = barcode::label(n);
            let right = row
                .iter()
                .zip(label)
                .filter(|(z, b)| (**z > 0.0) == (*b == 1.0))
                .count();
            bits_right += right as u64;
            exact += (right == BITS) as u64;
        }
    }
    let n = numbers.len().max(1) as f64;
    Ok((
        loss_sum / n,
        bits_right as f64 / (n * BITS as f64),
        exact as f64 / n,
    ))
}

pub(crate) fn model_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let mut store = BurnpackStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| Error::usage(format!("cannot snapshot the model: {e}")))?;
    let b = store
        .get_bytes()
        .map_err(|e| Error::usage(format!("cannot snapshot the model: {e}")))?;
    Ok(b.to_vec())
}

/// Saves resumable state: the progress (its `seconds` set to `seconds`),
/// the model, the optimizer and the schedule (see [`state::StateDir`]).
pub(crate) fn save_state<M: Module, R: Serialize + Clone>(
    states: &StateDir,
    prog: &Progress<R>,
    seconds: f64,
    model: &M,
    optim: &ModuleOptimizer,
    sched: &ModuleLrScheduler,
) -> Result<()> {
    let mut p = prog.clone();
    p.seconds = seconds;
    let sched_bytes = sched
        .to_record()
        .into_bytes()
        .map_err(|e| Error::usage(format!("cannot save the schedule: {e}")))?;
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| Error::usage(format!("cannot save the optimizer: {e}")))?;
    states.save(p, &model_bytes(model)?, &optim_bytes, &sched_bytes)
}

/// Loads saved model, optimizer and schedule state into a fresh run.
pub(crate) fn restore<M: Module, R>(
    saved: state::Saved<R>,
    model: &mut M,
    optim: ModuleOptimizer,
    sched: ModuleLrScheduler,
) -> Result<(Progress<R>, ModuleOptimizer, ModuleLrScheduler)> {
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(saved.model)));
    model
        .load_from(&mut store)
        .map_err(|e| Error::usage(format!("saved training state does not fit the model: {e}")))?;
    let optim = optim
        .from_bytes(Bytes::from_bytes_vec(saved.optim))
        .map_err(|e| Error::usage(format!("saved optimizer state unreadable: {e}")))?;
    let rec = LrSchedulerRecord::from_bytes(Bytes::from_bytes_vec(saved.sched))
        .map_err(|e| Error::usage(format!("saved schedule state unreadable: {e}")))?;
    Ok((saved.progress, optim, sched.load_record(rec)))
}

/// Trains (or resumes training) and returns the net with its learning curve.
pub fn train(
    spec: &TrainSpec,
    model_cfg: &AlexNetConfig,
    seed: u64,
    work_dir: &Path,
    progress: &ProgressBar,
) -> Result<Outcome> {
    let (plain, backend) = crate::model::device::device_for(spec.device)?;
    let device = plain.clone().autodiff();
    device.seed(seed);
    let mut model = model_cfg.init(&device);
    let mut optim = optimizer(&spec.optimizer);
    let mut sched = scheduler(&spec.schedule, spec.lr, spec.steps_per_epoch(), spec.steps)?;
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);

    let data = spec.dataset.config();
    let val_numbers = data.val_numbers();
    let val_items = data.val_order(&val_numbers);
    let mut stream: TrainStream = data.train_stream(&val_numbers);

    let states = StateDir::new(work_dir);
    let (saved, discarded_state) = states.load::<EvalRow>()?;
    let mut prog = Progress {
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
        let (p, o, sc) = restore(s, &mut model, optim, sched)?;
        (optim, sched) = (o, sc);
        progress.set_message(format!("skipping {} samples", p.samples));
        stream.skip(p.samples);
        resumed_from = Some(p.step);
        prog = p;
    }
    let seconds_before = prog.seconds;
    let clock = Instant::now();
    let elapsed = |prog_seconds: f64| prog_seconds + clock.elapsed().as_secs_f64();

    let spe = spec.steps_per_epoch() as f64;
    let eval_row = |model: &AlexNet,
                    step: u64,
                    samples: u64,
                    lr: f64,
                    train_loss: Option<f64>|
     -> Result<EvalRow> {
        let (val_loss, val_bit_acc, val_exact_match) =
            evaluate(&model.valid(), &val_items, spec.batch_size, &plain)?;
        Ok(EvalRow {
            step,
            epoch: step as f64 / spe,
            samples,
            lr,
            train_loss,
            val_loss,
            val_bit_acc,
            val_exact_match,
            seconds: elapsed(seconds_before),
        })
    };

    progress.set_length(spec.steps);
    progress.set_position(prog.step);
    if prog.history.is_empty() {
        progress.set_message("validating the untrained net");
        let row = eval_row(&model, 0, 0, spec.lr, None)?;
        prog.history.push(row);
    }
    let delay = step_delay();
    let mut numbers = Vec::with_capacity(spec.batch_size);
    while prog.step < spec.steps {
        let step_lr = sched.step();
        let lr = step_lr.base();
        numbers.clear();
        for _ in 0..spec.batch_at(prog.step) {
            numbers.push(stream.next());
        }
        let (x, y) = batch(&numbers, &device);
        device.seed(seed ^ (prog.step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let logits = model.forward_train(x, model_cfg.dropout);
        let loss = bce.forward(logits, y);
        let loss_value: f32 = loss.clone().into_scalar::<f32>();
        if !loss_value.is_finite() {
            return Err(Error::usage(format!(
                "training diverged: the loss is {loss_value} at step {} (lr {lr})",
                prog.step + 1
            ))
            .with_help("lower `lr`, or use optimizer = \"adam\""));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(step_lr, model, grads);
        prog.step += 1;
        prog.samples += numbers.len() as u64;
        prog.loss_sum += loss_value as f64;
        prog.loss_steps += 1;
        progress.set_position(prog.step);
        let last = prog.history.last().expect("step-0 row");
        progress.set_message(format!(
            "loss {loss_value:.4} · val bit acc {:.3} (step {})",
            last.val_bit_acc, last.step
        ));
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let done = prog.step == spec.steps;
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
            save_state(
                &states,
                &prog,
                elapsed(seconds_before),
                &model,
                &optim,
                &sched,
            )?;
        }
    }
    Ok(Outcome {
        model: model.valid(),
        history: prog.history,
        resumed_from,
        discarded_state,
        backend,
        seconds: elapsed(seconds_before),
    })
}
