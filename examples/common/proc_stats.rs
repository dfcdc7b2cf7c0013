//! What the benchmark examples share: their own process's peak resident
//! memory and CPU seconds from /proc, a per-stage meter, and .npy loading.
#![allow(dead_code)]

use std::path::Path;
use std::time::Instant;

use faer::Mat;
use runner::npy;
use runner::numerics::ridge::from_row_major;

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS since the last reset, in MiB.
pub fn peak_mib() -> f64 {
    kib("VmHWM:") as f64 / 1024.0
}

pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds of this process, all threads: with a busy machine, wall
/// time alone cannot tell slow code from a stolen core.
pub fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are the 14th and 15th fields overall, in clock ticks.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// (stage, wall s, CPU s, peak MiB), in run order.
pub struct Stages(pub Vec<(String, f64, f64, f64)>);

impl Stages {
    pub fn run<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        reset_peak();
        let (t, c) = (Instant::now(), cpu_s());
        let out = f()?;
        let wall = t.elapsed().as_secs_f64();
        self.0.push((name.into(), wall, cpu_s() - c, peak_mib()));
        Ok(out)
    }
}

pub fn load(dir: &Path, name: &str) -> Result<npy::Array<f64>, String> {
    let p = dir.join(format!("{name}.npy"));
    npy::read_f64(&p).map_err(|e| format!("{}: {e}", p.display()))
}

pub fn load_mat(dir: &Path, name: &str) -> Result<Mat<f64>, String> {
    let a = load(dir, name)?;
    if a.shape.len() != 2 {
        return Err(format!("{name}.npy: want 2-d, got {:?}", a.shape));
    }
    let (r, cols) = a.rows_cols();
    Ok(from_row_major(&a.data, r, cols))
}
