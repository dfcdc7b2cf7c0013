//! Helpers shared by the integration tests.
// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The cache directory of the node `runner explain` printed (its `key:` line).
pub fn entry_dir(explain_stdout: &[u8], cache: &Path) -> PathBuf {
    let text = String::from_utf8_lossy(explain_stdout);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .expect("explain prints the key")
        .trim()
        .to_string();
    cache.join("entries").join(&key[..2]).join(key)
}

/// The `runner` binary, with no cache or test-hook settings leaking in from
/// the environment.
pub fn runner() -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut c = std::process::Command::cargo_bin("runner").unwrap();
    c.env_remove("RUNNER_CACHE")
        .env_remove("RUNNER_TEST_STEP_MS")
        .env_remove("RUNNER_TEST_SLOW_MS")
        .env_remove("RUNNER_TEST_SLOW_NODE")
        .env_remove("RUNNER_TEST_BROKEN_LOCKS")
        .env_remove("RUNNER_SLURM_PROFILE")
        .env_remove("RUNNER_TEST_PANIC_NODE")
        .env_remove("RUNNER_TEST_PUBLISH_MS");
    c
}

/// A fresh temp dir holding a synthetic subject at `data/s1` with
/// `[train, val, test]` images.
pub fn synth_subject(images: [usize; 3]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let [train, val, test] = images.map(|n| n.to_string());
    let out = runner()
        .args([
            "synth",
            "data/s1",
            "--n-train",
            &train,
            "--n-val",
            &val,
            "--n-test",
            &test,
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "synth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, dir)
}

/// The kinds of the nodes a run computed (not reused), from its run log.
pub fn ran_kinds(log: &Path) -> Vec<String> {
    let mut kinds: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "node" && v["outcome"] != "reused")
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}
