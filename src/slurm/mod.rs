//! Running an experiment's nodes as Slurm jobs over a shared cache.
//!
//! runner hands its DAG to Slurm instead of growing a scheduler: the driver
//! (`runner exec FILE --executor slurm`, on a login node) submits each ready
//! stale node as an `sbatch` job (small nodes grouped, see
//! [`driver`]), and each job runs runner itself ([`job`]) on its compute
//! node against the same cache, exactly as the local executor runs a node:
//! verified inputs, the entry's lock, an atomic commit. The driver orders the
//! jobs by polling (a node is submitted once its inputs are in the cache),
//! so a failed or cancelled job is simply submitted again, and a node that
//! keeps failing stops only its own descendants.
//!
//! - [`profile`]: the user's cluster settings (never in the experiment file).
//! - [`resources`]: CPUs, memory, time and GPUs a node's job asks for;
//!   [`history`]: time limits from how long a node took before.
//! - [`scheduler`]: the Slurm commands, retried with back-off.
//! - [`claims`]: which job computes which node, shared between drivers.

pub mod claims;
pub mod driver;
pub mod history;
pub mod job;
pub mod profile;
pub mod resources;
pub mod scheduler;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C (or SIGTERM) was received: the driver cancels its jobs and stops.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From now on Ctrl-C and SIGTERM set [`interrupted`] instead of killing
/// the process, so that the jobs it submitted can be cancelled first.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn dir(cache: &Cache) -> PathBuf {
    cache.root.join("slurm")
}

/// This cache's identity, made once. A job compares it with the one the
/// driver passed: a cache path that names another directory on the compute
/// node (a node-local /tmp) is refused instead of silently filled.
pub fn cache_id(cache: &Cache) -> Result<String> {
    let d = dir(cache);
    std::fs::create_dir_all(&d).at(&d)?;
    let path = d.join("id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    let seed = format!(
        "{}-{}-{:?}",
        hostname(),
        std::process::id(),
        std::time::SystemTime::now()
    );
    let id = blake3::hash(seed.as_bytes()).to_hex()[..32].to_string();
    // create_new: two drivers starting at once agree on the first one's id.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(id.as_bytes()).at(&path)?;
            f.sync_all().at(&path)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // The winner may not have written yet.
            for _ in 0..50 {
                if let Ok(id) = std::fs::read_to_string(&path)
                    && !id.trim().is_empty()
                {
                    return Ok(id.trim().to_string());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(Error::Cache {
                dir: cache.root.clone(),
                message: format!("{} stays empty", path.display()),
            })
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// The host this process runs on (Slurm's name for it inside a job).
pub fn hostname() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Seconds since the epoch, with a fraction (for latencies).
pub fn unix_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
