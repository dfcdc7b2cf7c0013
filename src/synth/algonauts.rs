//! A deterministic synthetic subject in the Algonauts 2023 challenge's layout.
//!
//! The challenge data cannot ship with runner, so tests and examples of the
//! `algonauts2023` subject format ([`crate::algonauts`]) run on a subject
//! generated here, file for file in the devkit's layout: PNG images, per
//! hemisphere fMRI of challenge-space vertices, and ROI masks of all six
//! classes in challenge and fsaverage space with their `mapping_<class>.npy`
//! pickles, written byte-identical to what `np.save(path, dict)` writes
//! ([`crate::pickle`]). `scripts/check_algonauts_synth.py` loads it as the
//! devkit does (np.load, `.item()`, PIL) and checks it.
//!
//! ```text
//! <out>/training_split/training_images/train-%04d_nsd-%05d.png   RGB 8-bit, image_size²; 1-based, made-up distinct NSD ids
//! <out>/test_split/test_images/test-%04d_nsd-%05d.png
//! <out>/training_split/training_fmri/{lh,rh}_training_fmri.npy   float32 n_train × V_hemi, z-scored per vertex
//! <out>/roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy       float64 0/1, length fsaverage_len
//! <out>/roi_masks/{lh,rh}.<class>_fsaverage_space.npy            float64 labels, length fsaverage_len (0 off the challenge vertices)
//! <out>/roi_masks/{lh,rh}.<class>_challenge_space.npy            int64 labels, length V_hemi
//! <out>/roi_masks/mapping_<class>.npy                            {0: "Unknown", 1: ..., }: every ROI name of the class
//! ```
//!
//! The images are the dead leaves of [`super`] (own random stream), and the
//! vertices reuse its toy visual system. Early visual vertices (V1–V3) are
//! driven linearly by oriented energy and luminance inside a Gaussian pRF —
//! wider than the NSD subject's and without its suppressive surround, so that
//! the principal components of AlexNet conv1-level features (the devkit's
//! `features.2` → PCA → linear regression) can reach them; hV4, mid, ventral,
//! lateral and parietal vertices are drawn exactly as in the NSD subject
//! (texture energy and colour, coarse layout, nonlinear image statistics).
//! Noise is heavier outside early cortex. Each vertex gets a `streams` and,
//! where it applies, a `prf-visualrois` label from its family; the floc
//! classes are dealt round-robin over the ventral/lateral/parietal vertices.
//! By design `mTL-words` exists in lh only and `aTL-faces` is in its mapping
//! but on no vertex (the devkit's empty-ROI → NaN-median case).
//!
//! Deterministic: integer-seeded PCG streams and f64 maths rounded to float32
//! at the end, so the same config writes the same bytes on every machine.

use std::fs::{self, File};
use std::io::{self, BufWriter, ErrorKind};
use std::path::{Path, PathBuf};

use rand::RngExt;
use rand_pcg::Pcg64;

use super::{
    Banks, Drives, Family, GRID, N_EDGE, N_ORI, Out, QUOTAS, Stream, draw_voxel, drive, gauss,
    image_features, pool_edges, render_dead_leaves, rng_for, staged, standardise, zscore_columns,
};
use crate::algonauts::{CLASSES, HEMIS};
use crate::npy;
use crate::pickle::{self, Mapping};

/// Every ROI name of each class, in label order (label = position + 1), as
/// the devkit lists them.
pub const ROI_NAMES: [(&str, &[&str]); 6] = [
    (
        "prf-visualrois",
        &["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"],
    ),
    ("floc-bodies", &["EBA", "FBA-1", "FBA-2", "mTL-bodies"]),
    (
        "floc-faces",
        &["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"],
    ),
    ("floc-places", &["OPA", "PPA", "RSC"]),
    (
        "floc-words",
        &["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"],
    ),
    (
        "streams",
        &[
            "early",
            "midventral",
            "midlateral",
            "midparietal",
            "ventral",
            "lateral",
            "parietal",
        ],
    ),
];

/// The ROI on lh vertices only.
pub const LH_ONLY_ROI: (&str, &str) = ("floc-words", "mTL-words");
/// The ROI in its mapping but on no vertex.
pub const ABSENT_ROI: (&str, &str) = ("floc-faces", "aTL-faces");

/// NSD's 73k image ids are 0..73000.
const NSD_IDS: u32 = 73_000;

#[derive(Debug, Clone, PartialEq)]
pub struct AlgonautsSynthConfig {
    pub seed: u64,
    pub n_train: usize,
    pub n_test: usize,
    pub image_size: usize,
    pub vertices_lh: usize,
    pub vertices_rh: usize,
    /// Vertices per hemisphere of the fsaverage-space masks (163,842 in the real data).
    pub fsaverage_len: usize,
}

impl Default for AlgonautsSynthConfig {
    fn default() -> Self {
        AlgonautsSynthConfig {
            seed: 0,
            n_train: 200,
            n_test: 20,
            image_size: 64,
            vertices_lh: 120,
            vertices_rh: 130,
            fsaverage_len: 500,
        }
    }
}

impl AlgonautsSynthConfig {
    pub fn validate(&self) -> io::Result<()> {
        let fail = |msg: String| Err(io::Error::new(ErrorKind::InvalidInput, msg));
        if self.n_train < 2 {
            return fail(format!(
                "n_train = {}; the fMRI is z-scored per vertex, which needs at least 2 training images",
                self.n_train
            ));
        }
        if self.n_train > 9999 || self.n_test > 9999 {
            return fail(format!(
                "n_train = {}, n_test = {}; image names have 4 digits (train-0001...), so at most 9999 each",
                self.n_train, self.n_test
            ));
        }
        if self.image_size < 16 {
            return fail(format!(
                "image_size = {} is too small for the 8×8 feature grid at two scales; set image_size to 16 or more",
                self.image_size
            ));
        }
        for (hemi, v) in [("lh", self.vertices_lh), ("rh", self.vertices_rh)] {
            if v == 0 || v > self.fsaverage_len {
                return fail(format!(
                    "vertices_{hemi} = {v}; each hemisphere needs 1 to fsaverage_len = {} challenge vertices",
                    self.fsaverage_len
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct AlgonautsSynthReport {
    pub out_dir: PathBuf,
    /// Every file written, relative to `out_dir`, sorted.
    pub files: Vec<PathBuf>,
    /// NSD ids of the training then the test images, as in their names.
    pub nsd_ids: Vec<u32>,
    /// Per hemisphere (lh, rh) and challenge vertex: Pearson r over the
    /// training images between the written response and its noise-free
    /// signal (0 for pure-noise vertices), the best any model can reach.
    pub ceiling_r: [Vec<f64>; 2],
}

/// Writes a synthetic Algonauts subject to `out_dir` (e.g. `.../subj01`),
/// which must not exist yet; written aside and renamed into place, like
/// [`super::generate`].
pub fn generate_algonauts(
    cfg: &AlgonautsSynthConfig,
    out_dir: &Path,
) -> io::Result<AlgonautsSynthReport> {
    cfg.validate()?;
    let mut report = staged(out_dir, |dir| write_subject(cfg, dir))?;
    report.out_dir = out_dir.to_path_buf();
    Ok(report)
}

/// One challenge vertex as drawn.
struct Vertex {
    /// Label names per class, in [`CLASSES`] order ("" = 0).
    labels: [&'static str; 6],
    signal: Option<Vec<f64>>,
    /// Noise sd relative to the unit-variance signal.
    sigma: f64,
}

fn write_subject(cfg: &AlgonautsSynthConfig, dir: &Path) -> io::Result<AlgonautsSynthReport> {
    let (s, n) = (cfg.image_size, cfg.n_train + cfg.n_test);
    let img_len = s * s * 3;
    let mut images = vec![0u8; n * img_len];
    let mut banks = Banks::default();
    let (mut canvas, mut gray, mut half) = (vec![0.0; img_len], Vec::new(), Vec::new());
    for (i, img) in images.chunks_exact_mut(img_len).enumerate() {
        let mut rng = rng_for(cfg.seed, Stream::AlgonautsImage, i as u64);
        render_dead_leaves(&mut rng, s, &mut canvas, img);
        image_features(img, s, &mut gray, &mut half, &mut banks);
    }
    let z = Drives {
        n,
        edges: zscore_columns(&banks.edges, n),
        coarse: zscore_columns(&pool_edges(&banks.edges, 2), n),
        quadrants: zscore_columns(&pool_edges(&banks.edges, 4), n),
        global: zscore_columns(&banks.global, n),
    };
    let pixels = zscore_columns(&banks.pixels, n);

    let mut out = Out {
        dir,
        files: Vec::new(),
    };
    let nsd_ids = draw_nsd_ids(&mut rng_for(cfg.seed, Stream::AlgonautsLayout, 0), n);
    for (i, img) in images.chunks_exact(img_len).enumerate() {
        let rel = if i < cfg.n_train {
            format!(
                "training_split/training_images/train-{:04}_nsd-{:05}.png",
                i + 1,
                nsd_ids[i]
            )
        } else {
            format!(
                "test_split/test_images/test-{:04}_nsd-{:05}.png",
                i - cfg.n_train + 1,
                nsd_ids[i]
            )
        };
        out.file(&rel, |p| write_png(p, img, s))?;
    }
    if cfg.n_test == 0 {
        fs::create_dir_all(dir.join("test_split/test_images"))?;
    }

    let mut ceiling_r: [Vec<f64>; 2] = Default::default();
    for (h, (hemi, n_vert)) in HEMIS
        .iter()
        .zip([cfg.vertices_lh, cfg.vertices_rh])
        .enumerate()
    {
        let mut layout = rng_for(cfg.seed, Stream::AlgonautsLayout, 1 + h as u64);
        let fs_index = choose_sorted(&mut layout, cfg.fsaverage_len, n_vert);
        let mut vertices = draw_vertices(
            &mut rng_for(cfg.seed, Stream::AlgonautsVertices, h as u64),
            n_vert,
            &z,
            &pixels,
        );
        deal_floc_labels(&mut layout, &mut vertices, *hemi == "lh");

        // fMRI: training images only, z-scored per vertex over them.
        let mut noise = rng_for(cfg.seed, Stream::AlgonautsNoise, h as u64);
        let mut fmri = vec![0f32; cfg.n_train * n_vert];
        let mut resp = vec![0.0f64; cfg.n_train];
        for (j, v) in vertices.iter().enumerate() {
            for (i, r) in resp.iter_mut().enumerate() {
                let signal = v.signal.as_ref().map_or(0.0, |sig| sig[i]);
                *r = signal + v.sigma * gauss(&mut noise);
            }
            standardise(&mut resp);
            for (i, &r) in resp.iter().enumerate() {
                fmri[i * n_vert + j] = r as f32;
            }
            ceiling_r[h].push(match &v.signal {
                Some(sig) => pearson(&resp, &sig[..cfg.n_train]),
                None => 0.0,
            });
        }
        out.file(
            &format!("training_split/training_fmri/{hemi}_training_fmri.npy"),
            |p| npy::write(p, &[cfg.n_train, n_vert], &fmri),
        )?;

        let mut all = vec![0f64; cfg.fsaverage_len];
        fs_index.iter().for_each(|&f| all[f] = 1.0);
        out.file(
            &format!("roi_masks/{hemi}.all-vertices_fsaverage_space.npy"),
            |p| npy::write(p, &[cfg.fsaverage_len], &all),
        )?;
        for (c, class) in CLASSES.iter().enumerate() {
            let mapping = class_mapping(class);
            let label_of = |name: &str| -> i64 {
                if name.is_empty() {
                    return 0;
                }
                *mapping
                    .iter()
                    .find(|(_, n)| n.as_str() == name)
                    .unwrap_or_else(|| panic!("{name} is not a ROI of {class}"))
                    .0
            };
            let challenge: Vec<i64> = vertices.iter().map(|v| label_of(v.labels[c])).collect();
            let mut fsaverage = vec![0f64; cfg.fsaverage_len];
            for (&f, &l) in fs_index.iter().zip(&challenge) {
                fsaverage[f] = l as f64;
            }
            out.file(
                &format!("roi_masks/{hemi}.{class}_challenge_space.npy"),
                |p| npy::write(p, &[n_vert], &challenge),
            )?;
            out.file(
                &format!("roi_masks/{hemi}.{class}_fsaverage_space.npy"),
                |p| npy::write(p, &[cfg.fsaverage_len], &fsaverage),
            )?;
        }
    }
    for class in CLASSES {
        out.file(&format!("roi_masks/mapping_{class}.npy"), |p| {
            pickle::write_mapping(p, &class_mapping(class))
        })?;
    }
    out.files.sort();
    Ok(AlgonautsSynthReport {
        out_dir: dir.to_path_buf(),
        files: out.files,
        nsd_ids,
        ceiling_r,
    })
}

/// {0: "Unknown", 1: first ROI, ...} for a class.
pub fn class_mapping(class: &str) -> Mapping {
    let (_, names) = ROI_NAMES
        .iter()
        .find(|(c, _)| *c == class)
        .unwrap_or_else(|| panic!("no ROI class {class}"));
    std::iter::once((0, "Unknown".to_string()))
        .chain(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (i as i64 + 1, n.to_string())),
        )
        .collect()
}

/// `n` distinct ids in 0..73000, in draw order.
fn draw_nsd_ids(rng: &mut Pcg64, n: usize) -> Vec<u32> {
    let mut seen = std::collections::BTreeSet::new();
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let id = rng.random_range(0..NSD_IDS);
        if seen.insert(id) {
            ids.push(id);
        }
    }
    ids
}

/// `k` distinct values of 0..n, ascending (challenge vertices are in fsaverage order).
fn choose_sorted(rng: &mut Pcg64, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = rng.random_range(i..n);
        all.swap(i, j);
    }
    let mut pick = all[..k].to_vec();
    pick.sort_unstable();
    pick
}

/// One hemisphere's vertices in a shuffled order, families in the NSD
/// subject's proportions.
fn draw_vertices(rng: &mut Pcg64, n_vert: usize, z: &Drives, pixels: &[f64]) -> Vec<Vertex> {
    let families = super::shuffled_families(rng, n_vert);
    // Alternating counts per family put every ROI in both hemispheres: early
    // pRFs alternate between the upper (ventral) and lower (dorsal) field and
    // mid vertices cycle through the three mid streams (their signal does not
    // depend on which).
    let mut count = [0usize; QUOTAS.len()];
    families
        .into_iter()
        .map(|fam| {
            let k = QUOTAS.iter().position(|(f, _)| *f == fam).unwrap_or(0);
            count[k] += 1;
            let nth = count[k];
            let (stream, prf, signal) = match fam {
                Family::V1 | Family::V2 | Family::V3 => {
                    early_vertex(fam, rng, z, pixels, nth % 2 == 1)
                }
                Family::Mid => {
                    let v = draw_voxel(fam, rng, z);
                    let stream = ["midventral", "midlateral", "midparietal"][nth % 3];
                    (stream, v.labels[2], v.signal)
                }
                _ => {
                    let v = draw_voxel(fam, rng, z);
                    let [_, stream, prf] = v.labels;
                    (stream, prf, v.signal)
                }
            };
            let early = matches!(fam, Family::V1 | Family::V2 | Family::V3 | Family::Hv4);
            let sigma = if early {
                rng.random_range(0.35..0.9)
            } else {
                rng.random_range(0.7..1.8)
            };
            let known = |l: &'static str| if l == "Unknown" { "" } else { l };
            let mut labels = [""; 6];
            labels[0] = known(prf);
            labels[5] = known(stream);
            Vertex {
                labels,
                signal,
                sigma,
            }
        })
        .collect()
}

/// A V1–V3 vertex: oriented energy and luminance inside a Gaussian pRF (in
/// cells of the 8×8 grid) centred in the upper or lower half of the image,
/// V1 preferring the fine scale. Returns the streams
/// and prf-visualrois labels and the unit-variance signal over all images.
fn early_vertex(
    fam: Family,
    rng: &mut Pcg64,
    z: &Drives,
    pixels: &[f64],
    upper: bool,
) -> (&'static str, &'static str, Option<Vec<f64>>) {
    let (sizes, scale_w, names) = match fam {
        Family::V1 => ((1.0, 1.4), [0.7, 0.3], ["V1v", "V1d"]),
        Family::V2 => ((1.3, 1.8), [0.5, 0.5], ["V2v", "V2d"]),
        _ => ((1.7, 2.4), [0.35, 0.65], ["V3v", "V3d"]),
    };
    let top = (GRID - 1) as f64;
    let mid = top / 2.0;
    let cx: f64 = rng.random_range(0.5..top - 0.5);
    let cy: f64 = if upper {
        rng.random_range(0.5..mid)
    } else {
        rng.random_range(mid..top - 0.5)
    };
    let sigma: f64 = rng.random_range(sizes.0..sizes.1);
    let pref: f64 = rng.random_range(0.0..std::f64::consts::PI);
    let sharp: f64 = rng.random_range(0.2..0.8);
    let prf_weight = |cell: usize| {
        let (dy, dx) = ((cell / GRID) as f64 - cy, (cell % GRID) as f64 - cx);
        (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
    };
    let w: Vec<f64> = (0..N_EDGE)
        .map(|k| {
            let (ch, cell) = (k / (GRID * GRID), k % (GRID * GRID));
            let (scale, ori) = (ch / N_ORI, ch % N_ORI);
            let tuning =
                1.0 + sharp * (2.0 * (ori as f64 * std::f64::consts::PI / 4.0 - pref)).cos();
            scale_w[scale] * tuning * prf_weight(cell)
        })
        .collect();
    let energy = drive(&z.edges, &w);
    let wl: Vec<f64> = (0..GRID * GRID).map(prf_weight).collect();
    let lum = drive(pixels, &wl);
    let polarity = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let mix: f64 = rng.random_range(0.25..0.5);
    let mut s: Vec<f64> = energy
        .iter()
        .zip(&lum)
        .map(|(e, l)| e + mix * polarity * l)
        .collect();
    standardise(&mut s);
    // Ventral banks map the upper visual field (image rows above centre).
    let prf = names[usize::from(!upper)];
    let mut stream = "early";
    if fam == Family::V3 && rng.random_bool(0.2) {
        stream = if prf == "V3v" {
            "midventral"
        } else {
            "midparietal"
        };
    }
    (stream, prf, Some(s))
}

/// The floc classes, dealt round-robin over shuffled candidate vertices of
/// the streams they sit in; about two thirds of the candidates get a label.
/// `mTL-words` is dealt in lh only and `aTL-faces` never.
fn deal_floc_labels(rng: &mut Pcg64, vertices: &mut [Vertex], lh: bool) {
    let deals: [(usize, &[&str], &[&'static str]); 4] = [
        (
            1,
            &["ventral", "lateral"],
            &["EBA", "FBA-1", "FBA-2", "mTL-bodies"],
        ),
        (
            2,
            &["ventral", "lateral"],
            &["OFA", "FFA-1", "FFA-2", "mTL-faces"],
        ),
        (3, &["ventral", "parietal"], &["OPA", "PPA", "RSC"]),
        (
            4,
            &["ventral", "lateral"],
            if lh {
                &["OWFA", "VWFA-1", "VWFA-2", "mfs-words", "mTL-words"]
            } else {
                &["OWFA", "VWFA-1", "VWFA-2", "mfs-words"]
            },
        ),
    ];
    for (class, streams, rois) in deals {
        let mut cand: Vec<usize> = (0..vertices.len())
            .filter(|&j| streams.contains(&vertices[j].labels[5]))
            .collect();
        for i in (1..cand.len()).rev() {
            cand.swap(i, rng.random_range(0..=i));
        }
        let take = (cand.len() * 2).div_ceil(3);
        for (k, &j) in cand[..take].iter().enumerate() {
            vertices[j].labels[class] = rois[k % rois.len()];
        }
    }
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    standardise(&mut a);
    standardise(&mut b);
    a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64
}

/// An 8-bit RGB PNG (fixed compression and filter, so the bytes are stable).
fn write_png(path: &Path, rgb: &[u8], s: usize) -> io::Result<()> {
    let mut enc = png::Encoder::new(BufWriter::new(File::create(path)?), s as u32, s as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Default);
    enc.set_filter(png::FilterType::Paeth);
    let mut w = enc.write_header().map_err(io::Error::other)?;
    w.write_image_data(rgb).map_err(io::Error::other)?;
    w.finish().map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algonauts::AlgonautsSubject;

    /// Writes the default subject to `$RUNNER_ALGONAUTS_OUT` for
    /// `scripts/check_algonauts_synth.py`.
    #[test]
    #[ignore = "writes to $RUNNER_ALGONAUTS_OUT for the Python check"]
    fn write_algonauts_subject_for_check() {
        let out = std::env::var_os("RUNNER_ALGONAUTS_OUT").expect("set RUNNER_ALGONAUTS_OUT");
        let report = generate_algonauts(&AlgonautsSynthConfig::default(), Path::new(&out)).unwrap();
        println!(
            "wrote {} files to {}",
            report.files.len(),
            report.out_dir.display()
        );
    }

    #[test]
    fn subject_opens_with_the_documented_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("subj01");
        let cfg = AlgonautsSynthConfig::default();
        let report = generate_algonauts(&cfg, &dir).unwrap();
        // 220 PNGs, 2 fMRI, 2 all-vertices masks, 6 mappings, 6 × 2 × 2 class masks.
        assert_eq!(report.files.len(), 220 + 2 + 2 + 6 + 24);
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "staging dir left behind"
        );
        let subj = AlgonautsSubject::open(&dir).unwrap();
        assert_eq!((subj.train_images.len(), subj.test_images.len()), (200, 20));
        assert!(subj.missing_classes.is_empty());
        let mut inputs: Vec<PathBuf> = subj
            .input_files()
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().to_path_buf())
            .collect();
        inputs.sort();
        assert_eq!(
            inputs, report.files,
            "input_files() is every file of the subject"
        );
        let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            name(&subj.train_images[0]),
            format!("train-0001_nsd-{:05}.png", report.nsd_ids[0])
        );
        assert_eq!(
            name(&subj.test_images[19]),
            format!("test-0020_nsd-{:05}.png", report.nsd_ids[219])
        );
        let mut ids = report.nsd_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 220, "NSD ids are distinct");
        for (h, v) in subj.hemis.iter().zip([120, 130]) {
            assert_eq!(
                (h.n_vertices, h.fsaverage_len, h.classes.len()),
                (v, 500, 6)
            );
            assert_eq!(
                npy::read_header(&h.fmri_file).unwrap(),
                (vec![200, v], "'<f4'".into())
            );
            for c in &h.classes {
                assert_eq!(c.mapping, class_mapping(&c.name));
                for (j, &f) in h.fsaverage_index.iter().enumerate() {
                    assert_eq!(c.fsaverage[f], c.challenge[j], "{} {}", h.name, c.name);
                }
                let on: usize = c.fsaverage.iter().filter(|&&l| l != 0).count();
                assert_eq!(on, c.challenge.iter().filter(|&&l| l != 0).count());
            }
        }
        // Every ROI is on vertices of both hemispheres, except the two by design.
        for (class, names) in ROI_NAMES {
            for roi in names {
                let n: Vec<usize> = subj
                    .hemis
                    .iter()
                    .map(|h| h.class(class).unwrap().vertices(roi).unwrap().len())
                    .collect();
                if (class, *roi) == LH_ONLY_ROI {
                    assert!(n[0] > 0 && n[1] == 0, "{roi}: {n:?}");
                } else if (class, *roi) == ABSENT_ROI {
                    assert_eq!(n, [0, 0], "{roi}");
                } else {
                    assert!(n[0] > 0 && n[1] > 0, "{class}/{roi}: {n:?}");
                }
            }
        }
        let img = crate::algonauts::read_rgb_png(&subj.train_images[3]).unwrap();
        assert_eq!(img.shape, [64, 64, 3]);
    }

    /// Early visual vertices carry a strong signal; pure-noise ones none.
    #[test]
    fn early_vertices_have_the_highest_ceiling() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let report = generate_algonauts(&AlgonautsSynthConfig::default(), &dir).unwrap();
        let subj = AlgonautsSubject::open(&dir).unwrap();
        for (h, ceiling) in subj.hemis.iter().zip(&report.ceiling_r) {
            let streams = h.class("streams").unwrap();
            let median = |label: i64| {
                let mut r: Vec<f64> = (0..h.n_vertices)
                    .filter(|&j| streams.challenge[j] == label && ceiling[j] > 0.0)
                    .map(|j| ceiling[j])
                    .collect();
                r.sort_by(f64::total_cmp);
                r[r.len() / 2]
            };
            let (early, ventral) = (median(1), median(5));
            println!(
                "{}: median ceiling r early {early:.2}, ventral {ventral:.2}",
                h.name
            );
            assert!(early > 0.75 && early > ventral, "{early} {ventral}");
        }
    }

    #[test]
    fn same_config_same_bytes_and_seed_changes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = AlgonautsSynthConfig {
            n_train: 30,
            n_test: 3,
            ..Default::default()
        };
        let a = generate_algonauts(&cfg, &tmp.path().join("a")).unwrap();
        let b = generate_algonauts(&cfg, &tmp.path().join("b")).unwrap();
        assert_eq!(a.files, b.files);
        for rel in &a.files {
            let same =
                fs::read(a.out_dir.join(rel)).unwrap() == fs::read(b.out_dir.join(rel)).unwrap();
            assert!(same, "{} differs between identical runs", rel.display());
        }
        let c = generate_algonauts(
            &AlgonautsSynthConfig { seed: 1, ..cfg },
            &tmp.path().join("c"),
        )
        .unwrap();
        assert_ne!(a.nsd_ids, c.nsd_ids);
        for rel in [
            "training_split/training_fmri/rh_training_fmri.npy",
            "roi_masks/lh.streams_challenge_space.npy",
        ] {
            assert_ne!(
                fs::read(a.out_dir.join(rel)).unwrap(),
                fs::read(c.out_dir.join(rel)).unwrap(),
                "{rel}"
            );
        }
        let err = generate_algonauts(&cfg, &a.out_dir).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn bad_config_is_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = [
            (
                AlgonautsSynthConfig {
                    n_train: 1,
                    ..Default::default()
                },
                "n_train",
            ),
            (
                AlgonautsSynthConfig {
                    image_size: 8,
                    ..Default::default()
                },
                "image_size",
            ),
            (
                AlgonautsSynthConfig {
                    vertices_rh: 501,
                    ..Default::default()
                },
                "vertices_rh",
            ),
            (
                AlgonautsSynthConfig {
                    n_test: 10_000,
                    ..Default::default()
                },
                "9999",
            ),
        ];
        for (cfg, word) in bad {
            let err = generate_algonauts(&cfg, &tmp.path().join("x")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(word), "{err}");
        }
        assert!(!tmp.path().join("x").exists());
        // No test images still gives the (empty) test folder the layout needs.
        let cfg = AlgonautsSynthConfig {
            n_train: 5,
            n_test: 0,
            ..Default::default()
        };
        generate_algonauts(&cfg, &tmp.path().join("y")).unwrap();
        assert!(
            AlgonautsSubject::open(&tmp.path().join("y"))
                .unwrap()
                .test_images
                .is_empty()
        );
    }
}
