//! The Algonauts 2023 challenge's subject layout, read as its devkit reads it.
//!
//! ```text
//! <subject>/                                   e.g. subj01/
//!   training_split/training_fmri/{lh,rh}_training_fmri.npy   float32 (or float64) N_train × V_hemi
//!   training_split/training_images/*.png       sorted by name: row i of the fMRI is the i-th image
//!   test_split/test_images/*.png               sorted by name; no fMRI
//!   roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy       0/1 per fsaverage vertex (length F_hemi);
//!                                              challenge vertex j is the j-th 1 (so V_hemi = count of 1s)
//!   roi_masks/{lh,rh}.<class>_fsaverage_space.npy            integer ROI label per fsaverage vertex (F_hemi)
//!   roi_masks/{lh,rh}.<class>_challenge_space.npy            integer ROI label per challenge vertex (V_hemi)
//!   roi_masks/mapping_<class>.npy              np.save of a dict {label: ROI name} (src/pickle.rs)
//! ```
//! for the six [`CLASSES`]. A class whose five files are all absent is simply
//! not available ([`AlgonautsSubject::missing_classes`]); one with only some
//! of them is an error naming a missing file. Masks may be stored with any
//! integer or float dtype holding integral values (the challenge's own files
//! are float64 or int); label 0 means "outside every ROI of the class". The
//! fsaverage length is whatever the masks say (163,842 for the real data).
//!
//! [`AlgonautsSubject::open`] checks the whole layout up front, reading only
//! `.npy` headers for the fMRI and the small masks in full; the fMRI is read
//! by [`AlgonautsSubject::read_fmri`] and images by [`read_rgb_png`].
//! `runner::synth::algonauts` writes a synthetic subject in this layout.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::error::{Error, IoContext, Result};
use crate::npy::{self, Array};
use crate::nsd::VoxelTable;
use crate::pickle::{self, Mapping};

pub const FORMAT: &str = "algonauts2023";

/// The ROI classes of the challenge, in the devkit's order.
pub const CLASSES: [&str; 6] = [
    "prf-visualrois",
    "floc-bodies",
    "floc-faces",
    "floc-places",
    "floc-words",
    "streams",
];

pub const HEMIS: [&str; 2] = ["lh", "rh"];

#[derive(Debug, Clone, PartialEq)]
pub struct AlgonautsSubject {
    pub dir: PathBuf,
    /// `training_split/training_images/*.png`, sorted: fMRI row i is image i.
    pub train_images: Vec<PathBuf>,
    /// `test_split/test_images/*.png`, sorted (the devkit's `idxs_test` order).
    pub test_images: Vec<PathBuf>,
    /// lh then rh.
    pub hemis: Vec<Hemisphere>,
    /// Classes of [`CLASSES`] with no files at all in this subject.
    pub missing_classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hemisphere {
    /// "lh" or "rh".
    pub name: String,
    pub fmri_file: PathBuf,
    /// V: columns of the fMRI, challenge-space vertices.
    pub n_vertices: usize,
    /// F: length of the fsaverage-space masks.
    pub fsaverage_len: usize,
    /// Challenge vertex j → its fsaverage vertex (ascending; the j-th 1 of the all-vertices mask).
    pub fsaverage_index: Vec<usize>,
    /// The available classes, in [`CLASSES`] order.
    pub classes: Vec<RoiClass>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoiClass {
    pub name: String,
    /// {label: ROI name} from `mapping_<class>.npy` (usually with 0 → "Unknown").
    pub mapping: Mapping,
    /// Label per challenge vertex (length V).
    pub challenge: Vec<i64>,
    /// Label per fsaverage vertex (length F).
    pub fsaverage: Vec<i64>,
}

impl RoiClass {
    /// The mapping's ROIs in label order, without label 0: the devkit's bar-plot order.
    pub fn roi_names(&self) -> Vec<&str> {
        self.mapping
            .iter()
            .filter(|(l, _)| **l != 0)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// Challenge vertices of ROI `roi` (exact name), as the devkit selects them:
    /// `np.where(challenge == key)` for the first label named `roi`. Empty when
    /// no vertex has it; None when the mapping has no such ROI.
    pub fn vertices(&self, roi: &str) -> Option<Vec<usize>> {
        let (&label, _) = self.mapping.iter().find(|(l, n)| **l != 0 && *n == roi)?;
        Some(
            self.challenge
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l == label)
                .map(|(j, _)| j)
                .collect(),
        )
    }
}

impl Hemisphere {
    pub fn class(&self, name: &str) -> Option<&RoiClass> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// Paths of the layout, relative to the subject directory.
pub fn fmri_path(dir: &Path, hemi: &str) -> PathBuf {
    dir.join("training_split/training_fmri")
        .join(format!("{hemi}_training_fmri.npy"))
}
pub fn train_images_dir(dir: &Path) -> PathBuf {
    dir.join("training_split/training_images")
}
pub fn test_images_dir(dir: &Path) -> PathBuf {
    dir.join("test_split/test_images")
}
pub fn all_vertices_path(dir: &Path, hemi: &str) -> PathBuf {
    dir.join("roi_masks")
        .join(format!("{hemi}.all-vertices_fsaverage_space.npy"))
}
pub fn fsaverage_mask_path(dir: &Path, hemi: &str, class: &str) -> PathBuf {
    dir.join("roi_masks")
        .join(format!("{hemi}.{class}_fsaverage_space.npy"))
}
pub fn challenge_mask_path(dir: &Path, hemi: &str, class: &str) -> PathBuf {
    dir.join("roi_masks")
        .join(format!("{hemi}.{class}_challenge_space.npy"))
}
pub fn mapping_path(dir: &Path, class: &str) -> PathBuf {
    dir.join("roi_masks").join(format!("mapping_{class}.npy"))
}

/// The five files of one class: mapping, then per hemisphere fsaverage and challenge masks.
fn class_files(dir: &Path, class: &str) -> Vec<PathBuf> {
    let mut files = vec![mapping_path(dir, class)];
    for hemi in HEMIS {
        files.push(fsaverage_mask_path(dir, hemi, class));
        files.push(challenge_mask_path(dir, hemi, class));
    }
    files
}

impl AlgonautsSubject {
    /// Reads the layout and checks that it is consistent; see the module docs.
    pub fn open(dir: &Path) -> Result<AlgonautsSubject> {
        if !dir.is_dir() {
            return Err(Error::data(dir, "no such directory").with_help(
                "an Algonauts 2023 subject directory (e.g. subj01/) holds training_split/, \
                 test_split/ and roi_masks/",
            ));
        }
        let train_images = list_pngs(&train_images_dir(dir))?;
        if train_images.is_empty() {
            return Err(Error::data(
                train_images_dir(dir),
                "holds no .png images; it should hold one per row of the training fMRI",
            ));
        }
        let test_images = list_pngs(&test_images_dir(dir))?;

        let mut hemis = Vec::new();
        for name in HEMIS {
            let fmri_file = fmri_path(dir, name);
            let (shape, dtype) = header(&fmri_file).map_err(|e| {
                e.with_help(
                    "the Algonauts layout has one training fMRI per hemisphere, \
                     training_split/training_fmri/{lh,rh}_training_fmri.npy",
                )
            })?;
            let descr = dtype.trim_matches('\'');
            let is_float = matches!(descr.get(1..), Some("f4" | "f8"));
            let [rows, n_vertices] = shape[..] else {
                return Err(Error::data(
                    &fmri_file,
                    format!("shape is {shape:?}; the fMRI is images × vertices (2-d)"),
                ));
            };
            if !is_float {
                return Err(Error::data(
                    &fmri_file,
                    format!("dtype is {dtype}; the fMRI must be float32 (or float64)"),
                ));
            }
            if rows != train_images.len() {
                return Err(Error::data(
                    &fmri_file,
                    format!(
                        "has {rows} rows but {} holds {} .png images; row i of the fMRI is the \
                         i-th training image in sorted order, so they must match",
                        train_images_dir(dir).display(),
                        train_images.len()
                    ),
                ));
            }
            let all_file = all_vertices_path(dir, name);
            let all = read_labels(&all_file, None)?;
            if let Some((i, x)) = all.iter().enumerate().find(|(_, x)| !matches!(x, 0 | 1)) {
                return Err(Error::data(
                    &all_file,
                    format!(
                        "vertex {i} holds {x}; the all-vertices mask is 0 or 1 per fsaverage vertex"
                    ),
                ));
            }
            let fsaverage_index: Vec<usize> = (0..all.len()).filter(|&i| all[i] == 1).collect();
            if fsaverage_index.len() != n_vertices {
                return Err(Error::data(
                    &all_file,
                    format!(
                        "marks {} challenge vertices but {} has {n_vertices} columns; \
                         challenge vertex j is the j-th 1 of this mask, so the counts must match",
                        fsaverage_index.len(),
                        fmri_file.display()
                    ),
                ));
            }
            hemis.push(Hemisphere {
                name: name.to_string(),
                fmri_file,
                n_vertices,
                fsaverage_len: all.len(),
                fsaverage_index,
                classes: Vec::new(),
            });
        }

        let mut missing_classes = Vec::new();
        for class in CLASSES {
            let files = class_files(dir, class);
            let present: Vec<&PathBuf> = files.iter().filter(|p| p.exists()).collect();
            if present.is_empty() {
                missing_classes.push(class.to_string());
                continue;
            }
            if let Some(absent) = files.iter().find(|p| !p.exists()) {
                let names: Vec<String> = present
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                    .collect();
                return Err(Error::data(absent, "missing file in the subject directory")
                    .with_help(format!(
                        "class `{class}` needs five files (its mapping and both hemispheres' \
                         fsaverage- and challenge-space masks) and only {} are present; \
                         restore this one, or remove them all to go without the class",
                        names.join(", ")
                    )));
            }
            let mapping_file = mapping_path(dir, class);
            let mapping = pickle::read_mapping(&mapping_file)?;
            for hemi in &mut hemis {
                let fs_file = fsaverage_mask_path(dir, &hemi.name, class);
                let ch_file = challenge_mask_path(dir, &hemi.name, class);
                let fsaverage = read_labels(&fs_file, Some((hemi.fsaverage_len, "fsaverage")))?;
                let challenge = read_labels(&ch_file, Some((hemi.n_vertices, "challenge")))?;
                for (file, labels) in [(&fs_file, &fsaverage), (&ch_file, &challenge)] {
                    if let Some((i, l)) = labels
                        .iter()
                        .enumerate()
                        .find(|(_, l)| **l != 0 && !mapping.contains_key(l))
                    {
                        return Err(Error::data(
                            file,
                            format!(
                                "vertex {i} has label {l}, which {} does not name (its labels: {})",
                                mapping_file.display(),
                                list_labels(&mapping)
                            ),
                        ));
                    }
                }
                hemi.classes.push(RoiClass {
                    name: class.to_string(),
                    mapping: mapping.clone(),
                    challenge,
                    fsaverage,
                });
            }
        }
        Ok(AlgonautsSubject {
            dir: dir.to_path_buf(),
            train_images,
            test_images,
            hemis,
            missing_classes,
        })
    }

    pub fn hemi(&self, name: &str) -> Option<&Hemisphere> {
        self.hemis.iter().find(|h| h.name == name)
    }

    /// The hemisphere's training fMRI, N_train × V (float64 files are rounded).
    pub fn read_fmri(&self, hemi: &Hemisphere) -> Result<Array<f32>> {
        let path = &hemi.fmri_file;
        let arr = npy::read_f32(path)
            .map_err(|e| Error::data(path, format!("not a readable .npy: {e}")))?;
        let want = [self.train_images.len(), hemi.n_vertices];
        if arr.shape[..] != want {
            return Err(Error::data(
                path,
                format!(
                    "shape is {:?}, expected {want:?} (it changed since the subject was opened)",
                    arr.shape
                ),
            ));
        }
        if let Some(k) = arr.data.iter().position(|x| !x.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "non-finite response {} at image {}, vertex {}",
                    arr.data[k],
                    k / hemi.n_vertices,
                    k % hemi.n_vertices
                ),
            )
            .with_help("fix the data or drop the vertex"));
        }
        Ok(arr)
    }

    /// Every file whose bytes the subject's data depend on (for cache keys):
    /// the images, the fMRI, the all-vertices masks and the available classes' files.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.train_images.clone();
        files.extend(self.test_images.iter().cloned());
        for h in &self.hemis {
            files.push(h.fmri_file.clone());
            files.push(all_vertices_path(&self.dir, &h.name));
        }
        for class in CLASSES {
            if !self.missing_classes.iter().any(|m| m == class) {
                files.extend(class_files(&self.dir, class));
            }
        }
        files
    }

    /// One row per challenge vertex, lh then rh: `index` is the vertex's
    /// column in its hemisphere's fMRI, `ncsnr` is NaN (the challenge ships no
    /// noise ceiling), and one label column per available class holds the ROI
    /// name ("" for label 0).
    pub fn voxel_table(&self) -> VoxelTable {
        let mut table = VoxelTable {
            hemi: Vec::new(),
            index: Vec::new(),
            ncsnr: Vec::new(),
            labels: IndexMap::new(),
        };
        for h in &self.hemis {
            table
                .hemi
                .extend(std::iter::repeat_n(h.name.clone(), h.n_vertices));
            table.index.extend(0..h.n_vertices as u32);
            table
                .ncsnr
                .extend(std::iter::repeat_n(f64::NAN, h.n_vertices));
            for class in &h.classes {
                let col = table.labels.entry(class.name.clone()).or_default();
                col.extend(class.challenge.iter().map(|l| match l {
                    0 => String::new(),
                    l => class.mapping[l].clone(),
                }));
            }
        }
        table
    }

    /// Challenge-space values onto the hemisphere's fsaverage vertices, zero
    /// elsewhere: the devkit's `m = zeros(F); m[where(all_vertices)] = values`.
    pub fn to_fsaverage(&self, hemi: &Hemisphere, values: &[f32]) -> Vec<f32> {
        assert_eq!(
            values.len(),
            hemi.n_vertices,
            "{} values for the {} challenge vertices of {}",
            values.len(),
            hemi.n_vertices,
            hemi.name
        );
        fsaverage_map(hemi.fsaverage_len, &hemi.fsaverage_index, values)
    }
}

/// `values[j]` of challenge vertex j placed at fsaverage vertex `index[j]` of
/// a mesh of `len` vertices, zero elsewhere (the devkit's fill).
pub fn fsaverage_map(len: usize, index: &[usize], values: &[f32]) -> Vec<f32> {
    let mut m = vec![0f32; len];
    for (&f, &v) in index.iter().zip(values) {
        m[f] = v;
    }
    m
}

/// The `.png` files of an image folder sorted by name, as the devkit's
/// `sorted(os.listdir(...))`. Hidden files (`.DS_Store`) are skipped; any
/// other non-PNG entry is an error, since the devkit would pair it with a row.
fn list_pngs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "missing folder in the subject directory")
            .with_help("the Algonauts layout has training_split/training_images/ and test_split/test_images/"));
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') {
            continue;
        }
        let png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if !png || !path.is_file() {
            return Err(Error::data(
                &path,
                "is not a .png image; every entry of this folder is paired, in sorted order, \
                 with a row of the fMRI (or a test prediction), so move it out",
            ));
        }
        out.push(path);
    }
    // Byte order of the names is code-point order, as Python sorts str.
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// "0, 1, 2, …" for messages, at most 20 labels.
fn list_labels(mapping: &Mapping) -> String {
    let mut text: Vec<String> = mapping.keys().take(20).map(|k| k.to_string()).collect();
    if mapping.len() > 20 {
        text.push(format!("… {} in all", mapping.len()));
    }
    text.join(", ")
}

/// Shape and dtype of a subject file's `.npy`, or an error naming the file.
fn header(path: &Path) -> Result<(Vec<usize>, String)> {
    if !path.is_file() {
        return Err(Error::data(path, "missing file in the subject directory"));
    }
    npy::read_header(path).map_err(|e| Error::data(path, format!("not a readable .npy: {e}")))
}

/// A 1-d mask of integral values (any numeric dtype), checked against the
/// expected length (and space, for the message) from its header first.
fn read_labels(path: &Path, want: Option<(usize, &str)>) -> Result<Vec<i64>> {
    let (shape, dtype) = header(path)?;
    let [len] = shape[..] else {
        return Err(Error::data(
            path,
            format!("shape is {shape:?}; a mask is 1-d, one value per vertex"),
        ));
    };
    if let Some((n, space)) = want
        && len != n
    {
        let what = match space {
            "fsaverage" => {
                "the hemisphere's fsaverage vertices (the length of its all-vertices mask)"
            }
            _ => "the hemisphere's challenge vertices (columns of its fMRI)",
        };
        return Err(Error::data(
            path,
            format!(
                "has {len} values but there are {n} of {what}; a {space}-space mask has one label per vertex"
            ),
        ));
    }
    let arr = npy::read_f64(path).map_err(|e| {
        Error::data(
            path,
            format!("dtype {dtype} is not a numeric mask runner can read: {e}"),
        )
    })?;
    arr.data
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 {
                Ok(x as i64)
            } else {
                Err(Error::data(
                    path,
                    format!("vertex {i} holds {x}, not an integer label"),
                ))
            }
        })
        .collect()
}

/// A PNG as `np.asarray(PIL.Image.open(path).convert('RGB'))`: H×W×3 uint8.
///
/// Matches Pillow 12 on every PNG colour type (`tests/fixtures/png/`): gray
/// is replicated into R, G, B; alpha and tRNS transparency are dropped, not
/// composited; palettes are looked up; 1/2/4-bit gray is scaled to 0–255.
/// 16-bit samples keep their high byte, except 16-bit gray (no alpha), which
/// Pillow opens as mode `I;16` and clips to 255 rather than scaling: a
/// 16-bit gray image that uses the full range comes out nearly white, as it
/// does in the devkit.
pub fn read_rgb_png(path: &Path) -> Result<Array<u8>> {
    let bad = |e: png::DecodingError| Error::data(path, format!("cannot read the PNG: {e}"));
    let file = File::open(path).at(path)?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // Palette → RGB(A), low-bit gray → 8-bit, tRNS → alpha; 16-bit stays 16-bit.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(bad)?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    let source = reader.info().color_type;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let wide = frame.bit_depth == png::BitDepth::Sixteen;
    let sample_bytes = if wide { 2 } else { 1 };
    let sample = |px: &[u8], c: usize| -> u8 {
        if !wide {
            return px[c];
        }
        let v = u16::from_be_bytes([px[2 * c], px[2 * c + 1]]);
        if source == png::ColorType::Grayscale {
            v.min(255) as u8 // Pillow's I;16 → RGB clips
        } else {
            (v >> 8) as u8
        }
    };
    let mut out = Vec::with_capacity(h * w * 3);
    for row in buf.chunks_exact(frame.line_size).take(h) {
        for px in row[..w * channels * sample_bytes].chunks_exact(channels * sample_bytes) {
            match frame.color_type {
                png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
                    let g = sample(px, 0);
                    out.extend([g, g, g]);
                }
                png::ColorType::Rgb | png::ColorType::Rgba => {
                    out.extend([sample(px, 0), sample(px, 1), sample(px, 2)]);
                }
                png::ColorType::Indexed => {
                    return Err(Error::data(
                        path,
                        "palette PNG was not expanded (png crate)",
                    ));
                }
            }
        }
    }
    Ok(Array::new(vec![h, w, 3], out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::algonauts::{AlgonautsSynthConfig, generate_algonauts};

    /// A fresh synthetic subject (the default: 200/20 images, lh 120, rh 130, F = 500).
    fn subject() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("subj01");
        generate_algonauts(&AlgonautsSynthConfig::default(), &dir).unwrap();
        (tmp, dir)
    }

    /// `open`'s error, which must name `file`.
    fn open_err(dir: &Path, file: &Path) -> String {
        let err = AlgonautsSubject::open(dir).unwrap_err().to_string();
        assert!(
            err.contains(&file.display().to_string()),
            "`{err}` does not name {}",
            file.display()
        );
        err
    }

    #[test]
    fn voxel_table_has_a_row_per_vertex_and_class_labels() {
        let (_tmp, dir) = subject();
        let subj = AlgonautsSubject::open(&dir).unwrap();
        let t = subj.voxel_table();
        assert_eq!(t.len(), 250);
        assert_eq!(
            (
                t.hemi[0].as_str(),
                t.hemi[119].as_str(),
                t.hemi[120].as_str()
            ),
            ("lh", "lh", "rh")
        );
        assert_eq!((t.index[119], t.index[120], t.index[249]), (119, 0, 129));
        assert!(t.ncsnr.iter().all(|x| x.is_nan()));
        assert_eq!(
            t.labels.keys().collect::<Vec<_>>(),
            CLASSES.iter().collect::<Vec<_>>()
        );
        for (row, (h, j)) in subj
            .hemis
            .iter()
            .flat_map(|h| (0..h.n_vertices).map(move |j| (h, j)))
            .enumerate()
        {
            for c in &h.classes {
                let want = match c.challenge[j] {
                    0 => "",
                    l => c.mapping[&l].as_str(),
                };
                assert_eq!(t.labels[&c.name][row], want);
            }
        }
        // The lh-only ROI: rows in lh, none in rh; the absent ROI nowhere.
        let words = &t.labels["floc-words"];
        let lh = (0..120).filter(|&i| words[i] == "mTL-words").count();
        let rh = (120..250).filter(|&i| words[i] == "mTL-words").count();
        assert!(lh > 0 && rh == 0, "{lh} {rh}");
        assert!(!t.labels["floc-faces"].iter().any(|l| l == "aTL-faces"));
        let rh_words = subj.hemi("rh").unwrap().class("floc-words").unwrap();
        assert!(rh_words.roi_names().contains(&"mTL-words"));
        assert_eq!(rh_words.vertices("mTL-words"), Some(vec![]));
        assert_eq!(rh_words.vertices("FFA-1"), None);
        // It is a voxel table like NSD's: it round-trips through a DataFrame.
        let df = t.to_dataframe().unwrap();
        assert_eq!(
            VoxelTable::from_dataframe(&df, Path::new("x"))
                .unwrap()
                .labels,
            t.labels
        );
    }

    #[test]
    fn to_fsaverage_places_values_on_the_all_vertices_mask() {
        let (_tmp, dir) = subject();
        let subj = AlgonautsSubject::open(&dir).unwrap();
        for h in &subj.hemis {
            let values: Vec<f32> = (0..h.n_vertices).map(|j| j as f32 + 1.0).collect();
            let m = subj.to_fsaverage(h, &values);
            assert_eq!(m.len(), 500);
            let mask = npy::read_f64(&all_vertices_path(&dir, &h.name))
                .unwrap()
                .data;
            let mut j = 0;
            for (f, &on) in mask.iter().enumerate() {
                if on == 1.0 {
                    assert_eq!(m[f], values[j], "{} vertex {j}", h.name);
                    j += 1;
                } else {
                    assert_eq!(m[f], 0.0);
                }
            }
            assert_eq!(j, h.n_vertices);
            let fmri = subj.read_fmri(h).unwrap();
            assert_eq!(fmri.shape, [200, h.n_vertices]);
        }
    }

    #[test]
    fn float64_fmri_is_read_as_float32() {
        let (_tmp, dir) = subject();
        let file = fmri_path(&dir, "lh");
        let f32s = npy::read_f32(&file).unwrap();
        let f64s: Vec<f64> = f32s.data.iter().map(|&x| x as f64).collect();
        npy::write(&file, &[200, 120], &f64s).unwrap();
        let subj = AlgonautsSubject::open(&dir).unwrap();
        assert_eq!(subj.read_fmri(&subj.hemis[0]).unwrap(), f32s);
        let mut bad = f64s;
        bad[121] = f64::NAN;
        npy::write(&file, &[200, 120], &bad).unwrap();
        let err = subj.read_fmri(&subj.hemis[0]).unwrap_err().to_string();
        assert!(
            err.contains("lh_training_fmri.npy") && err.contains("image 1, vertex 1"),
            "{err}"
        );
    }

    #[test]
    fn missing_rh_fmri_is_an_error_naming_it() {
        let (_tmp, dir) = subject();
        let file = fmri_path(&dir, "rh");
        std::fs::remove_file(&file).unwrap();
        let err = open_err(&dir, &file);
        assert!(err.contains("missing file"), "{err}");
    }

    #[test]
    fn fmri_rows_must_match_the_training_images() {
        let (_tmp, dir) = subject();
        let subj = AlgonautsSubject::open(&dir).unwrap();
        std::fs::remove_file(&subj.train_images[7]).unwrap();
        let err = open_err(&dir, &fmri_path(&dir, "lh"));
        assert!(
            err.contains("has 200 rows") && err.contains("199 .png"),
            "{err}"
        );
        // A stray non-PNG would be paired with a row by the devkit.
        let stray = train_images_dir(&dir).join("notes.txt");
        std::fs::write(&stray, "x").unwrap();
        open_err(&dir, &stray);
    }

    #[test]
    fn challenge_mask_of_the_wrong_length_is_an_error_naming_it() {
        let (_tmp, dir) = subject();
        let file = challenge_mask_path(&dir, "rh", "floc-faces");
        npy::write(&file, &[129], &vec![0i64; 129]).unwrap();
        let err = open_err(&dir, &file);
        assert!(err.contains("has 129 values but there are 130"), "{err}");
        let file = fsaverage_mask_path(&dir, "lh", "streams");
        npy::write(&file, &[2, 250], &vec![0f64; 500]).unwrap();
        npy::write(
            &challenge_mask_path(&dir, "rh", "floc-faces"),
            &[130],
            &[0u8; 130],
        )
        .unwrap();
        let err = open_err(&dir, &file);
        assert!(err.contains("1-d"), "{err}");
    }

    #[test]
    fn all_vertices_count_must_equal_the_fmri_columns() {
        let (_tmp, dir) = subject();
        let file = all_vertices_path(&dir, "lh");
        let mut mask = npy::read_f64(&file).unwrap().data;
        let off = mask.iter().position(|&x| x == 0.0).unwrap();
        mask[off] = 1.0;
        npy::write(&file, &[500], &mask).unwrap();
        let err = open_err(&dir, &file);
        assert!(
            err.contains("marks 121 challenge vertices") && err.contains("120 columns"),
            "{err}"
        );
        mask[off] = 2.0;
        npy::write(&file, &[500], &mask).unwrap();
        let err = open_err(&dir, &file);
        assert!(err.contains("0 or 1"), "{err}");
    }

    #[test]
    fn mapping_that_is_not_a_dict_is_an_error_naming_it() {
        let (_tmp, dir) = subject();
        let file = mapping_path(&dir, "streams");
        std::fs::copy(fixture("algonauts_mappings/list.npy"), &file).unwrap();
        let err = open_err(&dir, &file);
        assert!(
            err.contains("a mapping that is not a dict: found a list"),
            "{err}"
        );
    }

    #[test]
    fn labels_must_be_in_the_mapping() {
        let (_tmp, dir) = subject();
        let file = challenge_mask_path(&dir, "lh", "floc-places");
        let mut labels: Vec<i64> = npy::read_f64(&file)
            .unwrap()
            .data
            .iter()
            .map(|&x| x as i64)
            .collect();
        labels[5] = 9;
        npy::write(&file, &[120], &labels).unwrap();
        let err = open_err(&dir, &file);
        assert!(
            err.contains("vertex 5 has label 9") && err.contains("mapping_floc-places.npy"),
            "{err}"
        );
        labels[5] = 0;
        let half: Vec<f64> = labels.iter().map(|&l| l as f64 + 0.5).collect();
        npy::write(&file, &[120], &half).unwrap();
        let err = open_err(&dir, &file);
        assert!(err.contains("not an integer label"), "{err}");
        // Integer-valued floats and other integer dtypes are fine.
        let small: Vec<i16> = labels.iter().map(|&l| l as i16).collect();
        npy::write(&file, &[120], &small).unwrap();
        AlgonautsSubject::open(&dir).unwrap();
    }

    #[test]
    fn a_class_is_all_or_nothing() {
        let (_tmp, dir) = subject();
        let gone = fsaverage_mask_path(&dir, "rh", "floc-bodies");
        std::fs::remove_file(&gone).unwrap();
        let err = open_err(&dir, &gone);
        assert!(err.contains("missing file"), "{err}");
        for f in class_files(&dir, "floc-bodies") {
            let _ = std::fs::remove_file(f);
        }
        let subj = AlgonautsSubject::open(&dir).unwrap();
        assert_eq!(subj.missing_classes, ["floc-bodies"]);
        assert!(
            subj.hemis
                .iter()
                .all(|h| h.classes.len() == 5 && h.class("floc-bodies").is_none())
        );
        assert!(!subj.voxel_table().labels.contains_key("floc-bodies"));
        assert_eq!(subj.input_files().len(), 254 - 5);
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }

    /// Every colour type decodes to the bytes Pillow's convert('RGB') gives.
    #[test]
    fn png_conversion_matches_pillow() {
        let mut n = 0;
        for entry in std::fs::read_dir(fixture("png")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(case) = name.strip_suffix(".rgb.npy") else {
                continue;
            };
            let want = npy::read_u8(&path).unwrap();
            let got = read_rgb_png(&fixture(&format!("png/{case}.png"))).unwrap();
            assert_eq!(got.shape, want.shape, "{case}");
            assert!(
                got.data == want.data,
                "{case}: {:?} vs Pillow {:?}",
                got.data,
                want.data
            );
            n += 1;
        }
        assert!(n >= 18, "only {n} PNG cases");
        let err = read_rgb_png(&fixture("png/truncated.png"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("truncated.png") && err.contains("cannot read the PNG"),
            "{err}"
        );
    }
}
