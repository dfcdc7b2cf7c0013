//! A deterministic synthetic subject in Lab08's file layout ([`crate::lab08`]).
//!
//! Lab08's data (NSD subject 1, volume voxels, precomputed AlexNet features)
//! cannot ship with runner, so the example and the tests run on a subject
//! written here, file for file as the lab distributes them:
//!
//! ```text
//! <out>/S1_betas_avg_bigmask.hdf5     /betas      float64 images × voxels; NaN rows where n_reps = 0
//! <out>/S1_image_info.csv             unique_ims,n_reps,shared1000 (a row per image)
//! <out>/S1_voxel_roi_info.npy         np.save of the dict: voxel_mask, brain_nii_shape, noise_ceiling_avgreps (%),
//!                                     {ret_prf,floc_face,floc_place,floc_body}_roi_names and roi_labels_{retino,face,place,body}
//! <out>/S1_Conv{1..5}_pca100.hdf5     features    float32 images × features
//! ```
//!
//! The "network" is a chain: each layer's features are the previous layer's
//! mixed with new variation, so neighbouring layers share variance as a deep
//! net's do. Voxels sit in a slab of the volume; along its posterior →
//! anterior axis their preferred layer rises from Conv1 to Conv5 (as the
//! visual hierarchy does), each reads mostly its preferred layer and a
//! little of its neighbours, and the noise varies by voxel. So the best layer
//! varies across the volume, unique and shared variance vary with the
//! mixture, and the noise ceiling the file states is each voxel's true
//! fraction of explainable variance. ROIs follow the same axis: retinotopic
//! areas posterior, category areas anterior.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

use crate::pickle::{NdArray, PyValue};

#[derive(Debug, Clone, PartialEq)]
pub struct Lab08SynthConfig {
    pub seed: u64,
    /// The lab numbers subjects 1–8 (`S1_`); the split seed follows it.
    pub subject: u32,
    pub n_images: usize,
    /// Images flagged `shared1000` (the validation set).
    pub n_shared: usize,
    pub layers: Vec<String>,
    pub n_features: usize,
    pub shape: [usize; 3],
    pub n_voxels: usize,
    /// Images without repeats (NaN betas, n_reps = 0).
    pub nan_rows: usize,
}

impl Default for Lab08SynthConfig {
    fn default() -> Self {
        Lab08SynthConfig {
            seed: 0,
            subject: 1,
            n_images: 1000,
            n_shared: 100,
            layers: (1..=5).map(|k| format!("Conv{k}")).collect(),
            n_features: 20,
            shape: [8, 8, 8],
            n_voxels: 200,
            nan_rows: 0,
        }
    }
}

pub struct Lab08SynthReport {
    pub out_dir: PathBuf,
    pub files: Vec<PathBuf>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, msg)
}

impl Lab08SynthConfig {
    pub fn validate(&self) -> io::Result<()> {
        let brain: usize = self.shape.iter().product();
        if self.n_voxels == 0 || self.n_voxels > brain {
            return Err(invalid(format!(
                "{} voxels do not fit a {:?} volume",
                self.n_voxels, self.shape
            )));
        }
        if self.n_shared == 0 || self.n_shared >= self.n_images {
            return Err(invalid(format!(
                "{} shared images of {}: both validation and training need images",
                self.n_shared, self.n_images
            )));
        }
        if self.nan_rows + self.n_shared >= self.n_images {
            return Err(invalid("too many images without repeats".into()));
        }
        // Twice as many fit images as a three-set model has columns keeps
        // XᵀX well above the seed's negative λ.
        let fit = (self.n_images - self.n_shared - self.nan_rows) * 9 / 10;
        let cols = 3 * self.n_features + 1;
        if fit < 2 * cols {
            return Err(invalid(format!(
                "{fit} fit images for up to {cols} columns (three joined layers): use more images or fewer features"
            )));
        }
        if self.layers.is_empty() {
            return Err(invalid("no layers".into()));
        }
        Ok(())
    }
}

fn normal(rng: &mut Pcg64) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

fn f64_array(shape: Vec<usize>, data: &[f64]) -> PyValue {
    PyValue::Array(NdArray {
        descr: "<f8".into(),
        shape,
        fortran_order: false,
        data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
    })
}

fn i32_array(data: &[i32]) -> PyValue {
    PyValue::Array(NdArray {
        descr: "<i4".into(),
        shape: vec![data.len()],
        fortran_order: false,
        data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
    })
}

fn names(list: &[&str]) -> PyValue {
    PyValue::Dict(
        list.iter()
            .enumerate()
            .map(|(i, n)| (PyValue::Str(n.to_string()), PyValue::Int(i as i64 + 1)))
            .collect(),
    )
}

/// Names of each family, posterior to anterior.
const RETINO: [&str; 7] = ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"];
const FACE: [&str; 3] = ["OFA", "FFA-1", "FFA-2"];
const PLACE: [&str; 3] = ["OPA", "PPA", "RSC"];
const BODY: [&str; 3] = ["EBA", "FBA-1", "FBA-2"];

pub fn generate(cfg: &Lab08SynthConfig, out: &Path) -> io::Result<Lab08SynthReport> {
    cfg.validate()?;
    fs::create_dir_all(out)?;
    let mut rng = Pcg64::seed_from_u64(cfg.seed ^ 0x1ab0_8000);
    let (n, p, nl) = (cfg.n_images, cfg.n_features, cfg.layers.len());
    let prefix = format!("S{}_", cfg.subject);

    // Layer k = √ρ · layer k−1 + √(1−ρ) · new: neighbours share variance.
    let rho = 0.5f64;
    let mut layers: Vec<Vec<f64>> = Vec::with_capacity(nl);
    for _ in 0..nl {
        let fresh: Vec<f64> = (0..n * p).map(|_| normal(&mut rng)).collect();
        let f = match layers.last() {
            None => fresh,
            Some(prev) => prev
                .iter()
                .zip(&fresh)
                .map(|(a, b)| rho.sqrt() * a + (1.0 - rho).sqrt() * b)
                .collect(),
        };
        layers.push(f);
    }

    // Voxels: the first n_voxels positions of a shuffled slab order, sorted
    // (the mask is a set). Axis 1 (j) runs posterior → anterior.
    let [si, sj, sk] = cfg.shape;
    let brain = si * sj * sk;
    let mut order: Vec<usize> = (0..brain).collect();
    for i in 0..brain {
        let j = rng.random_range(i..brain);
        order.swap(i, j);
    }
    let mut inside = order[..cfg.n_voxels].to_vec();
    inside.sort_unstable();
    let mut mask = vec![false; brain];
    for &i in &inside {
        mask[i] = true;
    }
    let depth = |flat: usize| -> f64 { ((flat / sk) % sj) as f64 / (sj.max(2) - 1) as f64 };

    // Responses: a layer mixture peaked at the preferred layer.
    let v = cfg.n_voxels;
    let mut signal = vec![0.0; n * v];
    let mut noise_sd = vec![0.0; v];
    for (c, &flat) in inside.iter().enumerate() {
        let pref = depth(flat) * (nl - 1) as f64 + 0.4 * normal(&mut rng);
        for (k, f) in layers.iter().enumerate() {
            let w = (-((k as f64 - pref).powi(2)) / 0.8).exp();
            if w < 1e-3 {
                continue;
            }
            let beta: Vec<f64> = (0..p)
                .map(|_| normal(&mut rng) / (p as f64).sqrt())
                .collect();
            for i in 0..n {
                let dot: f64 = (0..p).map(|j| f[i * p + j] * beta[j]).sum();
                signal[i * v + c] += w * dot;
            }
        }
        noise_sd[c] = 0.5 + 1.5 * rng.random::<f64>();
    }
    // z-score the signal per voxel so that the noise sets each voxel's ceiling.
    for c in 0..v {
        let m = (0..n).map(|i| signal[i * v + c]).sum::<f64>() / n as f64;
        let sd = ((0..n).map(|i| (signal[i * v + c] - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        for i in 0..n {
            signal[i * v + c] = (signal[i * v + c] - m) / sd.max(1e-12);
        }
    }
    let nc_percent: Vec<f64> = noise_sd.iter().map(|s| 100.0 / (1.0 + s * s)).collect();

    // Images: shared1000 scattered, NaN rows among the others.
    let mut roles: Vec<usize> = (0..n).collect();
    for i in 0..n {
        let j = rng.random_range(i..n);
        roles.swap(i, j);
    }
    let mut shared = vec![false; n];
    for &i in &roles[..cfg.n_shared] {
        shared[i] = true;
    }
    let mut n_reps = vec![3i64; n];
    for &i in &roles[cfg.n_shared..cfg.n_shared + cfg.nan_rows] {
        n_reps[i] = 0;
    }
    for (i, r) in n_reps.iter_mut().enumerate() {
        if *r > 0 && !shared[i] && rng.random::<f64>() < 0.2 {
            *r = 1 + rng.random_range(0..2);
        }
    }
    let mut betas = vec![0.0; n * v];
    for i in 0..n {
        for c in 0..v {
            betas[i * v + c] = if n_reps[i] == 0 {
                f64::NAN
            } else {
                signal[i * v + c] + noise_sd[c] * normal(&mut rng)
            };
        }
    }
    let ids: Vec<i64> = {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let id = rng.random_range(0..73000i64);
            if seen.insert(id) {
                out.push(id);
            }
        }
        out
    };

    // ROI labels along the same axis, whole-brain as the lab stores them:
    // the posterior half retinotopic (V1, V2, V3, hV4 by depth; ventral or
    // dorsal by the k half), the anterior half category-selective (face and
    // place areas side by side along i, body areas overlapping both).
    let mut labels = [
        vec![0i32; brain],
        vec![0i32; brain],
        vec![0i32; brain],
        vec![0i32; brain],
    ];
    for &flat in &inside {
        let (i, k) = (flat / (sj * sk), flat % sk);
        let d = depth(flat);
        let ventral = k < sk / 2;
        let band = |lo: f64, hi: f64, count: usize| -> Option<usize> {
            (d >= lo && d < hi)
                .then(|| (((d - lo) / (hi - lo) * count as f64) as usize).min(count - 1))
        };
        if let Some(area) = band(0.0, 0.5, 4) {
            // V1v 1, V1d 2, V2v 3, V2d 4, V3v 5, V3d 6, hV4 7 (ventral only).
            labels[0][flat] = match (area, ventral) {
                (3, true) => 7,
                (3, false) => 0,
                (a, v) => (2 * a + if v { 1 } else { 2 }) as i32,
            };
        }
        if let Some(area) = band(0.5, 1.01, FACE.len()) {
            if i < si / 2 {
                labels[1][flat] = area as i32 + 1;
            } else {
                labels[2][flat] = area as i32 + 1;
            }
            if !ventral {
                labels[3][flat] = area as i32 + 1;
            }
        }
    }
    let to_f64 = |x: &[i32]| x.iter().map(|&l| l as f64).collect::<Vec<f64>>();

    let mut files = Vec::new();
    let betas_file = out.join(format!("{prefix}{}", crate::lab08::BETAS));
    crate::hdf5::write_2d_f64(&betas_file, "/betas", n, v, &betas)?;
    files.push(betas_file);
    for (name, f) in cfg.layers.iter().zip(&layers) {
        let file = out.join(format!("{prefix}{name}_pca100.hdf5"));
        let f32s: Vec<f32> = f.iter().map(|&x| x as f32).collect();
        crate::hdf5::write_2d_f32(&file, "features", n, p, &f32s)?;
        files.push(file);
    }
    let mut csv = String::from("unique_ims,n_reps,shared1000\n");
    for i in 0..n {
        let flag = if shared[i] { "True" } else { "False" };
        writeln!(csv, "{},{},{flag}", ids[i], n_reps[i]).expect("string");
    }
    let info = out.join(format!("{prefix}{}", crate::lab08::IMAGE_INFO));
    crate::cache::write_atomic(&info, csv.as_bytes())
        .map_err(|e| io::Error::other(e.to_string()))?;
    files.push(info);
    let mask_bytes: Vec<u8> = mask.iter().map(|&m| u8::from(m)).collect();
    let dict = PyValue::Dict(vec![
        (
            PyValue::Str("voxel_mask".into()),
            PyValue::Array(NdArray {
                descr: "|b1".into(),
                shape: vec![brain],
                fortran_order: false,
                data: mask_bytes,
            }),
        ),
        (
            PyValue::Str("brain_nii_shape".into()),
            PyValue::Tuple(cfg.shape.iter().map(|&s| PyValue::Int(s as i64)).collect()),
        ),
        (
            PyValue::Str("noise_ceiling_avgreps".into()),
            f64_array(vec![v], &nc_percent),
        ),
        (PyValue::Str("ret_prf_roi_names".into()), names(&RETINO)),
        (
            PyValue::Str("roi_labels_retino".into()),
            i32_array(&labels[0]),
        ),
        (PyValue::Str("floc_face_roi_names".into()), names(&FACE)),
        // NSD's label volumes are often float; one family is, here.
        (
            PyValue::Str("roi_labels_face".into()),
            f64_array(vec![brain], &to_f64(&labels[1])),
        ),
        (PyValue::Str("floc_place_roi_names".into()), names(&PLACE)),
        (
            PyValue::Str("roi_labels_place".into()),
            i32_array(&labels[2]),
        ),
        (PyValue::Str("floc_body_roi_names".into()), names(&BODY)),
        (
            PyValue::Str("roi_labels_body".into()),
            i32_array(&labels[3]),
        ),
    ]);
    let roi = out.join(format!("{prefix}{}", crate::lab08::ROI_INFO));
    crate::pickle::write_object(&roi, &dict)?;
    files.push(roi);
    Ok(Lab08SynthReport {
        out_dir: out.to_path_buf(),
        files,
    })
}
