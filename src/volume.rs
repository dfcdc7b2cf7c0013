//! Per-voxel results back in the brain volume (Lab08, NSD volume voxels):
//! written as NIfTI-1 for pycortex, nilearn and FSLeyes, and drawn as PNG
//! montages of axial slices.
//!
//! Lab08 keeps the voxels inside `voxel_mask`, a flat bool vector in C order
//! over `brain_nii_shape` (nibabel's `img.get_fdata().shape`, NIfTI axes
//! (i, j, k)). The seed puts a map back as
//! `full = np.full(prod(shape), nan); full[voxel_mask] = values;
//! full.reshape(shape)`; [`fill`] is that, and [`Volume::data`] is `full` in
//! the same C order.

use std::io;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::{ColorMap, DerivedColorMap};
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::nodes::font::{FONT, register_font};

/// A map over the whole brain volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// NIfTI axes (i, j, k), as `brain_nii_shape`.
    pub shape: [usize; 3],
    /// C order over `shape` (k fastest), NaN outside the mask.
    pub data: Vec<f32>,
}

impl Volume {
    fn at(&self, i: usize, j: usize, k: usize) -> f32 {
        let [_, nj, nk] = self.shape;
        self.data[(i * nj + j) * nk + k]
    }
}

/// The seed's `full[voxel_mask] = values`: one value per voxel inside the
/// mask, in mask order, NaN everywhere else.
pub fn fill(values: &[f64], mask: &[bool], shape: [usize; 3]) -> Result<Volume, String> {
    let [a, b, c] = shape;
    let n = a * b * c;
    if mask.len() != n {
        return Err(format!(
            "voxel_mask has {} entries but brain_nii_shape ({a}, {b}, {c}) holds {n}",
            mask.len()
        ));
    }
    let inside = mask.iter().filter(|&&m| m).count();
    if values.len() != inside {
        return Err(format!(
            "{} values for the {inside} voxels inside voxel_mask",
            values.len()
        ));
    }
    let mut next = values.iter();
    let data = mask
        .iter()
        .map(|&m| {
            if m {
                *next.next().expect("counted above") as f32
            } else {
                f32::NAN
            }
        })
        .collect();
    Ok(Volume { shape, data })
}

// ---------------------------------------------------------------- NIfTI ---

/// Writes `vol` as a single-file NIfTI-1 image, `.nii` or (gzipped)
/// `.nii.gz` as the path says: float32, dims (3, i, j, k), pixdim
/// `voxel_mm`, NaN outside the mask kept as NaN, cal_min/cal_max the finite
/// range, so viewers open it with a sensible window.
///
/// The affine is a scaled identity, diag(voxel_mm), voxel (0, 0, 0) at the
/// origin, stored as both qform and sform with code 1 ("scanner"). It is
/// *not* NSD's: the real func1pt8mm affine is not in the lab's files. Code 1
/// rather than 0 because with both codes 0 nibabel (and so nilearn) falls back
/// to a centred affine with x flipped while FSLeyes uses plain pixdim scaling,
/// and the viewers would disagree about left and right; with code 1 every
/// tool draws i → +x, j → +y, k → +z. To overlay a map on the subject's
/// anatomy, give it the affine of an NSD func1pt8mm image of that subject
/// (e.g. `nib.Nifti1Image(img.get_fdata(), ref.affine)`); pycortex applies
/// its own transform from the subject's database either way.
///
/// Atomic: written to a temp file in the same directory, then renamed.
pub fn write_nifti(path: &Path, vol: &Volume, voxel_mm: [f32; 3]) -> io::Result<()> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let name = path.to_string_lossy();
    // The crate picks plain or gzip by the name (and renames anything else
    // to .nii), so the temp file must end the same way.
    let suffix = if name.ends_with(".nii.gz") {
        ".nii.gz"
    } else if name.ends_with(".nii") {
        ".nii"
    } else {
        return Err(invalid(format!(
            "{}: a NIfTI file must end in .nii or .nii.gz",
            path.display()
        )));
    };
    // NIfTI-1 dims are 16-bit signed.
    if vol.shape.iter().any(|&d| d == 0 || d > i16::MAX as usize) {
        return Err(invalid(format!(
            "{}: shape {:?} cannot be a NIfTI-1 volume (each axis 1..=32767)",
            path.display(),
            vol.shape
        )));
    }
    if vol.data.len() != vol.shape.iter().product::<usize>() {
        return Err(invalid(format!(
            "{}: {} values for shape {:?}",
            path.display(),
            vol.data.len(),
            vol.shape
        )));
    }
    let header = nifti_header(vol, voxel_mm);
    // ndarray in C order; the writer transposes it into NIfTI's i-fastest
    // order itself.
    let array = ndarray::Array3::from_shape_vec(vol.shape, vol.data.clone())
        .map_err(|e| invalid(e.to_string()))?;
    write_atomic_via(path, suffix, |tmp| {
        nifti::writer::WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&array)
            .map_err(|e| match e {
                nifti::NiftiError::Io(e) => e,
                other => io::Error::other(other.to_string()),
            })
    })
}

fn nifti_header(vol: &Volume, [x, y, z]: [f32; 3]) -> nifti::NiftiHeader {
    let (lo, hi) = vol
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |r: Option<(f32, f32)>, &v| match r {
            None => Some((v, v)),
            Some((l, h)) => Some((l.min(v), h.max(v))),
        })
        .unwrap_or((0.0, 0.0));
    let mut descrip = b"runner volume map; affine: scaled identity, not NSD's".to_vec();
    descrip.resize(80, 0);
    // The writer itself sets dim, datatype, bitpix, vox_offset, scl_* and
    // the magic from the array.
    nifti::NiftiHeader {
        pixdim: [1.0, x, y, z, 1.0, 1.0, 1.0, 1.0],
        xyzt_units: 2, // NIFTI_UNITS_MM
        cal_min: lo,
        cal_max: hi,
        descrip,
        qform_code: 1,
        sform_code: 1,
        // Quaternion (b, c, d) = 0 is the identity rotation; qfac is pixdim[0].
        quatern_b: 0.0,
        quatern_c: 0.0,
        quatern_d: 0.0,
        quatern_x: 0.0,
        quatern_y: 0.0,
        quatern_z: 0.0,
        srow_x: [x, 0.0, 0.0, 0.0],
        srow_y: [0.0, y, 0.0, 0.0],
        srow_z: [0.0, 0.0, z, 0.0],
        // Fixed, so that the same map gives the same bytes on any machine.
        endianness: nifti::Endianness::Little,
        ..Default::default()
    }
}

/// `write` fills a temp file (named `.tmp-…{suffix}`, so that writers that
/// go by the extension do the right thing) in `path`'s directory, which
/// then replaces `path` in one rename.
fn write_atomic_via(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // 0644 rather than tempfile's private 0600, as cache::write_atomic.
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(suffix)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    // The writer opens the path again (same inode), so our handle can sync.
    write(tmp.path())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

// -------------------------------------------------------------- montage ---

/// How values become colours in a montage.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// Matplotlib's "Blues" from `vmin` to `vmax`, values outside clamped.
    Sequential { vmin: f64, vmax: f64, label: String },
    /// Integer values k, drawn in a Tab10/Tab20 colour and named `names[k]`.
    Categorical { names: Vec<String> },
}

/// The ColorBrewer control points of matplotlib's "Blues" (the seed's map),
/// evenly spaced from 0 to 1 as matplotlib spaces them.
const BLUES: [RGBColor; 9] = [
    RGBColor(0xf7, 0xfb, 0xff),
    RGBColor(0xde, 0xeb, 0xf7),
    RGBColor(0xc6, 0xdb, 0xef),
    RGBColor(0x9e, 0xca, 0xe1),
    RGBColor(0x6b, 0xae, 0xd6),
    RGBColor(0x42, 0x92, 0xc6),
    RGBColor(0x21, 0x71, 0xb5),
    RGBColor(0x08, 0x51, 0x9c),
    RGBColor(0x08, 0x30, 0x6b),
];

/// Matplotlib's tab10, then the light halves of tab20: 20 categories.
const CATEGORIES: [RGBColor; 20] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0xae, 0xc7, 0xe8),
    RGBColor(0xff, 0xbb, 0x78),
    RGBColor(0x98, 0xdf, 0x8a),
    RGBColor(0xff, 0x98, 0x96),
    RGBColor(0xc5, 0xb0, 0xd5),
    RGBColor(0xc4, 0x9c, 0x94),
    RGBColor(0xf7, 0xb6, 0xd2),
    RGBColor(0xc7, 0xc7, 0xc7),
    RGBColor(0xdb, 0xdb, 0x8d),
    RGBColor(0x9e, 0xda, 0xe5),
];

/// Outside the mask (NaN): light grey, darker than Blues' white end so that
/// low values still stand out from it.
pub(crate) const OUTSIDE: RGBColor = RGBColor(230, 230, 230);

/// At most this many slices; more are thinned to evenly spaced ones.
const MAX_SLICES: usize = 24;
const MAX_COLS: usize = 6;
/// Each slice is blown up (nearest neighbour) to at least this width.
const MIN_SLICE_PX: usize = 120;
const MARGIN: i32 = 16;
const TITLE_H: i32 = 52;
const GAP: i32 = 10;
const LABEL_H: i32 = 20;
const PANEL_GAP: i32 = 28;
const BAR_W: i32 = 20;
const BAR_TOP: i32 = 30;
const LEGEND_ROW: i32 = 22;

fn text_style(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

fn text_width(text: &str, size: f64) -> i32 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map_or(text.chars().count() as i32 * size as i32 / 2, |(w, _)| {
            w as i32
        })
}

/// Where everything goes; the tests read it back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// The k index of each slice drawn, in order.
    pub ks: Vec<usize>,
    /// Pixels per voxel side.
    pub px: i32,
    pub cols: usize,
    /// One slice's image.
    pub slice_w: i32,
    pub slice_h: i32,
    pub grid_h: i32,
    /// Left edge of the colour bar or legend.
    pub panel_x: i32,
    pub size: (u32, u32),
    /// Colour bar tick labels, top to bottom.
    ticks: Vec<String>,
}

impl Layout {
    /// Top-left pixel of the `n`th slice's image.
    pub fn slice_origin(&self, n: usize) -> (i32, i32) {
        let (r, c) = ((n / self.cols) as i32, (n % self.cols) as i32);
        (
            MARGIN + c * (self.slice_w + GAP),
            TITLE_H + r * (self.slice_h + LABEL_H + GAP),
        )
    }

    /// Top-left pixel of voxel (i, j) in the `n`th slice: i to the right,
    /// j upward.
    pub fn voxel_origin(&self, n: usize, i: usize, j: usize) -> (i32, i32) {
        let (x, y) = self.slice_origin(n);
        let rows = self.slice_h / self.px;
        (x + i as i32 * self.px, y + (rows - 1 - j as i32) * self.px)
    }
}

/// Slices with at least one voxel inside the mask, thinned to `MAX_SLICES`
/// evenly spaced ones (first and last kept).
fn pick_slices(vol: &Volume) -> Vec<usize> {
    let [ni, nj, nk] = vol.shape;
    let ks: Vec<usize> = (0..nk)
        .filter(|&k| (0..ni).any(|i| (0..nj).any(|j| !vol.at(i, j, k).is_nan())))
        .collect();
    if ks.len() <= MAX_SLICES {
        return ks;
    }
    let last = (ks.len() - 1) as f64;
    (0..MAX_SLICES)
        .map(|n| ks[(n as f64 * last / (MAX_SLICES - 1) as f64).round() as usize])
        .collect()
}

/// Compact tick text: 0.4, not 0.400.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

pub(crate) fn layout(vol: &Volume, scale: &Scale, title: &str) -> Result<Layout, String> {
    register_font();
    let [ni, nj, _] = vol.shape;
    let ks = pick_slices(vol);
    if ks.is_empty() {
        return Err("nothing to draw: no voxel of the volume is inside the mask".into());
    }
    let px = MIN_SLICE_PX.div_ceil(ni).max(1) as i32;
    let (slice_w, slice_h) = (ni as i32 * px, nj as i32 * px);
    let cols = ks.len().min(MAX_COLS);
    let rows = ks.len().div_ceil(cols) as i32;
    let grid_w = cols as i32 * slice_w + (cols as i32 - 1) * GAP;
    let grid_h = rows * (slice_h + LABEL_H) + (rows - 1) * GAP;

    let (ticks, panel_w, panel_h) = match scale {
        Scale::Sequential { vmin, vmax, label } => {
            let finite = || vol.data.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
            // Say so where the colours saturate.
            let over = finite().any(|v| v > *vmax);
            let under = finite().any(|v| v < *vmin);
            let ticks = vec![
                format!("{}{}", if over { "≥ " } else { "" }, tick(*vmax)),
                tick((vmin + vmax) / 2.0),
                format!("{}{}", if under { "≤ " } else { "" }, tick(*vmin)),
            ];
            let tick_w = ticks.iter().map(|t| text_width(t, 14.0)).max().unwrap_or(0);
            let w = (BAR_W + 6 + tick_w).max(text_width(label, 14.0));
            (ticks, w, BAR_TOP + bar_height(grid_h) + 10)
        }
        Scale::Categorical { names } => {
            let name_w = names.iter().map(|n| text_width(n, 14.0)).max().unwrap_or(0);
            (Vec::new(), 14 + 8 + name_w, names.len() as i32 * LEGEND_ROW)
        }
    };
    let panel_x = MARGIN + grid_w + PANEL_GAP;
    let width = (panel_x + panel_w + MARGIN).max(text_width(title, 22.0) + 2 * MARGIN);
    let height = TITLE_H + grid_h.max(panel_h) + MARGIN;
    Ok(Layout {
        ks,
        px,
        cols,
        slice_w,
        slice_h,
        grid_h,
        panel_x,
        size: (width as u32, height as u32),
        ticks,
    })
}

fn bar_height(grid_h: i32) -> i32 {
    (grid_h - BAR_TOP).clamp(120, 360)
}

/// A finite value's colour; NaN (outside the mask) is `OUTSIDE`.
fn colour(v: f32, scale: &Scale) -> Result<RGBColor, String> {
    if v.is_nan() {
        return Ok(OUTSIDE);
    }
    match scale {
        Scale::Sequential { vmin, vmax, .. } => {
            Ok(DerivedColorMap::new(&BLUES).get_color_normalized(v as f64, *vmin, *vmax))
        }
        Scale::Categorical { names } => {
            let k = v as usize;
            if v < 0.0 || v.fract() != 0.0 || k >= names.len() {
                return Err(format!(
                    "value {v} is not a category (integers 0..{} name them)",
                    names.len()
                ));
            }
            Ok(CATEGORIES[k])
        }
    }
}

/// Axial slices (one per k that has voxels inside the mask, at most 24,
/// evenly spaced) in a grid, each with i to the right and j upward as
/// neuro viewers show a volume whose axes are (i, j, k) ≈ (x, y, z), and its
/// k index under it; voxels outside the mask in light grey; the title on top
/// and a colour bar (sequential) or legend (categorical) at the right.
///
/// Atomic like [`write_nifti`].
pub fn montage_png(path: &Path, vol: &Volume, scale: &Scale, title: &str) -> Result<(), String> {
    if vol.data.len() != vol.shape.iter().product::<usize>() {
        return Err(format!(
            "{} values for shape {:?}",
            vol.data.len(),
            vol.shape
        ));
    }
    match scale {
        Scale::Sequential { vmin, vmax, .. }
            if !(vmin.is_finite() && vmax.is_finite() && vmin < vmax) =>
        {
            return Err(format!("colour scale {vmin}..{vmax} is empty"));
        }
        Scale::Categorical { names } if names.len() > CATEGORIES.len() => {
            return Err(format!(
                "{} categories; the palette has {} distinguishable colours",
                names.len(),
                CATEGORIES.len()
            ));
        }
        _ => {}
    }
    // Colour every voxel first, so that a bad category fails before drawing.
    let colours = vol
        .data
        .iter()
        .map(|&v| colour(v, scale))
        .collect::<Result<Vec<_>, _>>()?;
    let lay = layout(vol, scale, title)?;
    let fail = |e: io::Error| format!("writing {}: {e}", path.display());
    write_atomic_via(path, ".png", |tmp| {
        let root = BitMapBackend::new(tmp, lay.size).into_drawing_area();
        draw(&root, vol, &colours, scale, title, &lay)
            .and_then(|_| root.present().map_err(|e| e.to_string()))
            .map_err(io::Error::other)
    })
    .map_err(fail)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    vol: &Volume,
    colours: &[RGBColor],
    scale: &Scale,
    title: &str,
    lay: &Layout,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    root.draw(&Text::new(
        title.to_string(),
        (lay.size.0 as i32 / 2, TITLE_H / 2),
        text_style(22.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(e)?;

    let [ni, nj, nk] = vol.shape;
    let p = lay.px;
    for (n, &k) in lay.ks.iter().enumerate() {
        for i in 0..ni {
            for j in 0..nj {
                let (x, y) = lay.voxel_origin(n, i, j);
                // Opaque fills on a bitmap cover [x, x + p) × [y, y + p).
                let c = colours[(i * nj + j) * nk + k];
                root.draw(&Rectangle::new([(x, y), (x + p, y + p)], c.filled()))
                    .map_err(e)?;
            }
        }
        let (x, y) = lay.slice_origin(n);
        root.draw(&Text::new(
            format!("k = {k}"),
            (x + lay.slice_w / 2, y + lay.slice_h + LABEL_H / 2),
            text_style(12.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
    }

    let (x, top) = (lay.panel_x, TITLE_H);
    match scale {
        Scale::Sequential { vmin, vmax, label } => {
            root.draw(&Text::new(
                label.clone(),
                (x, top + 8),
                text_style(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(e)?;
            let (y0, bh) = (top + BAR_TOP, bar_height(lay.grid_h));
            let map = DerivedColorMap::new(&BLUES);
            // One row per pixel, vmax at the top.
            for s in 0..bh {
                let v = vmax - (vmax - vmin) * s as f64 / (bh - 1).max(1) as f64;
                let c: RGBColor = map.get_color_normalized(v, *vmin, *vmax);
                root.draw(&Rectangle::new(
                    [(x, y0 + s), (x + BAR_W, y0 + s + 1)],
                    c.filled(),
                ))
                .map_err(e)?;
            }
            root.draw(&Rectangle::new(
                [(x, y0), (x + BAR_W, y0 + bh)],
                BLACK.stroke_width(1),
            ))
            .map_err(e)?;
            for (t, y) in lay.ticks.iter().zip([y0, y0 + bh / 2, y0 + bh]) {
                root.draw(&Text::new(
                    t.clone(),
                    (x + BAR_W + 6, y),
                    text_style(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(e)?;
            }
        }
        Scale::Categorical { names } => {
            for (k, name) in names.iter().enumerate() {
                let y = top + k as i32 * LEGEND_ROW;
                root.draw(&Rectangle::new(
                    [(x, y + 4), (x + 14, y + 18)],
                    CATEGORIES[k].filled(),
                ))
                .map_err(e)?;
                root.draw(&Text::new(
                    name.clone(),
                    (x + 22, y + 11),
                    text_style(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(e)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The fixture's volume (tests/fixtures/make_nifti_fixture.py, keep in
    /// step): shape (4, 5, 3), inside where (i + 2j + 3k) % 4 ≠ 0, values
    /// 0.5, 0.75, … in mask order.
    fn fixture_volume() -> (Vec<f64>, Vec<bool>, [usize; 3]) {
        let shape = [4, 5, 3];
        let mut mask = Vec::new();
        for i in 0..4 {
            for j in 0..5 {
                for k in 0..3 {
                    mask.push((i + 2 * j + 3 * k) % 4 != 0);
                }
            }
        }
        let n = mask.iter().filter(|&&m| m).count();
        let values = (0..n).map(|x| 0.5 + 0.25 * x as f64).collect();
        (values, mask, shape)
    }

    fn reference() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nifti/reference.nii")
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits()
    }

    /// With RUNNER_KEEP_NIFTI=DIR, a copy for
    /// `make_nifti_fixture.py --check DIR/NAME`.
    fn keep(path: &Path) {
        if let Ok(dir) = std::env::var("RUNNER_KEEP_NIFTI") {
            std::fs::copy(path, Path::new(&dir).join(path.file_name().unwrap())).unwrap();
        }
    }

    #[test]
    fn volume_fill_is_numpys_masked_assignment() {
        let mask = [true, false, true, true, false, false, true, false];
        let v = fill(&[1.0, 2.0, 3.0, 4.0], &mask, [2, 2, 2]).unwrap();
        let want = [1.0, f32::NAN, 2.0, 3.0, f32::NAN, f32::NAN, 4.0, f32::NAN];
        assert!(v.data.iter().zip(want).all(|(&a, b)| same(a, b)));
        // C order: the last axis is fastest.
        assert!(same(v.at(0, 1, 1), 3.0) && same(v.at(1, 1, 0), 4.0));
    }

    #[test]
    fn volume_fill_errors_say_what_disagrees() {
        let e = fill(&[1.0], &[true; 5], [2, 2, 2]).unwrap_err();
        assert_eq!(
            e,
            "voxel_mask has 5 entries but brain_nii_shape (2, 2, 2) holds 8"
        );
        let e = fill(&[1.0, 2.0], &[true, false, true, true], [1, 2, 2]).unwrap_err();
        assert_eq!(e, "2 values for the 3 voxels inside voxel_mask");
    }

    #[test]
    fn volume_nifti_reads_back_as_written() {
        let (values, mask, shape) = fixture_volume();
        let vol = fill(&values, &mask, shape).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for name in ["map.nii", "map.nii.gz"] {
            let path = dir.path().join(name);
            write_nifti(&path, &vol, [1.8; 3]).unwrap();
            keep(&path);
            use nifti::{IntoNdArray, NiftiObject};
            let obj = nifti::ReaderOptions::new().read_file(&path).unwrap();
            let h = obj.header().clone();
            let got = obj.into_volume().into_ndarray::<f32>().unwrap();
            assert_eq!(got.shape(), &[4, 5, 3], "{name}");
            for i in 0..4 {
                for j in 0..5 {
                    for k in 0..3 {
                        assert!(same(got[[i, j, k]], vol.at(i, j, k)), "{name} {i} {j} {k}");
                    }
                }
            }
            assert_eq!(
                (h.cal_min, h.cal_max),
                (0.5, 0.5 + 0.25 * (values.len() - 1) as f32)
            );
            assert_eq!(h.pixdim[1..4], [1.8; 3]);
        }
        // Nothing left behind but the two files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn volume_nifti_matches_nibabels() {
        let (values, mask, shape) = fixture_volume();
        let vol = fill(&values, &mask, shape).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.nii");
        write_nifti(&ours, &vol, [1.8; 3]).unwrap();
        let (a, b) = (
            nifti::NiftiHeader::from_file(&ours).unwrap(),
            nifti::NiftiHeader::from_file(reference()).unwrap(),
        );
        assert_eq!(a.sizeof_hdr, b.sizeof_hdr);
        assert_eq!(a.dim, b.dim);
        assert_eq!(a.pixdim, b.pixdim);
        assert_eq!((a.datatype, a.bitpix), (b.datatype, b.bitpix));
        assert_eq!(a.vox_offset, b.vox_offset);
        assert_eq!(a.magic, b.magic);
        assert_eq!(a.xyzt_units, b.xyzt_units);
        assert_eq!((a.qform_code, a.sform_code), (b.qform_code, b.sform_code));
        assert_eq!(
            (a.srow_x, a.srow_y, a.srow_z),
            (b.srow_x, b.srow_y, b.srow_z)
        );
        assert_eq!(
            [
                a.quatern_b,
                a.quatern_c,
                a.quatern_d,
                a.quatern_x,
                a.quatern_y,
                a.quatern_z
            ],
            [
                b.quatern_b,
                b.quatern_c,
                b.quatern_d,
                b.quatern_x,
                b.quatern_y,
                b.quatern_z
            ]
        );
        assert_eq!((a.scl_slope, a.scl_inter), (b.scl_slope, b.scl_inter));
        let (ours, theirs) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(reference()).unwrap(),
        );
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(
            ours[352..],
            theirs[352..],
            "data bytes differ from nibabel's"
        );
    }

    #[test]
    fn volume_nifti_refuses_other_names_and_replaces_atomically() {
        let vol = fill(&[1.0], &[true], [1, 1, 1]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(write_nifti(&dir.path().join("map.img"), &vol, [1.8; 3]).is_err());
        let path = dir.path().join("map.nii");
        std::fs::write(&path, b"old").unwrap();
        write_nifti(&path, &vol, [1.8; 3]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 352 + 4);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn pixel(img: &(u32, u32, Vec<u8>), (x, y): (i32, i32)) -> RGBColor {
        let o = 3 * (y as usize * img.0 as usize + x as usize);
        RGBColor(img.2[o], img.2[o + 1], img.2[o + 2])
    }

    /// Every pixel of voxel (i, j) in the `n`th slice.
    fn block(
        img: &(u32, u32, Vec<u8>),
        lay: &Layout,
        n: usize,
        i: usize,
        j: usize,
    ) -> Vec<RGBColor> {
        let (x, y) = lay.voxel_origin(n, i, j);
        (0..lay.px)
            .flat_map(|dy| (0..lay.px).map(move |dx| (x + dx, y + dy)))
            .map(|p| pixel(img, p))
            .collect()
    }

    #[test]
    fn volume_montage_sequential_colours_and_orientation() {
        let shape = [4, 5, 3];
        let mut data = vec![f32::NAN; 60];
        let at = |i: usize, j: usize, k: usize| (i * 5 + j) * 3 + k;
        data[at(0, 0, 0)] = 1.0; // over vmax: clamped to the dark end
        data[at(1, 0, 0)] = 0.0; // vmin: the white end
        data[at(3, 4, 0)] = 0.2; // the middle control point
        data[at(2, 2, 2)] = 0.125; // halfway between control points 2 and 3
        // k = 1 has no voxel inside the mask, so it is not drawn.
        let vol = Volume { shape, data };
        let scale = Scale::Sequential {
            vmin: 0.0,
            vmax: 0.4,
            label: "r".into(),
        };
        let lay = layout(&vol, &scale, "test").unwrap();
        assert_eq!(lay.ks, vec![0, 2]);
        assert_eq!((lay.px, lay.slice_w, lay.slice_h), (30, 120, 150));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.png");
        montage_png(&path, &vol, &scale, "test").unwrap();
        let img = decode(&path);
        assert_eq!((img.0, img.1), lay.size);
        // Two slices side by side, then the colour bar.
        assert!(img.0 as i32 >= MARGIN + 2 * 120 + GAP + PANEL_GAP + BAR_W);
        assert_eq!(lay.ticks, vec!["≥ 0.4", "0.2", "0"]);

        let all = |n, i, j, c: RGBColor| {
            let b = block(&img, &lay, n, i, j);
            assert!(
                b.iter().all(|&p| p == c),
                "voxel ({i}, {j}) of slice {n}: {:?}, want {c:?}",
                b[0]
            );
        };
        all(0, 0, 0, BLUES[8]);
        all(0, 1, 0, BLUES[0]);
        all(0, 3, 4, BLUES[4]);
        all(0, 2, 3, OUTSIDE);
        // Linear between #c6dbef and #9ecae1, rounded half up.
        all(1, 2, 2, RGBColor(178, 211, 232));
        // j upward: voxel (0, 0) is the bottom-left block of its slice.
        let (x, y) = lay.slice_origin(0);
        assert_eq!(pixel(&img, (x, y + lay.slice_h - 1)), BLUES[8]);
        assert_eq!(pixel(&img, (x + lay.slice_w - 1, y)), BLUES[4]);
        // Between slices: the page.
        assert_eq!(pixel(&img, (x + lay.slice_w + GAP / 2, y + 5)), WHITE);
    }

    #[test]
    fn volume_montage_categorical_shows_every_category() {
        let shape = [6, 4, 2];
        let data = (0..48)
            .map(|x| if x % 5 == 0 { f32::NAN } else { (x % 3) as f32 })
            .collect();
        let vol = Volume { shape, data };
        let names: Vec<String> = ["V1", "V2", "FFA"].map(String::from).to_vec();
        let scale = Scale::Categorical {
            names: names.clone(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        montage_png(&path, &vol, &scale, "ROIs").unwrap();
        let lay = layout(&vol, &scale, "ROIs").unwrap();
        let img = decode(&path);
        assert_eq!((img.0, img.1), lay.size);
        assert_eq!(lay.px, 20);
        for c in &CATEGORIES[..3] {
            let hits = img.2.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count();
            // Its voxels plus its legend swatch.
            assert!(hits > 20 * 20, "{c:?} drawn {hits} times");
        }
        let v = |i: usize, j: usize, k: usize| vol.at(i, j, k);
        for (i, j) in [(0, 0), (5, 3), (2, 1)] {
            let want = if v(i, j, 1).is_nan() {
                OUTSIDE
            } else {
                CATEGORIES[v(i, j, 1) as usize]
            };
            assert!(block(&img, &lay, 1, i, j).iter().all(|&p| p == want));
        }
    }

    #[test]
    fn volume_montage_refuses_what_it_cannot_draw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let names = vec!["a".to_string(), "b".to_string()];
        for bad in [2.0, 0.5, -1.0] {
            let vol = Volume {
                shape: [1, 1, 1],
                data: vec![bad],
            };
            let scale = Scale::Categorical {
                names: names.clone(),
            };
            assert!(montage_png(&path, &vol, &scale, "t").is_err(), "{bad}");
        }
        let empty = Volume {
            shape: [2, 2, 2],
            data: vec![f32::NAN; 8],
        };
        let seq = Scale::Sequential {
            vmin: 0.0,
            vmax: 0.4,
            label: "r".into(),
        };
        assert!(
            montage_png(&path, &empty, &seq, "t")
                .unwrap_err()
                .contains("nothing to draw")
        );
        let flat = Scale::Sequential {
            vmin: 0.4,
            vmax: 0.4,
            label: "r".into(),
        };
        let one = Volume {
            shape: [1, 1, 1],
            data: vec![0.1],
        };
        assert!(montage_png(&path, &one, &flat, "t").is_err());
        assert!(!path.exists());
    }

    #[test]
    fn volume_montage_thins_many_slices_evenly() {
        let vol = Volume {
            shape: [2, 2, 50],
            data: (0..200).map(|x| x as f32).collect(),
        };
        let ks = pick_slices(&vol);
        assert_eq!(ks.len(), MAX_SLICES);
        assert_eq!((ks[0], ks[23]), (0, 49));
        assert!(ks.windows(2).all(|w| (2..=3).contains(&(w[1] - w[0]))));
    }
}
