//! One Slurm job: runner on a compute node, running the nodes the driver
//! gave it (by key, in order) against the shared cache, exactly as the local
//! executor runs a node. It reports node by node in `slurm/jobs/<token>.jsonl`,
//! so that the driver knows what finished even when the job is killed.
//!
//! Report lines: `start` (host, job id), then per node `begin` and either
//! `node` (outcome, seconds) or `failed` (the error), or `skipped` (an
//! input failed in this job), then `end`. An `error` line is a failure
//! before any node began (the experiment changed, the cache is not the
//! driver's).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use indicatif::ProgressBar;
use serde_json::json;

use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::exec::{PanicCapture, run_guarded};
use crate::slurm::{hostname, unix_f64};

struct Report {
    file: File,
}

impl Report {
    fn line(&mut self, v: serde_json::Value) {
        let _ = writeln!(self.file, "{v}");
        let _ = self.file.flush();
    }
}

pub struct JobArgs<'a> {
    pub cache_root: &'a Path,
    pub cache_id: &'a str,
    pub file: &'a Path,
    pub keys: &'a [String],
    pub report: &'a Path,
}

pub fn run(a: &JobArgs) -> Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.report)
        .map_err(|e| {
            Error::io(a.report, e).with_help(
                "the job cannot write into the cache: is the cache on a filesystem this compute node mounts?",
            )
        })?;
    let mut report = Report { file };
    let job_id = std::env::var("SLURM_JOB_ID").unwrap_or_default();
    report.line(
        json!({"event": "start", "job_id": job_id, "host": hostname(), "unix": unix_f64(),
        "pid": std::process::id()}),
    );
    let result = run_nodes(a, &mut report);
    match &result {
        Ok(()) => report.line(json!({"event": "end", "ok": true, "unix": unix_f64()})),
        Err(e) => report
            .line(json!({"event": "end", "ok": false, "unix": unix_f64(), "error": e.to_string()})),
    }
    result
}

fn run_nodes(a: &JobArgs, report: &mut Report) -> Result<()> {
    let fail_early = |report: &mut Report, e: Error| {
        report.line(json!({"event": "error", "error": e.to_string()}));
        Err(e)
    };
    // Cache::at, not open: a path that is not the driver's cache is never
    // created here.
    let cache = Cache::at(a.cache_root);
    let id_path = crate::slurm::dir(&cache).join("id");
    match std::fs::read_to_string(&id_path) {
        Ok(id) if id.trim() == a.cache_id => {}
        found => {
            let e = Error::Scheduler {
                message: format!(
                    "cache {}: this compute node ({}) sees another cache here ({} is {})",
                    a.cache_root.display(),
                    hostname(),
                    id_path.display(),
                    match found {
                        Ok(id) => format!("`{}`, not `{}`", id.trim(), a.cache_id),
                        Err(e) => format!("unreadable: {e}"),
                    }
                ),
                help: Some(
                    "the cache must be on a filesystem that every compute node mounts at the same path"
                        .into(),
                ),
            };
            return fail_early(report, e);
        }
    }
    if let Err(e) = cache.check_locking() {
        return fail_early(report, e);
    }
    let plan = match crate::config::load(a.file).and_then(|exp| crate::compile::compile(&exp)) {
        Ok(p) => p,
        Err(e) => return fail_early(report, e),
    };
    let by_key: HashMap<&str, petgraph::graph::NodeIndex> = plan
        .graph
        .node_indices()
        .map(|ix| (plan.graph[ix].key.as_str(), ix))
        .collect();
    let mut order = Vec::new();
    for k in a.keys {
        match by_key.get(k.as_str()) {
            Some(&ix) => order.push(ix),
            None => {
                let e = Error::Scheduler {
                    message: format!(
                        "node key {k} is not in the plan of {} any more",
                        a.file.display()
                    ),
                    help: Some(
                        "the experiment file (or an input it names) changed after this job was submitted; \
                         run `runner exec` again"
                            .into(),
                    ),
                };
                return fail_early(report, e);
            }
        }
    }
    let bar = ProgressBar::hidden();
    let _capture = PanicCapture::install();
    let mut failed: HashSet<petgraph::graph::NodeIndex> = HashSet::new();
    let mut first_error = None;
    for ix in order {
        let node = &plan.graph[ix];
        if plan.upstream(ix).iter().any(|(_, up)| failed.contains(up)) {
            report.line(json!({"event": "skipped", "key": node.key, "node": node.id}));
            failed.insert(ix);
            continue;
        }
        report
            .line(json!({"event": "begin", "key": node.key, "node": node.id, "unix": unix_f64()}));
        let t0 = std::time::Instant::now();
        match run_guarded(&plan, &cache, ix, &bar) {
            Ok((outcome, corrupt)) => {
                report.line(json!({"event": "node", "key": node.key, "node": node.id,
                "outcome": outcome, "seconds": t0.elapsed().as_secs_f64(), "corrupt": corrupt,
                "unix": unix_f64()}))
            }
            Err(e) => {
                // The job's stderr, which the driver quotes when it gives up.
                eprintln!(
                    "{:?}",
                    miette::Report::new(Error::Scheduler {
                        message: e.to_string(),
                        help: None
                    })
                );
                report.line(json!({"event": "failed", "key": node.key, "node": node.id,
                    "error": e.to_string(), "seconds": t0.elapsed().as_secs_f64()}));
                failed.insert(ix);
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// A job's report, parsed: what it says of each key.
#[derive(Debug, Default)]
pub struct ReportView {
    pub started: Option<(String, f64)>,
    pub ended_unix: Option<f64>,
    pub began: HashSet<String>,
    /// key → (outcome, seconds, corrupt)
    pub done: HashMap<String, (String, f64, Option<String>)>,
    pub failed: HashMap<String, String>,
    /// A failure before any node began.
    pub error: Option<String>,
}

impl ReportView {
    pub fn read(path: &Path) -> ReportView {
        let mut v = ReportView::default();
        let Ok(text) = std::fs::read_to_string(path).at(path) else {
            return v;
        };
        for line in text.lines() {
            let Ok(j) = serde_json::from_str::<serde_json::Value>(line) else {
                continue; // a line cut short by a kill
            };
            let key = j["key"].as_str().unwrap_or("").to_string();
            match j["event"].as_str() {
                Some("start") => {
                    v.started = Some((
                        j["host"].as_str().unwrap_or("").to_string(),
                        j["unix"].as_f64().unwrap_or(0.0),
                    ))
                }
                Some("begin") => {
                    v.began.insert(key);
                }
                Some("node") => {
                    v.done.insert(
                        key,
                        (
                            j["outcome"].as_str().unwrap_or("").to_string(),
                            j["seconds"].as_f64().unwrap_or(0.0),
                            j["corrupt"].as_str().map(str::to_string),
                        ),
                    );
                }
                Some("failed") => {
                    v.failed
                        .insert(key, j["error"].as_str().unwrap_or("").to_string());
                }
                Some("error") => v.error = j["error"].as_str().map(str::to_string),
                Some("end") => v.ended_unix = j["unix"].as_f64(),
                _ => {}
            }
        }
        v
    }

    /// Whether this job's end counts as a failed try of `key`: the node
    /// failed, or was running when the job died; or the job never got to
    /// any node (it failed to start, or was cancelled while pending).
    pub fn charges(&self, key: &str) -> bool {
        if self.done.contains_key(key) {
            return false;
        }
        self.failed.contains_key(key) || self.began.contains(key) || self.began.is_empty()
    }
}
