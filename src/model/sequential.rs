//! STUB (replaced by helper's module on merge)
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialConfig {
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub name: String,
    pub op: Op,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        init: ConvInit,
    },
    MaxPool2d {
        kernel_size: usize,
        stride: usize,
    },
    Relu,
    Sigmoid,
    Flatten,
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConvInit {
    Default,
    CenterSurroundGabor { sigma: f64 },
}
#[derive(Debug, Clone)]
pub struct ShapeError {
    pub layer: String,
    pub index: usize,
    pub message: String,
}
impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}
impl SequentialConfig {
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, ShapeError> {
        todo!()
    }
    pub fn tap_width(&self, _name: &str) -> Option<usize> {
        todo!()
    }
}
