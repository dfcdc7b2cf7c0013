//! The Slurm executor's driver: submits ready stale nodes as jobs, polls
//! the queue, resubmits what failed, and publishes the results when every
//! node is in the cache, as the local executor does.
//!
//! Ordering is the driver's own (a node is submitted once its inputs are
//! entries), not Slurm's `--dependency`: a resubmitted job gets a new id,
//! and `afterok` on the old one would never be satisfied.
//!
//! Jobs: a node of a heavy kind (extract, train, fits) gets a job of its
//! own; small ready nodes (scores, tables, plots) share one, up to
//! `group_max`. Either kind of job also takes along the small nodes that
//! become ready inside it (a fit's score), so a chain costs one job.
//!
//! Tries are kept in the node's claim (see [`crate::slurm::claims`]): the
//! driver that replaces a dead job's claim charges the dead job's failure,
//! once, whichever driver submitted it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use serde_json::json;

use crate::cache::{Cache, EntryState};
use crate::error::{Error, IoContext, Result};
use crate::exec::{Outcome, RunLog, Summary, summarize};
use crate::plan::Plan;
use crate::slurm::claims::{Claim, Claims};
use crate::slurm::job::ReportView;
use crate::slurm::profile::Profile;
use crate::slurm::resources::{Resources, compatible};
use crate::slurm::scheduler::{QueueRow, Scheduler, Submitted, is_active};
use crate::slurm::{hostname, interrupted, unix_f64};

pub struct SlurmOptions {
    pub profile: Profile,
    /// The experiment file, absolute (jobs load it again).
    pub file: PathBuf,
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Inputs not all in the cache yet.
    Waiting,
    Ready,
    /// In the job at this index of `jobs`.
    InJob(usize),
    Done,
    Failed,
    /// An input failed: never submitted.
    Blocked,
}

struct Job {
    id: String,
    token: String,
    nodes: Vec<NodeIndex>,
    /// Submitted by this driver (else adopted from another driver's claim).
    ours: bool,
    submitted_unix: f64,
    ended: bool,
    seen_running: bool,
}

struct Driver<'a> {
    plan: &'a Plan,
    cache: &'a Cache,
    opts: &'a SlurmOptions,
    slurm: Scheduler,
    claims: Claims,
    log: RunLog,
    cache_id: String,
    jobs_dir: PathBuf,
    logs_dir: PathBuf,
    state: Vec<State>,
    ready_unix: Vec<f64>,
    jobs: Vec<Job>,
    /// Topological position, for job order.
    topo_pos: Vec<usize>,
    counts: (usize, usize, usize),
    failures: Vec<String>,
    warnings: Vec<String>,
    submitted: usize,
    seq: usize,
    stamp: String,
    runner: PathBuf,
    gpu_build: bool,
    history: crate::slurm::history::History,
    bar: indicatif::ProgressBar,
}

/// `'…'` for sh, whatever the text holds.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The last `n` lines of a job's stderr.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn execute(plan: &Plan, cache: &Cache, opts: &SlurmOptions) -> Result<Summary> {
    let started = Instant::now();
    crate::results::check_owner(&plan.experiment.results_dir, &plan.experiment.name)?;
    cache.check_locking()?;
    let slurm = Scheduler::new(Duration::from_secs_f64(opts.profile.patience_s));
    slurm.check_available()?;
    let keys: Vec<String> = plan.graph.node_weights().map(|n| n.key.clone()).collect();
    let _live = cache.register_live(&keys)?;
    let sdir = crate::slurm::dir(cache);
    let (jobs_dir, logs_dir) = (sdir.join("jobs"), sdir.join("logs"));
    for d in [&jobs_dir, &logs_dir] {
        std::fs::create_dir_all(d).at(d)?;
    }
    let runner = match &opts.profile.runner {
        Some(r) => r.clone(),
        None => std::env::current_exe().map_err(|e| Error::io("runner binary", e))?,
    };
    let n = plan.graph.node_count();
    let mut topo_pos = vec![0; n];
    for (i, ix) in plan.topo().into_iter().enumerate() {
        topo_pos[ix.index()] = i;
    }
    let bar = if opts.progress {
        indicatif::ProgressBar::new(n as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} nodes {msg} {elapsed}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    bar.set_prefix(plan.experiment.name.clone());
    let mut d = Driver {
        plan,
        cache,
        opts,
        slurm,
        claims: Claims::open(&sdir)?,
        log: RunLog::create(cache)?,
        cache_id: crate::slurm::cache_id(cache)?,
        jobs_dir,
        logs_dir,
        state: vec![State::Waiting; n],
        ready_unix: vec![0.0; n],
        jobs: Vec::new(),
        topo_pos,
        counts: (0, 0, 0),
        failures: Vec::new(),
        warnings: Vec::new(),
        submitted: 0,
        seq: 0,
        stamp: format!(
            "{}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
            std::process::id()
        ),
        runner,
        gpu_build: cfg!(feature = "tch"),
        history: crate::slurm::history::History::read(&cache.runs_dir()),
        bar,
    };
    d.log.line(json!({"event": "start", "experiment": plan.experiment.name, "file": plan.experiment.source.path,
        "nodes": n, "executor": "slurm", "profile": opts.profile.path, "pid": std::process::id(),
        "host": hostname(), "unix": crate::cache::unix_now()}));
    crate::slurm::catch_interrupts();
    let result = match d.run() {
        // Ctrl-C while waiting on a busy scheduler ends in that wait's error:
        // the jobs are cancelled all the same.
        Err(Error::Scheduler { message, .. })
            if interrupted() && message.starts_with("interrupted while waiting") =>
        {
            Err(d.cancel_ours())
        }
        other => other,
    };
    // What is left of this driver's claims names jobs that ended: their
    // nodes are done, failed or blocked, and a later run starts afresh.
    for j in d.jobs.iter().filter(|j| j.ours && j.ended) {
        for ix in &j.nodes {
            d.claims.release(&plan.graph[*ix].key, &j.id);
        }
    }
    let calls = d.slurm.calls.borrow().clone();
    let retries = *d.slurm.retries.borrow();
    let (ran, reused, recomputed) = d.counts;
    let end = |d: &Driver, ok: bool, error: Option<String>| {
        d.log.line(json!({"event": "end", "ok": ok, "ran": ran + recomputed, "reused": reused,
            "recomputed_corrupt": recomputed, "wall_seconds": started.elapsed().as_secs_f64(),
            "jobs_submitted": d.submitted, "slurm_calls": calls, "slurm_retries": retries, "error": error}));
    };
    d.bar.finish_and_clear();
    if let Err(e) = result {
        end(&d, false, Some(e.to_string()));
        return Err(e);
    }
    if !d.failures.is_empty() {
        let blocked = d.state.iter().filter(|s| **s == State::Blocked).count();
        let done = d.state.iter().filter(|s| **s == State::Done).count();
        let e = Error::Scheduler {
            message: format!(
                "{} of {n} nodes failed on Slurm ({done} done, {blocked} not run because an input failed):\n{}",
                d.failures.len(),
                d.failures.join("\n")
            ),
            help: Some(
                "every finished node is in the cache: fix the cause and run the same command again, \
                 it resumes there (the job logs are in the cache's slurm/logs)"
                    .into(),
            ),
        };
        end(&d, false, Some(e.to_string()));
        return Err(e);
    }
    let warnings = std::mem::take(&mut d.warnings);
    match summarize(
        plan,
        cache,
        d.counts,
        warnings,
        &d.log,
        started,
        Some(d.submitted),
    ) {
        Ok(summary) => {
            end(&d, true, None);
            Ok(summary)
        }
        Err(e) => {
            end(&d, false, Some(format!("writing results: {e}")));
            Err(e)
        }
    }
}

impl Driver<'_> {
    /// A line for the user, above the progress bar when there is one.
    fn say(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn resources(&self, ix: NodeIndex) -> Resources {
        let node = &self.plan.graph[ix];
        let seen = self.history.limit(&self.plan.experiment.name, &node.id);
        Resources::of(node, &self.opts.profile, self.gpu_build, seen)
    }

    fn run(&mut self) -> Result<()> {
        for ix in self.plan.topo() {
            match self.cache.verify(&self.plan.graph[ix].key) {
                EntryState::Valid => self.finish_node(ix, Outcome::Reused, 0.0, None, None, None),
                // A job's run_one discards and recomputes it.
                EntryState::Corrupt(_) | EntryState::Missing => {}
            }
        }
        let poll = Duration::from_secs_f64(self.opts.profile.poll_seconds);
        loop {
            if interrupted() {
                return Err(self.cancel_ours());
            }
            self.promote();
            let active = self.jobs.iter().any(|j| !j.ended);
            let ready = self.state.contains(&State::Ready);
            if !active && !ready {
                return Ok(());
            }
            let snapshot_unix = unix_f64();
            let queue = self.slurm.queue()?;
            self.watch(&queue)?;
            self.promote();
            self.submit_ready(&queue, snapshot_unix)?;
            let until = Instant::now() + poll;
            while Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(50).min(poll));
            }
        }
    }

    /// Waiting nodes whose inputs are all entries become ready; those with
    /// a failed input are blocked.
    fn promote(&mut self) {
        for ix in self.plan.topo() {
            if self.state[ix.index()] != State::Waiting {
                continue;
            }
            let ups = self.plan.upstream(ix);
            if ups
                .iter()
                .any(|(_, u)| matches!(self.state[u.index()], State::Failed | State::Blocked))
            {
                self.state[ix.index()] = State::Blocked;
                self.bar.inc(1);
            } else if ups
                .iter()
                .all(|(_, u)| self.state[u.index()] == State::Done)
            {
                self.state[ix.index()] = State::Ready;
                self.ready_unix[ix.index()] = unix_f64();
            }
        }
    }

    fn finish_node(
        &mut self,
        ix: NodeIndex,
        outcome: Outcome,
        seconds: f64,
        job: Option<&str>,
        host: Option<&str>,
        corrupt: Option<String>,
    ) {
        let node = &self.plan.graph[ix];
        self.log.line(
            json!({"event": "node", "node": node.id, "kind": node.task.kind(), "key": node.key,
            "outcome": outcome, "cache_hit": outcome == Outcome::Reused, "seconds": seconds,
            "job_id": job, "host": host, "corrupt": corrupt}),
        );
        if let Some(why) = corrupt {
            self.warnings.push(format!(
                "{}: cached entry was corrupt ({why}); recomputed",
                node.id
            ));
        }
        match outcome {
            Outcome::Ran => self.counts.0 += 1,
            Outcome::Reused => self.counts.1 += 1,
            Outcome::Recomputed => self.counts.2 += 1,
        }
        self.state[ix.index()] = State::Done;
        self.bar.inc(1);
    }

    /// Jobs that left the queue: their finished nodes are done, the others
    /// go back to be submitted again (or reported, past `max_tries`).
    fn watch(&mut self, queue: &HashMap<String, QueueRow>) -> Result<()> {
        let mut ended = Vec::new();
        for (i, job) in self.jobs.iter_mut().enumerate() {
            if job.ended {
                continue;
            }
            match queue.get(&job.id) {
                Some(row) if is_active(&row.state) => {
                    if row.state == "RUNNING" && !job.seen_running {
                        job.seen_running = true;
                    }
                }
                // Ended (a final state), or gone from the queue (MinJobAge
                // passed, or a job submitted moments before the snapshot
                // is not in it yet: skip that one until the next poll).
                row => {
                    if row.is_none() && job.submitted_unix > unix_f64() - 10.0 {
                        continue;
                    }
                    job.ended = true;
                    ended.push((i, row.map(|r| r.state.clone())));
                }
            }
        }
        for (i, state) in ended {
            self.job_ended(i, state)?;
        }
        Ok(())
    }

    fn job_ended(&mut self, i: usize, state: Option<String>) -> Result<()> {
        let (id, token, nodes, ours, submitted_unix) = {
            let j = &self.jobs[i];
            (
                j.id.clone(),
                j.token.clone(),
                j.nodes.clone(),
                j.ours,
                j.submitted_unix,
            )
        };
        let report = ReportView::read(&self.jobs_dir.join(format!("{token}.jsonl")));
        let host = report.started.as_ref().map(|(h, _)| h.clone());
        let mut unfinished = 0;
        for &ix in &nodes {
            let key = self.plan.graph[ix].key.clone();
            match report.done.get(&key) {
                Some((outcome, seconds, corrupt))
                    if self.cache.verify(&key) == EntryState::Valid =>
                {
                    // Another driver's job computed it: reused, for this run.
                    let outcome = match outcome.as_str() {
                        "ran" if ours => Outcome::Ran,
                        "recomputed" if ours => Outcome::Recomputed,
                        _ => Outcome::Reused,
                    };
                    self.finish_node(
                        ix,
                        outcome,
                        *seconds,
                        Some(&id),
                        host.as_deref(),
                        corrupt.clone(),
                    );
                    if ours {
                        self.claims.release(&key, &id);
                    }
                }
                _ => {
                    unfinished += 1;
                    // Back to be looked at again: submit_ready charges the
                    // try and resubmits, or reports it.
                    self.state[ix.index()] = State::Waiting;
                }
            }
        }
        let state = match state {
            Some(s) => s,
            None if unfinished > 0 => self
                .slurm
                .accounting(std::slice::from_ref(&id))
                .get(&id)
                .map(|a| a.state.clone())
                .unwrap_or_else(|| "ENDED".into()),
            None => "COMPLETED".into(),
        };
        // When the first of its nodes became ready (nodes taken along
        // were not ready when it was submitted).
        let ready = nodes
            .iter()
            .map(|ix| self.ready_unix[ix.index()])
            .filter(|t| *t > 0.0)
            .fold(f64::INFINITY, f64::min);
        let ready = ready.is_finite().then_some(ready);
        self.log.line(
            json!({"event": "job", "job_id": id, "token": token, "ours": ours, "state": state,
            "host": host, "nodes": nodes.len(), "unfinished": unfinished, "ready_unix": ready,
            "submitted_unix": submitted_unix, "started_unix": report.started.as_ref().map(|s| s.1),
            "ended_unix": report.ended_unix}),
        );
        if unfinished > 0 {
            self.say(format!(
                "runner: Slurm job {id} ended {state} with {unfinished} of {} nodes unfinished",
                nodes.len()
            ));
        }
        Ok(())
    }

    /// Groups ready nodes into jobs and submits them, adopting the jobs of
    /// other drivers that already compute a node.
    fn submit_ready(
        &mut self,
        queue: &HashMap<String, QueueRow>,
        snapshot_unix: f64,
    ) -> Result<()> {
        let mut ready: Vec<NodeIndex> = self
            .plan
            .graph
            .node_indices()
            .filter(|ix| self.state[ix.index()] == State::Ready)
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        ready.sort_by_key(|ix| self.topo_pos[ix.index()]);
        let _lock = self.claims.lock()?;
        // Claims first: nodes computed or being computed elsewhere.
        let mut to_submit = Vec::new();
        let mut fails: HashMap<NodeIndex, (u32, Option<u64>)> = HashMap::new();
        for ix in ready {
            let key = self.plan.graph[ix].key.clone();
            if self.cache.present(&key) && self.cache.verify(&key) == EntryState::Valid {
                self.finish_node(ix, Outcome::Reused, 0.0, None, None, None);
                continue;
            }
            let Some(claim) = self.claims.get(&key) else {
                fails.insert(ix, (0, None));
                to_submit.push(ix);
                continue;
            };
            // Alive: active in the queue, or submitted by another driver
            // after this round's squeue snapshot was taken.
            let alive = queue
                .get(&claim.job_id)
                .is_some_and(|r| is_active(&r.state))
                || ((claim.submitted_unix as f64) >= snapshot_unix - 10.0
                    && !queue.contains_key(&claim.job_id));
            if alive {
                self.adopt(ix, &claim);
                continue;
            }
            // The claim's job is over and the node is not in the cache:
            // charge that job's failure (once: the claim is replaced below).
            let report = ReportView::read(&self.jobs_dir.join(format!("{}.jsonl", claim.token)));
            let charged = claim.tries + u32::from(report.charges(&key));
            let state = queue
                .get(&claim.job_id)
                .map(|r| r.state.clone())
                .or_else(|| {
                    self.slurm
                        .accounting(std::slice::from_ref(&claim.job_id))
                        .remove(&claim.job_id)
                        .map(|a| a.state)
                })
                .unwrap_or_else(|| "ENDED".into());
            if charged >= self.opts.profile.max_tries {
                self.fail(ix, &claim, &report, &state, charged);
                continue;
            }
            // A job that ran out of time gets twice as long.
            let time = (state == "TIMEOUT").then_some(claim.time_s * 2);
            if charged > claim.tries {
                self.say(format!(
                    "runner: {} (job {} {state}): submitting it again, try {} of {}",
                    self.plan.graph[ix].id,
                    claim.job_id,
                    charged + 1,
                    self.opts.profile.max_tries
                ));
            }
            fails.insert(ix, (charged, time));
            to_submit.push(ix);
        }
        let in_flight = self.jobs.iter().filter(|j| j.ours && !j.ended).count();
        let room = self.opts.profile.max_in_flight.saturating_sub(in_flight);
        for group in self.group(to_submit, &mut fails).into_iter().take(room) {
            self.submit(group, &fails)?;
        }
        Ok(())
    }

    fn adopt(&mut self, ix: NodeIndex, claim: &Claim) {
        let i = match self
            .jobs
            .iter()
            .position(|j| j.id == claim.job_id && !j.ended)
        {
            Some(i) => i,
            None => {
                self.jobs.push(Job {
                    id: claim.job_id.clone(),
                    token: claim.token.clone(),
                    nodes: Vec::new(),
                    ours: false,
                    submitted_unix: claim.submitted_unix as f64,
                    ended: false,
                    seen_running: false,
                });
                self.log.line(
                    json!({"event": "adopt", "job_id": claim.job_id, "driver": claim.driver,
                    "node": self.plan.graph[ix].id}),
                );
                self.jobs.len() - 1
            }
        };
        self.jobs[i].nodes.push(ix);
        self.state[ix.index()] = State::InJob(i);
    }

    fn fail(&mut self, ix: NodeIndex, claim: &Claim, report: &ReportView, state: &str, tries: u32) {
        let node = &self.plan.graph[ix];
        let err = self.logs_dir.join(format!("{}.err", claim.token));
        let why = report
            .failed
            .get(&node.key)
            .cloned()
            .or_else(|| report.error.clone())
            .unwrap_or_else(|| "the job ended before the node finished".into());
        let stderr = tail(&err, 12);
        let mut text = format!(
            "  {}: failed {tries} times; last job {} ended {state}{}: {why}",
            node.id,
            claim.job_id,
            report
                .started
                .as_ref()
                .map(|(h, _)| format!(" on {h}"))
                .unwrap_or_default()
        );
        if !stderr.is_empty() {
            text.push_str(&format!("\n    stderr ({}):\n", err.display()));
            for l in stderr.lines() {
                text.push_str(&format!("      {l}\n"));
            }
            text.pop();
        }
        self.log.line(json!({"event": "node", "node": node.id, "kind": node.task.kind(), "key": node.key,
            "outcome": "failed", "tries": tries, "job_id": claim.job_id, "state": state, "error": why}));
        self.bar
            .println(format!("runner: {} failed after {tries} tries", node.id));
        self.failures.push(text);
        // The next `runner exec` (after a fix) starts counting again.
        self.claims.release(&node.key, &claim.job_id);
        self.state[ix.index()] = State::Failed;
        self.bar.inc(1);
    }

    /// Jobs for these nodes: each node of a heavy kind alone, small ones
    /// together; then each job takes the small nodes that become ready
    /// inside it.
    fn group(
        &self,
        nodes: Vec<NodeIndex>,
        fails: &mut HashMap<NodeIndex, (u32, Option<u64>)>,
    ) -> Vec<Vec<NodeIndex>> {
        let p = &self.opts.profile;
        let res = |ix: NodeIndex| self.resources(ix);
        let mut jobs: Vec<Vec<NodeIndex>> = Vec::new();
        let mut small: Vec<NodeIndex> = Vec::new();
        for ix in nodes {
            if res(ix).alone {
                jobs.push(vec![ix]);
            } else {
                small.push(ix);
            }
        }
        // Small ready nodes by compatible resources, group_max at a time.
        while let Some(first) = small.first().copied() {
            let r0 = res(first);
            let (take, rest): (Vec<_>, Vec<_>) =
                small.iter().partition(|&&ix| compatible(&r0, &res(ix)));
            for chunk in take.chunks(p.group_max) {
                jobs.push(chunk.to_vec());
            }
            small = rest;
        }
        // Take along small nodes that become ready inside the job (and have
        // never failed: a node being retried gets a job of its own kind).
        let mut taken: HashSet<NodeIndex> = jobs.iter().flatten().copied().collect();
        for job in &mut jobs {
            let r0 = res(job[0]);
            let mut i = 0;
            while i < job.len() && job.len() < p.group_max {
                let ix = job[i];
                i += 1;
                for down in self.plan.graph.neighbors_directed(ix, Direction::Outgoing) {
                    if taken.contains(&down)
                        || self.state[down.index()] != State::Waiting
                        || job.len() >= p.group_max
                    {
                        continue;
                    }
                    let r = res(down);
                    if r.alone
                        || !compatible(&r0, &r)
                        || self.claims.get(&self.plan.graph[down].key).is_some()
                    {
                        continue;
                    }
                    let inputs_ready = self
                        .plan
                        .upstream(down)
                        .iter()
                        .all(|(_, u)| self.state[u.index()] == State::Done || job.contains(u));
                    if inputs_ready {
                        job.push(down);
                        taken.insert(down);
                        fails.insert(down, (0, None));
                    }
                }
            }
            job.sort_by_key(|ix| self.topo_pos[ix.index()]);
        }
        jobs
    }

    fn submit(
        &mut self,
        nodes: Vec<NodeIndex>,
        fails: &HashMap<NodeIndex, (u32, Option<u64>)>,
    ) -> Result<()> {
        let p = &self.opts.profile;
        let mut res = self.resources(nodes[0]);
        for &ix in &nodes[1..] {
            res.merge(&self.resources(ix));
        }
        if let Some(t) = nodes
            .iter()
            .filter_map(|ix| fails.get(ix).and_then(|f| f.1))
            .max()
        {
            res.time_s = res.time_s.max(t);
        }
        self.seq += 1;
        let token = format!("{}-{}", self.stamp, self.seq);
        let report = self.jobs_dir.join(format!("{token}.jsonl"));
        let first = &self.plan.graph[nodes[0]].id;
        let name = format!("runner:{}:{}", self.plan.experiment.name, first);
        let mut args = vec![
            format!("--job-name={}", name.chars().take(120).collect::<String>()),
            format!(
                "--output={}",
                self.logs_dir.join(format!("{token}.out")).display()
            ),
            format!(
                "--error={}",
                self.logs_dir.join(format!("{token}.err")).display()
            ),
        ];
        args.extend(res.sbatch_args());
        if let Some(a) = &p.account {
            args.push(format!("--account={a}"));
        }
        if let Some(q) = &p.qos {
            args.push(format!("--qos={q}"));
        }
        args.extend(p.extra_args.iter().cloned());
        let mut script = format!(
            "#!/bin/sh\n# runner: {} node(s) of {}\nexec {} --cache {} slurm-job --cache-id {} --report {} {}",
            nodes.len(),
            self.plan.experiment.name,
            sh_quote(&self.runner.to_string_lossy()),
            sh_quote(
                &std::path::absolute(&self.cache.root)
                    .unwrap_or(self.cache.root.clone())
                    .to_string_lossy()
            ),
            self.cache_id,
            sh_quote(&report.to_string_lossy()),
            sh_quote(&self.opts.file.to_string_lossy()),
        );
        for ix in &nodes {
            script.push_str(" \\\n  ");
            script.push_str(&self.plan.graph[*ix].key);
        }
        script.push('\n');
        let job_id = match self.slurm.submit(&script, &args)? {
            Submitted::Job(id) => id,
            Submitted::Refused(why) => {
                // Waiting does not fix this one (no such partition, more
                // memory than any node has): every node of the job fails.
                for &ix in &nodes {
                    let node = &self.plan.graph[ix];
                    self.log.line(json!({"event": "node", "node": node.id, "kind": node.task.kind(),
                        "key": node.key, "outcome": "failed", "error": format!("sbatch refused the job: {why}")}));
                    self.failures.push(format!(
                        "  {}: sbatch refused its job ({}): {why}",
                        node.id,
                        args.join(" ")
                    ));
                    self.state[ix.index()] = State::Failed;
                    self.bar.inc(1);
                }
                return Ok(());
            }
        };
        self.submitted += 1;
        let now = unix_f64();
        for &ix in &nodes {
            let node = &self.plan.graph[ix];
            self.claims.put(
                &node.key,
                &Claim {
                    job_id: job_id.clone(),
                    node: node.id.clone(),
                    token: token.clone(),
                    tries: fails.get(&ix).map_or(0, |f| f.0),
                    time_s: res.time_s,
                    driver: format!("{}:{}", hostname(), std::process::id()),
                    submitted_unix: now as u64,
                },
            )?;
        }
        let ids: Vec<&str> = nodes
            .iter()
            .map(|ix| self.plan.graph[*ix].id.as_str())
            .collect();
        self.log.line(
            json!({"event": "submit", "job_id": job_id, "token": token, "nodes": ids,
            "args": args, "unix": now}),
        );
        let i = self.jobs.len();
        self.jobs.push(Job {
            id: job_id,
            token,
            nodes: nodes.clone(),
            ours: true,
            submitted_unix: now,
            ended: false,
            seen_running: false,
        });
        for ix in nodes {
            self.state[ix.index()] = State::InJob(i);
        }
        self.bar.set_message(format!(
            "{} jobs in flight",
            self.jobs.iter().filter(|j| !j.ended).count()
        ));
        Ok(())
    }

    /// Ctrl-C: cancels every job this driver submitted that has not ended
    /// and removes their claims (adopted jobs belong to their driver).
    fn cancel_ours(&mut self) -> Error {
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.ours && !j.ended)
            .map(|j| j.id.clone())
            .collect();
        let cancelled = self.slurm.cancel(&ids);
        for j in self.jobs.iter().filter(|j| j.ours && !j.ended) {
            for ix in &j.nodes {
                self.claims.release(&self.plan.graph[*ix].key, &j.id);
            }
        }
        self.log
            .line(json!({"event": "interrupted", "cancelled": ids}));
        let done = self.state.iter().filter(|s| **s == State::Done).count();
        Error::Scheduler {
            message: match cancelled {
                Ok(()) => format!(
                    "interrupted: cancelled {} Slurm job(s) ({}); {done} nodes are in the cache",
                    ids.len(),
                    ids.join(", ")
                ),
                Err(e) => format!(
                    "interrupted, but cancelling jobs {} failed: {e}",
                    ids.join(", ")
                ),
            },
            help: Some("run the same command again to go on from there".into()),
        }
    }
}

/// The Slurm jobs of runs in flight over this cache, for `runner status`:
/// (job id, state, host, elapsed, node ids), from the claims and one squeue.
pub fn jobs_in_flight(cache: &Cache) -> Vec<(String, String, String, String, Vec<String>)> {
    let dir = crate::slurm::dir(cache);
    if !dir.join("claims").is_dir() {
        return Vec::new();
    }
    let Ok(claims) = Claims::open(&dir) else {
        return Vec::new();
    };
    let all = claims.all();
    if all.is_empty() {
        return Vec::new();
    }
    let queue = Scheduler::new(Duration::from_secs(5))
        .queue()
        .unwrap_or_default();
    let mut by_job: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, c) in &all {
        by_job
            .entry(c.job_id.clone())
            .or_default()
            .push(c.node.clone());
    }
    by_job
        .into_iter()
        .filter_map(|(id, nodes)| {
            let row = queue.get(&id)?;
            is_active(&row.state).then(|| {
                (
                    id,
                    row.state.clone(),
                    row.host.clone(),
                    row.elapsed.clone(),
                    nodes,
                )
            })
        })
        .collect()
}
