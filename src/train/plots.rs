//! Pictures of a training run: learning curves (loss; bit and exact-match
//! accuracy, against samples seen) and the conv1 filters as an image grid,
//! the way HW1 shows them.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::EvalRow;
use crate::nodes::font::{FONT, register_font};

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A point of a learning curve, whichever task it comes from.
pub trait CurveRow {
    fn samples(&self) -> u64;
    fn train_loss(&self) -> Option<f64>;
    fn val_loss(&self) -> f64;
    /// The accuracies of the right panel, with their legend labels.
    fn accuracies(&self) -> Vec<(&'static str, f64)>;
}

impl CurveRow for EvalRow {
    fn samples(&self) -> u64 {
        self.samples
    }
    fn train_loss(&self) -> Option<f64> {
        self.train_loss
    }
    fn val_loss(&self) -> f64 {
        self.val_loss
    }
    fn accuracies(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("bit accuracy (32 bits)", self.val_bit_acc),
            ("exact match (all 32 bits)", self.val_exact_match),
        ]
    }
}

impl CurveRow for crate::train::grating::GratingEvalRow {
    fn samples(&self) -> u64 {
        self.samples
    }
    fn train_loss(&self) -> Option<f64> {
        self.train_loss
    }
    fn val_loss(&self) -> f64 {
        self.val_loss
    }
    fn accuracies(&self) -> Vec<(&'static str, f64)> {
        vec![("tilt accuracy (held-out gratings)", self.val_accuracy)]
    }
}

/// Two panels side by side: BCE loss (train, val) and validation accuracy
/// (Barcode: bit, exact match; gratings: tilt).
pub fn learning_curves<R: CurveRow>(path: &Path, title: &str, rows: &[R]) -> Result<(), String> {
    register_font();
    let size = (1200, 480);
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if path.extension().is_some_and(|e| e == "svg") {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw_curves(&root, title, rows)
            .and_then(|_| root.present())
            .map_err(|e| err(&e))
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw_curves(&root, title, rows)
            .and_then(|_| root.present())
            .map_err(|e| err(&e))
    }
}

fn draw_curves<DB: DrawingBackend, R: CurveRow>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[R],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 22))?;
    let panels = root.split_evenly((1, 2));
    let x_max = rows.iter().map(|r| r.samples()).max().unwrap_or(1).max(1) as f64;
    let finite = |v: f64| v.is_finite().then_some(v);

    // Loss on a linear axis from 0: BCE at chance is ln 2 ≈ 0.693.
    let loss_max = rows
        .iter()
        .flat_map(|r| [r.train_loss().and_then(finite), finite(r.val_loss())])
        .flatten()
        .fold(0.0f64, f64::max)
        .max(0.1)
        * 1.05;
    let mut c = ChartBuilder::on(&panels[0])
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .caption("BCE loss", (FONT, 18))
        .build_cartesian_2d(0.0..x_max, 0.0..loss_max)?;
    c.configure_mesh()
        .x_desc("training samples seen")
        .y_desc("loss")
        .label_style((FONT, 13))
        .x_label_formatter(&|v| format_samples(*v))
        .draw()?;
    let train: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.train_loss()
                .and_then(finite)
                .map(|l| (r.samples() as f64, l))
        })
        .collect();
    let val: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| finite(r.val_loss()).map(|l| (r.samples() as f64, l)))
        .collect();
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    series(&mut c, train, blue, "train (mean since last eval)")?;
    series(&mut c, val, orange, "validation")?;
    c.configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut c = ChartBuilder::on(&panels[1])
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .caption("validation accuracy", (FONT, 18))
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)?;
    c.configure_mesh()
        .x_desc("training samples seen")
        .y_desc("accuracy")
        .label_style((FONT, 13))
        .x_label_formatter(&|v| format_samples(*v))
        .draw()?;
    let colours = [RGBColor(44, 160, 44), RGBColor(214, 39, 40)];
    let n_acc = rows.first().map_or(0, |r| r.accuracies().len());
    for k in 0..n_acc {
        let label = rows[0].accuracies()[k].0;
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.samples() as f64, r.accuracies()[k].1))
            .collect();
        series(&mut c, pts, colours[k % 2], label)?;
    }
    // Chance: 0.5 (per bit; for a tilt).
    c.draw_series(LineSeries::new(
        vec![(0.0, 0.5), (x_max, 0.5)],
        BLACK.mix(0.3).stroke_width(1),
    ))?;
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A line with a dot at every evaluation, and its legend entry.
fn series<DB: DrawingBackend>(
    c: &mut Chart<'_, DB>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    label: &str,
) -> DrawResult<DB> {
    c.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    c.draw_series(
        points
            .into_iter()
            .map(|p| Circle::new(p, 3, colour.filled())),
    )?;
    Ok(())
}

fn format_samples(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// conv1's filters (`weights` is out × 3 × k × k, row-major) as RGB tiles,
/// each min–max scaled on its own as in HW1, 8 per row, each weight a
/// `scale`-pixel square.
pub fn filter_grid(path: &Path, weights: &[f32], out: usize, k: usize) -> Result<(), String> {
    let cols = 8.min(out).max(1);
    let rows = out.div_ceil(cols);
    let (scale, gap) = (8u32, 4u32);
    let tile = k as u32 * scale;
    let size = (
        gap + cols as u32 * (tile + gap),
        gap + rows as u32 * (tile + gap),
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let draw = || -> DrawResult<BitMapBackend> {
        root.fill(&WHITE)?;
        for f in 0..out {
            let w = &weights[f * 3 * k * k..(f + 1) * 3 * k * k];
            let (lo, hi) = w
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            let span = if hi > lo { hi - lo } else { 1.0 };
            let (tx, ty) = (
                gap + (f % cols) as u32 * (tile + gap),
                gap + (f / cols) as u32 * (tile + gap),
            );
            for y in 0..k {
                for x in 0..k {
                    let c =
                        |ch: usize| (((w[(ch * k + y) * k + x] - lo) / span) * 255.0).round() as u8;
                    let x0 = (tx + x as u32 * scale) as i32;
                    let y0 = (ty + y as u32 * scale) as i32;
                    root.draw(&Rectangle::new(
                        [(x0, y0), (x0 + scale as i32, y0 + scale as i32)],
                        RGBColor(c(0), c(1), c(2)).filled(),
                    ))?;
                }
            }
        }
        root.present()
    };
    draw().map_err(|e| format!("{}: {e}", path.display()))
}
