//! What a `[models.NAME.train]` table asks for, after validation. Every field
//! that changes the trained weights is serialized into the train node's key;
//! how often state is saved and which device runs it are not.

use serde::{Deserialize, Serialize};

use crate::vocab::DeviceChoice;

/// HW2's Barcode dataset parameters (see [`crate::barcode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarcodeData {
    /// Samples per epoch (`BarcodeDataset('train', length)`), HW2: 1,000,000.
    pub train_length: u64,
    /// Validation samples = validation integers, HW2: 50,000.
    pub val_length: usize,
    /// `BarcodeDataset(seed=...)`: the training draws and the validation shuffle.
    pub seed: u64,
    /// Seed of the fixed validation integers.
    pub val_seed: u64,
}

impl BarcodeData {
    pub fn config(&self) -> crate::barcode::BarcodeConfig {
        crate::barcode::BarcodeConfig {
            train_length: self.train_length as usize,
            val_length: self.val_length,
            seed: self.seed,
            val_seed: self.val_seed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optimizer {
    /// `torch.optim.SGD(lr, momentum, weight_decay, nesterov)`, dampening 0
    /// (PyTorch's default; burn's own default is 0.1, so it is set explicitly).
    Sgd {
        momentum: f64,
        weight_decay: f64,
        nesterov: bool,
    },
    /// `torch.optim.Adam(lr, betas, eps, weight_decay)` (L2 added to the gradient, as PyTorch).
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

/// Learning rate over the run, evaluated per optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// `StepLR`: lr · gamma^⌊epoch / every_epochs⌋ (HW1's ImageNet recipe: 30, 0.1).
    Step {
        every_epochs: u64,
        gamma: f64,
    },
    /// Cosine annealing from lr to `min_lr` over the whole run, per step.
    Cosine {
        min_lr: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSpec {
    pub dataset: BarcodeData,
    pub batch_size: usize,
    /// Optimizer steps in the whole run (from `epochs` or `steps`).
    pub steps: u64,
    pub lr: f64,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    /// Validate every this many steps (default: once per epoch), and after the last step.
    pub eval_every: u64,
    /// Save resumable state every this many steps (default: at every evaluation).
    #[serde(skip)]
    pub checkpoint_every: u64,
    #[serde(skip)]
    pub device: DeviceChoice,
}

impl TrainSpec {
    /// Optimizer steps per epoch: the last batch of an epoch is short, as a
    /// PyTorch DataLoader without `drop_last`.
    pub fn steps_per_epoch(&self) -> u64 {
        self.dataset.train_length.div_ceil(self.batch_size as u64)
    }

    /// Samples in step `step` (0-based).
    pub fn batch_at(&self, step: u64) -> usize {
        let spe = self.steps_per_epoch();
        let pos = step % spe;
        let start = pos * self.batch_size as u64;
        (self.dataset.train_length - start).min(self.batch_size as u64) as usize
    }
}
