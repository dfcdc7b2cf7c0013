//! Neural responses in one `.npz`: a stimuli × neurons matrix and a 1-D
//! stimulus variable, as Stringer et al.'s mouse V1 recordings ship
//! (`W3D4_stringer_oribinned1.npz`: `resp`, `stimuli` in degrees), read the
//! way seed 004's `load_data` reads them:
//!
//! 1. with `bin_width > 1`, rows are grouped by
//!    `np.digitize(stimuli, np.arange(0, 360 + w, w))` and each group's
//!    stimuli and responses averaged (groups in bin order);
//! 2. rows outside `[stimulus_min, stimulus_max]` are dropped (seed: ≤ 180);
//! 3. `stimulus_offset` is added (seed: −90, so 0 is vertical).
//!
//! The neurons are the units ("voxels" elsewhere in runner); label arrays of
//! one value per neuron become ROI columns. Responses are read in float64
//! (the file's float32 is exact in it); the seed averages bins in float32,
//! which differs from this by float32 rounding only.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::config::NpzSelect;
use crate::error::{Error, Result};
use crate::npz::Npz;

pub const FORMAT: &str = "npz_responses";

/// What the plan knows of the file before anything runs.
#[derive(Debug, Clone)]
pub struct NpzSubject {
    pub path: PathBuf,
    /// Rows of the responses in the file.
    pub rows: usize,
    pub n_neurons: usize,
    /// Per kept stimulus, the file rows averaged into it (one without binning).
    pub groups: Vec<Vec<usize>>,
    /// Per kept stimulus, its value after binning, selection and offset.
    pub stimulus: Vec<f64>,
    /// Label array name → one label per neuron.
    pub labels: IndexMap<String, Vec<String>>,
}

fn missing(npz: &Npz, path: &Path, key: &str, what: &str) -> Error {
    let keys = npz.keys();
    Error::data(
        path,
        format!(
            "has no array `{key}` ({what}); it has: {}",
            if keys.is_empty() {
                "no arrays".to_string()
            } else {
                keys.join(", ")
            }
        ),
    )
    .with_help(format!(
        "name the array in the subject table: {} = \"…\"",
        match what {
            "the responses" => "responses",
            "the stimulus variable" => "stimulus",
            _ => "labels = [\"…\"]",
        }
    ))
}

impl NpzSubject {
    pub fn open(path: &Path, select: &NpzSelect) -> Result<NpzSubject> {
        let npz = Npz::open(path)?;
        let has = |k: &str| npz.keys().iter().any(|x| x == k);
        if !has(&select.responses) {
            return Err(missing(&npz, path, &select.responses, "the responses"));
        }
        if !has(&select.stimulus) {
            return Err(missing(
                &npz,
                path,
                &select.stimulus,
                "the stimulus variable",
            ));
        }
        let shape = npz.shape(&select.responses)?;
        let [rows, n_neurons] = shape[..] else {
            return Err(Error::data(
                path,
                format!(
                    "`{}` has shape {shape:?}; expected stimuli × neurons (2-D)",
                    select.responses
                ),
            ));
        };
        if rows == 0 || n_neurons == 0 {
            return Err(Error::data(
                path,
                format!("`{}` has shape {shape:?}: no data", select.responses),
            ));
        }
        let stim = npz.read_f64(&select.stimulus)?;
        let flat = stim.shape.iter().filter(|&&d| d != 1).count() <= 1;
        if !flat || stim.data.len() != rows {
            return Err(Error::data(
                path,
                format!(
                    "`{}` has shape {:?} but `{}` has {rows} rows; the stimulus variable is one value per row",
                    select.stimulus, stim.shape, select.responses
                ),
            ));
        }
        if let Some(i) = stim.data.iter().position(|x| !x.is_finite()) {
            return Err(Error::data(
                path,
                format!("`{}` row {i} is {}", select.stimulus, stim.data[i]),
            ));
        }
        let (mut groups, mut values): (Vec<Vec<usize>>, Vec<f64>) = match select.bin_width {
            None => ((0..rows).map(|i| vec![i]).collect(), stim.data.clone()),
            Some(w) => {
                // np.arange(0, 360 + w, w): start + k·step while below the stop.
                let n_edges = ((360.0 + w) / w).ceil() as usize;
                let edges: Vec<f64> = (0..n_edges).map(|k| k as f64 * w).collect();
                // np.digitize (increasing, right=False): edges ≤ x.
                let bin = |x: f64| edges.partition_point(|&e| e <= x);
                let mut by_bin: std::collections::BTreeMap<usize, Vec<usize>> =
                    std::collections::BTreeMap::new();
                for (i, &x) in stim.data.iter().enumerate() {
                    by_bin.entry(bin(x)).or_default().push(i);
                }
                let groups: Vec<Vec<usize>> = by_bin.into_values().collect();
                let values = groups
                    .iter()
                    .map(|g| g.iter().map(|&i| stim.data[i]).sum::<f64>() / g.len() as f64)
                    .collect();
                (groups, values)
            }
        };
        let keep: Vec<usize> = (0..values.len())
            .filter(|&i| {
                select.stimulus_min.is_none_or(|lo| values[i] >= lo)
                    && select.stimulus_max.is_none_or(|hi| values[i] <= hi)
            })
            .collect();
        if keep.is_empty() {
            return Err(Error::data(
                path,
                format!(
                    "no stimulus of `{}` lies in [{}, {}] (its values run from {} to {})",
                    select.stimulus,
                    select.stimulus_min.map_or("−∞".into(), |x| x.to_string()),
                    select.stimulus_max.map_or("∞".into(), |x| x.to_string()),
                    stim.data.iter().copied().fold(f64::INFINITY, f64::min),
                    stim.data.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                ),
            )
            .with_help("check stimulus_min and stimulus_max in the subject table"));
        }
        groups = keep
            .iter()
            .map(|&i| std::mem::take(&mut groups[i]))
            .collect();
        values = keep
            .iter()
            .map(|&i| values[i] + select.stimulus_offset)
            .collect();
        let mut labels = IndexMap::new();
        for key in &select.labels {
            if !has(key) {
                return Err(missing(&npz, path, key, "a label array"));
            }
            let l = npz.read_labels(key)?;
            if l.len() != n_neurons {
                return Err(Error::data(
                    path,
                    format!(
                        "label array `{key}` has {} values but `{}` has {n_neurons} neurons",
                        l.len(),
                        select.responses
                    ),
                )
                .with_help("a label array holds one label per neuron (column of the responses)"));
            }
            labels.insert(key.clone(), l);
        }
        Ok(NpzSubject {
            path: path.to_path_buf(),
            rows,
            n_neurons,
            groups,
            stimulus: values,
            labels,
        })
    }

    pub fn n_stimuli(&self) -> usize {
        self.groups.len()
    }

    /// The kept stimuli's responses, n_stimuli × neurons (row-major), with
    /// bins averaged; refuses non-finite responses.
    pub fn responses(&self, select: &NpzSelect) -> Result<Vec<f64>> {
        let npz = Npz::open(&self.path)?;
        let r = npz.read_f64(&select.responses)?;
        let v = self.n_neurons;
        if r.shape != [self.rows, v] {
            // The plan's shape no longer matches the file (it changed underneath).
            return Err(Error::data(
                &self.path,
                format!(
                    "`{}` changed shape since the plan was made",
                    select.responses
                ),
            ));
        }
        if let Some(i) = r.data.iter().position(|x| !x.is_finite()) {
            let bad = r.data.iter().filter(|x| !x.is_finite()).count();
            return Err(Error::data(
                &self.path,
                format!(
                    "`{}` has {bad} non-finite values, the first at stimulus row {}, neuron {} ({})",
                    select.responses,
                    i / v,
                    i % v,
                    r.data[i]
                ),
            )
            .with_help("drop or fill those neurons before saving the file; runner does not guess what a missing response means"));
        }
        let mut out = vec![0.0; self.groups.len() * v];
        for (row, g) in out.chunks_exact_mut(v).zip(&self.groups) {
            for &i in g {
                for (o, x) in row.iter_mut().zip(&r.data[i * v..(i + 1) * v]) {
                    *o += x;
                }
            }
            let n = g.len() as f64;
            if g.len() > 1 {
                row.iter_mut().for_each(|o| *o /= n);
            }
        }
        Ok(out)
    }

    /// The neurons as runner's voxel table: one group (hemisphere "both"),
    /// index = column of the responses, the label arrays as columns.
    pub fn voxel_table(&self) -> crate::nsd::VoxelTable {
        crate::nsd::VoxelTable {
            hemi: vec![crate::record::BOTH.to_string(); self.n_neurons],
            index: (0..self.n_neurons as u32).collect(),
            ncsnr: vec![f64::NAN; self.n_neurons],
            labels: self.labels.clone(),
        }
    }
}
