//! The results directory: what an exec hands the researcher, published as a
//! set.
//!
//! Every file is first written into a staging directory beside the results
//! directory; the two are then swapped in one `renameat2(RENAME_EXCHANGE)`
//! (two renames where the filesystem lacks it). A reader, or a kill at any
//! instant, sees the old set or the new one, never a mix. The directory
//! belongs to one experiment (recorded in `.runner-results.json`): another
//! experiment pointed at it is refused rather than allowed to delete its
//! files. Files the researcher put there themselves are carried over.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::sync_dir;
use crate::error::{Error, IoContext, Result};

/// Lists the files the last exec wrote, and whose directory this is.
pub const INDEX: &str = ".runner-results.json";

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    experiment: String,
    /// The experiment file, for the message when another one collides.
    file: PathBuf,
    files: Vec<String>,
}

/// What an earlier exec left: the owner (None for indexes written before
/// owners were recorded) and the files it wrote.
fn read_index(dir: &Path) -> (Option<Index>, Vec<String>) {
    let Ok(bytes) = fs::read(dir.join(INDEX)) else {
        return (None, Vec::new());
    };
    if let Ok(ix) = serde_json::from_slice::<Index>(&bytes) {
        let files = ix.files.clone();
        return (Some(ix), files);
    }
    (None, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// Refuses a results directory that another experiment wrote.
pub fn check_owner(dir: &Path, experiment: &str) -> Result<()> {
    match read_index(dir).0 {
        Some(ix) if ix.experiment != experiment => Err(Error::data(
            dir,
            format!(
                "results directory belongs to experiment `{}` ({}); this is `{experiment}`",
                ix.experiment,
                ix.file.display()
            ),
        )
        .with_help(
            "give each experiment its own `results` directory in [experiment], \
             or delete this one if its results are no longer wanted",
        )),
        _ => Ok(()),
    }
}

/// Names this module creates beside the results directory.
fn sibling_prefix(dir: &Path) -> Result<(PathBuf, String)> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = dir
        .file_name()
        .ok_or_else(|| {
            Error::usage(format!(
                "results path {} has no directory name",
                dir.display()
            ))
        })?
        .to_string_lossy()
        .to_string();
    Ok((parent, format!(".{name}.runner-")))
}

/// Writes `files` (name, bytes source) as the new contents of `dir`.
pub fn publish(
    dir: &Path,
    experiment: &str,
    experiment_file: &Path,
    files: &mut dyn Iterator<Item = Result<(String, Vec<u8>)>>,
) -> Result<Vec<PathBuf>> {
    let (parent, prefix) = sibling_prefix(dir)?;
    fs::create_dir_all(&parent).at(&parent)?;
    // One publisher at a time per results directory; anything staged beside
    // it that we find while holding the lock belongs to a dead exec.
    let lock_path = parent.join(format!("{prefix}lock"));
    let lock = crate::cache::lock_file(&lock_path)?;
    lock.lock().at(&lock_path)?;
    for e in fs::read_dir(&parent).at(&parent)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with(&format!("{prefix}staging-")) || n.starts_with(&format!("{prefix}old-")) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    check_owner(dir, experiment)?;
    let (_, previous) = read_index(dir);

    let staging = tempfile::Builder::new()
        .prefix(&format!("{prefix}staging-"))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .tempdir_in(&parent)
        .at(&parent)?;
    let mut names = Vec::new();
    for item in files {
        let (name, bytes) = item?;
        let p = staging.path().join(&name);
        // A result may sit in a folder (a submission's `subj01/...`).
        if let Some(dir) = p.parent().filter(|d| *d != staging.path()) {
            fs::create_dir_all(dir).at(dir)?;
        }
        let mut f = File::create(&p).at(&p)?;
        f.write_all(&bytes).at(&p)?;
        f.sync_all().at(&p)?;
        names.push(name);
        if let Some(ms) = std::env::var("RUNNER_TEST_PUBLISH_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            // Test hook: widens the window in which a kill lands mid-publish.
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
    // The researcher's own files (not written by runner) stay.
    if dir.is_dir() {
        for e in fs::read_dir(dir).at(dir)?.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            // Runner's files, by their first path component (a folder of results is runner's).
            let ours =
                |list: &[String]| list.iter().any(|x| x.split('/').next() == Some(n.as_str()));
            if n == INDEX || n.starts_with(".tmp-") || ours(&previous) || ours(&names) {
                continue;
            }
            let to = staging.path().join(&n);
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                copy_tree(&e.path(), &to)?;
            } else if fs::hard_link(e.path(), &to).is_err() {
                fs::copy(e.path(), &to).at(e.path())?;
            }
        }
    }
    let index = Index {
        experiment: experiment.to_string(),
        file: experiment_file.to_path_buf(),
        files: names.clone(),
    };
    let ipath = staging.path().join(INDEX);
    let mut f = File::create(&ipath).at(&ipath)?;
    f.write_all(&serde_json::to_vec_pretty(&index).expect("index serializes"))
        .at(&ipath)?;
    f.sync_all().at(&ipath)?;
    sync_dir(staging.path());

    let staged = staging.keep();
    if dir.exists() {
        swap(&staged, dir, &parent, &prefix)?;
    } else {
        fs::rename(&staged, dir).at(dir)?;
    }
    sync_dir(&parent);
    drop(lock);
    Ok(names.iter().map(|n| dir.join(n)).collect())
}

/// Puts `staged` at `dir` and removes the old `dir`.
fn swap(staged: &Path, dir: &Path, parent: &Path, prefix: &str) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staged, CWD, dir, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // `staged` now names the old set.
            let _ = fs::remove_dir_all(staged);
            Ok(())
        }
        Err(_) => {
            // No atomic exchange here (an old kernel or a filesystem without
            // it): the directory is briefly absent, never mixed.
            let old = parent.join(format!("{prefix}old-{}", std::process::id()));
            fs::rename(dir, &old).at(dir)?;
            fs::rename(staged, dir).at(dir)?;
            let _ = fs::remove_dir_all(&old);
            Ok(())
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).at(to)?;
    for e in fs::read_dir(from).at(from)?.flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            copy_tree(&e.path(), &dest)?;
        } else if fs::hard_link(e.path(), &dest).is_err() {
            fs::copy(e.path(), &dest).at(e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<Result<(String, Vec<u8>)>> {
        list.iter()
            .map(|(n, b)| Ok((n.to_string(), b.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn publish_replaces_the_set_and_keeps_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("res");
        let f = Path::new("e.toml");
        publish(
            &dir,
            "e",
            f,
            &mut files(&[("a.csv", "1"), ("b.png", "2")]).into_iter(),
        )
        .unwrap();
        fs::write(dir.join("notes.txt"), "mine").unwrap();
        publish(&dir, "e", f, &mut files(&[("a.csv", "3")]).into_iter()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("a.csv")).unwrap(), "3");
        assert!(
            !dir.join("b.png").exists(),
            "a file the new set lacks is gone"
        );
        assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
        let left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "res" && !n.ends_with("lock"))
            .collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }

    #[test]
    fn another_experiment_is_refused_and_nothing_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("res");
        publish(
            &dir,
            "one",
            Path::new("one.toml"),
            &mut files(&[("a.csv", "1")]).into_iter(),
        )
        .unwrap();
        let err = publish(
            &dir,
            "two",
            Path::new("two.toml"),
            &mut files(&[("z.csv", "9")]).into_iter(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("belongs to experiment `one` (one.toml); this is `two`"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(dir.join("a.csv")).unwrap(), "1");
        assert!(!dir.join("z.csv").exists());
    }

    #[test]
    fn a_failing_file_leaves_the_old_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("res");
        publish(
            &dir,
            "e",
            Path::new("e.toml"),
            &mut files(&[("a.csv", "1")]).into_iter(),
        )
        .unwrap();
        let mut bad = vec![
            Ok(("a.csv".to_string(), b"2".to_vec())),
            Err(Error::usage("disk full")),
        ]
        .into_iter();
        assert!(publish(&dir, "e", Path::new("e.toml"), &mut bad).is_err());
        assert_eq!(fs::read_to_string(dir.join("a.csv")).unwrap(), "1");
    }
}
