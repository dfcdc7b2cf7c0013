//! The pictures of representational similarity analysis (seed 004): RDMs
//! side by side on one colour scale, the similarity of each layer's RDM to
//! the neural one as bars, and tuning curves as a grid of small panels.
//!
//! Pure drawing functions: PNG or SVG by the path's extension, in the look
//! of the other plots (the shipped font, viridis, white ground). In SVG the
//! RDM cells are one embedded PNG per panel (cells stay crisp, and a 360 ×
//! 360 RDM is kilobytes, not 130,000 rectangles); everything else is vector.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{FONT, register_font};
use crate::vocab::ImageFormat;

/// One RDM: `n × n`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RdmPanel {
    pub label: String,
    pub n: usize,
    pub data: Vec<f64>,
}

/// One group of bars (a subject, a feature source): (layer, value, lo, hi);
/// lo and hi NaN mean no interval.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub bars: Vec<(String, f64, f64, f64)>,
}

/// One row of tuning panels: (panel title, y at each x).
#[derive(Debug, Clone, PartialEq)]
pub struct TuningRow {
    pub label: String,
    pub curves: Vec<(String, Vec<f64>)>,
}

/// The colour of NaN cells.
pub const NAN_GREY: RGBColor = RGBColor(190, 190, 190);

/// Series colours (matplotlib's first four, as the other plots).
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

type Res = Result<(), String>;

fn format_of(path: &Path) -> Result<ImageFormat, String> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(ImageFormat::Png),
        Some("svg") => Ok(ImageFormat::Svg),
        _ => Err(format!("{}: name the picture .png or .svg", path.display())),
    }
}

/// Runs `$draw` on a PNG or SVG root by the path's extension, then writes it.
macro_rules! render {
    ($path:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        match format_of($path)? {
            ImageFormat::Png => {
                let root = BitMapBackend::new($path, $size).into_drawing_area();
                let out = $draw(&root, true, $($arg),*)?;
                root.present().map_err(|e| e.to_string())?;
                out
            }
            ImageFormat::Svg => {
                let root = SVGBackend::new($path, $size).into_drawing_area();
                let out = $draw(&root, false, $($arg),*)?;
                root.present().map_err(|e| e.to_string())?;
                out
            }
        }
    }};
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Titles are one line (the seed's labels have "\n" in them).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&BLACK)
}

fn colour(v: f64, lo: f64, hi: f64) -> RGBColor {
    if !v.is_finite() {
        return NAN_GREY;
    }
    ViridisRGB.get_color_normalized(v as f32, lo as f32, hi as f32)
}

/// A tick value without a needless ".0".
fn tick_label(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A round step for about `target` ticks over `span`: 1, 2, 2.5, 3, 4.5, 5
/// or 9 × 10^k (so that orientations get 45° or 90° steps).
fn nice_step(span: f64, target: f64) -> f64 {
    if !(span > 0.0) {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 3.0, 4.5, 5.0, 9.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * 0.999)
        .unwrap_or(10.0 * mag)
}

/// Stimulus positions and labels of the axis ticks of an `n`-stimulus RDM:
/// round values of `ticks` (one per stimulus), each at the stimulus whose
/// value is nearest.
fn rdm_ticks(n: usize, ticks: Option<&[f64]>) -> Vec<(usize, String)> {
    let index: Vec<f64>;
    let values = match ticks {
        Some(t) => t,
        None => {
            index = (0..n).map(|i| i as f64).collect();
            &index
        }
    };
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !(lo <= hi) {
        return Vec::new();
    }
    if lo == hi {
        return vec![(0, tick_label(lo))];
    }
    let step = nice_step(hi - lo, 4.0);
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + 1e-9 * step.abs() {
        let v = k * step;
        let (i, _) = values
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_finite())
            .min_by(|a, b| (a.1 - v).abs().total_cmp(&(b.1 - v).abs()))
            .unwrap();
        if out.last().is_none_or(|(j, _)| *j != i) {
            out.push((i, tick_label(v)));
        }
        k += 1.0;
    }
    out
}

/// Where the RDM panels go (pixels).
#[derive(Debug, Clone, Copy)]
struct RdmLayout {
    cols: usize,
    /// Rows of panels (the tests check the wrapping).
    #[allow(dead_code)]
    rows: usize,
    side: i32,
    left: i32,
    top: i32,
    gap: i32,
    title_h: i32,
    tick_h: i32,
    width: u32,
    height: u32,
}

impl RdmLayout {
    fn new(panels: usize) -> RdmLayout {
        let rows = panels.div_ceil(4).max(1);
        let cols = panels.div_ceil(rows).max(1);
        let side = match cols {
            1 | 2 => 360,
            3 => 320,
            _ => 280,
        };
        let (left, top, gap, title_h, tick_h) = (70, 60, 34, 34, 44);
        let width = left + cols as i32 * side + (cols as i32 - 1) * gap + 150;
        let height = top + rows as i32 * (title_h + side + tick_h) + 16;
        RdmLayout {
            cols,
            rows,
            side,
            left,
            top,
            gap,
            title_h,
            tick_h,
            width: width as u32,
            height: height as u32,
        }
    }

    /// Top-left pixel of panel `p`'s cells.
    fn origin(&self, p: usize) -> (i32, i32) {
        let (r, c) = ((p / self.cols) as i32, (p % self.cols) as i32);
        (
            self.left + c * (self.side + self.gap),
            self.top + r * (self.title_h + self.side + self.tick_h) + self.title_h,
        )
    }

    /// Pixel span [a, b) of cell `i` of `n` along a side.
    fn cell(&self, i: usize, n: usize) -> (i32, i32) {
        let s = self.side as usize;
        ((i * s / n) as i32, ((i + 1) * s / n) as i32)
    }
}

/// RDMs side by side (more than four wrap into rows) on ONE colour scale:
/// `range`, or min..max over the finite entries of all panels; a colour bar;
/// NaN cells grey; axis ticks at round values of `ticks` (one value per
/// stimulus, e.g. its orientation in degrees), or at stimulus indices.
pub fn rdm_panels(
    path: &Path,
    title: &str,
    panels: &[RdmPanel],
    range: Option<(f64, f64)>,
    ticks: Option<&[f64]>,
) -> Res {
    register_font();
    if panels.is_empty() {
        return Err("no RDM to draw".into());
    }
    for p in panels {
        if p.n == 0 || p.data.len() != p.n * p.n {
            return Err(format!(
                "RDM `{}`: {} values for n = {} (needs n × n = {})",
                p.label,
                p.data.len(),
                p.n,
                p.n * p.n
            ));
        }
        if let Some(t) = ticks
            && t.len() != p.n
        {
            return Err(format!(
                "RDM `{}` has {} stimuli but {} tick values were given",
                p.label,
                p.n,
                t.len()
            ));
        }
    }
    let (lo, hi) = match range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
        Some((lo, hi)) => return Err(format!("colour range {lo}..{hi} is not increasing")),
        None => {
            let (lo, hi) = panels
                .iter()
                .flat_map(|p| p.data.iter().copied())
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(v), h.max(v))
                });
            if !(lo <= hi) {
                (0.0, 1.0)
            } else if lo == hi {
                (lo - 0.5, hi + 0.5)
            } else {
                (lo, hi)
            }
        }
    };
    let layout = RdmLayout::new(panels.len());
    render!(
        path,
        (layout.width, layout.height),
        draw_rdms(&layout, title, panels, lo, hi, ticks)
    );
    if format_of(path)? == ImageFormat::Svg {
        embed_rdm_cells(path, &layout, panels, lo, hi)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_rdms<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pixels: bool,
    l: &RdmLayout,
    title: &str,
    panels: &[RdmPanel],
    lo: f64,
    hi: f64,
    ticks: Option<&[f64]>,
) -> Res {
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(
        one_line(title),
        (l.width as i32 / 2, 28),
        text(22.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(err)?;
    for (p, panel) in panels.iter().enumerate() {
        let (x0, y0) = l.origin(p);
        let n = panel.n;
        root.draw(&Text::new(
            one_line(&panel.label),
            (x0 + l.side / 2, y0 - l.title_h / 2),
            text(17.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
        if pixels {
            // Pixel by pixel: each pixel shows the cell it falls in, so
            // cells tile the panel exactly whatever n is.
            let s = l.side as usize;
            for py in 0..s {
                let i = py * n / s;
                for px in 0..s {
                    let j = px * n / s;
                    let c = colour(panel.data[i * n + j], lo, hi);
                    root.draw_pixel((x0 + px as i32, y0 + py as i32), &c)
                        .map_err(err)?;
                }
            }
        }
        root.draw(&Rectangle::new(
            [(x0 - 1, y0 - 1), (x0 + l.side, y0 + l.side)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        // Ticks: x under every panel, y left of the first of each row.
        let first_col = p % l.cols == 0;
        for (i, label) in rdm_ticks(n, ticks) {
            let (a, b) = l.cell(i, n);
            let at = (a + b) / 2;
            let (xt, yt) = (x0 + at, y0 + l.side);
            root.draw(&PathElement::new(vec![(xt, yt), (xt, yt + 5)], BLACK))
                .map_err(err)?;
            root.draw(&Text::new(
                label.clone(),
                (xt, yt + 8),
                text(13.0).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
            if first_col {
                let yt = y0 + at;
                root.draw(&PathElement::new(vec![(x0 - 6, yt), (x0 - 1, yt)], BLACK))
                    .map_err(err)?;
                root.draw(&Text::new(
                    label,
                    (x0 - 9, yt),
                    text(13.0).pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(err)?;
            }
        }
    }
    // Colour bar beside the first row.
    let (x_last, y0) = l.origin(l.cols - 1);
    let bx = x_last + l.side + 30;
    let bh = l.side;
    let steps = 120;
    for s in 0..steps {
        let v = hi - (hi - lo) * (s as f64 + 0.5) / steps as f64;
        let ya = y0 + bh * s / steps;
        let yb = y0 + bh * (s + 1) / steps;
        root.draw(&Rectangle::new(
            [(bx, ya), (bx + 22, yb)],
            colour(v, lo, hi).filled(),
        ))
        .map_err(err)?;
    }
    root.draw(&Rectangle::new(
        [(bx, y0), (bx + 22, y0 + bh)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    for (v, y) in [(hi, y0), ((hi + lo) / 2.0, y0 + bh / 2), (lo, y0 + bh)] {
        root.draw(&Text::new(
            format!("{v:.2}"),
            (bx + 28, y),
            text(13.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    root.draw(&Text::new(
        "dissimilarity",
        (bx + 11, y0 - 12),
        text(13.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))
    .map_err(err)?;
    if panels.iter().any(|p| p.data.iter().any(|v| !v.is_finite())) {
        root.draw(&Rectangle::new(
            [(bx, y0 + bh + 16), (bx + 22, y0 + bh + 30)],
            NAN_GREY.filled(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            "NaN",
            (bx + 28, y0 + bh + 23),
            text(13.0).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Puts each panel's cells into the SVG as an n × n PNG, scaled without
/// smoothing onto the panel.
fn embed_rdm_cells(path: &Path, l: &RdmLayout, panels: &[RdmPanel], lo: f64, hi: f64) -> Res {
    let svg = std::fs::read_to_string(path).map_err(err)?;
    let mut images = String::new();
    for (p, panel) in panels.iter().enumerate() {
        let n = panel.n;
        let rgb: Vec<u8> = panel
            .data
            .iter()
            .flat_map(|&v| {
                let c = colour(v, lo, hi);
                [c.0, c.1, c.2]
            })
            .collect();
        let mut png_bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png_bytes, n as u32, n as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(err)?;
            w.write_image_data(&rgb).map_err(err)?;
        }
        let (x0, y0) = l.origin(p);
        images.push_str(&format!(
            "<image x=\"{x0}\" y=\"{y0}\" width=\"{s}\" height=\"{s}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated;image-rendering:crisp-edges\" href=\"data:image/png;base64,{}\"/>\n",
            base64(&png_bytes),
            s = l.side
        ));
    }
    let at = svg
        .rfind("</svg>")
        .ok_or_else(|| format!("{}: the SVG has no </svg>", path.display()))?;
    let out = format!("{}{images}{}", &svg[..at], &svg[at..]);
    std::fs::write(path, out).map_err(err)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One bar per layer of its similarity to the neural RDM, with an error bar
/// from lo to hi where both are finite; the y axis says what was compared;
/// several series side by side in their colours, with a legend.
pub fn similarity_bars(path: &Path, title: &str, y_label: &str, series: &[BarSeries]) -> Res {
    register_font();
    if series.is_empty() || series.iter().all(|s| s.bars.is_empty()) {
        return Err("no bars to draw".into());
    }
    // Layers in order of first appearance.
    let mut layers: Vec<String> = Vec::new();
    for s in series {
        for (layer, ..) in &s.bars {
            if !layers.contains(layer) {
                layers.push(layer.clone());
            }
        }
    }
    let per = series.len().max(1) as u32;
    let width = (220 + layers.len() as u32 * (60 + 34 * per)).clamp(560, 1800);
    // Layer names turn when they do not fit under their group.
    let group_px = (width - 170) as f64 / layers.len() as f64;
    let longest = layers
        .iter()
        .map(|l| one_line(l).chars().count())
        .max()
        .unwrap_or(0);
    let turn = longest as f64 * 8.5 > group_px * 0.95;
    let below = if turn {
        (longest as u32 * 8 + 30).min(260)
    } else {
        50
    };
    let height = 440 + below;
    render!(
        path,
        (width, height),
        draw_bars(title, y_label, series, &layers, turn, below)
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    _pixels: bool,
    title: &str,
    y_label: &str,
    series: &[BarSeries],
    layers: &[String],
    turn: bool,
    below: u32,
) -> Res {
    root.fill(&WHITE).map_err(err)?;
    let values = series
        .iter()
        .flat_map(|s| s.bars.iter())
        .flat_map(|&(_, v, lo, hi)| [v, lo, hi])
        .filter(|v| v.is_finite());
    let (ymin, ymax) = values.fold((0f64, 0f64), |(l, h), v| (l.min(v), h.max(v)));
    let (ymin, ymax) = if ymax > ymin {
        (ymin, ymax)
    } else {
        (0.0, 1.0)
    };
    let pad = (ymax - ymin) * 0.1;
    let ymin = if ymin < 0.0 { ymin - pad } else { 0.0 };
    let ymax = if ymax > 0.0 { ymax + pad } else { 0.0 };
    let n = layers.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(one_line(title), (FONT, 22))
        .margin(16)
        .x_label_area_size(below)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, ymin..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .y_desc(one_line(y_label))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    let k = series.len().max(1) as f64;
    let width = 0.76 / k;
    let show_values = n * series.len() <= 16;
    for (si, s) in series.iter().enumerate() {
        let col = COLOURS[si % COLOURS.len()];
        for (layer, v, lo, hi) in &s.bars {
            let g = layers.iter().position(|l| l == layer).unwrap();
            let x0 = g as f64 + 0.12 + si as f64 * width;
            let xm = x0 + width / 2.0;
            if !v.is_finite() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "n/a",
                        (xm, 0.0),
                        text(13.0)
                            .color(&col)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )))
                    .map_err(err)?;
                continue;
            }
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + width, *v)],
                    col.mix(0.85).filled(),
                )))
                .map_err(err)?;
            let has_ci = lo.is_finite() && hi.is_finite();
            if has_ci {
                let cap = width / 5.0;
                let lines = [
                    vec![(xm, *lo), (xm, *hi)],
                    vec![(xm - cap, *lo), (xm + cap, *lo)],
                    vec![(xm - cap, *hi), (xm + cap, *hi)],
                ];
                chart
                    .draw_series(
                        lines
                            .into_iter()
                            .map(|l| PathElement::new(l, BLACK.stroke_width(2))),
                    )
                    .map_err(err)?;
            }
            if show_values {
                // The value just beyond the bar's end (or its interval's).
                let end = if *v >= 0.0 {
                    if has_ci { hi.max(*v) } else { *v }
                } else if has_ci {
                    lo.min(*v)
                } else {
                    *v
                };
                let (px, py) = chart.backend_coord(&(xm, end));
                let (vpos, dy) = if *v >= 0.0 {
                    (VPos::Bottom, -4)
                } else {
                    (VPos::Top, 4)
                };
                root.draw(&Text::new(
                    format!("{v:.2}"),
                    (px, py + dy),
                    text(13.0).pos(Pos::new(HPos::Center, vpos)),
                ))
                .map_err(err)?;
            }
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (n as f64, 0.0)],
            BLACK,
        )))
        .map_err(err)?;
    for (g, layer) in layers.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(g as f64 + 0.5, ymin));
        let style = if turn {
            text(15.0)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            text(15.0).pos(Pos::new(HPos::Center, VPos::Top))
        };
        root.draw(&Text::new(one_line(layer), (px, py + 10), style))
            .map_err(err)?;
    }
    if series.len() > 1 {
        for (si, s) in series.iter().enumerate() {
            let col = COLOURS[si % COLOURS.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(-10.0, 0.0), (-10.0, 0.0)],
                    col.filled(),
                )))
                .map_err(err)?
                .label(one_line(&s.name))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], col.mix(0.85).filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font((FONT, 15))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// At most this many tuning panels side by side; longer rows wrap.
const TUNING_COLS: usize = 6;

/// Tuning curves: a grid of small panels, one curve each (a line, with
/// markers where they do not crowd it), grouped in rows (V1 neurons, then
/// each layer's units) with the row's label at its left; every panel has the
/// same x range (that of `x`) and its own y range.
pub fn tuning_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    x: &[f64],
    rows: &[TuningRow],
) -> Res {
    register_font();
    if x.is_empty() {
        return Err("no x values".into());
    }
    if rows.iter().all(|r| r.curves.is_empty()) {
        return Err("no tuning curve to draw".into());
    }
    for r in rows {
        for (t, y) in &r.curves {
            if y.len() != x.len() {
                return Err(format!(
                    "curve `{t}` of `{}` has {} values for {} x values",
                    r.label,
                    y.len(),
                    x.len()
                ));
            }
        }
    }
    // Lines of panels: each row's curves in chunks of TUNING_COLS.
    let mut lines: Vec<(usize, bool, &[(String, Vec<f64>)])> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for (k, chunk) in row.curves.chunks(TUNING_COLS).enumerate() {
            lines.push((r, k == 0, chunk));
        }
    }
    let cols = lines.iter().map(|l| l.2.len()).max().unwrap_or(1);
    let (pw, ph) = (260u32, 210u32);
    let (left, top) = (60u32, 56u32);
    let width = left + cols as u32 * pw + 16;
    let height = top + lines.len() as u32 * ph + 16;
    render!(
        path,
        (width, height),
        draw_tuning(title, x_label, x, rows, &lines, (pw, ph), (left, top))
    );
    Ok(())
}

#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn draw_tuning<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    _pixels: bool,
    title: &str,
    x_label: &str,
    x: &[f64],
    rows: &[TuningRow],
    lines: &[(usize, bool, &[(String, Vec<f64>)])],
    (pw, ph): (u32, u32),
    (left, top): (u32, u32),
) -> Res {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    root.draw(&Text::new(
        one_line(title),
        (w as i32 / 2, 26),
        text(22.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(err)?;
    let (xmin, xmax) = x
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    let (xmin, xmax) = if xmin < xmax {
        (xmin, xmax)
    } else {
        (xmin - 1.0, xmin + 1.0)
    };
    // The same round ticks on every panel (45° steps for orientations).
    let step = nice_step(xmax - xmin, 4.0);
    let x_ticks: Vec<f64> = {
        let mut k = (xmin / step).ceil();
        let mut out = Vec::new();
        while k * step <= xmax + 1e-9 * step {
            out.push(k * step);
            k += 1.0;
        }
        out
    };
    let stride = x.len().div_ceil(36).max(1);
    let last_line = lines.len() - 1;
    for (li, (r, first, curves)) in lines.iter().enumerate() {
        let y0 = (top + li as u32 * ph) as i32;
        if *first {
            root.draw(&Text::new(
                one_line(&rows[*r].label),
                (18, y0 + ph as i32 / 2),
                text(17.0)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))
            .map_err(err)?;
        }
        let col = COLOURS[*r % COLOURS.len()];
        for (c, (name, y)) in curves.iter().enumerate() {
            let x0 = (left + c as u32 * pw) as i32;
            let area = root.clone().shrink((x0 as u32, y0 as u32), (pw, ph));
            let (ymin, ymax) = y
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(v), h.max(v))
                });
            let (ymin, ymax) = if ymin < ymax {
                let pad = (ymax - ymin) * 0.08;
                (ymin - pad, ymax + pad)
            } else if ymin.is_finite() {
                (ymin - 1.0, ymin + 1.0)
            } else {
                (0.0, 1.0)
            };
            let mut chart = ChartBuilder::on(&area)
                .caption(one_line(name), (FONT, 15))
                .margin(6)
                .x_label_area_size(if li == last_line { 42 } else { 22 })
                .y_label_area_size(46)
                .build_cartesian_2d(xmin..xmax, ymin..ymax)
                .map_err(err)?;
            let yf = |v: &f64| format!("{v:.2}");
            let mut mesh = chart.configure_mesh();
            mesh.light_line_style(TRANSPARENT)
                .bold_line_style(BLACK.mix(0.08))
                .x_labels(0)
                .disable_x_mesh()
                .y_labels(4)
                .y_label_formatter(&yf)
                .label_style((FONT, 12));
            if li == last_line {
                mesh.x_desc(one_line(x_label)).axis_desc_style((FONT, 13));
            }
            mesh.draw().map_err(err)?;
            // x ticks drawn here: plotters picks its own round values.
            for &t in &x_ticks {
                let (px, py) = chart.backend_coord(&(t, ymin));
                root.draw(&PathElement::new(vec![(px, py), (px, py + 4)], BLACK))
                    .map_err(err)?;
                root.draw(&Text::new(
                    tick_label((t * 1e6).round() / 1e6),
                    (px, py + 6),
                    text(12.0).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(err)?;
            }
            // Lines break at NaN.
            let mut segment: Vec<(f64, f64)> = Vec::new();
            let mut segments = Vec::new();
            for (&a, &b) in x.iter().zip(y) {
                if a.is_finite() && b.is_finite() {
                    segment.push((a, b));
                } else if !segment.is_empty() {
                    segments.push(std::mem::take(&mut segment));
                }
            }
            segments.push(segment);
            for s in segments.into_iter().filter(|s| !s.is_empty()) {
                chart
                    .draw_series(std::iter::once(PathElement::new(s, col.stroke_width(2))))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    x.iter()
                        .zip(y)
                        .step_by(stride)
                        .filter(|(a, b)| a.is_finite() && b.is_finite())
                        .map(|(&a, &b)| Circle::new((a, b), 3, col.filled())),
                )
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_pixel(path: &Path, x: u32, y: u32) -> [u8; 3] {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let ch = info.color_type.samples();
        let i = (y as usize * info.width as usize + x as usize) * ch;
        [buf[i], buf[i + 1], buf[i + 2]]
    }

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    /// A 6 × 6 RDM: 1 − cos of orientation differences, with a NaN cell.
    fn rdm(nan_at: Option<(usize, usize)>, scale: f64) -> RdmPanel {
        let n = 6;
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                data[i * n + j] = scale * (i as f64 - j as f64).abs() / 5.0;
            }
        }
        if let Some((i, j)) = nan_at {
            data[i * n + j] = f64::NAN;
        }
        RdmPanel {
            label: "V1 data".into(),
            n,
            data,
        }
    }

    /// Centre pixel of cell (i, j) of panel p.
    fn centre(l: &RdmLayout, p: usize, i: usize, j: usize, n: usize) -> (u32, u32) {
        let (x0, y0) = l.origin(p);
        let (xa, xb) = l.cell(j, n);
        let (ya, yb) = l.cell(i, n);
        ((x0 + (xa + xb) / 2) as u32, (y0 + (ya + yb) / 2) as u32)
    }

    #[test]
    fn rdms_share_one_scale_and_nan_is_grey() {
        let dir = tempfile::tempdir().unwrap();
        let neural = rdm(Some((1, 4)), 1.0);
        let mut pool = rdm(None, 2.0);
        pool.label = "model\n'pool' layer".into();
        let mut fc = rdm(None, 1.0);
        fc.label = "model 'fc' layer".into();
        let panels = [neural, pool, fc];
        let ticks = [-90.0, -54.0, -18.0, 18.0, 54.0, 90.0];
        let png = dir.path().join("rdm.png");
        rdm_panels(&png, "RDMs", &panels, None, Some(&ticks)).unwrap();
        let l = RdmLayout::new(3);
        assert_eq!(png_size(&png), (l.width, l.height));
        // The NaN cell is grey.
        let (x, y) = centre(&l, 0, 1, 4, 6);
        assert_eq!(png_pixel(&png, x, y), [NAN_GREY.0, NAN_GREY.1, NAN_GREY.2]);
        // Same value (0.6 at cell (0, 3)) in panels 0 and 2: same colour;
        // panel 1 has twice the value there: another colour.
        let a = centre(&l, 0, 0, 3, 6);
        let b = centre(&l, 2, 0, 3, 6);
        let c = centre(&l, 1, 0, 3, 6);
        assert_eq!(png_pixel(&png, a.0, a.1), png_pixel(&png, b.0, b.1));
        assert_ne!(png_pixel(&png, a.0, a.1), png_pixel(&png, c.0, c.1));
        // The scale is shared: 0..2 over all panels, so panel 1's maximum
        // (2.0 at (0, 5)) is viridis' top and panel 0's 1.0 its middle.
        let top = colour(1.0, 0.0, 1.0);
        let d = centre(&l, 1, 0, 5, 6);
        assert_eq!(png_pixel(&png, d.0, d.1), [top.0, top.1, top.2]);
        let mid = colour(1.0, 0.0, 2.0);
        let e = centre(&l, 0, 0, 5, 6);
        assert_eq!(png_pixel(&png, e.0, e.1), [mid.0, mid.1, mid.2]);
        // With a given range, values are placed on it.
        rdm_panels(&png, "RDMs", &panels, Some((0.0, 1.0)), None).unwrap();
        assert_eq!(png_pixel(&png, e.0, e.1), [top.0, top.1, top.2]);

        let svg = dir.path().join("rdm.svg");
        rdm_panels(&svg, "RDMs of V1 and the CNN", &panels, None, Some(&ticks)).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..80]);
        assert!(text.trim_end().ends_with("</svg>"));
        for t in [
            "RDMs of V1 and the CNN",
            "V1 data",
            "model &apos;pool&apos; layer",
            "dissimilarity",
            "-90",
            "90",
        ] {
            assert!(
                text.contains(t) || text.contains(&t.replace("&apos;", "'")),
                "no `{t}`"
            );
        }
        assert_eq!(text.matches("<image ").count(), 3);
    }

    #[test]
    fn rdm_ticks_are_round_values_at_their_stimuli() {
        let deg: Vec<f64> = (0..180).map(|i| i as f64 - 89.5).collect();
        let t = rdm_ticks(180, Some(&deg));
        let labels: Vec<&str> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(labels, ["-45", "0", "45"]);
        // -45 is nearest to stimulus 44 (-45.5) or 45 (-44.5).
        assert!((44..=45).contains(&t[0].0));
        let idx = rdm_ticks(360, None);
        assert_eq!(
            idx.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            ["0", "90", "180", "270"]
        );
        assert_eq!(nice_step(180.0, 4.0), 45.0);
        assert!((nice_step(1.0, 4.0) - 0.25).abs() < 1e-12);
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn many_rdms_wrap_into_rows() {
        let l = RdmLayout::new(6);
        assert_eq!((l.rows, l.cols), (2, 3));
        let l = RdmLayout::new(4);
        assert_eq!((l.rows, l.cols), (1, 4));
        assert!(l.width <= 1600);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("six.png");
        let panels: Vec<RdmPanel> = (0..6).map(|_| rdm(None, 1.0)).collect();
        rdm_panels(&p, "six", &panels, None, None).unwrap();
        let l = RdmLayout::new(6);
        assert_eq!(png_size(&p), (l.width, l.height));
        // A large RDM draws pixel by pixel.
        let n = 400;
        let big = RdmPanel {
            label: "big".into(),
            n,
            data: (0..n * n).map(|k| (k % n) as f64).collect(),
        };
        rdm_panels(&p, "big", &[big], None, None).unwrap();
    }

    #[test]
    fn bad_input_is_an_error_not_a_picture() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let mut bad = rdm(None, 1.0);
        bad.data.pop();
        assert!(
            rdm_panels(&p, "t", &[bad], None, None)
                .unwrap_err()
                .contains("needs n × n = 36")
        );
        let e = rdm_panels(
            &dir.path().join("x.jpg"),
            "t",
            &[rdm(None, 1.0)],
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains(".png or .svg"), "{e}");
        let e = rdm_panels(&p, "t", &[rdm(None, 1.0)], None, Some(&[1.0, 2.0])).unwrap_err();
        assert!(e.contains("6 stimuli but 2 tick values"), "{e}");
        let row = TuningRow {
            label: "V1".into(),
            curves: vec![("n".into(), vec![1.0])],
        };
        let e = tuning_panels(&p, "t", "x", &[1.0, 2.0], &[row]).unwrap_err();
        assert!(e.contains("1 values for 2 x values"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn similarity_bars_draw_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let one = [BarSeries {
            name: "V1".into(),
            bars: vec![
                ("model\n'pool' layer".into(), 0.62, 0.55, 0.70),
                ("model 'fc' layer".into(), -0.12, f64::NAN, f64::NAN),
                ("conv".into(), f64::NAN, f64::NAN, f64::NAN),
            ],
        }];
        let png = dir.path().join("bars.png");
        similarity_bars(&png, "RDM similarity to V1", "Pearson r with V1 RDM", &one).unwrap();
        let (w, h) = png_size(&png);
        assert!((560..=1800).contains(&w) && h >= 440, "{w}×{h}");
        let two = [
            one[0].clone(),
            BarSeries {
                name: "shuffled".into(),
                bars: vec![("model 'fc' layer".into(), 0.05, -0.02, 0.11)],
            },
        ];
        let svg = dir.path().join("bars.svg");
        similarity_bars(&svg, "RDM similarity to V1", "Pearson r with V1 RDM", &two).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for t in [
            "RDM similarity to V1",
            "Pearson r with V1 RDM",
            "shuffled",
            "conv",
            "0.62",
            "n/a",
        ] {
            assert!(text.contains(t), "no `{t}` in the SVG");
        }
        // No legend for one series.
        let svg1 = dir.path().join("one.svg");
        similarity_bars(&svg1, "t", "r", &one).unwrap();
        assert!(!std::fs::read_to_string(&svg1).unwrap().contains(">V1<"));
    }

    #[test]
    fn tuning_panels_draw_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..180).map(|i| i as f64 - 89.5).collect();
        let curve = |pref: f64| -> Vec<f64> {
            x.iter()
                .map(|t| (2.0 * (t - pref).to_radians()).cos())
                .collect()
        };
        let mut with_nan = curve(10.0);
        with_nan[50] = f64::NAN;
        let rows = [
            TuningRow {
                label: "V1".into(),
                curves: vec![
                    ("V1 neuron 17".into(), curve(0.0)),
                    ("V1 neuron 3".into(), with_nan),
                ],
            },
            TuningRow {
                label: "pool".into(),
                curves: (0..8)
                    .map(|k| (format!("pool unit {k}"), curve(k as f64 * 20.0)))
                    .collect(),
            },
            TuningRow {
                label: "fc".into(),
                curves: vec![("fc unit 3".into(), vec![0.5; 180])],
            },
        ];
        let png = dir.path().join("tuning.png");
        tuning_panels(&png, "Tuning curves", "orientation (°)", &x, &rows).unwrap();
        // 8 pool units wrap onto two lines of at most 6: 4 lines of panels.
        assert_eq!(png_size(&png), (60 + 6 * 260 + 16, 56 + 4 * 210 + 16));
        let svg = dir.path().join("tuning.svg");
        tuning_panels(&svg, "Tuning curves", "orientation (°)", &x, &rows).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for t in [
            "Tuning curves",
            "V1 neuron 17",
            "pool unit 7",
            "fc unit 3",
            "orientation (°)",
            "-45",
        ] {
            assert!(text.contains(t), "no `{t}` in the SVG");
        }
    }
}

#[cfg(test)]
mod look {
    //! `RSA_PLOTS_DIR=/some/dir cargo test --lib nodes::rsa_plots::look`
    //! draws the three pictures there, to look at.
    use super::*;

    #[test]
    fn draw_examples() {
        let Some(dir) = std::env::var_os("RSA_PLOTS_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let x: Vec<f64> = (0..180).map(|i| i as f64 - 89.5).collect();
        let n = x.len();
        let make = |kappa: f64, noise: f64| -> Vec<f64> {
            let mut data = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    let d = (2.0 * (x[i] - x[j]).to_radians()).cos();
                    let wobble = ((i * 7 + j * 13) % 17) as f64 / 17.0 - 0.5;
                    data[i * n + j] = if i == j {
                        0.0
                    } else {
                        (1.0 - (kappa * (d - 1.0)).exp() + noise * wobble).max(0.0)
                    };
                }
            }
            data
        };
        let mut fc = make(0.5, 0.05);
        fc[3 * n + 100] = f64::NAN;
        let panels = [
            RdmPanel {
                label: "V1 data".into(),
                n,
                data: make(2.0, 0.3),
            },
            RdmPanel {
                label: "model\n'pool' layer".into(),
                n,
                data: make(1.0, 0.1),
            },
            RdmPanel {
                label: "model\n'fc' layer".into(),
                n,
                data: fc,
            },
        ];
        for ext in ["png", "svg"] {
            rdm_panels(
                &dir.join(format!("rdm.{ext}")),
                "Representational dissimilarity matrices",
                &panels,
                None,
                Some(&x),
            )
            .unwrap();
            let series = [
                BarSeries {
                    name: "trained".into(),
                    bars: vec![
                        ("model\n'pool' layer".into(), 0.71, 0.66, 0.75),
                        ("model\n'fc' layer".into(), 0.43, 0.35, 0.5),
                    ],
                },
                BarSeries {
                    name: "untrained".into(),
                    bars: vec![
                        ("model\n'pool' layer".into(), 0.52, 0.45, 0.58),
                        ("model\n'fc' layer".into(), -0.08, f64::NAN, f64::NAN),
                    ],
                },
            ];
            similarity_bars(
                &dir.join(format!("bars.{ext}")),
                "RDM similarity to V1",
                "Pearson r with V1 RDM",
                &series,
            )
            .unwrap();
            let curve = |pref: f64, k: f64| -> Vec<f64> {
                x.iter()
                    .map(|t| (k * ((2.0 * (t - pref).to_radians()).cos() - 1.0)).exp())
                    .collect()
            };
            let rows = [
                TuningRow {
                    label: "V1".into(),
                    curves: vec![
                        ("V1 neuron 17".into(), curve(0.0, 2.0)),
                        ("V1 neuron 42".into(), curve(-40.0, 1.0)),
                        ("V1 neuron 99".into(), curve(60.0, 3.0)),
                    ],
                },
                TuningRow {
                    label: "pool".into(),
                    curves: (0..4)
                        .map(|k| (format!("pool unit {k}"), curve(k as f64 * 45.0, 1.5)))
                        .collect(),
                },
                TuningRow {
                    label: "fc".into(),
                    curves: (0..2)
                        .map(|k| (format!("fc unit {k}"), curve(k as f64 * 90.0 - 45.0, 0.7)))
                        .collect(),
                },
            ];
            tuning_panels(
                &dir.join(format!("tuning.{ext}")),
                "Tuning curves",
                "orientation (°)",
                &x,
                &rows,
            )
            .unwrap();
        }
    }
}
