//! What the cache needs from the filesystem it sits on, checked before an
//! exec touches it.
//!
//! Entry locks are `flock(2)` locks on `locks/<key>.lock`. Writers on
//! different hosts (Slurm jobs over one shared cache) exclude each other only
//! when the filesystem makes those locks cluster-wide:
//!
//! - **NFS**: Linux emulates `flock` with NFS byte-range locks (NLM for v3,
//!   built into v4), so they are cluster-wide unless the mount says
//!   `nolock` or `local_lock=flock|all`, which keep them on one client.
//! - **Lustre**: `flock` works across clients only with the `flock` mount
//!   option; `localflock` keeps locks on one client, and with neither the
//!   call fails (ENOSYS).
//! - **GPFS / Spectrum Scale, BeeGFS, CephFS**: cluster-wide.
//!
//! A lock call that fails outright is caught by the probe; locks that only
//! look local are caught from the mount options in `/proc/self/mountinfo`.
//! Entries are renamed into place, which every one of these does atomically.

use std::fs::TryLockError;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The mount a path lives on: its mount point, filesystem type, and the
/// mount's and the superblock's options, from one `/proc/self/mountinfo` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub point: PathBuf,
    pub fstype: String,
    pub options: Vec<String>,
}

/// The mount holding `path` (the longest mount point that is its prefix),
/// from the text of `/proc/self/mountinfo`.
pub fn mount_of(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root point options [optional…] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 6 || r.is_empty() {
            continue;
        }
        let point = PathBuf::from(unescape(f[4]));
        if !path.starts_with(&point) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|b| b.point.as_os_str().len() > point.as_os_str().len())
        {
            continue;
        }
        let mut options: Vec<String> = f[5].split(',').map(str::to_string).collect();
        if let Some(sup) = r.get(2) {
            options.extend(sup.split(',').map(str::to_string));
        }
        best = Some(Mount {
            point,
            fstype: r[0].to_string(),
            options,
        });
    }
    best
}

/// mountinfo writes a space in a path as `\040` (and tab, newline, `\`).
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Why locks on this mount would not exclude a writer on another host, if
/// they would not.
pub fn local_only_locks(m: &Mount) -> Option<String> {
    let has = |o: &str| m.options.iter().any(|x| x == o);
    let nfs = m.fstype == "nfs" || m.fstype == "nfs4";
    if nfs && has("nolock") {
        return Some(format!(
            "{} is NFS mounted with `nolock`: its locks stay on this host",
            m.point.display()
        ));
    }
    if nfs && (has("local_lock=flock") || has("local_lock=all")) {
        return Some(format!(
            "{} is NFS mounted with `local_lock`: its flock locks stay on this host",
            m.point.display()
        ));
    }
    if m.fstype == "lustre" && !has("flock") {
        return Some(format!(
            "{} is Lustre without the `flock` mount option{}: locks do not reach the other clients",
            m.point.display(),
            if has("localflock") {
                " (it has `localflock`)"
            } else {
                ""
            }
        ));
    }
    None
}

/// Checks that an entry lock can be taken in `locks/` and that it excludes
/// a second holder; refuses a mount whose locks are local to one host.
pub fn check_locking(cache_root: &Path) -> Result<()> {
    let dir = cache_root.join("locks");
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let help = "the cache needs working flock(2) locks: on NFS mount without `nolock`/`local_lock`, \
                on Lustre with `-o flock`; or put the cache (--cache, RUNNER_CACHE or the experiment's \
                `cache`) on a local disk or on GPFS";
    let refuse = |why: String| {
        Error::data(
            cache_root,
            format!("file locking does not work here: {why}"),
        )
        .with_help(help)
    };
    if std::env::var_os("RUNNER_TEST_BROKEN_LOCKS").is_some() {
        // Test hook: stands in for a filesystem whose flock fails (ENOLCK).
        return Err(refuse(format!(
            "{}: {}",
            probe.display(),
            std::io::Error::from_raw_os_error(libc::ENOLCK)
        )));
    }
    let result = (|| {
        let first = crate::cache::lock_file(&probe)?;
        let second = std::fs::File::open(&probe).map_err(|e| Error::io(&probe, e))?;
        match first.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(refuse(format!(
                    "{} is locked by nobody yet would block",
                    probe.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(refuse(format!("{}: {e}", probe.display()))),
        }
        match second.try_lock() {
            Err(TryLockError::WouldBlock) => Ok(()),
            Ok(()) => Err(refuse(format!(
                "two holders of {} were both granted its lock",
                probe.display()
            ))),
            Err(TryLockError::Error(e)) => Err(refuse(format!("{}: {e}", probe.display()))),
        }
    })();
    let _ = std::fs::remove_file(&probe);
    result?;
    let canonical = std::fs::canonicalize(cache_root).map_err(|e| Error::io(cache_root, e))?;
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo")
        && let Some(m) = mount_of(&info, &canonical)
        && let Some(why) = local_only_locks(&m)
    {
        return Err(refuse(why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 22 0:41 / /scratch rw,relatime shared:20 - lustre 10.0.0.1@tcp:/fs rw,localflock,lazystatfs
41 22 0:42 / /home rw,relatime shared:21 - nfs4 srv:/home rw,vers=4.2,local_lock=none,addr=10.0.0.2
42 22 0:43 / /old rw,relatime shared:22 - nfs srv:/old rw,vers=3,nolock,addr=10.0.0.3
43 22 0:44 / /gpfs rw,relatime shared:23 - gpfs gpfs0 rw
44 22 0:45 / /lus rw,relatime shared:24 - lustre 10.0.0.1@tcp:/fs2 rw,flock
45 22 0:46 / /my\\040data rw,relatime - nfs4 srv:/d rw,local_lock=flock
";

    fn why(path: &str) -> Option<String> {
        local_only_locks(&mount_of(INFO, Path::new(path)).unwrap())
    }

    #[test]
    fn the_longest_mount_point_holding_the_path_is_its_mount() {
        let m = mount_of(INFO, Path::new("/scratch/lab/cache")).unwrap();
        assert_eq!(m.point, PathBuf::from("/scratch"));
        assert_eq!(m.fstype, "lustre");
        assert_eq!(mount_of(INFO, Path::new("/srv/x")).unwrap().fstype, "ext4");
        // `/homework` is not under `/home`.
        assert_eq!(
            mount_of(INFO, Path::new("/homework")).unwrap().fstype,
            "ext4"
        );
        assert_eq!(
            mount_of(INFO, Path::new("/my data/c")).unwrap().point,
            PathBuf::from("/my data")
        );
    }

    #[test]
    fn mounts_whose_locks_stay_on_one_host_are_named() {
        assert!(
            why("/scratch/c").unwrap().contains("`localflock`"),
            "{:?}",
            why("/scratch/c")
        );
        assert!(why("/old/c").unwrap().contains("`nolock`"));
        assert!(why("/my data/c").unwrap().contains("`local_lock`"));
        assert_eq!(why("/home/me/cache"), None);
        assert_eq!(why("/gpfs/lab/cache"), None);
        assert_eq!(why("/lus/cache"), None);
        assert_eq!(why("/tmp/cache"), None);
    }

    #[test]
    fn a_local_directory_passes_the_probe() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("locks")).unwrap();
        check_locking(tmp.path()).unwrap();
        // The probe leaves nothing behind.
        assert_eq!(
            std::fs::read_dir(tmp.path().join("locks")).unwrap().count(),
            0
        );
    }
}
