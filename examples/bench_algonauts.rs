//! Times runner's Algonauts 2023 devkit workflow on matrices written by
//! `bench/algonauts.py`.
//!
//! ```text
//! bench_algonauts DIR [--batch 100] [--components 100]
//! ```
//!
//! Reads `DIR/x_{train,val,test}.npy` (float32 features, streamed from the
//! file `--batch` rows at a time, as the devkit gets them from its
//! dataloader), `DIR/{lh,rh}_{train,val}.npy` (float32 vertex responses), and
//! does what the devkit does: `IncrementalPCA(100).partial_fit` over the
//! train batches, `transform` of train/val/test, per hemisphere
//! `LinearRegression().fit(train)` + `predict(val, test)`, and Pearson r per
//! vertex on val. Writes `DIR/runner_r.npy` (r of lh then rh vertices, f64)
//! and `DIR/runner_sv.npy` (the PCA's singular values).
//!
//! Prints one JSON line: seconds per stage, the peak RSS of each stage
//! (VmHWM, reset through `/proc/self/clear_refs` before the stage) and of the
//! whole run. Threads: `RAYON_NUM_THREADS`, else all cores.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use runner::numerics::linear::{LinearFit, pearson_r_columns};
use runner::numerics::pca::IncrementalPca;

/// An `.npy` float32 C-order matrix read row block by row block.
struct Rows {
    file: File,
    rows: usize,
    cols: usize,
    next: usize,
    bytes: Vec<u8>,
}

impl Rows {
    fn open(path: &Path) -> Result<Rows, String> {
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let (shape, descr) = runner::npy::read_header(path).map_err(err)?;
        if descr != "'<f4'" || shape.len() != 2 {
            return Err(format!(
                "{}: want a 2-d '<f4' array, got {descr} {shape:?}",
                path.display()
            ));
        }
        let mut file = File::open(path).map_err(err)?;
        let mut head = [0u8; 10];
        file.read_exact(&mut head).map_err(err)?;
        let header_len = if head[6] == 1 {
            10 + u16::from_le_bytes([head[8], head[9]]) as usize
        } else {
            let mut more = [0u8; 2];
            file.read_exact(&mut more).map_err(err)?;
            12 + u32::from_le_bytes([head[8], head[9], more[0], more[1]]) as usize
        };
        let mut text = vec![0u8; header_len - file.stream_position().map_err(err)? as usize];
        file.read_exact(&mut text).map_err(err)?;
        if String::from_utf8_lossy(&text).contains("'fortran_order': True") {
            return Err(format!("{}: Fortran order is not streamed", path.display()));
        }
        file.seek(SeekFrom::Start(header_len as u64)).map_err(err)?;
        Ok(Rows {
            file,
            rows: shape[0],
            cols: shape[1],
            next: 0,
            bytes: Vec::new(),
        })
    }

    /// The next up to `n` rows into `out` (resized); 0 at the end.
    fn read(&mut self, n: usize, out: &mut Vec<f32>) -> Result<usize, String> {
        let n = n.min(self.rows - self.next);
        out.resize(n * self.cols, 0.0);
        self.fill(out)?;
        self.next += n;
        Ok(n)
    }

    fn fill(&mut self, out: &mut [f32]) -> Result<(), String> {
        let err = |e: std::io::Error| format!("reading rows: {e}");
        if cfg!(target_endian = "little") {
            // '<f4' is the in-memory layout here: read straight into the
            // floats (a separate byte buffer and conversion cost as much as
            // the read itself, ~0.3 s per pass over the train features).
            // SAFETY: the bytes of an initialised [f32] are valid [u8], and
            // every bit pattern is a valid f32.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len() * 4)
            };
            self.file.read_exact(bytes).map_err(err)
        } else {
            self.bytes.resize(out.len() * 4, 0);
            self.file.read_exact(&mut self.bytes).map_err(err)?;
            for (d, c) in out.iter_mut().zip(self.bytes.chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            Ok(())
        }
    }

    /// All remaining rows in one buffer, read in place.
    fn read_all(mut self) -> Result<(Vec<f32>, usize, usize), String> {
        let mut all = vec![0.0f32; (self.rows - self.next) * self.cols];
        self.fill(&mut all)?;
        Ok((all, self.rows, self.cols))
    }
}

#[path = "common/proc_stats.rs"]
mod proc_stats;
use proc_stats::{Stages, reset_peak};

fn run(dir: PathBuf, batch: usize, k: usize) -> Result<String, String> {
    let total = Instant::now();
    let mut st = Stages(Vec::new());
    let x = |s: &str| dir.join(format!("x_{s}.npy"));

    let ipca = st.run("ipca_fit", || {
        let mut rows = Rows::open(&x("train"))?;
        let cols = rows.cols;
        let mut ipca = IncrementalPca::new(k);
        let mut buf = Vec::new();
        loop {
            let n = rows.read(batch, &mut buf)?;
            if n == 0 {
                break;
            }
            ipca.partial_fit(&buf, n, cols)?;
        }
        Ok(ipca)
    })?;

    let feats = st.run("ipca_transform", || {
        let mut out = Vec::new();
        for split in ["train", "val", "test"] {
            let mut rows = Rows::open(&x(split))?;
            let (mut f, mut buf) = (Vec::new(), Vec::new());
            loop {
                let n = rows.read(batch, &mut buf)?;
                if n == 0 {
                    break;
                }
                f.extend(ipca.transform(&buf, n));
            }
            out.push((f, rows.rows));
        }
        Ok(out)
    })?;
    let [(f_train, n_train), (f_val, n_val), (f_test, n_test)] =
        <[_; 3]>::try_from(feats).map_err(|_| "three splits")?;

    let mut r_all = Vec::new();
    let mut n_vertices = Vec::new();
    for hemi in ["lh", "rh"] {
        let ((y, ny, v), (truth, nv, _)) = st.run(&format!("{hemi}_load"), || {
            Ok((
                Rows::open(&dir.join(format!("{hemi}_train.npy")))?.read_all()?,
                Rows::open(&dir.join(format!("{hemi}_val.npy")))?.read_all()?,
            ))
        })?;
        if ny != n_train || nv != n_val {
            return Err(format!(
                "{hemi}: {ny} train and {nv} val rows, features have {n_train} and {n_val}"
            ));
        }
        let (pred_val, _pred_test) = st.run(&format!("{hemi}_linreg"), || {
            let fit = LinearFit::fit(&f_train, n_train, k, &y, v);
            Ok((fit.predict(&f_val, n_val), fit.predict(&f_test, n_test)))
        })?;
        drop(y);
        let r = st.run(&format!("{hemi}_pearson"), || {
            Ok(pearson_r_columns(&pred_val, &truth, n_val, v))
        })?;
        r_all.extend(r);
        n_vertices.push(v);
    }
    runner::npy::write(&dir.join("runner_r.npy"), &[r_all.len()], &r_all)
        .map_err(|e| format!("writing runner_r.npy: {e}"))?;
    let sv = &ipca.fitted().ok_or("no training rows")?.singular_values;
    runner::npy::write(&dir.join("runner_sv.npy"), &[sv.len()], sv)
        .map_err(|e| format!("writing runner_sv.npy: {e}"))?;

    let stages: Vec<String> =
        st.0.iter()
            .map(|(n, s, c, m)| {
                format!("\"{n}\": {{\"s\": {s:.4}, \"cpu_s\": {c:.2}, \"peak_mib\": {m:.1}}}")
            })
            .collect();
    reset_peak();
    Ok(format!(
        "{{\"threads\": {}, \"batch\": {batch}, \"components\": {k}, \"n_train\": {n_train}, \
         \"n_val\": {n_val}, \"n_test\": {n_test}, \"vertices\": {n_vertices:?}, \
         \"stages\": {{{}}}, \"wall_s\": {:.4}, \"peak_mib\": {:.1}}}",
        rayon::current_num_threads(),
        stages.join(", "),
        total.elapsed().as_secs_f64(),
        // clear_refs resets VmHWM; the whole run's peak is the largest stage's
        // (the stages cover everything that allocates).
        st.0.iter().map(|s| s.3).fold(0.0, f64::max),
    ))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut batch, mut k) = (None, 100usize, 100usize);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{name}: expected a positive integer"))
        };
        let parsed = match a.as_str() {
            "--batch" => num("--batch").map(|v| batch = v),
            "--components" => num("--components").map(|v| k = v),
            s if s.starts_with('-') || dir.is_some() => Err(format!(
                "usage: bench_algonauts DIR [--batch 100] [--components 100] (got {s})"
            )),
            _ => {
                dir = Some(PathBuf::from(&a));
                Ok(())
            }
        };
        if let Err(e) = parsed {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: bench_algonauts DIR [--batch 100] [--components 100]");
        return ExitCode::from(2);
    };
    match run(dir, batch, k) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_algonauts: {e}");
            ExitCode::FAILURE
        }
    }
}
