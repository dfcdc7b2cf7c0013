//! STUB
use crate::vocab::DeviceChoice;
use serde::Serialize;
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GratingTrainSpec {
    pub n_train: usize,
    pub n_val: usize,
    pub data_seed: u64,
    pub val_seed: u64,
    pub grating: crate::gratings::GratingSpec,
    pub batch_size: usize,
    pub epochs: u64,
    pub lr: f64,
    pub optimizer: super::spec::Optimizer,
    pub schedule: super::spec::Schedule,
    pub eval_every: u64,
    #[serde(skip)]
    pub checkpoint_every: u64,
    #[serde(skip)]
    pub device: DeviceChoice,
}
