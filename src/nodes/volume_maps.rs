//! `volume_maps`: per-voxel results put back into the subject's brain volume
//! (NaN outside the voxel mask), written as NIfTI for pycortex, nilearn or
//! FSLeyes, and drawn as PNG slice montages: the best layer with a
//! categorical palette and a legend; R², unique and shared variance on one
//! sequential scale from 0 to 0.4, as the lab's figures.

use serde::Serialize;

use crate::error::Result;
use crate::node::{Ctx, NodeKind};
use crate::nodes::subject::Volume as VolumeInfo;
use crate::volume::{self, Scale};

pub const VERSION: u32 = 1;

/// NSD's functional resolution (func1pt8mm); the lab's files do not carry
/// the affine, so the maps are in voxel space with this voxel size.
pub const VOXEL_MM: [f32; 3] = [1.8, 1.8, 1.8];

/// The lab's colour range for R² and variance components.
pub const VMAX: f64 = 0.4;

#[derive(Debug, Clone, Serialize)]
pub struct VolumeMapsTask {
    /// File names start with this (`lab08_subj01`).
    pub stem: String,
    /// What upstream `map:{i:03}` holds: `r2:<set>` (a fit),
    /// `best_layer:<source>` or `varpart:<sets>`.
    pub maps: Vec<String>,
}

impl NodeKind for VolumeMapsTask {
    fn kind(&self) -> &'static str {
        "volume_maps"
    }
    fn version(&self) -> u32 {
        VERSION
    }
    fn mem_bytes(&self) -> u64 {
        256 << 20
    }
    fn result_name(&self, file: &str) -> String {
        format!("maps/{file}")
    }
    fn run(&self, ctx: &Ctx) -> Result<()> {
        let info: VolumeInfo = ctx.input("subject")?.read_json("volume.json")?;
        let n_brain: usize = info.shape.iter().product();
        let mut mask = vec![false; n_brain];
        for &p in &info.positions {
            mask[p] = true;
        }
        let draw = |name: &str, values: &[f64], scale: &Scale, title: &str| -> Result<()> {
            let vol = volume::fill(values, &mask, info.shape).map_err(|m| ctx.fail(m))?;
            let file = format!("{}_{name}", self.stem);
            volume::write_nifti(&ctx.out.path(&format!("{file}.nii.gz")), &vol, VOXEL_MM)
                .map_err(|e| ctx.fail(format!("writing {file}.nii.gz: {e}")))?;
            volume::montage_png(&ctx.out.path(&format!("{file}.png")), &vol, scale, title)
                .map_err(|m| ctx.fail(format!("drawing {file}.png: {m}")))
        };
        let seq = |label: &str| Scale::Sequential {
            vmin: 0.0,
            vmax: VMAX,
            label: label.to_string(),
        };
        for (i, what) in self.maps.iter().enumerate() {
            let entry = ctx.input(&format!("map:{i:03}"))?;
            let (kind, name) = what.split_once(':').unwrap_or((what, ""));
            match kind {
                "r2" => {
                    let r2 = entry.read_f64("r2.npy")?.data;
                    let title = if name.contains('+') {
                        format!(
                            "Combined {} model performance (R²)",
                            name.replace('+', " + ")
                        )
                    } else {
                        format!("{name}: R² on the validation images")
                    };
                    draw(&format!("r2_{name}"), &r2, &seq("R²"), &title)?;
                }
                "best_layer" => {
                    let best = entry.read_f64("best_layer.npy")?.data;
                    let layers: Vec<String> = entry.read_json("layers.json")?;
                    draw(
                        &format!("best_layer_{name}"),
                        &best,
                        &Scale::Categorical {
                            names: layers.clone(),
                        },
                        &format!("Best {name} layer per voxel (validation R²)"),
                    )?;
                }
                "varpart" => {
                    let comps = entry.read_f64("components.npy")?;
                    let names: Vec<String> = entry.read_json("components.json")?;
                    let (_, v) = comps.rows_cols();
                    for (c, cname) in names.iter().enumerate() {
                        let title = match cname.split_once('_') {
                            Some(("unique", l)) => format!("Unique variance: {l}"),
                            Some(("shared", ls)) => {
                                format!("Shared variance: {}", ls.replace('_', " & "))
                            }
                            _ => cname.clone(),
                        };
                        draw(
                            cname,
                            &comps.data[c * v..(c + 1) * v],
                            &seq("variance explained (R²)"),
                            &title,
                        )?;
                    }
                }
                other => return Err(ctx.fail(format!("unknown map `{other}`"))),
            }
        }
        Ok(())
    }
}
