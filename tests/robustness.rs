//! Input nobody meant to give runner, and runs that go wrong: one regression
//! test per defect of issue 9 (a panicking node, unchecked voxel indices,
//! absurd sizes, stray cache names, gc during exec, results as a set,
//! inconsistent metadata, TOML errors on table headers, and the small ones).
//! Each asserts the exit status, the message and what is left on disk.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::runner;

fn experiment(name: &str, results: &str, extra_fit: &str) -> String {
    format!(
        r#"[experiment]
name = "{name}"
cache = "cache"
results = "{results}"

[subjects.s1]
path = "data/s1"

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
{extra_fit}
"#
    )
}

/// The same experiment with features that a tiny random AlexNet extracts.
fn extracting_experiment() -> String {
    experiment("e", "results", "").replace(
        "[features.toy]\nkind = \"npy\"\ndir = \"data/s1/features/toy\"\nlayers = [\"pixels\", \"edges\"]",
        "[models.net]\narch = \"alexnet\"\nwidths = [4, 4, 4, 4, 4]\nhidden = 8\nnum_classes = 2\nseed = 1\n\n[features.net]\nkind = \"extract\"\nmodel = \"net\"\nlayers = [\"fc2\"]",
    )
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (tmp, dir) = common::synth_subject([60, 20, 30]);
        fs::write(dir.join("e.toml"), experiment("e", "results", "")).unwrap();
        Env { _tmp: tmp, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        runner().args(args).current_dir(&self.dir).output().unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Every file under the cache's entries, with its bytes' blake3.
    fn cache_snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        walk(&self.path("cache/entries"), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((
                p.clone(),
                blake3::hash(&fs::read(&p).unwrap()).to_hex().to_string(),
            ));
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Asserts a clean failure: exit 1 (not a panic's 101 or an abort's 134)
/// and the message, with no panic text.
fn fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit status {:?}: {err}",
        o.status
    );
    assert!(err.contains(needle), "expected `{needle}` in:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Replaces line `n` (1-based) of a text file.
fn edit_line(path: &Path, n: usize, f: impl Fn(&str) -> String) {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { f(l) } else { l.to_string() })
        .collect();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A `.npy` of dtype `descr` whose header claims `shape`, with only
/// `payload` zero bytes after it.
fn fake_npy(path: &Path, descr: &str, shape: &str, payload: usize) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; payload]);
    fs::write(path, bytes).unwrap();
}

// --- B1: a panicking node -------------------------------------------------

#[test]
fn a_panicking_node_stops_the_exec_cleanly_with_one_or_two_workers() {
    let env = Env::new();
    for jobs in ["1", "2"] {
        let before = env.cache_snapshot();
        let t0 = Instant::now();
        let o = runner()
            .args(["exec", "e.toml", "--jobs", jobs])
            .env("RUNNER_TEST_PANIC_NODE", "decompose/s1/toy/edges")
            .current_dir(&env.dir)
            .output()
            .unwrap();
        fails_with(
            &o,
            "node decompose/s1/toy/edges failed: internal error (panic)",
        );
        assert!(
            stderr(&o).contains("this is a bug in runner"),
            "{}",
            stderr(&o)
        );
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "exec hung for {:?}",
            t0.elapsed()
        );
        // Nothing half-written: no temp dirs, and the panicking node has no entry.
        let after = env.cache_snapshot();
        assert!(
            after
                .iter()
                .all(|(p, _)| !p.to_string_lossy().contains(".tmp-")),
            "{after:?}"
        );
        assert!(
            before.iter().all(|b| after.contains(b)),
            "an existing entry changed"
        );
        let explain = env.run(&["explain", "e.toml", "decompose/s1/toy/edges"]);
        assert!(
            stdout(&explain).contains("status:       stale"),
            "{}",
            stdout(&explain)
        );
        let log = last_run_log(&env);
        assert!(log.contains(r#""event":"end","ok":false"#), "{log}");
    }
    // Without the fault the same cache completes.
    let o = env.run(&["exec", "e.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn last_run_log(env: &Env) -> String {
    let mut logs: Vec<PathBuf> = fs::read_dir(env.path("cache/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    logs.sort();
    fs::read_to_string(logs.last().unwrap()).unwrap()
}

// --- B1 triggers and B2: voxels.csv indices -------------------------------

#[test]
fn voxel_indices_must_be_integers_in_range_and_unique() {
    let env = Env::new();
    let csv = env.path("data/s1/voxels.csv");
    let original = fs::read_to_string(&csv).unwrap();
    // Line 7 is the 6th lh voxel (index 5).
    let cases = [
        ("99999", "row 7: index 99999 is out of range: lh has"),
        ("-1", "row 7: index `-1` is not a non-negative integer"),
        ("2.5", "row 7: index `2.5` is not a non-negative integer"),
        ("0", "row 7: index 0 of lh is also on row 2"),
    ];
    for (index, msg) in cases {
        fs::write(&csv, &original).unwrap();
        edit_line(&csv, 7, |l| {
            let mut f: Vec<&str> = l.split(',').collect();
            assert_eq!(f[..2], ["lh", "5"]);
            f[1] = index;
            f.join(",")
        });
        for jobs in ["1", "2"] {
            let o = env.run(&["exec", "e.toml", "--jobs", jobs]);
            fails_with(&o, msg);
            assert!(stderr(&o).contains("voxels.csv"), "{}", stderr(&o));
        }
    }
    assert!(!env.path("results").exists(), "nothing may be published");
}

#[test]
fn features_without_columns_and_images_of_size_zero_are_data_errors() {
    let env = Env::new();
    fake_npy(
        &env.path("data/s1/features/toy/edges.npy"),
        "<f4",
        "(110, 0)",
        0,
    );
    for jobs in ["1", "2"] {
        let o = env.run(&["exec", "e.toml", "--jobs", jobs]);
        fails_with(&o, "edges.npy: shape [110, 0] has no feature columns");
    }

    // Images are read only where a net is run on them: an extracting experiment.
    let env = Env::new();
    fs::write(env.path("e.toml"), extracting_experiment()).unwrap();
    let img = env.path("data/s1/images/test.npy");
    fake_npy(&img, "|u1", "(30, 0, 64, 3)", 0);
    let o = env.run(&["exec", "e.toml"]);
    fails_with(
        &o,
        "images/test.npy: images must be N×H×W×3 uint8 with H, W ≥ 1, found shape [30, 0, 64, 3]",
    );
}

// --- B3: absurd sizes -----------------------------------------------------

#[test]
fn absurd_sizes_are_errors_before_anything_is_allocated() {
    let env = Env::new();
    let f = env.path("data/s1/features/toy/edges.npy");
    fake_npy(&f, "<f4", "(110, 100000000000000)", 64);
    let o = env.run(&["exec", "e.toml"]);
    fails_with(
        &o,
        "file is truncated: shape [110, 100000000000000] needs 44000000000000000 bytes of data, found 64",
    );

    fake_npy(&f, "<f4", "(4611686018427387904, 400)", 64);
    let o = env.run(&["plan", "e.toml"]);
    fails_with(&o, "is too large to address");

    let env = Env::new();
    let sj = env.path("data/s1/subject.json");
    let text = fs::read_to_string(&sj).unwrap();
    fs::write(
        &sj,
        text.replace("\"train\": 60", "\"train\": 1000000000000000000"),
    )
    .unwrap();
    let o = env.run(&["exec", "e.toml"]);
    fails_with(
        &o,
        "brain/train.lh.npy: shape is [60, 3, 320], expected images × repeats × voxels = [1000000000000000000, 3, 320]",
    );
}

// --- B4: gc and stray names -----------------------------------------------

#[test]
fn gc_removes_stray_names_and_leftovers_once_and_never_panics() {
    let env = Env::new();
    assert!(env.run(&["exec", "e.toml"]).status.success());
    let entries = env.path("cache/entries");
    let shard = fs::read_dir(&entries)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::create_dir_all(entries.join("02/x")).unwrap();
    fs::create_dir_all(entries.join("02/aé")).unwrap();
    fs::write(shard.join("stray.txt"), "x").unwrap();
    fs::write(entries.join("README"), "x").unwrap();
    let discard = shard.join(format!(".discard-{}-123", "ab".repeat(32)));
    fs::write(&discard, "left by a failed exec").unwrap();
    // A node record's temp file whose writer died an hour ago, and a fresh one
    // (a writer may be alive) that must stay.
    let dead = env.path("cache/nodes/.tmp-dead");
    fs::write(&dead, "x").unwrap();
    fs::File::options()
        .write(true)
        .open(&dead)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let fresh = env.path("cache/nodes/.tmp-fresh");
    fs::write(&fresh, "x").unwrap();

    let o = env.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["gc", "e.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("removed 0 entries"), "{out}");
    assert!(out.contains("removed 2 unfinished temp dirs"), "{out}");
    assert!(!dead.exists() && fresh.exists());
    assert!(
        out.contains("removed 4 stray items that are not cache entries"),
        "{out}"
    );
    assert!(
        !discard.exists() && !shard.join("stray.txt").exists() && !entries.join("02/x").exists()
    );
    // A second pass finds nothing to do and says so.
    let o = env.run(&["gc", "e.toml"]);
    assert_eq!(
        stdout(&o).trim_end(),
        format!("removed 0 entries (0.0 B), kept {}", count_entries(&env))
    );
    // And the experiment is still fully cached.
    let o = env.run(&["exec", "e.toml"]);
    assert!(stdout(&o).contains("ran 0"), "{}", stdout(&o));
}

fn count_entries(env: &Env) -> usize {
    fs::read_dir(env.path("cache/entries"))
        .unwrap()
        .flat_map(|s| fs::read_dir(s.unwrap().path()).unwrap())
        .count()
}

// --- B5: gc during an exec of another experiment ---------------------------

#[test]
fn gc_for_another_experiment_never_deletes_a_running_execs_entries() {
    let env = Env::new();
    fs::write(
        env.path("other.toml"),
        experiment("other", "results-other", "alpha_per_voxel = true"),
    )
    .unwrap();
    // Slow commits keep the exec in flight while gc runs again and again.
    let mut exec = runner()
        .args(["exec", "other.toml", "--jobs", "2"])
        .env("RUNNER_TEST_SLOW_MS", "150")
        .current_dir(&env.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !env.path("cache/entries").exists() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // `status` tells the exec in flight from a dead one.
    let mut status = String::new();
    while t0.elapsed() < Duration::from_secs(30) {
        status = stdout(&env.run(&["status"]));
        if status
            .lines()
            .any(|l| l.contains("other") && l.ends_with("running"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(status.contains("running"), "{status}");
    let mut skipped = 0;
    let mut passes = 0;
    while exec.try_wait().unwrap().is_none() && passes < 200 {
        let o = env.run(&["gc", "e.toml"]);
        assert!(o.status.success(), "gc failed: {}", stderr(&o));
        if stdout(&o).contains("in use by a running exec") {
            skipped += 1;
        }
        passes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = exec.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exec failed under gc: {}",
        stderr(&out)
    );
    assert!(
        skipped > 0,
        "gc never saw the running exec's entries ({passes} passes)"
    );
    let status = stdout(&env.run(&["status"]));
    assert!(!status.contains("running"), "{status}");
    // Once it is done, its entries are fair game for a gc that keeps only
    // e.toml's (subject, 2 ROIs, a split, 2 decompositions, shared with other.toml).
    let o = env.run(&["gc", "e.toml"]);
    assert!(stdout(&o).contains("kept 6"), "{}", stdout(&o));
    assert_eq!(count_entries(&env), 6);
}

// --- B6: results as a set ---------------------------------------------------

#[test]
fn a_kill_while_publishing_leaves_the_previous_set_whole() {
    let env = Env::new();
    assert!(env.run(&["exec", "e.toml"]).status.success());
    let before = dir_hashes(&env.path("results"));
    assert!(before.len() >= 3, "{before:?}");
    // Change the α grid (the table changes) and kill mid-publish.
    fs::write(
        env.path("e.toml"),
        experiment("e", "results", "").replace("[0.1, 10.0, 1000.0]", "[1.0, 100.0]"),
    )
    .unwrap();
    let mut child = runner()
        .args(["exec", "e.toml"])
        .env("RUNNER_TEST_PUBLISH_MS", "400")
        .current_dir(&env.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first results file is staged.
    let t0 = Instant::now();
    loop {
        let staged = fs::read_dir(&env.dir).unwrap().flatten().any(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(".results.runner-staging-")
                && fs::read_dir(e.path())
                    .map(|d| d.count() > 0)
                    .unwrap_or(false)
        });
        if staged || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        dir_hashes(&env.path("results")),
        before,
        "results changed partially"
    );
    // The next exec publishes the new set and cleans up the dead staging dir.
    let o = env.run(&["exec", "e.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = dir_hashes(&env.path("results"));
    assert_ne!(after, before);
    let leftovers: Vec<String> = fs::read_dir(&env.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("staging") || n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn dir_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                blake3::hash(&fs::read(e.path()).unwrap())
                    .to_hex()
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_experiments_cannot_share_a_results_directory() {
    let env = Env::new();
    assert!(env.run(&["exec", "e.toml"]).status.success());
    let before = dir_hashes(&env.path("results"));
    fs::write(
        env.path("other.toml"),
        experiment("other", "results", "alpha_per_voxel = true"),
    )
    .unwrap();
    let o = env.run(&["exec", "other.toml"]);
    fails_with(&o, "results directory belongs to experiment `e`");
    assert!(stderr(&o).contains("this is `other`"), "{}", stderr(&o));
    assert_eq!(dir_hashes(&env.path("results")), before);
}

#[test]
fn a_failure_while_writing_results_is_recorded_as_failed() {
    let env = Env::new();
    // The results path runs through a file: publishing fails after every node ran.
    fs::write(env.path("blocker"), "a file").unwrap();
    fs::write(env.path("e.toml"), experiment("e", "blocker/results", "")).unwrap();
    let o = env.run(&["exec", "e.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(last_run_log(&env).contains(r#""event":"end","ok":false"#));
    let status = stdout(&env.run(&["status"]));
    assert!(status.contains("failed: writing results"), "{status}");
}

// --- B7: inconsistent metadata ----------------------------------------------

#[test]
fn inconsistent_metadata_is_an_error_not_garbage() {
    let env = Env::new();
    let sj = env.path("data/s1/subject.json");
    let text = fs::read_to_string(&sj).unwrap();

    fs::write(&sj, text.replace("\"repeats\": 3", "\"repeats\": 0")).unwrap();
    fails_with(&env.run(&["exec", "e.toml"]), "repeats is 0");

    // The arrays hold 3 repeats; subject.json claims 2.
    fs::write(&sj, text.replace("\"repeats\": 3", "\"repeats\": 2")).unwrap();
    fails_with(
        &env.run(&["exec", "e.toml"]),
        "expected images × repeats × voxels = [60, 2,",
    );
    fs::write(&sj, &text).unwrap();

    let dup = experiment("e", "results", "").replace(
        "path = \"data/s1\"",
        "path = \"data/s1\"\ntrain_splits = [\"train\", \"train\"]",
    );
    fs::write(env.path("dup.toml"), dup).unwrap();
    fails_with(
        &env.run(&["exec", "dup.toml"]),
        "dup.toml:8:16: train_splits names `train` twice",
    );

    fs::write(
        env.path("tiny.toml"),
        experiment("e", "results", "").replace("[0.1, 10.0, 1000.0]", "[1e-300]"),
    )
    .unwrap();
    let o = env.run(&["exec", "tiny.toml"]);
    fails_with(&o, "ridge is numerically singular");
    assert!(
        stderr(&o).contains("raise the smallest α"),
        "{}",
        stderr(&o)
    );

    // A subject.json naming another subject than its directory: said, not fatal.
    fs::write(
        &sj,
        text.replace("\"subject\": \"s1\"", "\"subject\": \"subj07\""),
    )
    .unwrap();
    let o = env.run(&["exec", "e.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("says subject `subj07` but its directory is `s1`"),
        "{}",
        stderr(&o)
    );
}

// --- B8: errors on table headers --------------------------------------------

#[test]
fn a_missing_key_names_its_own_table() {
    let env = Env::new();
    let text = experiment("e", "results", "").replacen("match = \"substring\"\n", "", 1);
    fs::write(env.path("m.toml"), text).unwrap();
    let o = env.run(&["plan", "m.toml"]);
    fails_with(&o, "m.toml:14:1: rois.V1 is missing `match`");
    assert!(!stderr(&o).contains("features.toy"), "{}", stderr(&o));
}

// --- B9: the smaller ones ---------------------------------------------------

#[test]
fn long_names_and_huge_grids_are_refused_at_validation() {
    let env = Env::new();
    let long = "m".repeat(300);
    let text =
        experiment("e", "results", "").replace("[features.toy]", &format!("[features.{long}]"));
    fs::write(env.path("long.toml"), text).unwrap();
    let o = env.run(&["plan", "long.toml"]);
    fails_with(&o, "long.toml:");
    assert!(
        stderr(&o).contains("is not usable in file names"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("at most 64 characters"),
        "{}",
        stderr(&o)
    );

    let grid: Vec<String> = (0..1001).map(|i| format!("{}.0", i + 1)).collect();
    let text = experiment("e", "results", "")
        .replace("[0.1, 10.0, 1000.0]", &format!("[{}]", grid.join(", ")));
    fs::write(env.path("grid.toml"), text).unwrap();
    fails_with(
        &env.run(&["plan", "grid.toml"]),
        "alpha_grid has 1001 values; at most 1000 are allowed",
    );

    // Two million values: refused from the file's size, before parsing.
    let grid = vec!["1.0"; 2_000_000].join(", ");
    let text = experiment("e", "results", "").replace("[0.1, 10.0, 1000.0]", &format!("[{grid}]"));
    fs::write(env.path("huge.toml"), text).unwrap();
    fails_with(&env.run(&["plan", "huge.toml"]), "huge.toml: is 10000");
    assert!(
        stderr(&env.run(&["plan", "huge.toml"])).contains("an experiment file is at most 1048576")
    );
}

#[test]
fn jobs_has_an_upper_bound() {
    let env = Env::new();
    fails_with(
        &env.run(&["exec", "e.toml", "--jobs", "100000000"]),
        "--jobs 100000000 is more than 1024",
    );
    assert!(
        !env.path("cache").exists(),
        "a refused exec creates no cache"
    );
}

#[test]
fn a_closed_pipe_ends_plan_and_status_quietly() {
    let env = Env::new();
    assert!(env.run(&["exec", "e.toml"]).status.success());
    for args in [&["plan", "e.toml"][..], &["status"][..]] {
        let mut child = runner()
            .args(args)
            .current_dir(&env.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone (dropped above), as with `| head -1`.
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_short_image_split_is_found_at_plan_time() {
    let env = Env::new();
    fs::write(env.path("x.toml"), extracting_experiment()).unwrap();
    // The image split is one image short of subject.json (and the brain data).
    fake_npy(
        &env.path("data/s1/images/test.npy"),
        "|u1",
        "(29, 64, 64, 3)",
        29 * 64 * 64 * 3,
    );
    let o = env.run(&["plan", "x.toml"]);
    fails_with(
        &o,
        "images/test.npy: has 29 images but subject.json says split `test` has 30",
    );
    assert!(!stderr(&o).contains("fc2.npy"));
}

#[test]
fn looking_at_a_missing_cache_creates_nothing() {
    let env = Env::new();
    let o = env.run(&["--cache", "typo", "plan", "e.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("never computed"));
    let o = env.run(&["--cache", "typo", "explain", "e.toml", "table"]);
    assert!(o.status.success(), "{}", stderr(&o));
    fails_with(&env.run(&["--cache", "typo", "status"]), "no cache at typo");
    fails_with(
        &env.run(&["--cache", "typo", "gc", "e.toml"]),
        "no cache at typo",
    );
    assert!(!env.path("typo").exists(), "a look created the cache");
}

#[test]
fn writing_an_experiment_from_stdin_style_garbage_never_panics() {
    // Bytes that once reached unwraps in the planner: a table where a value
    // belongs, a header with no name, control characters.
    let env = Env::new();
    for text in [
        "[experiment]\nname = 3\n",
        "[]\n",
        "[experiment\n",
        "\u{0}\u{1}",
        "[[plots]]\nkind = 1\n",
    ] {
        let mut f = fs::File::create(env.path("g.toml")).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let o = env.run(&["plan", "g.toml"]);
        assert_eq!(o.status.code(), Some(1), "{text:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("g.toml"), "{text:?}: {}", stderr(&o));
    }
}
