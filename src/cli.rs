//! The `runner` command line: thin wrappers over config → plan → cache → exec.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::exec::{self, ExecOptions};
use crate::key::short;
use crate::plan::{Freshness, Plan};
use crate::{config, synth};

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Declarative, cached model-to-brain neural fitting"
)]
pub struct Cli {
    /// Cache directory (default: the experiment's `cache` setting, else ./cache).
    #[arg(long, global = true, env = "RUNNER_CACHE")]
    pub cache: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile the experiment, run what is stale, and write its results.
    Exec {
        file: PathBuf,
        /// Nodes run at once.
        #[arg(long, short, default_value_t = default_jobs())]
        jobs: usize,
        /// Memory budget for concurrently running nodes, in GiB (default: 80% of available).
        #[arg(long)]
        mem_gb: Option<f64>,
        /// Print the summary as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Where nodes run: here (`local`), or as Slurm jobs over a shared
        /// cache (`slurm`; see the README's "Slurm" section).
        #[arg(long, value_enum, default_value_t = Executor::Local)]
        executor: Executor,
        /// The Slurm profile (default: $RUNNER_SLURM_PROFILE, else
        /// ~/.config/runner/slurm.toml, else built-in defaults).
        #[arg(long)]
        slurm_profile: Option<PathBuf>,
    },
    /// Run the given nodes (by key) of an experiment: what one Slurm job
    /// does on its compute node. Submitted by `exec --executor slurm`.
    #[command(hide = true)]
    SlurmJob {
        file: PathBuf,
        /// The cache's identity, as the driver saw it.
        #[arg(long)]
        cache_id: String,
        /// Where to write what happened, node by node.
        #[arg(long)]
        report: PathBuf,
        keys: Vec<String>,
    },
    /// Print the DAG: node ids, keys, and whether each is fresh or stale (and why).
    Plan {
        file: PathBuf,
        /// Print the nodes as one JSON object on stdout (id, kind, key, stale reason).
        #[arg(long)]
        json: bool,
    },
    /// Show what a node's key is made of and what changed since it was cached.
    Explain { file: PathBuf, node: String },
    /// Cache size, entry count and the last runs.
    Status {
        /// How many recent runs to list.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Delete cache entries that none of the given experiments uses.
    Gc {
        /// Experiments whose entries are kept.
        files: Vec<PathBuf>,
        /// Also keep entries used within this long (e.g. `7d`, `12h`).
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_recent: Option<Duration>,
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a synthetic subject (for examples and tests) in runner's NSD
    /// layout, the Algonauts 2023 challenge's, Lab08's, vim-1's (two
    /// subjects, as `EstimatedResponses.mat`, `Stimuli.mat` and conv3
    /// features) or Stringer et al.'s mouse V1 grating responses
    /// (`npz_responses`: `W3D4_stringer_oribinned1.npz` with `resp`,
    /// `stimuli` and `plane`).
    Synth {
        out: PathBuf,
        /// "runner-nsd-v1", "algonauts2023", "lab08", "vim1" or "npz_responses".
        #[arg(long, default_value = "runner-nsd-v1")]
        layout: String,
        /// Lab08 only: images without repeats (NaN rows in the betas).
        #[arg(long, default_value_t = 0)]
        nan_rows: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Subject id written into subject.json (default: the directory's name).
        #[arg(long)]
        subject: Option<String>,
        /// Training images (default: 240 NSD, 200 Algonauts, 300 vim-1;
        /// Lab08: the images outside shared1000, 900).
        #[arg(long)]
        n_train: Option<usize>,
        /// NSD only.
        #[arg(long, default_value_t = 60)]
        n_val: usize,
        /// Test images (default: 100 NSD, 20 Algonauts; Lab08: the
        /// shared1000 validation images, 100; vim-1: the validation
        /// images, 40).
        #[arg(long)]
        n_test: Option<usize>,
        /// Side of the images (NSD, Algonauts; vim-1: of the stimuli).
        #[arg(long, default_value_t = 64)]
        image_size: usize,
        /// Voxels (vertices) of the left hemisphere (default: 320 NSD, 120
        /// Algonauts; Lab08: every voxel of the volume, 200; vim-1: subject
        /// S1's voxels, 400, a fifth of them V4; npz_responses: the neurons,
        /// 1000).
        #[arg(long)]
        voxels_lh: Option<usize>,
        /// Of the right hemisphere (default: 280 NSD, 130 Algonauts; vim-1:
        /// subject S2's voxels, 300, a fifth of them V4).
        #[arg(long)]
        voxels_rh: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cache_root(cli_cache: &Option<PathBuf>, exp: Option<&config::Experiment>) -> PathBuf {
    cli_cache
        .clone()
        .or_else(|| exp.and_then(|e| e.cache_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("cache"))
}

/// The cache for exec, created if needed.
fn cache_for(cli_cache: &Option<PathBuf>, exp: Option<&config::Experiment>) -> Result<Cache> {
    Cache::open(&cache_root(cli_cache, exp))
}

/// The cache for commands that only look (plan, explain, status, gc): a
/// missing one is read as empty and never created.
fn cache_to_read(cli_cache: &Option<PathBuf>, exp: Option<&config::Experiment>) -> Cache {
    Cache::at(&cache_root(cli_cache, exp))
}

fn load_plan(file: &Path) -> Result<Plan> {
    let exp = config::load(file)?;
    crate::compile::compile(&exp)
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Exec {
            file,
            jobs,
            mem_gb,
            json,
            executor,
            slurm_profile,
        } => {
            let jobs = exec::check_jobs(jobs)?;
            // One pool for faer and blake3: the executor's workers share it.
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(default_jobs())
                .build_global();
            // Read before the plan: a broken profile is found in a second.
            let profile = match executor {
                Executor::Slurm => Some(crate::slurm::profile::load(slurm_profile.as_deref())?),
                Executor::Local if slurm_profile.is_some() => {
                    return Err(Error::usage("--slurm-profile is for --executor slurm"));
                }
                Executor::Local => None,
            };
            let plan = load_plan(&file)?;
            let cache = cache_for(&cli.cache, Some(&plan.experiment))?;
            let mem_budget = match mem_gb {
                Some(g) if g > 0.0 => (g * (1u64 << 30) as f64) as u64,
                Some(_) => return Err(Error::usage("--mem-gb must be positive")),
                None => exec::available_memory().map_or(8 << 30, |m| m / 10 * 8),
            };
            let opts = ExecOptions {
                jobs,
                mem_budget,
                progress: std::io::stderr().is_terminal() && !json,
            };
            let s = match profile {
                None => exec::execute(&plan, &cache, &opts)?,
                Some(profile) => {
                    let file = std::path::absolute(&file).map_err(|e| Error::io(&file, e))?;
                    let opts = crate::slurm::driver::SlurmOptions {
                        profile,
                        file,
                        progress: opts.progress,
                    };
                    crate::slurm::driver::execute(&plan, &cache, &opts)?
                }
            };
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                println!("{}", serde_json::to_string(&s).expect("summary serializes"));
            } else {
                println!(
                    "{}: {} nodes — ran {}, reused {}{} in {:.2}s",
                    s.experiment,
                    s.nodes,
                    s.ran,
                    s.reused,
                    if s.recomputed_corrupt > 0 {
                        format!(" (recomputed {} corrupt)", s.recomputed_corrupt)
                    } else {
                        String::new()
                    },
                    s.wall_seconds
                );
                println!("results: {}", s.results_dir.display());
                for f in &s.results {
                    let shown = f.strip_prefix(&s.results_dir).unwrap_or(f);
                    println!("  {}", shown.display());
                }
                if let Some(n) = s.jobs_submitted {
                    println!("slurm: {n} jobs submitted");
                }
                println!("run log: {}", s.run_log.display());
            }
            Ok(())
        }
        Command::SlurmJob {
            file,
            cache_id,
            report,
            keys,
        } => {
            let Some(root) = &cli.cache else {
                return Err(Error::usage(
                    "slurm-job needs --cache (it is run by `exec --executor slurm`)",
                ));
            };
            // The CPUs Slurm gave this job, not the whole node's.
            let threads = std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(default_jobs);
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.max(1))
                .build_global();
            crate::slurm::job::run(&crate::slurm::job::JobArgs {
                cache_root: root,
                cache_id: &cache_id,
                file: &file,
                keys: &keys,
                report: &report,
            })
        }
        Command::Plan { file, json } => {
            let plan = load_plan(&file)?;
            let cache = cache_to_read(&cli.cache, Some(&plan.experiment));
            for w in &plan.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                let nodes: Vec<serde_json::Value> = plan
                    .topo()
                    .into_iter()
                    .map(|ix| {
                        let n = &plan.graph[ix];
                        let stale = match plan.freshness(&cache, ix) {
                            Freshness::Fresh => None,
                            Freshness::Stale(why) => Some(why),
                        };
                        json!({"id": n.id, "kind": n.components.kind, "key": n.key, "stale": stale})
                    })
                    .collect();
                println!("{}", json!({ "nodes": nodes }));
                return Ok(());
            }
            let mut stale = 0;
            for ix in plan.topo() {
                let n = &plan.graph[ix];
                match plan.freshness(&cache, ix) {
                    Freshness::Fresh => println!("fresh  {:<12} {}", short(&n.key), n.id),
                    Freshness::Stale(why) => {
                        stale += 1;
                        println!("stale  {:<12} {}  ({why})", short(&n.key), n.id);
                    }
                }
            }
            println!("{} nodes, {stale} stale", plan.graph.node_count());
            Ok(())
        }
        Command::Explain { file, node } => {
            let plan = load_plan(&file)?;
            let cache = cache_to_read(&cli.cache, Some(&plan.experiment));
            let ix = plan.find(&node)?;
            let n = &plan.graph[ix];
            let c = &n.components;
            println!("node:         {}", n.id);
            println!("kind:         {}", c.kind);
            println!("key:          {}", n.key);
            println!("code version: {}", c.code_version);
            println!("params:       {}", crate::key::canonical_json(&c.params));
            println!("upstream:");
            for (role, key) in &c.upstream {
                let up = plan
                    .upstream(ix)
                    .into_iter()
                    .find(|(r, _)| r == role)
                    .map(|(_, u)| plan.graph[u].id.clone());
                println!("  {role:<10} {}  {}", short(key), up.unwrap_or_default());
            }
            println!("inputs:");
            for (name, hash) in &c.inputs {
                println!("  {name:<24} blake3 {}", short(hash));
            }
            match plan.freshness(&cache, ix) {
                Freshness::Fresh => println!("status:       fresh (cached)"),
                Freshness::Stale(why) => println!("status:       stale — {why}"),
            }
            Ok(())
        }
        Command::Status { runs } => status(&cache_to_read(&cli.cache, None), runs),
        Command::Gc {
            files,
            keep_recent,
            dry_run,
        } => {
            if files.is_empty() && keep_recent.is_none() {
                return Err(Error::usage(
                    "gc needs the experiments to keep (and/or --keep-recent)",
                )
                .with_help("runner gc experiments/*.toml  # removes everything else"));
            }
            let mut keep = std::collections::HashSet::new();
            let mut cache_root = cli.cache.clone();
            for f in &files {
                let plan = load_plan(f)?;
                if cache_root.is_none() {
                    cache_root = plan.experiment.cache_dir.clone();
                }
                for ix in plan.graph.node_indices() {
                    keep.insert(plan.graph[ix].key.clone());
                }
            }
            let cache = Cache::at(&cache_root.unwrap_or_else(|| PathBuf::from("cache")));
            gc(&cache, &keep, keep_recent, dry_run)
        }
        Command::Synth {
            out,
            layout,
            seed,
            subject,
            n_train,
            n_val,
            n_test,
            image_size,
            voxels_lh,
            voxels_rh,
            nan_rows,
        } => {
            if layout == "lab08" {
                let d = synth::lab08::Lab08SynthConfig::default();
                let cfg = synth::lab08::Lab08SynthConfig {
                    seed,
                    n_images: n_train.map_or(d.n_images, |t| t + n_test.unwrap_or(d.n_shared)),
                    n_shared: n_test.unwrap_or(d.n_shared),
                    n_voxels: voxels_lh.unwrap_or(d.n_voxels),
                    nan_rows,
                    ..d
                };
                let report = synth::lab08::generate(&cfg, &out).map_err(|e| Error::io(&out, e))?;
                println!(
                    "wrote synthetic Lab08 subject to {}: {} images ({} shared1000, {} without repeats), {} voxels in a {:?} volume, {} layers × {} features",
                    report.out_dir.display(),
                    cfg.n_images,
                    cfg.n_shared,
                    cfg.nan_rows,
                    cfg.n_voxels,
                    cfg.shape,
                    cfg.layers.len(),
                    cfg.n_features
                );
                return Ok(());
            }
            if layout == "algonauts2023" {
                let d = synth::algonauts::AlgonautsSynthConfig::default();
                let cfg = synth::algonauts::AlgonautsSynthConfig {
                    seed,
                    n_train: n_train.unwrap_or(d.n_train),
                    n_test: n_test.unwrap_or(d.n_test),
                    image_size,
                    vertices_lh: voxels_lh.unwrap_or(d.vertices_lh),
                    vertices_rh: voxels_rh.unwrap_or(d.vertices_rh),
                    ..d
                };
                let report = synth::algonauts::generate_algonauts(&cfg, &out)
                    .map_err(|e| Error::io(&out, e))?;
                println!(
                    "wrote synthetic Algonauts 2023 subject to {}: {} training and {} test images, {} + {} vertices",
                    report.out_dir.display(),
                    cfg.n_train,
                    cfg.n_test,
                    cfg.vertices_lh,
                    cfg.vertices_rh
                );
                return Ok(());
            }
            if layout == "vim1" {
                let d = synth::vim1::Vim1SynthConfig::default();
                let voxels = [
                    voxels_lh.unwrap_or(d.voxels[0]),
                    voxels_rh.unwrap_or(d.voxels[1]),
                ];
                let cfg = synth::vim1::Vim1SynthConfig {
                    seed,
                    n_trn: n_train.unwrap_or(d.n_trn),
                    n_val: n_test.unwrap_or(d.n_val),
                    image_size,
                    // vim-1's defaults keep a fifth of the voxels V4.
                    v4: voxels.map(|v| v / 5),
                    voxels,
                };
                let report = synth::vim1::generate(&cfg, &out).map_err(|e| Error::io(&out, e))?;
                let list = |v: &[usize]| {
                    v.iter()
                        .map(|j| j.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "wrote synthetic vim-1 data to {}: {} training and {} validation {}×{} stimuli, S1 {} voxels ({} V4; NaN: {} in a training image, {} only in a validation image), S2 {} voxels ({} V4), conv3 features {}×{}×{}",
                    report.out_dir.display(),
                    cfg.n_trn,
                    cfg.n_val,
                    cfg.image_size,
                    cfg.image_size,
                    cfg.voxels[0],
                    cfg.v4[0],
                    list(&report.nan_train),
                    list(&report.nan_val),
                    cfg.voxels[1],
                    cfg.v4[1],
                    synth::vim1::GRID,
                    synth::vim1::GRID,
                    synth::vim1::CHANNELS
                );
                return Ok(());
            }
            if layout == "npz_responses" {
                let cfg = synth::npz_responses::NpzResponsesSynthConfig {
                    seed,
                    n_neurons: voxels_lh.unwrap_or(synth::npz_responses::N_NEURONS),
                };
                let report =
                    synth::npz_responses::generate(&cfg, &out).map_err(|e| Error::io(&out, e))?;
                println!(
                    "wrote synthetic Stringer mouse V1 responses to {}: resp {} stimuli × {} neurons (float32, von Mises orientation tuning, each neuron z-scored; {} pure noise), stimuli 0.5..359.5° (float64), plane 0..{} per neuron (int64)",
                    report.path.display(),
                    synth::npz_responses::N_STIMULI,
                    cfg.n_neurons,
                    report.pure_noise.len(),
                    synth::npz_responses::PLANES - 1
                );
                return Ok(());
            }
            if layout != "runner-nsd-v1" {
                return Err(Error::usage(format!("unknown layout `{layout}`")).with_help(
                    "--layout runner-nsd-v1 (default), algonauts2023, lab08, vim1 or npz_responses",
                ));
            }
            let (n_train, n_test) = (n_train.unwrap_or(240), n_test.unwrap_or(100));
            let (voxels_lh, voxels_rh) = (voxels_lh.unwrap_or(320), voxels_rh.unwrap_or(280));
            let subject = subject.unwrap_or_else(|| {
                out.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "synth01".into())
            });
            let cfg = synth::SynthConfig {
                seed,
                subject,
                n_train,
                n_val,
                n_test,
                image_size,
                voxels_lh,
                voxels_rh,
                ..Default::default()
            };
            let report = synth::generate(&cfg, &out).map_err(|e| Error::io(&out, e))?;
            println!(
                "wrote synthetic subject {} to {}: {} images, {} voxels",
                cfg.subject,
                report.out_dir.display(),
                report.n_images,
                report.n_voxels
            );
            Ok(())
        }
    }
}

fn status(cache: &Cache, n_runs: usize) -> Result<()> {
    if !cache.exists() {
        return Err(cache.missing());
    }
    let entries = cache.list()?;
    let bytes: u64 = entries.iter().map(|e| e.1).sum();
    println!("cache: {}", cache.root.display());
    println!("entries: {}", entries.len());
    println!("size: {}", human_bytes(bytes));
    let leftovers = cache.leftovers()?;
    if !leftovers.is_empty() {
        println!(
            "unfinished temp dirs: {} (removed by `runner gc`)",
            leftovers.len()
        );
    }
    let mut logs: Vec<PathBuf> = std::fs::read_dir(cache.runs_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort();
    let jobs = crate::slurm::driver::jobs_in_flight(cache);
    if !jobs.is_empty() {
        println!("slurm jobs in flight:");
        println!(
            "  {:<10} {:<11} {:<12} {:>10}  nodes",
            "job", "state", "host", "elapsed"
        );
        for (id, state, host, elapsed, nodes) in &jobs {
            let shown = if nodes.len() > 3 {
                format!("{} (+{} more)", nodes[..3].join(", "), nodes.len() - 3)
            } else {
                nodes.join(", ")
            };
            let host = if host.is_empty() { "-" } else { host.as_str() };
            println!("  {id:<10} {state:<11} {host:<12} {elapsed:>10}  {shown}");
        }
    }
    println!("last runs:");
    let running = cache.running_pids();
    for log in logs.iter().rev().take(n_runs) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut exp = String::new();
        // `<time>-<pid>.jsonl`: a run without an end record is either still
        // going (its exec holds its registration) or was killed.
        let pid = crate::cache::pid_in_name(log);
        let mut line = if pid.is_some_and(|p| running.contains(&p)) {
            String::from("running")
        } else {
            String::from("did not finish")
        };
        for l in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            match v["event"].as_str() {
                Some("start") => exp = v["experiment"].as_str().unwrap_or("").to_string(),
                Some("end") if v["ok"] == json!(true) => {
                    line = format!(
                        "ran {} reused {} in {:.2}s",
                        v["ran"],
                        v["reused"],
                        v["wall_seconds"].as_f64().unwrap_or(0.0)
                    )
                }
                Some("end") => line = format!("failed: {}", v["error"].as_str().unwrap_or("")),
                _ => {}
            }
        }
        let when = std::fs::metadata(log)
            .and_then(|m| m.modified())
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        println!("  {when}  {exp:<20} {line}");
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

fn gc(
    cache: &Cache,
    keep: &std::collections::HashSet<String>,
    keep_recent: Option<Duration>,
    dry_run: bool,
) -> Result<()> {
    if !cache.exists() {
        return Err(cache.missing());
    }
    // While this pass holds the gc lock no exec can register; every exec that
    // registered earlier has its keys in `live`, and those entries stay.
    let _pass = cache.gc_pass()?;
    let live = cache.live_keys()?;
    let now = SystemTime::now();
    let (mut removed, mut freed, mut kept, mut in_use) = (0, 0u64, 0, 0);
    let (entries, strays) = cache.scan()?;
    for (key, size, used) in entries {
        let recent =
            keep_recent.is_some_and(|d| now.duration_since(used).unwrap_or(Duration::ZERO) <= d);
        if keep.contains(&key) || recent {
            kept += 1;
            continue;
        }
        if live.contains(&key) {
            in_use += 1;
            continue;
        }
        if dry_run {
            println!("would remove {key} ({})", human_bytes(size));
        } else {
            // A writer of this key may hold its lock (an exec that started
            // before the registration protocol, or a repair): skip it.
            let Some(_lock) = cache.try_lock(&key)? else {
                in_use += 1;
                continue;
            };
            cache.discard(&key)?;
            let _ = std::fs::remove_file(cache.root.join("locks").join(format!("{key}.lock")));
        }
        removed += 1;
        freed += size;
    }
    let mut unfinished = 0;
    for path in cache.leftovers()? {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // `.tmp-<key>-…` belongs to a writer that may still be alive: only
        // take it (and `.discard-<key>-…`) if the key's lock is free.
        let key = name
            .trim_start_matches(".tmp-")
            .trim_start_matches(".discard-")
            .split('-')
            .next()
            .unwrap_or("")
            .to_string();
        if dry_run {
            println!("would remove unfinished {}", path.display());
            unfinished += 1;
            continue;
        }
        let free = if crate::cache::is_key(&key) {
            cache.try_lock(&key)?.is_some()
        } else {
            true
        };
        if free && remove_any(&path) {
            unfinished += 1;
        }
    }
    // Temp files of atomic writes (node records) whose writer died: a live
    // writer renames its file within milliseconds, so an hour-old one is dead.
    for e in std::fs::read_dir(cache.root.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
            now.duration_since(t).unwrap_or(Duration::ZERO) > Duration::from_secs(3600)
        });
        if e.file_name().to_string_lossy().starts_with(".tmp-") && old {
            if dry_run {
                println!("would remove unfinished {}", e.path().display());
            } else {
                let _ = std::fs::remove_file(e.path());
            }
            unfinished += 1;
        }
    }
    let mut stray_count = 0;
    for stray in &strays {
        if dry_run {
            println!("would remove stray {}", stray.path.display());
            stray_count += 1;
        } else if remove_any(&stray.path) {
            stray_count += 1;
        } else {
            eprintln!("warning: could not remove stray {}", stray.path.display());
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut line = format!(
        "{verb} {removed} entries ({}), kept {kept}",
        human_bytes(freed)
    );
    if in_use > 0 {
        line.push_str(&format!(", skipped {in_use} in use by a running exec"));
    }
    if unfinished > 0 {
        line.push_str(&format!(", {verb} {unfinished} unfinished temp dirs"));
    }
    if stray_count > 0 {
        line.push_str(&format!(
            ", {verb} {stray_count} stray items that are not cache entries"
        ));
    }
    println!("{line}");
    Ok(())
}

/// Removes a file or a directory tree; true if it is gone.
fn remove_any(path: &Path) -> bool {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return true,
    };
    r.is_ok() || !path.exists()
}
