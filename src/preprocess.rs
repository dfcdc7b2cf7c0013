//! Image preprocessing that reproduces torchvision's PIL pipeline bit for bit.
//!
//! HW2 and Algonauts feed `PIL.Image` objects through `transforms.Resize`
//! (Pillow's antialiased bilinear resample), `CenterCrop`, `ToTensor` and
//! `Normalize`. Activations are only comparable with the Python reference if
//! the network sees the same input, so the resize is a faithful port of
//! Pillow 12.3's `src/libImaging/Resample.c` (8-bit integer path) and the
//! float steps use torchvision's float32 operation order.
//!
//! Images are interleaved RGB `u8`, row-major `H×W×3` (what `np.asarray(pil)`
//! gives); tensors are planar `3×H×W` `f32` (what `ToTensor` gives).
//!
//! The Kay V4 project fed vim-1's grayscale float stimuli to a TensorFlow 1
//! AlexNet instead: [`vim1_tensor`] reproduces that, with a port of TF's
//! legacy `ResizeBilinear` kernel ([`resize_bilinear_tf_legacy`]).

/// How torchvision's `Resize` was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// `Resize((s, s))`: both sides to `s`, aspect ratio not kept.
    Square(usize),
    /// `Resize(s)`: shorter side to `s`, longer side scaled and truncated.
    ShorterSide(usize),
}

impl Resize {
    /// Output `(height, width)` for an `h×w` input, as torchvision's
    /// `_compute_resized_output_size` (without `max_size`).
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        match *self {
            Resize::Square(s) => (s, s),
            Resize::ShorterSide(s) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                // Python's `int(s * long / short)`: float64 true division, truncated.
                let new_long = ((s * long) as f64 / short as f64) as usize;
                if w <= h { (new_long, s) } else { (s, new_long) }
            }
        }
    }
}

/// A torchvision `Compose([Resize, (CenterCrop), ToTensor(), Normalize])`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    pub resize: Resize,
    pub crop: Option<usize>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl Preprocess {
    /// HW2: resize to 256×256, center-crop 224, ImageNet normalisation.
    pub fn hw2() -> Self {
        Preprocess {
            resize: Resize::Square(256),
            crop: Some(224),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// Algonauts: resize straight to 224×224, no crop, ImageNet normalisation.
    pub fn algonauts() -> Self {
        Preprocess {
            resize: Resize::Square(224),
            crop: None,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// `(height, width)` of the tensor [`apply`](Self::apply) returns for an `h×w` image.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        match self.crop {
            Some(c) => (c, c),
            None => self.resize.output_size(h, w),
        }
    }

    /// The `u8` image just before `ToTensor` (resized, then cropped).
    pub fn resize_and_crop(&self, img: &[u8], h: usize, w: usize) -> (Vec<u8>, usize, usize) {
        let (rh, rw) = self.resize.output_size(h, w);
        let resized = resize_bilinear_pil(img, h, w, rh, rw);
        match self.crop {
            Some(c) => (center_crop(&resized, rh, rw, 3, c, c), c, c),
            None => (resized, rh, rw),
        }
    }

    /// The normalised `3×H'×W'` float32 tensor (CHW), `H'×W'` = [`output_size`](Self::output_size).
    pub fn apply(&self, img: &[u8], h: usize, w: usize) -> Vec<f32> {
        let (pixels, oh, ow) = self.resize_and_crop(img, h, w);
        let n = oh * ow;
        let mut out = vec![0f32; 3 * n];
        for c in 0..3 {
            let (mean, std) = (self.mean[c], self.std[c]);
            for (o, px) in out[c * n..(c + 1) * n]
                .iter_mut()
                .zip(pixels.chunks_exact(3))
            {
                *o = normalize_value(px[c], mean, std);
            }
        }
        out
    }
}

/// `ToTensor` then `Normalize` for one value: `img.float().div(255)`, then
/// `sub_(mean).div_(std)`, each a correctly rounded float32 operation.
#[inline]
pub fn normalize_value(v: u8, mean: f32, std: f32) -> f32 {
    (v as f32 / 255.0 - mean) / std
}

// ---------------------------------------------------------------------------
// Pillow's resample (Resample.c), BILINEAR filter, 8 bits per channel.
// ---------------------------------------------------------------------------

/// Fixed-point fraction bits: 8 for the value, 2 spare for overflow and sign.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's triangle filter; its support is 1 before antialias scaling.
fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Per-output-pixel source window and fixed-point weights.
struct Coeffs {
    ksize: usize,
    /// `(first source index, number of taps)` per output pixel.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output pixel (unused tail is zero).
    kk: Vec<i32>,
}

/// `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the source box
/// `[in0, in1)`. Pillow passes the box as C `float`, hence the `f32` bounds.
fn precompute_coeffs(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Coeffs {
    const SUPPORT: f64 = 1.0;
    // `(double)(in1 - in0)`: the subtraction happens in float.
    let scale = (in1 - in0) as f64 / out_size as f64;
    // Downscaling widens the filter by the scale factor: that is the antialias.
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;

    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        // C `(int)` truncates toward zero, as Rust's `as` does.
        let xmin = ((center - support + 0.5) as i32).max(0);
        let xmax = ((center + support + 0.5) as i32).min(in_size as i32) - xmin;
        let taps = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(taps) {
            let w = bilinear_filter(((x as i32 + xmin) as f64 - center + 0.5) * inv_filterscale);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter_mut().enumerate().take(taps) {
            if ww != 0.0 {
                *kx /= ww;
            }
            // normalize_coeffs_8bpc: round half away from zero into fixed point.
            let scaled = *kx * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if *kx < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, taps));
    }
    Coeffs { ksize, bounds, kk }
}

/// clip8: the lookup table in Pillow maps `ss >> PRECISION_BITS` to 0..=255.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUND_HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over source rows `row0..row0 + rows` of a `w`-wide RGB image.
fn resample_horizontal(src: &[u8], w: usize, row0: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; rows * out_w * 3];
    for yy in 0..rows {
        let line = &src[(row0 + yy) * w * 3..(row0 + yy + 1) * w * 3];
        let out_line = &mut out[yy * out_w * 3..(yy + 1) * out_w * 3];
        for (xx, &(xmin, taps)) in c.bounds.iter().enumerate() {
            let k = &c.kk[xx * c.ksize..xx * c.ksize + taps];
            let px = &line[xmin * 3..(xmin + taps) * 3];
            let (mut s0, mut s1, mut s2) = (ROUND_HALF, ROUND_HALF, ROUND_HALF);
            for (&kx, p) in k.iter().zip(px.chunks_exact(3)) {
                s0 += p[0] as i32 * kx;
                s1 += p[1] as i32 * kx;
                s2 += p[2] as i32 * kx;
            }
            out_line[xx * 3] = clip8(s0);
            out_line[xx * 3 + 1] = clip8(s1);
            out_line[xx * 3 + 2] = clip8(s2);
        }
    }
    out
}

/// Vertical pass of a `w`-wide RGB image; `bounds` index rows of `src` after
/// subtracting `row_offset`.
fn resample_vertical(src: &[u8], w: usize, row_offset: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let stride = w * 3;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (yy, &(ymin, taps)) in c.bounds.iter().enumerate() {
        let k = &c.kk[yy * c.ksize..yy * c.ksize + taps];
        // Same sums as Pillow's per-pixel loop, accumulated row by row: integer
        // addition is exact, so the order does not matter.
        acc.fill(ROUND_HALF);
        for (y, &ky) in k.iter().enumerate() {
            let row = ymin - row_offset + y;
            for (a, &p) in acc.iter_mut().zip(&src[row * stride..(row + 1) * stride]) {
                *a += p as i32 * ky;
            }
        }
        for (o, &a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `ImagingResampleInner` for the full source box: horizontal pass first (only
/// over the rows the vertical pass reads), then vertical; a pass whose size
/// does not change is skipped, and if neither runs the image is copied.
fn resample_inner(img: &[u8], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    let need_horizontal = out_w != w;
    let need_vertical = out_h != h;
    let vert = precompute_coeffs(h, 0.0, h as f32, out_h);
    let mut cur: Option<Vec<u8>> = None;
    let mut row_offset = 0;
    if need_horizontal {
        let horiz = precompute_coeffs(w, 0.0, w as f32, out_w);
        let ybox_first = vert.bounds[0].0;
        let (last_min, last_taps) = vert.bounds[out_h - 1];
        let ybox_last = last_min + last_taps;
        cur = Some(resample_horizontal(
            img,
            w,
            ybox_first,
            ybox_last - ybox_first,
            &horiz,
        ));
        row_offset = ybox_first;
    }
    if need_vertical {
        let width = if need_horizontal { out_w } else { w };
        let src = cur.as_deref().unwrap_or(img);
        cur = Some(resample_vertical(src, width, row_offset, &vert));
    }
    cur.unwrap_or_else(|| img.to_vec())
}

/// `PIL.Image.resize((out_w, out_h), Image.BILINEAR)` of an `h×w` RGB image,
/// bit-exact with Pillow 12.3: triangle filter widened by the downscale factor
/// (antialias), double-precision weights rounded to 22-bit fixed point,
/// horizontal pass then vertical pass, each rounded to `u8`.
///
/// Panics if `img.len() != h * w * 3` or any size is zero.
pub fn resize_bilinear_pil(img: &[u8], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    assert_eq!(img.len(), h * w * 3, "image buffer is not {h}×{w}×3");
    assert!(
        h > 0 && w > 0 && out_h > 0 && out_w > 0,
        "image sizes must be > 0"
    );
    if (out_h, out_w) == (h, w) {
        return img.to_vec();
    }
    // Image.resize: a very tall image shrinking vertically is resized in two
    // calls, vertical first (Pillow's guard against huge intermediates).
    if h > w * 100 && out_h < h {
        let tall = resample_inner(img, h, w, out_h, w);
        return resample_inner(&tall, out_h, w, out_h, out_w);
    }
    resample_inner(img, h, w, out_h, out_w)
}

// ---------------------------------------------------------------------------
// CenterCrop
// ---------------------------------------------------------------------------

/// Python's `round()` of `d / 2.0` for an integer `d >= 0`: halves go to even.
fn round_half_even_half(d: usize) -> usize {
    let f = d / 2;
    if d.is_multiple_of(2) { f } else { f + (f & 1) }
}

/// Offset of torchvision's `CenterCrop((out_h, out_w))` window in the source:
/// `(top, left)`, negative where torchvision first zero-pads a too-small image.
pub fn center_crop_offsets(h: usize, w: usize, out_h: usize, out_w: usize) -> (isize, isize) {
    // torchvision pads (out - in) // 2 before and the rest after, then crops
    // the padded image at round((padded - out) / 2).
    let axis = |size: usize, out: usize| -> isize {
        if out > size {
            let pad_before = (out - size) / 2;
            let padded = size + (out - size) / 2 + (out - size).div_ceil(2);
            round_half_even_half(padded - out) as isize - pad_before as isize
        } else {
            round_half_even_half(size - out) as isize
        }
    };
    (axis(h, out_h), axis(w, out_w))
}

/// torchvision's `CenterCrop((out_h, out_w))` of an `h×w×channels` image,
/// zero-padding where the image is smaller than the crop, as torchvision does.
pub fn center_crop<T: Copy + Default>(
    img: &[T],
    h: usize,
    w: usize,
    channels: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<T> {
    assert_eq!(
        img.len(),
        h * w * channels,
        "image buffer is not {h}×{w}×{channels}"
    );
    let (top, left) = center_crop_offsets(h, w, out_h, out_w);
    let mut out = vec![T::default(); out_h * out_w * channels];
    for y in 0..out_h {
        let sy = top + y as isize;
        if sy < 0 || sy >= h as isize {
            continue;
        }
        let row = &img[sy as usize * w * channels..(sy as usize + 1) * w * channels];
        for x in 0..out_w {
            let sx = left + x as isize;
            if sx < 0 || sx >= w as isize {
                continue;
            }
            let dst = (y * out_w + x) * channels;
            out[dst..dst + channels]
                .copy_from_slice(&row[sx as usize * channels..(sx as usize + 1) * channels]);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// vim-1 (Kay V4 project): TensorFlow 1's ResizeBilinear, legacy mode.
// ---------------------------------------------------------------------------

/// TF's `CachedInterpolation`: source rows (or columns) and the float weight.
struct TfLerp {
    lower: usize,
    upper: usize,
    lerp: f32,
}

/// `compute_interpolation_weights` with `LegacyScaler` and the scale of
/// `CalculateResizeScale(in, out, align_corners = false)`, all in `f32`:
/// `scale = in / float(out)`, `src = float(i) * scale`, `lerp = src - floor(src)`.
fn tf_legacy_weights(in_size: usize, out_size: usize) -> Vec<TfLerp> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let src = i as f32 * scale;
            let floor = src.floor();
            TfLerp {
                // src ≥ 0, so the max(…, 0) of TF never bites; the min does.
                lower: floor as usize,
                upper: (src.ceil() as usize).min(in_size - 1),
                lerp: src - floor,
            }
        })
        .collect()
}

/// TensorFlow's CPU `ResizeBilinear` with `align_corners = false,
/// half_pixel_centers = false` (TF1's only mode, and `tf.compat.v1`'s
/// default) of one `h×w` float32 plane, bit-exact: weights as
/// [`tf_legacy_weights`], then `compute_lerp`'s
/// `top = tl + (tr - tl) * x_lerp`, `bottom = bl + (br - bl) * x_lerp`,
/// `top + (bottom - top) * y_lerp`, each operation rounded to `f32` (TF's SSE
/// path uses separate mul and add, never a fused multiply-add; neither does
/// Rust). No antialiasing: downsampling just samples between two source
/// pixels. A same-size resize is a copy, as TF's no-op branch.
///
/// Panics if `img.len() != h * w` or any size is zero.
pub fn resize_bilinear_tf_legacy(
    img: &[f32],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    assert_eq!(img.len(), h * w, "image buffer is not {h}×{w}");
    assert!(
        h > 0 && w > 0 && out_h > 0 && out_w > 0,
        "image sizes must be > 0"
    );
    if (out_h, out_w) == (h, w) {
        return img.to_vec();
    }
    let ys = tf_legacy_weights(h, out_h);
    let xs = tf_legacy_weights(w, out_w);
    let mut out = Vec::with_capacity(out_h * out_w);
    for y in &ys {
        let top_row = &img[y.lower * w..(y.lower + 1) * w];
        let bottom_row = &img[y.upper * w..(y.upper + 1) * w];
        for x in &xs {
            let (tl, tr) = (top_row[x.lower], top_row[x.upper]);
            let (bl, br) = (bottom_row[x.lower], bottom_row[x.upper]);
            let top = tl + (tr - tl) * x.lerp;
            let bottom = bl + (br - bl) * x.lerp;
            out.push(top + (bottom - top) * y.lerp);
        }
    }
    out
}

/// The Kay V4 project's input size (`tf.image.resize_images(x, (224, 224))`).
pub const VIM1_SIZE: usize = 224;

/// The Kay V4 project's input for one vim-1 stimulus: the planar
/// `3×size×size` float32 tensor its TF1 AlexNet saw. `gray` is one `h×w`
/// row-major stimulus as `Stimuli.mat` holds it (float64, about ±0.5).
///
/// The project's steps, in its order and precision:
/// 1. `stim + .5` in float64 (numpy);
/// 2. `np.tile(stim[..., None], (1, 1, 1, 3))`: three equal channels;
/// 3. `tf.image.resize_images(x, (size, size))`: bilinear, legacy mapping
///    (see [`resize_bilinear_tf_legacy`]);
/// 4. nothing else: no crop, no mean or std normalisation, values stay in
///    about [0, 1].
///
/// Where float64 becomes float32: `ResizeBilinear` takes the float64 tensor
/// as is and reads each pixel as `float(x)` before interpolating in float32
/// (its output is always float32), so the cast is per pixel, after the
/// float64 `+ .5`, and equals casting the shifted stimulus up front, which is
/// what this does. When `h×w` already is `size×size`, TF1's `resize_images`
/// skips the op and returns the float64 array itself; the float32 cast of it
/// returned here is what the net's float32 input then receives.
///
/// The channels are equal, so the plane is resized once and copied.
/// Bit-exact with TensorFlow 2.21's `tf.compat.v1.image.resize_images`
/// (tests/fixtures/vim1_preprocess).
///
/// Panics if `gray.len() != h * w` or any size is zero.
pub fn vim1_tensor(gray: &[f64], h: usize, w: usize, size: usize) -> Vec<f32> {
    assert_eq!(gray.len(), h * w, "stimulus buffer is not {h}×{w}");
    let shifted: Vec<f32> = gray.iter().map(|&v| (v + 0.5) as f32).collect();
    let plane = resize_bilinear_tf_legacy(&shifted, h, w, size, size);
    let mut out = Vec::with_capacity(3 * plane.len());
    for _ in 0..3 {
        out.extend_from_slice(&plane);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round_goes_to_even() {
        // round(0.5)=0, round(1.5)=2, round(16.5)=16, round(58.5)=58, round(17.5)=18
        let cases = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (33, 16),
            (35, 18),
            (117, 58),
        ];
        for (d, want) in cases {
            assert_eq!(round_half_even_half(d), want, "d={d}");
        }
    }

    #[test]
    fn same_size_resize_is_a_copy() {
        let img: Vec<u8> = (0..5 * 7 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_bilinear_pil(&img, 5, 7, 5, 7), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = vec![77u8; 31 * 45 * 3];
        for (oh, ow) in [(10, 10), (64, 90), (31, 20), (100, 45)] {
            let out = resize_bilinear_pil(&img, 31, 45, oh, ow);
            assert!(out.iter().all(|&v| v == 77), "{oh}×{ow}");
        }
    }

    #[test]
    fn vim1_has_three_equal_planes_and_no_normalisation() {
        // A constant -0.5 stimulus is black: +0.5 gives 0 and nothing rescales it.
        for (h, w) in [(16, 16), (13, 21), (500, 500)] {
            let t = vim1_tensor(&vec![-0.5; h * w], h, w, 224);
            assert_eq!(t.len(), 3 * 224 * 224);
            assert!(t.iter().all(|&v| v == 0.0), "{h}×{w}");
        }
        // A constant 0.5 stimulus is 1 everywhere (lerps of equal values are exact).
        let t = vim1_tensor(&vec![0.5; 13 * 21], 13, 21, 37);
        assert!(t.iter().all(|&v| v == 1.0));
        // Any stimulus: the three planes are the same bits.
        let gray: Vec<f64> = (0..13 * 21)
            .map(|i| ((i * 37) % 101) as f64 / 100.0 - 0.5)
            .collect();
        let t = vim1_tensor(&gray, 13, 21, 224);
        let n = 224 * 224;
        assert_eq!(t[..n], t[n..2 * n]);
        assert_eq!(t[..n], t[2 * n..]);
    }

    #[test]
    fn tf_legacy_resize_maps_dst_times_in_over_out() {
        // Legacy mapping: output pixel i samples source i·in/out (no half-pixel
        // shift), so the first output pixel is the first source pixel and a
        // 2× upsample alternates source pixels and midpoints.
        let img = [0.0f32, 1.0, 2.0, 3.0];
        assert_eq!(
            resize_bilinear_tf_legacy(&img, 1, 4, 1, 8),
            vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
        );
        // Downsampling by 2 takes every other pixel, no averaging.
        assert_eq!(resize_bilinear_tf_legacy(&img, 1, 4, 1, 2), vec![0.0, 2.0]);
        // Same size: a copy.
        assert_eq!(resize_bilinear_tf_legacy(&img, 2, 2, 2, 2), img.to_vec());
    }

    #[test]
    fn shorter_side_truncates_like_python() {
        // int(256 * 400 / 300) = 341; portrait images scale the height.
        assert_eq!(Resize::ShorterSide(256).output_size(300, 400), (256, 341));
        assert_eq!(Resize::ShorterSide(256).output_size(500, 375), (341, 256));
        assert_eq!(Resize::ShorterSide(256).output_size(227, 227), (256, 256));
    }
}
