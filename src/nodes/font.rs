//! The one font every picture uses. It ships inside the binary, so plots need
//! no system fontconfig and look the same on every machine.

use std::sync::Once;

use plotters::prelude::FontStyle;

pub(crate) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}
