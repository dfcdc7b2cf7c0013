//! Which Slurm job is computing which node, kept in the shared cache so that
//! every `runner exec --executor slurm` of the same nodes (two researchers,
//! or a rerun while the first is still in flight) sees the others' jobs and
//! submits nothing twice.
//!
//! ```text
//! cache/slurm/
//!   id                   this cache's identity; a job refuses any other cache
//!   claims.lock          held while a driver checks claims and submits
//!   claims/<key>.json    the job computing <key> now: job id, tries, report
//!   jobs/<token>.jsonl   what a job did, node by node (written by the job)
//!   logs/<token>.{out,err}  the job's stdout and stderr
//! ```
//!
//! A claim is only a hint: its job may have ended. The entry in the cache
//! is the truth, and its lock still makes sure a node is computed once even
//! if two jobs were to run it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::{EntryLock, lock_file, write_atomic};
use crate::error::{IoContext, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    pub job_id: String,
    pub node: String,
    /// Names the job's report and log files.
    pub token: String,
    /// Submissions of this node so far, by any driver.
    pub tries: u32,
    /// The time limit of the latest submission (doubled after a timeout).
    pub time_s: u64,
    /// `host:pid` of the driver that submitted it.
    pub driver: String,
    pub submitted_unix: u64,
}

pub struct Claims {
    pub dir: PathBuf,
}

impl Claims {
    pub fn open(slurm_dir: &Path) -> Result<Claims> {
        let dir = slurm_dir.join("claims");
        std::fs::create_dir_all(&dir).at(&dir)?;
        Ok(Claims { dir })
    }

    /// Held while deciding whether to submit: two drivers never both see
    /// "unclaimed" for the same node.
    pub fn lock(&self) -> Result<EntryLock> {
        let path = self.dir.with_file_name("claims.lock");
        let f = lock_file(&path)?;
        f.lock().at(&path)?;
        Ok(EntryLock::from_file(f))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn get(&self, key: &str) -> Option<Claim> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put(&self, key: &str, claim: &Claim) -> Result<()> {
        write_atomic(
            &self.path(key),
            &serde_json::to_vec(claim).expect("claims serialize"),
        )
    }

    /// Removes the claim if it still names this job (a newer submission by
    /// another driver keeps its own).
    pub fn release(&self, key: &str, job_id: &str) {
        if self.get(key).is_some_and(|c| c.job_id == job_id) {
            let _ = std::fs::remove_file(self.path(key));
        }
    }

    /// Every claim, for `runner status`.
    pub fn all(&self) -> Vec<(String, Claim)> {
        let mut out: Vec<(String, Claim)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let key = name.strip_suffix(".json")?.to_string();
                let claim = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                Some((key, claim))
            })
            .collect();
        out.sort_by(|a, b| {
            a.1.submitted_unix
                .cmp(&b.1.submitted_unix)
                .then(a.1.node.cmp(&b.1.node))
        });
        out
    }
}
