//! Runs a plan: independent nodes in parallel (bounded by `jobs` and by a
//! memory budget), each either reused from the cache after verification or
//! computed under its entry lock. Every exec writes a JSON-lines run log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use petgraph::graph::NodeIndex;
use serde::Serialize;
use serde_json::json;

use crate::cache::{Cache, EntryState};
use crate::error::{Error, IoContext, Result};
use crate::node::Ctx;
use crate::plan::Plan;

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub jobs: usize,
    pub mem_budget: u64,
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ran,
    Reused,
    /// The entry failed verification, was discarded and computed again.
    Recomputed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub experiment: String,
    pub ran: usize,
    pub reused: usize,
    pub recomputed_corrupt: usize,
    pub nodes: usize,
    pub wall_seconds: f64,
    pub results_dir: PathBuf,
    pub results: Vec<PathBuf>,
    pub run_log: PathBuf,
    pub warnings: Vec<String>,
    /// Slurm jobs submitted (`--executor slurm` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs_submitted: Option<usize>,
}

/// Bytes of memory available to new work (MemAvailable), if the OS says.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Sched {
    waiting_on: Vec<usize>,
    ready: Vec<NodeIndex>,
    running: usize,
    mem_in_use: u64,
    done: usize,
    failed: Option<Error>,
}

pub(crate) struct RunLog {
    file: Mutex<File>,
    pub(crate) path: PathBuf,
}

impl RunLog {
    pub(crate) fn create(cache: &Cache) -> Result<RunLog> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        let path = cache
            .runs_dir()
            .join(format!("{stamp}-{}.jsonl", std::process::id()));
        let file = File::create(&path).at(&path)?;
        Ok(RunLog {
            file: Mutex::new(file),
            path,
        })
    }

    pub(crate) fn line(&self, v: serde_json::Value) {
        let mut f = self.file.lock().unwrap();
        let _ = writeln!(f, "{v}");
        let _ = f.flush();
    }
}

/// Runs one node here and now (reused if its entry verifies, else computed
/// under its entry lock); a panic in the node's code becomes its error.
/// The local executor's workers and a Slurm job alike run nodes this way.
pub(crate) fn run_guarded(
    plan: &Plan,
    cache: &Cache,
    ix: NodeIndex,
    bar: &ProgressBar,
) -> Result<(Outcome, Option<String>)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_one(plan, cache, ix, bar)
    }))
    .unwrap_or_else(|p| Err(panic_error(&plan.graph[ix].id, p)))
}

fn run_one(
    plan: &Plan,
    cache: &Cache,
    ix: NodeIndex,
    bar: &ProgressBar,
) -> Result<(Outcome, Option<String>)> {
    let node = &plan.graph[ix];
    let exp = &plan.experiment.name;
    let mut corrupt = match cache.verify(&node.key) {
        EntryState::Valid => {
            cache.touch(&node.key);
            cache.record_node(exp, &node.id, &node.components)?;
            return Ok((Outcome::Reused, None));
        }
        EntryState::Missing => None,
        EntryState::Corrupt(why) => Some(why),
    };
    let _lock = cache.lock(&node.key)?;
    // Someone else may have built (or repaired) it while we waited for the lock.
    match cache.verify(&node.key) {
        EntryState::Valid => {
            cache.record_node(exp, &node.id, &node.components)?;
            return Ok((
                if corrupt.is_some() {
                    Outcome::Recomputed
                } else {
                    Outcome::Reused
                },
                corrupt,
            ));
        }
        EntryState::Corrupt(why) => {
            corrupt = Some(why);
            cache.discard(&node.key)?;
        }
        EntryState::Missing => {}
    }
    let upstream = plan
        .upstream(ix)
        .into_iter()
        .map(|(role, up)| Ok((role, cache.open_entry(&plan.graph[up].key)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let writer = cache.writer(&node.key)?;
    let work = cache.work_dir(&node.key);
    let started = Instant::now();
    if std::env::var("RUNNER_TEST_PANIC_NODE").is_ok_and(|v| v == node.id) {
        // Test hook: stands in for a bug in a node's code.
        panic!("test hook RUNNER_TEST_PANIC_NODE");
    }
    node.task
        .run(&Ctx {
            node: &node.id,
            upstream,
            out: &writer,
            work: &work,
            progress: bar,
        })
        .map_err(|e| e.in_node(&node.id))?;
    if let Some(ms) = std::env::var("RUNNER_TEST_SLOW_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| std::env::var("RUNNER_TEST_SLOW_NODE").map_or(true, |v| v == node.id))
    {
        // Test hook: widens the window in which a kill lands mid-node (of
        // every node, or of RUNNER_TEST_SLOW_NODE alone).
        std::thread::sleep(Duration::from_millis(ms));
    }
    writer.commit(
        &node.id,
        exp,
        &node.components,
        started.elapsed().as_secs_f64(),
    )?;
    cache.record_node(exp, &node.id, &node.components)?;
    if work.exists() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok((
        if corrupt.is_some() {
            Outcome::Recomputed
        } else {
            Outcome::Ran
        },
        corrupt,
    ))
}

/// Where the last panic happened, recorded by the hook [`execute`] installs.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// While nodes run, a panic is recorded (message and source location) instead
/// of printed: it reaches the user once, as the node's error. RUST_BACKTRACE
/// still prints the backtrace, for whoever debugs it.
pub(crate) struct PanicCapture {
    previous: Option<PanicHook>,
}

impl PanicCapture {
    pub(crate) fn install() -> PanicCapture {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            let what = panic_message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!(
                    "panic: {what}{at}\n{}",
                    std::backtrace::Backtrace::force_capture()
                );
            }
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(format!("{what}{at}"));
            }
        }));
        PanicCapture {
            previous: Some(previous),
        }
    }
}

impl Drop for PanicCapture {
    fn drop(&mut self) {
        if let Some(p) = self.previous.take() {
            std::panic::set_hook(p);
        }
    }
}

/// The text a panic was raised with (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A node that panicked: a bug in runner, reported as the node's failure so
/// that the other workers stop cleanly instead of waiting for it forever.
fn panic_error(node: &str, payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = LAST_PANIC
        .lock()
        .ok()
        .and_then(|mut l| l.take())
        .unwrap_or_else(|| panic_message(payload.as_ref()));
    Error::node(node, format!("internal error (panic): {what}")).with_help(
        "this is a bug in runner, not in your experiment; nothing was written to the cache for \
         this node. Please report it with the experiment file",
    )
}

pub fn execute(plan: &Plan, cache: &Cache, opts: &ExecOptions) -> Result<Summary> {
    let started = Instant::now();
    // Before any work: a results directory of another experiment is refused
    // now, not after an hour of computing.
    crate::results::check_owner(&plan.experiment.results_dir, &plan.experiment.name)?;
    cache.check_locking()?;
    let keys: Vec<String> = plan.graph.node_weights().map(|n| n.key.clone()).collect();
    let _live = cache.register_live(&keys)?;
    let log = RunLog::create(cache)?;
    log.line(json!({"event": "start", "experiment": plan.experiment.name, "file": plan.experiment.source.path,
        "nodes": plan.graph.node_count(), "jobs": opts.jobs, "pid": std::process::id(),
        "unix": crate::cache::unix_now()}));

    let n = plan.graph.node_count();
    let mut waiting_on = vec![0usize; n];
    let mut ready = Vec::new();
    for ix in plan.graph.node_indices() {
        waiting_on[ix.index()] = plan.upstream(ix).len();
        if waiting_on[ix.index()] == 0 {
            ready.push(ix);
        }
    }
    // Pop from the end: reverse so nodes start in plan order.
    ready.reverse();
    let state = Mutex::new(Sched {
        waiting_on,
        ready,
        running: 0,
        mem_in_use: 0,
        done: 0,
        failed: None,
    });
    let wake = Condvar::new();
    let counts = Mutex::new((0usize, 0usize, 0usize));
    let warnings_of_nodes = Mutex::new(Vec::<String>::new());

    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total = multi.add(ProgressBar::new(n as u64));
    total.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} nodes {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    total.set_prefix(plan.experiment.name.clone());

    let capture = PanicCapture::install();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, n.max(1)) {
            scope.spawn(|| loop {
                let ix = {
                    let mut s = state.lock().unwrap();
                    loop {
                        if s.failed.is_some() || s.done == n {
                            return;
                        }
                        // The longest-waiting ready node that fits the memory budget;
                        // a node bigger than the whole budget runs alone.
                        let pick = s
                            .ready
                            .iter()
                            .enumerate()
                            .filter(|(_, ix)| {
                                let m = plan.graph[**ix].mem_bytes;
                                s.running == 0 || s.mem_in_use + m <= opts.mem_budget
                            })
                            .map(|(i, _)| i)
                            .next_back();
                        if let Some(i) = pick {
                            let ix = s.ready.remove(i);
                            s.running += 1;
                            s.mem_in_use += plan.graph[ix].mem_bytes;
                            break ix;
                        }
                        s = wake.wait(s).unwrap();
                    }
                };
                let node = &plan.graph[ix];
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("  {spinner} {prefix} {msg} {elapsed}").unwrap());
                bar.set_prefix(node.id.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                let t0 = Instant::now();
                let result = run_guarded(plan, cache, ix, &bar);
                bar.finish_and_clear();
                multi.remove(&bar);
                let secs = t0.elapsed().as_secs_f64();
                let mut s = state.lock().unwrap();
                s.running -= 1;
                s.mem_in_use -= node.mem_bytes;
                match result {
                    Ok((outcome, corrupt)) => {
                        log.line(json!({"event": "node", "node": node.id, "kind": node.task.kind(), "key": node.key,
                            "outcome": outcome, "cache_hit": outcome == Outcome::Reused, "seconds": secs,
                            "corrupt": corrupt}));
                        if let Some(why) = corrupt {
                            warnings_of_nodes.lock().unwrap().push(format!("{}: cached entry was corrupt ({why}); recomputed", node.id));
                        }
                        let mut c = counts.lock().unwrap();
                        match outcome {
                            Outcome::Ran => c.0 += 1,
                            Outcome::Reused => c.1 += 1,
                            Outcome::Recomputed => c.2 += 1,
                        }
                        s.done += 1;
                        total.inc(1);
                        for down in plan.graph.neighbors_directed(ix, petgraph::Direction::Outgoing) {
                            s.waiting_on[down.index()] -= 1;
                            if s.waiting_on[down.index()] == 0 {
                                s.ready.insert(0, down);
                            }
                        }
                    }
                    Err(e) => {
                        log.line(json!({"event": "node", "node": node.id, "kind": node.task.kind(), "key": node.key,
                            "outcome": "failed", "seconds": secs, "error": e.to_string()}));
                        if s.failed.is_none() {
                            s.failed = Some(e);
                        }
                    }
                }
                wake.notify_all();
            });
        }
    });
    drop(capture);
    total.finish_and_clear();

    let s = state.into_inner().unwrap();
    let (ran, reused, recomputed) = counts.into_inner().unwrap();
    if let Some(e) = s.failed {
        log.line(json!({"event": "end", "ok": false, "ran": ran, "reused": reused, "recomputed_corrupt": recomputed,
            "wall_seconds": started.elapsed().as_secs_f64(), "error": e.to_string()}));
        return Err(e);
    }

    let counts = (ran, reused, recomputed);
    let summary = match summarize(
        plan,
        cache,
        counts,
        warnings_of_nodes.into_inner().unwrap(),
        &log,
        started,
        None,
    ) {
        Ok(s) => s,
        Err(e) => {
            log.line(json!({"event": "end", "ok": false, "ran": ran, "reused": reused, "recomputed_corrupt": recomputed,
                "wall_seconds": started.elapsed().as_secs_f64(), "error": format!("writing results: {e}")}));
            return Err(e);
        }
    };
    log.line(
        json!({"event": "end", "ok": true, "ran": summary.ran, "reused": reused,
        "recomputed_corrupt": recomputed, "wall_seconds": summary.wall_seconds,
        "results_dir": summary.results_dir}),
    );
    Ok(summary)
}

/// Once every node is an entry (either executor): the warnings of the plan,
/// of this run and of every node's entry, the published results, and the
/// summary the command prints.
pub(crate) fn summarize(
    plan: &Plan,
    cache: &Cache,
    (ran, reused, recomputed): (usize, usize, usize),
    of_this_run: Vec<String>,
    log: &RunLog,
    started: Instant,
    jobs_submitted: Option<usize>,
) -> Result<Summary> {
    let mut warnings = plan.warnings.clone();
    warnings.extend(of_this_run);
    warnings.extend(node_warnings(plan, cache)?);
    let results = materialize(plan, cache)?;
    Ok(Summary {
        experiment: plan.experiment.name.clone(),
        ran: ran + recomputed,
        reused,
        recomputed_corrupt: recomputed,
        nodes: plan.graph.node_count(),
        wall_seconds: started.elapsed().as_secs_f64(),
        results_dir: plan.experiment.results_dir.clone(),
        results,
        run_log: log.path.clone(),
        warnings,
        jobs_submitted,
    })
}

/// Every node's warnings for the user (α at the grid's edge, empty ROIs),
/// from its entry, whether it ran now or was reused.
fn node_warnings(plan: &Plan, cache: &Cache) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for ix in plan.topo() {
        let node = &plan.graph[ix];
        let open = || cache.open_entry(&node.key);
        for w in node.task.warnings(&open)? {
            out.push(format!("{}: {w}", node.id));
        }
    }
    Ok(out)
}

/// Publishes the output nodes' files as the experiment's results (one set,
/// swapped in atomically; see [`crate::results`]).
fn materialize(plan: &Plan, cache: &Cache) -> Result<Vec<PathBuf>> {
    let entries = plan
        .outputs
        .iter()
        .map(|(ix, prefix)| Ok((cache.open_entry(&plan.graph[*ix].key)?, prefix, *ix)))
        .collect::<Result<Vec<_>>>()?;
    // Read one file at a time, as the publisher writes it.
    let mut files = entries.iter().flat_map(|(entry, prefix, ix)| {
        let task = &plan.graph[*ix].task;
        entry.manifest.files.keys().map(move |name| {
            entry
                .read(name)
                .map(|b| (format!("{prefix}{}", task.result_name(name)), b))
        })
    });
    crate::results::publish(
        &plan.experiment.results_dir,
        &plan.experiment.name,
        &plan.experiment.source.path,
        &mut files,
    )
}

/// More workers than this only add threads waiting on the same cores and
/// locks (and 10⁸ of them would never start).
pub const MAX_JOBS: usize = 1024;

/// `--jobs 0` would run nothing and wait forever: refuse it up front.
pub fn check_jobs(jobs: usize) -> Result<usize> {
    if jobs == 0 {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    if jobs > MAX_JOBS {
        return Err(
            Error::usage(format!("--jobs {jobs} is more than {MAX_JOBS}"))
                .with_help("nodes are CPU- or memory-bound: a few workers per core is plenty"),
        );
    }
    Ok(jobs)
}
