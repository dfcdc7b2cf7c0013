//! Times runner's activation extraction on images written by `bench/extract.py`.
//!
//! ```text
//! bench_extract IMAGES.npy [--batch 32] [--repeats 2] [--layout hw|torchvision]
//!               [--device cpu|auto|cuda] [--layers]
//! ```
//!
//! Loads `IMAGES.npy` (uint8, N×H×W×3; not timed), builds a randomly
//! initialised full-size AlexNet (seed 0; HW layout 64-192-384-384-256 by
//! default, 4096 hidden, 1000 classes) on the backend of this build (burn's
//! pure-Rust `flex` by default, libtorch with `--features tch`) and times, with
//! wall clocks, what `extract` does per batch:
//!
//! * **forward**: on batches preprocessed beforehand (not timed), the tensor
//!   upload, `forward_taps` for the five HW2 taps (`features.2`,
//!   `features.5`, `features.12`, `classifier.1`, `classifier.4`) and the copy
//!   of every tap to a host `Vec<f32>`;
//! * **end-to-end**: the HW2 preprocessing (PIL-exact resize 256×256, centre
//!   crop 224, ImageNet normalisation; rayon over the batch's images, as
//!   `extract` does) followed by the same forward + copy.
//!
//! One batch is run first, untimed (warm-up: allocations, libtorch/gemm
//! initialisation). Each of the two measurements goes over all N images
//! `--repeats` times; the best pass is reported.
//!
//! Prints one JSON line on stdout: backend, threads (rayon's pool, which holds
//! `RAYON_NUM_THREADS` threads when that is set; with `--features tch`, also
//! libtorch's intra-op threads, set to the same number), batch, n_images,
//! img/s for both measurements, and their split (forward vs copy, preprocess vs
//! forward + copy).
//!
//! `--layers` adds `layers`: `[module, seconds]` pairs, the time of each module (`features.0` …
//! `classifier.5`, torchvision's names) on one batch, best of `--repeats` (at least 5),
//! to show where the forward time goes.
//!
//! `--device` defaults to `cpu`: this is a CPU benchmark, and with
//! `--features tch` "auto" would pick CUDA on a GPU machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use burn::prelude::*;
use rayon::prelude::*;
use runner::model::alexnet::{AlexNet, AlexNetConfig, HW2_TAPS, resolve_tap};
use runner::model::device::device_for;
use runner::npy;
use runner::preprocess::Preprocess;
use runner::vocab::DeviceChoice;

struct Args {
    images: PathBuf,
    batch: usize,
    repeats: usize,
    layout: String,
    device: DeviceChoice,
    layers: bool,
}

fn usage() -> String {
    "usage: bench_extract IMAGES.npy [--batch 32] [--repeats 2] [--layout hw|torchvision] \
     [--device cpu|auto|cuda] [--layers]"
        .to_string()
}

fn positive(name: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(usage)?;
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name}: not a positive integer: {v}")),
    }
}

fn parse_args() -> Result<Args, String> {
    let mut images = None;
    let mut batch = 32;
    let mut repeats = 2;
    let mut layout = "hw".to_string();
    let mut device = DeviceChoice::Cpu;
    let mut layers = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--batch" | "-b" => batch = positive("--batch", it.next())?,
            "--repeats" | "-n" => repeats = positive("--repeats", it.next())?,
            "--layout" => {
                layout = it.next().ok_or_else(usage)?;
                if layout != "hw" && layout != "torchvision" {
                    return Err(format!("--layout: `hw` or `torchvision`, not `{layout}`"));
                }
            }
            "--device" => {
                device = match it.next().ok_or_else(usage)?.as_str() {
                    "cpu" => DeviceChoice::Cpu,
                    "auto" => DeviceChoice::Auto,
                    "cuda" => DeviceChoice::Cuda,
                    d => return Err(format!("--device: `cpu`, `auto` or `cuda`, not `{d}`")),
                }
            }
            "--layers" => layers = true,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            _ if images.is_none() => images = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}\n{}", usage())),
        }
    }
    Ok(Args {
        images: images.ok_or_else(usage)?,
        batch,
        repeats,
        layout,
        device,
        layers,
    })
}

/// Forward + copy of one batch; returns the taps as host vectors and the time
/// spent in the copy (`into_data` + `try_to_vec`) alone.
fn forward_copy(
    net: &AlexNet,
    modules: &[&str],
    x: Tensor<4>,
) -> Result<(Vec<Vec<f32>>, Duration), String> {
    let outs = net.forward_taps(x, modules);
    // CPU backends here run eagerly, so what is left after forward_taps is the copy.
    let t0 = Instant::now();
    let rows = outs
        .into_iter()
        .map(|t| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("{e:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, t0.elapsed()))
}

/// Wall time of each module on one batch (best of `repeats`), in
/// torchvision's order and names, up to the deepest HW2 tap.
fn layer_times(net: &AlexNet, x: Tensor<4>, repeats: usize) -> Vec<(&'static str, f64)> {
    fn timed<T>(
        out: &mut Vec<(&'static str, f64)>,
        name: &'static str,
        f: impl FnOnce() -> T,
    ) -> T {
        let t0 = Instant::now();
        let r = f();
        out.push((name, t0.elapsed().as_secs_f64()));
        r
    }
    let mut best: Vec<(&'static str, f64)> = Vec::new();
    for _ in 0..repeats {
        let mut t = Vec::new();
        let h = x.clone();
        let h = timed(&mut t, "features.0", || net.conv1.forward(h));
        let h = timed(&mut t, "features.1", || net.relu.forward(h));
        let h = timed(&mut t, "features.2", || net.pool.forward(h));
        let h = timed(&mut t, "features.3", || net.conv2.forward(h));
        let h = timed(&mut t, "features.4", || net.relu.forward(h));
        let h = timed(&mut t, "features.5", || net.pool.forward(h));
        let h = timed(&mut t, "features.6", || net.conv3.forward(h));
        let h = timed(&mut t, "features.7", || net.relu.forward(h));
        let h = timed(&mut t, "features.8", || net.conv4.forward(h));
        let h = timed(&mut t, "features.9", || net.relu.forward(h));
        let h = timed(&mut t, "features.10", || net.conv5.forward(h));
        let h = timed(&mut t, "features.11", || net.relu.forward(h));
        let h = timed(&mut t, "features.12", || net.pool.forward(h));
        let h = timed(&mut t, "avgpool", || {
            net.avgpool.forward(h).flatten::<2>(1, 3)
        });
        let h = timed(&mut t, "classifier.1", || net.fc1.forward(h));
        let h = timed(&mut t, "classifier.2", || net.relu.forward(h));
        let h = timed(&mut t, "classifier.4", || net.fc2.forward(h));
        let h = timed(&mut t, "classifier.5", || net.relu.forward(h));
        drop(h.into_data());
        if best.is_empty() {
            best = t;
        } else {
            for (b, (_, v)) in best.iter_mut().zip(t) {
                b.1 = b.1.min(v);
            }
        }
    }
    best
}

#[cfg(feature = "tch")]
fn libtorch_threads(n: usize) -> serde_json::Value {
    tch::set_num_threads(n as i32);
    serde_json::json!(tch::get_num_threads())
}

#[cfg(not(feature = "tch"))]
fn libtorch_threads(_n: usize) -> serde_json::Value {
    serde_json::Value::Null
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let threads = rayon::current_num_threads();
    let torch_threads = libtorch_threads(threads);

    let imgs = npy::read_u8(&args.images).map_err(|e| format!("{}: {e}", args.images.display()))?;
    let [n, h, w, 3] = imgs.shape[..] else {
        return Err(format!(
            "{}: images must be N×H×W×3 uint8, found shape {:?}",
            args.images.display(),
            imgs.shape
        ));
    };
    if n == 0 {
        return Err("no images".into());
    }
    let per = h * w * 3;

    let cfg = match args.layout.as_str() {
        "torchvision" => AlexNetConfig::torchvision(),
        _ => AlexNetConfig::hw(),
    };
    let (device, backend) = device_for(args.device).map_err(|e| e.to_string())?;
    device.seed(0);
    let net = cfg.init(&device);
    let modules: Vec<&str> = HW2_TAPS
        .iter()
        .map(|(_, m)| resolve_tap(m).expect("HW2 taps resolve"))
        .collect();

    let pipeline = Preprocess::hw2();
    let (oh, ow) = pipeline.output_size(h, w);
    let preprocess = |start: usize, end: usize| -> Vec<f32> {
        (start..end)
            .into_par_iter()
            .flat_map_iter(|i| pipeline.apply(&imgs.data[i * per..(i + 1) * per], h, w))
            .collect()
    };
    let batches: Vec<(usize, usize)> = (0..n)
        .step_by(args.batch)
        .map(|s| (s, (s + args.batch).min(n)))
        .collect();
    let upload = |pixels: Vec<f32>, nb: usize| {
        Tensor::<4>::from_data(TensorData::new(pixels, [nb, 3, oh, ow]), &device)
    };

    // Warm-up, untimed.
    let (s0, e0) = batches[0];
    let (warm, _) = forward_copy(&net, &modules, upload(preprocess(s0, e0), e0 - s0))?;
    let widths: Vec<usize> = warm.iter().map(|v| v.len() / (e0 - s0)).collect();
    drop(warm);

    // (a) forward + copy on preprocessed batches.
    let pre: Vec<Vec<f32>> = batches.iter().map(|&(s, e)| preprocess(s, e)).collect();
    let mut best_fwd = (f64::INFINITY, 0.0);
    for _ in 0..args.repeats {
        let mut total = Duration::ZERO;
        let mut copy = Duration::ZERO;
        for (&(s, e), px) in batches.iter().zip(&pre) {
            let px = px.clone(); // setup: from_data takes ownership
            let t0 = Instant::now();
            let (rows, c) = forward_copy(&net, &modules, upload(px, e - s))?;
            total += t0.elapsed();
            copy += c;
            drop(rows);
        }
        if total.as_secs_f64() < best_fwd.0 {
            best_fwd = (total.as_secs_f64(), copy.as_secs_f64());
        }
    }
    drop(pre);

    // (b) end-to-end: preprocess + forward + copy.
    let mut best_e2e = (f64::INFINITY, 0.0, 0.0);
    for _ in 0..args.repeats {
        let mut pre_t = Duration::ZERO;
        let mut fwd_t = Duration::ZERO;
        let t_all = Instant::now();
        for &(s, e) in &batches {
            let t0 = Instant::now();
            let px = preprocess(s, e);
            let t1 = Instant::now();
            let (rows, _) = forward_copy(&net, &modules, upload(px, e - s))?;
            fwd_t += t1.elapsed();
            pre_t += t1 - t0;
            drop(rows);
        }
        let all = t_all.elapsed().as_secs_f64();
        if all < best_e2e.0 {
            best_e2e = (all, pre_t.as_secs_f64(), fwd_t.as_secs_f64());
        }
    }

    let layers = if args.layers {
        let (s, e) = batches[0];
        let t = layer_times(&net, upload(preprocess(s, e), e - s), args.repeats.max(5));
        serde_json::json!({"batch_images": e - s, "seconds": t})
    } else {
        serde_json::Value::Null
    };

    let out = serde_json::json!({
        "backend": backend,
        "threads": threads,
        "libtorch_threads": torch_threads,
        "layout": args.layout,
        "batch": args.batch,
        "n_images": n,
        "image_hw": [h, w],
        "repeats": args.repeats,
        "taps": modules,
        "tap_widths": widths,
        "forward_img_s": n as f64 / best_fwd.0,
        "forward_s": best_fwd.0,
        "forward_copy_s": best_fwd.1,
        "e2e_img_s": n as f64 / best_e2e.0,
        "e2e_s": best_e2e.0,
        "e2e_preprocess_s": best_e2e.1,
        "e2e_forward_s": best_e2e.2,
        "preprocess_img_s": n as f64 / best_e2e.1,
        "layers": layers,
    });
    println!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_extract: {e}");
            ExitCode::FAILURE
        }
    }
}
