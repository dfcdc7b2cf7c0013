//! `runner exec --executor slurm` against a real single-host Slurm cluster
//! (`bash scripts/slurm-cluster.sh start`; scripts/test.sh starts it and sets
//! RUNNER_REQUIRE_SLURM=1, so in CI these tests run, never skip). Each test
//! asserts on the results' bytes, the run log, the jobs' reports and what
//! Slurm itself says (`squeue`, `sacct`).
//!
//! The cluster has 4 CPUs for all the tests: they take turns (CLUSTER).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::runner;
use serde_json::Value;

static CLUSTER: Mutex<()> = Mutex::new(());

/// The test cluster's slurm.conf, if it answers.
fn slurm_conf() -> Option<PathBuf> {
    let dir = std::env::var("RUNNER_SLURM_DIR").unwrap_or_else(|_| "/tmp/runner-slurm".into());
    let conf = PathBuf::from(dir).join("etc/slurm.conf");
    let up = conf.is_file()
        && Command::new("sinfo")
            .arg("-h")
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| o.status.success());
    if up {
        return Some(conf);
    }
    let required = std::env::var("RUNNER_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "RUNNER_REQUIRE_SLURM=1 but the test cluster does not answer at {}: bash scripts/slurm-cluster.sh start",
        conf.display()
    );
    eprintln!("skipped: no Slurm test cluster (bash scripts/slurm-cluster.sh start)");
    None
}

const EXPERIMENT: &str = r#"[experiment]
name = "e"
cache = "cache"
results = "results"

[subjects.s1]
path = "data/s1"

[models.net]
arch = "alexnet"
widths = [4, 4, 4, 4, 4]
hidden = 8
num_classes = 2
seed = 1

[features.net]
kind = "extract"
model = "net"
layers = ["conv2", "fc2"]

[features.toy]
kind = "npy"
dir = "data/s1/features/toy"
layers = ["pixels", "edges"]

[rois.V1]
column = "prf-visualrois"
labels = ["V1"]
match = "substring"

[rois.V4]
column = "prf-visualrois"
labels = ["V4"]
match = "substring"

[analyses.ridge]
kind = "ridge_cv"
alpha_grid = [0.1, 10.0, 1000.0]

[[plots]]
kind = "heatmap"
metric = "r2"
"#;

/// The node that a fault is injected into, and one of its siblings.
const FIT: &str = "fit/ridge/s1/toy/pixels/V1";
const SIBLING: &str = "fit/ridge/s1/toy/edges/V4";

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    conf: PathBuf,
}

impl Env {
    fn new(conf: &Path, profile: &str) -> Env {
        let (tmp, dir) = common::synth_subject([40, 10, 20]);
        fs::write(dir.join("e.toml"), EXPERIMENT).unwrap();
        fs::write(
            dir.join("profile.toml"),
            format!("poll_seconds = 0.3\n{profile}"),
        )
        .unwrap();
        Env {
            _tmp: tmp,
            dir,
            conf: conf.to_path_buf(),
        }
    }

    fn exec(&self) -> Command {
        let mut c = runner();
        c.args([
            "exec",
            "e.toml",
            "--json",
            "--executor",
            "slurm",
            "--slurm-profile",
            "profile.toml",
        ])
        .env("SLURM_CONF", &self.conf)
        .current_dir(&self.dir);
        c
    }

    fn spawn(&self, env: &[(&str, &str)]) -> Child {
        let mut c = self.exec();
        c.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    }

    fn slurm(&self, cmd: &str, args: &[&str]) -> String {
        let o = Command::new(cmd)
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Every line of every run log, oldest run first.
    fn log_events(&self) -> Vec<Value> {
        let mut logs: Vec<PathBuf> = fs::read_dir(self.dir.join("cache/runs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        logs.sort();
        logs.iter().flat_map(|p| events(p)).collect()
    }

    /// How often each node began, over every job's report.
    fn begins(&self) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        for e in fs::read_dir(self.dir.join("cache/slurm/jobs"))
            .unwrap()
            .flatten()
        {
            for v in events(&e.path()) {
                if v["event"] == "begin" {
                    *n.entry(v["node"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
            }
        }
        n
    }

    /// sacct's state of each job, waiting for slurmdbd to have them all.
    fn sacct(&self, ids: &BTreeSet<String>) -> BTreeMap<String, String> {
        let list = ids.iter().cloned().collect::<Vec<_>>().join(",");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.slurm(
                "sacct",
                &["-n", "-P", "-X", "-o", "JobID,State", "-j", &list],
            );
            let got: BTreeMap<String, String> = out
                .lines()
                .filter_map(|l| l.split_once('|'))
                .map(|(a, b)| {
                    (
                        a.to_string(),
                        b.split_whitespace().next().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let settled = got
                .values()
                .all(|s| !matches!(s.as_str(), "RUNNING" | "PENDING"));
            if (got.len() == ids.len() && settled) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until the run log says a job holding `node` was submitted; its id.
    fn wait_for_submit(&self, node: &str, child: &mut Child) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(id) = self
                .log_events()
                .iter()
                .filter(|e| e["event"] == "submit")
                .find(|e| e["nodes"].as_array().unwrap().iter().any(|n| n == node))
                .map(|e| e["job_id"].as_str().unwrap().to_string())
            {
                return id;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "exec ended before submitting {node}"
            );
            assert!(Instant::now() < deadline, "no job for {node} was submitted");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_state(&self, job: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.slurm("squeue", &["-h", "-j", job, "-o", "%T"]).trim() != want {
            assert!(Instant::now() < deadline, "job {job} never got to {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn events(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn submitted_ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["event"] == "submit")
        .map(|e| e["job_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn slurm_gives_the_local_results_byte_for_byte_each_node_computed_once() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    let local = Env::new(&conf, "");
    let o = runner()
        .args(["exec", "e.toml"])
        .current_dir(&local.dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));

    let o = env.exec().output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes = summary["nodes"].as_u64().unwrap() as usize;
    assert_eq!(summary["ran"].as_u64().unwrap() as usize, nodes);
    let jobs = summary["jobs_submitted"].as_u64().unwrap() as usize;
    assert!(
        jobs > 1 && jobs < nodes,
        "{jobs} jobs for {nodes} nodes: small nodes share jobs"
    );

    let (a, b) = (
        tree(&local.dir.join("results")),
        tree(&env.dir.join("results")),
    );
    assert!(a.len() > 5, "{:?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{} differs between local and Slurm",
            name.display()
        );
    }

    // Once: every node began in exactly one job, and the run log names
    // each computed node's job and host.
    let begins = env.begins();
    assert_eq!(begins.len(), nodes);
    assert!(begins.values().all(|&n| n == 1), "{begins:?}");
    let events = env.log_events();
    let ran: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "node" && e["outcome"] == "ran")
        .collect();
    assert_eq!(ran.len(), nodes);
    assert!(
        ran.iter()
            .all(|e| e["job_id"].is_string() && e["host"].is_string())
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "node" && e["kind"] == "extract")
    );
    // …and Slurm agrees: as many jobs as were submitted, all COMPLETED.
    let ids = submitted_ids(&events);
    assert_eq!(ids.len(), jobs);
    let states = env.sacct(&ids);
    assert_eq!(states.len(), jobs, "{states:?}");
    assert!(states.values().all(|s| s == "COMPLETED"), "{states:?}");

    // A second exec finds everything cached and submits nothing.
    let o = env.exec().output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let again: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (again["ran"].as_u64(), again["jobs_submitted"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_job_cancelled_mid_run_is_resubmitted_and_the_run_completes() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    let mut child = env.spawn(&[
        ("RUNNER_TEST_SLOW_NODE", FIT),
        ("RUNNER_TEST_SLOW_MS", "4000"),
    ]);
    let job = env.wait_for_submit(FIT, &mut child);
    env.wait_state(&job, "RUNNING");

    // `runner status` shows it while it runs.
    let st = runner()
        .args(["status"])
        .env("SLURM_CONF", &env.conf)
        .current_dir(&env.dir)
        .output()
        .unwrap();
    let st = text(&st.stdout);
    assert!(st.contains("slurm jobs in flight:"), "{st}");
    let line = st
        .lines()
        .find(|l| l.trim_start().starts_with(&job))
        .unwrap_or_else(|| panic!("{st}"));
    assert!(line.contains("RUNNING") && line.contains(FIT), "{line}");

    std::thread::sleep(Duration::from_millis(500));
    env.slurm("scancel", &[&job]);
    let o = finish(child);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!("Slurm job {job} ended CANCELLED")),
        "{}",
        text(&o.stderr)
    );

    let events = env.log_events();
    let ended = events
        .iter()
        .find(|e| e["event"] == "job" && e["job_id"] == job.as_str())
        .unwrap();
    assert_eq!(ended["state"], "CANCELLED");
    let computed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "node" && e["node"] == FIT && e["outcome"] == "ran")
        .collect();
    assert_eq!(computed.len(), 1);
    assert_ne!(
        computed[0]["job_id"],
        job.as_str(),
        "computed by the resubmitted job"
    );
    assert_eq!(
        env.begins()[FIT],
        2,
        "began in the cancelled job and in its replacement"
    );
    assert!(env.dir.join("results/results.csv").is_file());
}

#[test]
fn a_node_that_always_fails_is_reported_and_its_siblings_finish() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "max_tries = 2\n");
    let o = env
        .exec()
        .env("RUNNER_TEST_PANIC_NODE", FIT)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{FIT}: failed 2 times")), "{err}");
    // The job's stderr tail, with the panic's own words.
    assert!(
        err.contains("stderr (") && err.contains("test hook RUNNER_TEST_PANIC_NODE"),
        "{err}"
    );
    assert!(err.contains("not run because an input failed"), "{err}");
    assert!(
        err.contains("fix the cause and run the same command again"),
        "{err}"
    );

    let events = env.log_events();
    let ran = |node: &str| {
        events
            .iter()
            .any(|e| e["event"] == "node" && e["node"] == node && e["outcome"] == "ran")
    };
    assert!(ran(SIBLING) && ran("fit/ridge/s1/toy/edges/V1") && ran("fit/ridge/s1/net/fc2/V1"));
    assert!(!ran(FIT) && !ran("score/ridge/s1/toy/pixels/V1"));
    assert!(
        ran("score/ridge/s1/toy/edges/V1"),
        "a sibling's score runs too"
    );
    assert_eq!(env.begins()[FIT], 2);
    assert!(
        !env.dir.join("results").exists(),
        "no partial results are published"
    );
    // The claims are gone: a fixed rerun starts counting tries again.
    assert_eq!(
        fs::read_dir(env.dir.join("cache/slurm/claims"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn two_concurrent_drivers_share_the_work() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    let slow = [("RUNNER_TEST_SLOW_MS", "700")];
    let mut a = env.spawn(&slow);
    env.wait_for_submit("subject/s1", &mut a);
    let b = env.spawn(&slow);
    let (a, b) = (finish(a), finish(b));
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(b.status.success(), "{}", text(&b.stderr));
    let (sa, sb): (Value, Value) = (
        serde_json::from_slice(&a.stdout).unwrap(),
        serde_json::from_slice(&b.stdout).unwrap(),
    );
    let nodes = sa["nodes"].as_u64().unwrap();
    assert_eq!(
        sa["ran"].as_u64().unwrap() + sb["ran"].as_u64().unwrap(),
        nodes,
        "between them, each node computed once: {sa} {sb}"
    );
    let begins = env.begins();
    assert_eq!(begins.len() as u64, nodes);
    assert!(begins.values().all(|&n| n == 1), "{begins:?}");
    let events = env.log_events();
    assert!(
        events.iter().any(|e| e["event"] == "adopt"),
        "the second driver waits on the first's jobs"
    );
    let ids = submitted_ids(&events);
    let states = env.sacct(&ids);
    assert_eq!(states.len(), ids.len());
    assert!(states.values().all(|s| s == "COMPLETED"), "{states:?}");
    assert!(tree(&env.dir.join("results")).len() > 5);
}

#[test]
fn ctrl_c_cancels_the_jobs_the_driver_submitted() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    let mut child = env.spawn(&[("RUNNER_TEST_SLOW_MS", "20000")]);
    let job = env.wait_for_submit("subject/s1", &mut child);
    env.wait_state(&job, "RUNNING");
    // SAFETY: a plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let o = finish(child);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    let listed = err
        .split("Slurm job(s) (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("{err}"));
    let cancelled: BTreeSet<String> = listed.split(", ").map(str::to_string).collect();
    assert!(
        err.contains("interrupted: cancelled") && cancelled.contains(&job),
        "{err}"
    );
    assert_eq!(
        cancelled,
        submitted_ids(&env.log_events()),
        "every job it had submitted"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = env.slurm("squeue", &["-h", "--states=all", "-j", &job, "-o", "%T"]);
        if state.trim() == "CANCELLED" || state.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} is still {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let states = env.sacct(&cancelled);
    assert!(
        states.len() == cancelled.len() && states.values().all(|s| s == "CANCELLED"),
        "{states:?}"
    );
    assert_eq!(
        fs::read_dir(env.dir.join("cache/slurm/claims"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_busy_scheduler_is_waited_for_with_back_off() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    // sbatch and squeue that fail twice each, as a controller being
    // restarted does, then work.
    let bin = env.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for cmd in ["sbatch", "squeue"] {
        let real = String::from_utf8(
            Command::new("sh")
                .args(["-c", &format!("command -v {cmd}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let script = format!(
            "#!/bin/sh\nn=$(cat '{dir}/{cmd}.n' 2>/dev/null || echo 0)\n\
             case \"$*\" in *--version*) exec {real} \"$@\";; esac\n\
             if [ \"$n\" -lt 2 ]; then echo $((n+1)) > '{dir}/{cmd}.n'; \
             echo '{cmd}: error: Batch job submission failed: Unable to contact slurm controller (connect failure)' >&2; exit 1; fi\n\
             exec {real} \"$@\"\n",
            dir = bin.display(),
            real = real.trim()
        );
        let p = bin.join(cmd);
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let o = env.exec().env("PATH", path).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("squeue failed (squeue: error: Batch job submission failed: Unable to contact slurm controller"), "{err}");
    assert!(
        err.contains("retrying with back-off") && err.contains("answers again"),
        "{err}"
    );
    let end = env
        .log_events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "end")
        .unwrap();
    assert_eq!(end["ok"], true);
    assert!(end["slurm_retries"].as_u64().unwrap() >= 4, "{end}");
    assert!(env.dir.join("results/results.csv").is_file());
}

#[test]
fn without_slurm_bad_profiles_and_broken_locks_are_clear_errors() {
    // No cluster needed.
    let (_tmp, dir) = common::synth_subject([40, 10, 20]);
    fs::write(dir.join("e.toml"), EXPERIMENT).unwrap();
    let exec = |extra: &[&str]| {
        let mut c = runner();
        c.args(["exec", "e.toml"]).args(extra).current_dir(&dir);
        c
    };
    fs::write(
        dir.join("p.toml"),
        "partition = \"gpu\"\npartiton = \"cpu\"\n",
    )
    .unwrap();
    let o = exec(&["--executor", "slurm", "--slurm-profile", "p.toml"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("p.toml:2:1") && err.contains("partiton"),
        "{err}"
    );
    let o = exec(&["--slurm-profile", "p.toml"]).output().unwrap();
    assert!(text(&o.stderr).contains("--slurm-profile is for --executor slurm"));
    assert!(!dir.join("cache").exists(), "nothing was started");
    let o = exec(&["--executor", "slurm"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("`sbatch` is not on PATH: no Slurm client on this host"),
        "{}",
        text(&o.stderr)
    );

    let o = exec(&[])
        .env("RUNNER_TEST_BROKEN_LOCKS", "1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("file locking does not work here") && err.contains("No locks available"),
        "{err}"
    );
    assert!(err.contains("on Lustre with `-o flock`"), "{err}");
    let entries = fs::read_dir(dir.join("cache/entries"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(entries, 0, "nothing was computed");
}

#[test]
fn a_job_refuses_a_cache_that_is_not_the_drivers() {
    let (_tmp, dir) = common::synth_subject([40, 10, 20]);
    fs::write(dir.join("e.toml"), EXPERIMENT).unwrap();
    let o = runner()
        .args(["exec", "e.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plan = runner()
        .args(["plan", "e.toml", "--json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let key = plan["nodes"][0]["key"].as_str().unwrap();
    // A compute node whose `cache` is another directory (a node-local /tmp).
    let o = runner()
        .args([
            "--cache",
            "elsewhere",
            "slurm-job",
            "e.toml",
            "--cache-id",
            "0123",
            "--report",
            "r.jsonl",
            key,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("sees another cache here") && err.contains("mounts at the same path"),
        "{err}"
    );
    assert!(
        !dir.join("elsewhere").exists(),
        "the job created nothing there"
    );
    let report = events(&dir.join("r.jsonl"));
    assert_eq!(report[0]["event"], "start");
    assert!(report.iter().any(|e| e["event"] == "error"));
    // A key that is not in the plan (the file changed after submission).
    fs::create_dir_all(dir.join("cache/slurm")).unwrap();
    fs::write(dir.join("cache/slurm/id"), "abc").unwrap();
    let o = runner()
        .args([
            "--cache",
            "cache",
            "slurm-job",
            "e.toml",
            "--cache-id",
            "abc",
            "--report",
            "r2.jsonl",
            &"f".repeat(64),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("is not in the plan of"),
        "{}",
        text(&o.stderr)
    );
}

/// The one node of the test cluster.
fn node_name(env: &Env) -> String {
    env.slurm("sinfo", &["-h", "-N", "-o", "%N"])
        .trim()
        .to_string()
}

#[test]
fn a_compute_node_lost_mid_job_is_survived() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    // --no-requeue: Slurm ends the job NODE_FAIL and runner resubmits it
    // (with Slurm's own requeue, the default, the job keeps its id and
    // runner simply waits for it).
    let env = Env::new(&conf, "extra_args = [\"--no-requeue\"]\n");
    let mut child = env.spawn(&[
        ("RUNNER_TEST_SLOW_NODE", FIT),
        ("RUNNER_TEST_SLOW_MS", "6000"),
    ]);
    let job = env.wait_for_submit(FIT, &mut child);
    env.wait_state(&job, "RUNNING");
    let host = node_name(&env);
    let down = format!("nodename={host}");
    env.slurm(
        "scontrol",
        &["update", &down, "state=down", "reason=runner-test"],
    );
    std::thread::sleep(Duration::from_secs(1));
    env.slurm("scontrol", &["update", &down, "state=resume"]);
    let o = finish(child);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events = env.log_events();
    let ended = events
        .iter()
        .find(|e| e["event"] == "job" && e["job_id"] == job.as_str())
        .unwrap();
    assert_eq!(ended["state"], "NODE_FAIL", "{ended}");
    let computed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "node" && e["node"] == FIT && e["outcome"] == "ran")
        .collect();
    assert_eq!(computed.len(), 1);
    assert_ne!(computed[0]["job_id"], job.as_str());
    assert!(env.dir.join("results/results.csv").is_file());
}

#[test]
fn a_job_that_runs_out_of_time_gets_twice_as_long() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    // Slurm's smallest limit is a minute, checked every 30 s or so: the node
    // takes 100 s, is killed once, and is done in the 2 minutes of its
    // second try. (Scores get jobs of their own, so that the fit's job has
    // its own minute only.)
    let env = Env::new(
        &conf,
        "[kinds.fit]\ntime = \"1\"\n[kinds.score]\nalone = true\n",
    );
    let o = env
        .exec()
        .env("RUNNER_TEST_SLOW_NODE", FIT)
        .env("RUNNER_TEST_SLOW_MS", "100000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events = env.log_events();
    let submits: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "submit" && e["nodes"][0] == FIT)
        .collect();
    assert_eq!(submits.len(), 2, "{submits:?}");
    let time = |e: &Value| {
        e["args"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a.as_str().unwrap().strip_prefix("--time="))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (time(submits[0]).as_str(), time(submits[1]).as_str()),
        ("0-00:01:00", "0-00:02:00")
    );
    let first = submits[0]["job_id"].as_str().unwrap();
    let ended = events
        .iter()
        .find(|e| e["event"] == "job" && e["job_id"] == first)
        .unwrap();
    assert_eq!(ended["state"], "TIMEOUT");
    assert!(env.dir.join("results/results.csv").is_file());
}

#[test]
fn time_limits_come_from_how_long_the_same_nodes_took_before() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = slurm_conf() else { return };
    let env = Env::new(&conf, "");
    // A first, local run; then a new α grid makes the fits and scores stale
    // under the same node ids.
    let o = runner()
        .args(["exec", "e.toml"])
        .current_dir(&env.dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let toml = fs::read_to_string(env.dir.join("e.toml")).unwrap();
    fs::write(
        env.dir.join("e.toml"),
        toml.replace("[0.1, 10.0, 1000.0]", "[1.0, 100.0]"),
    )
    .unwrap();
    let o = env.exec().output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let events = env.log_events();
    let submit = events
        .iter()
        .find(|e| e["event"] == "submit" && e["nodes"][0] == FIT)
        .unwrap();
    let nodes: Vec<&str> = submit["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(nodes, [FIT, "score/ridge/s1/toy/pixels/V1"]);
    // Each took well under 100 s: 5 minutes each (the floor), not the
    // classes' 1 h + 15 min.
    assert!(
        submit["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--time=0-00:10:00"),
        "{submit}"
    );
}
