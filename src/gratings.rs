//! STUB
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GratingSpec {
    pub sf: f64,
    pub res: f64,
    pub width_px: usize,
    pub height_px: usize,
}
impl Default for GratingSpec {
    fn default() -> Self {
        GratingSpec {
            sf: 1.0 / 28.0,
            res: 0.1,
            width_px: 640,
            height_px: 480,
        }
    }
}
impl GratingSpec {
    pub fn size(&self) -> (usize, usize) {
        todo!()
    }
}
