//! STUB
use crate::node::{Ctx, NodeKind};
use crate::vocab::DeviceChoice;
use serde::Serialize;
use std::path::PathBuf;
#[derive(Debug, Clone, Serialize)]
pub struct GratingExtractTask {
    pub arch: String,
    pub model: crate::model::sequential::SequentialConfig,
    pub seed: Option<u64>,
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
    pub grating: crate::gratings::GratingSpec,
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
        1
    }
    fn mem_bytes(&self) -> u64 {
        0
    }
    fn run(&self, _ctx: &Ctx) -> crate::error::Result<()> {
        todo!()
    }
}
