//! Resumable training state in the train node's work directory
//! (`cache/work/<key>/`), which outlives a killed run.
//!
//! A save writes `model-<step>.bpk`, `optim-<step>.bpk` and `sched-<step>.bpk`
//! (each atomically), then `progress.json`, which names them with their
//! blake3. `progress.json` is the commit point: a kill before it leaves the
//! previous state intact, and a load trusts only files whose hashes match.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EvalRow;
use crate::cache::write_atomic;
use crate::error::{IoContext, Result};

/// `R` is the learning curve's row: the Barcode task's [`EvalRow`], or
/// the grating task's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "R: Serialize",
    deserialize = "R: serde::de::DeserializeOwned"
))]
pub struct Progress<R = EvalRow> {
    /// Optimizer steps done.
    pub step: u64,
    /// Training samples drawn from the stream so far.
    pub samples: u64,
    /// Evaluations so far (the learning curve).
    pub history: Vec<R>,
    /// Running sum and count of train losses since the last evaluation.
    pub loss_sum: f64,
    pub loss_steps: u64,
    /// Seconds of training before this state was saved (resumes add to it).
    pub seconds: f64,
    /// State file name → blake3.
    pub files: Vec<(String, String)>,
}

pub struct Saved<R = EvalRow> {
    pub progress: Progress<R>,
    pub model: Vec<u8>,
    pub optim: Vec<u8>,
    pub sched: Vec<u8>,
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: &Path) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    /// The last complete state, or None (nothing saved, or saved state that
    /// does not verify: then training starts over and says why).
    pub fn load<R: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<(Option<Saved<R>>, Option<String>)> {
        let p = self.dir.join("progress.json");
        let Ok(bytes) = fs::read(&p) else {
            return Ok((None, None));
        };
        let progress: Progress<R> = match serde_json::from_slice(&bytes) {
            Ok(x) => x,
            Err(e) => return Ok((None, Some(format!("progress.json unreadable: {e}")))),
        };
        let mut blobs = Vec::new();
        for (name, hash) in &progress.files {
            let f = self.dir.join(name);
            let Ok(b) = fs::read(&f) else {
                return Ok((None, Some(format!("{name} is missing"))));
            };
            if blake3::hash(&b).to_hex().as_str() != hash {
                return Ok((None, Some(format!("{name} does not match its blake3"))));
            }
            blobs.push(b);
        }
        let [model, optim, sched]: [Vec<u8>; 3] = match blobs.try_into() {
            Ok(x) => x,
            Err(_) => return Ok((None, Some("progress.json names the wrong files".into()))),
        };
        Ok((
            Some(Saved {
                progress,
                model,
                optim,
                sched,
            }),
            None,
        ))
    }

    pub fn save<R: Serialize>(
        &self,
        mut progress: Progress<R>,
        model: &[u8],
        optim: &[u8],
        sched: &[u8],
    ) -> Result<()> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let step = progress.step;
        progress.files.clear();
        for (stem, bytes) in [("model", model), ("optim", optim), ("sched", sched)] {
            let name = format!("{stem}-{step}.bpk");
            write_atomic(&self.dir.join(&name), bytes)?;
            progress
                .files
                .push((name, blake3::hash(bytes).to_hex().to_string()));
        }
        let json = serde_json::to_vec_pretty(&progress).expect("progress serializes");
        write_atomic(&self.dir.join("progress.json"), &json)?;
        // Older states are garbage only once the new one is committed.
        let keep: Vec<&String> = progress.files.iter().map(|(n, _)| n).collect();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.ends_with(".bpk") && !keep.contains(&&n) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}
