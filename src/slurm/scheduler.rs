//! The Slurm commands runner calls (sbatch, squeue, sacct, scancel), each
//! counted, and retried with back-off while the controller is busy or
//! unreachable: a scheduler that fails for a while is weather, not an error.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::slurm::interrupted;

/// A job as squeue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub state: String,
    pub host: String,
    pub elapsed: String,
    pub name: String,
}

/// A job as sacct recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct AcctRow {
    pub state: String,
    pub exit_code: String,
    pub host: String,
}

pub enum Submitted {
    Job(String),
    /// sbatch said no for a reason that waiting does not fix (no such
    /// partition, more memory than any node has): its words.
    Refused(String),
}

/// States in which a job may still run (or is running).
pub fn is_active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
    )
}

/// What sbatch prints when the controller is busy, restarting, or has hit a
/// submission limit: wait and try again.
fn transient(stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "unable to contact slurm controller",
        "socket timed out",
        "temporarily unable",
        "temporarily unavailable",
        "connection refused",
        "zero bytes were transmitted",
        "try again",
        "maxsubmitjob",
        "job submit limit",
        "slurmctld not responding",
    ];
    let s = stderr.to_lowercase();
    SIGNS.iter().any(|x| s.contains(x))
}

pub struct Scheduler {
    pub patience: Duration,
    /// Calls made, by command (for the run log and the scale benchmark).
    pub calls: RefCell<BTreeMap<&'static str, u64>>,
    pub retries: RefCell<u64>,
}

impl Scheduler {
    pub fn new(patience: Duration) -> Scheduler {
        Scheduler {
            patience,
            calls: RefCell::new(BTreeMap::new()),
            retries: RefCell::new(0),
        }
    }

    fn call(
        &self,
        cmd: &'static str,
        args: &[String],
        stdin: Option<&str>,
    ) -> std::io::Result<Output> {
        *self.calls.borrow_mut().entry(cmd).or_default() += 1;
        let mut c = Command::new(cmd);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn()?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(text.as_bytes())?;
        }
        child.wait_with_output()
    }

    /// Runs `cmd` until it succeeds, or fails in a way `retry` says is final,
    /// backing off from half a second to half a minute, for at most
    /// `patience` in all. Ctrl-C ends the wait.
    fn with_backoff(
        &self,
        cmd: &'static str,
        args: &[String],
        stdin: Option<&str>,
        retry: impl Fn(&str) -> bool,
    ) -> Result<std::result::Result<String, String>> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(500);
        let mut said = false;
        loop {
            let why = match self.call(cmd, args, stdin) {
                Ok(o) if o.status.success() => {
                    if said {
                        eprintln!("runner: {cmd} answers again");
                    }
                    return Ok(Ok(String::from_utf8_lossy(&o.stdout).into_owned()));
                }
                Ok(o) => {
                    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    if !retry(&err) {
                        return Ok(Err(err));
                    }
                    err
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(not_installed(cmd));
                }
                Err(e) => e.to_string(),
            };
            if started.elapsed() + wait > self.patience {
                return Err(Error::Scheduler {
                    message: format!(
                        "{cmd} kept failing for {:.0} s: {why}",
                        started.elapsed().as_secs_f64()
                    ),
                    help: Some(
                        "the jobs already submitted keep running; run the same `runner exec` again \
                         when Slurm answers: it adopts them and submits only what is missing \
                         (patience_minutes in the Slurm profile sets how long to wait)"
                            .into(),
                    ),
                });
            }
            if !said {
                eprintln!("runner: {cmd} failed ({why}); retrying with back-off");
                said = true;
            }
            *self.retries.borrow_mut() += 1;
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if interrupted() {
                    return Err(Error::Scheduler {
                        message: format!("interrupted while waiting for {cmd}"),
                        help: None,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Fails early, and clearly, where there is no Slurm to talk to.
    pub fn check_available(&self) -> Result<()> {
        match self.call("sbatch", &["--version".into()], None) {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(Error::Scheduler {
                message: format!(
                    "sbatch --version failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                help: None,
            }),
            Err(_) => Err(not_installed("sbatch")),
        }
    }

    pub fn submit(&self, script: &str, args: &[String]) -> Result<Submitted> {
        let mut a = vec!["--parsable".to_string()];
        a.extend(args.iter().cloned());
        Ok(
            match self.with_backoff("sbatch", &a, Some(script), transient)? {
                // `--parsable` prints `id` or `id;cluster`.
                Ok(out) => Submitted::Job(out.trim().split(';').next().unwrap_or("").to_string()),
                Err(why) => Submitted::Refused(why),
            },
        )
    }

    /// This user's jobs, recently ended ones included (for `MinJobAge`).
    pub fn queue(&self) -> Result<HashMap<String, QueueRow>> {
        // `--user=<uid>` rather than `--me`, which Slurm before 20.11 lacks.
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let args: Vec<String> = vec![
            format!("--user={uid}"),
            "-h".into(),
            "--states=all".into(),
            "-o".into(),
            "%i|%T|%N|%M|%j".into(),
        ];
        // A controller that does not answer is waited for; any other error
        // (an option this squeue does not know) is reported at once.
        let out = match self.with_backoff("squeue", &args, None, transient)? {
            Ok(out) => out,
            Err(why) => {
                return Err(Error::Scheduler {
                    message: format!("squeue: {why}"),
                    help: None,
                });
            }
        };
        Ok(out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(5, '|').collect();
                (f.len() == 5).then(|| {
                    (
                        f[0].trim().to_string(),
                        QueueRow {
                            state: f[1].trim().to_string(),
                            host: f[2].trim().to_string(),
                            elapsed: f[3].trim().to_string(),
                            name: f[4].trim().to_string(),
                        },
                    )
                })
            })
            .collect())
    }

    /// What accounting recorded of these jobs; empty where the cluster keeps
    /// no accounting (one try: this only improves a report).
    pub fn accounting(&self, ids: &[String]) -> HashMap<String, AcctRow> {
        if ids.is_empty() {
            return HashMap::new();
        }
        let args = vec![
            "-n".into(),
            "-P".into(),
            "-X".into(),
            "-o".into(),
            "JobID,State,ExitCode,NodeList".into(),
            "-j".into(),
            ids.join(","),
        ];
        let Ok(o) = self.call("sacct", &args, None) else {
            return HashMap::new();
        };
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() == 4).then(|| {
                    (
                        f[0].to_string(),
                        AcctRow {
                            // `CANCELLED by 0` → `CANCELLED`.
                            state: f[1].split_whitespace().next().unwrap_or("").to_string(),
                            exit_code: f[2].to_string(),
                            host: f[3].to_string(),
                        },
                    )
                })
            })
            .collect()
    }

    pub fn cancel(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        match self.with_backoff("scancel", ids, None, transient)? {
            Ok(_) => Ok(()),
            Err(why) => Err(Error::Scheduler {
                message: format!("scancel: {why}"),
                help: None,
            }),
        }
    }
}

fn not_installed(cmd: &str) -> Error {
    Error::Scheduler {
        message: format!("`{cmd}` is not on PATH: no Slurm client on this host"),
        help: Some(
            "run `--executor slurm` on a login node of the cluster (where sbatch works), or drop it to run \
             here; for the test cluster: bash scripts/slurm-cluster.sh start && eval \"$(bash scripts/slurm-cluster.sh env)\""
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_controllers_are_transient_bad_requests_are_not() {
        assert!(transient(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(transient(
            "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying"
        ));
        assert!(transient("sbatch: error: QOSMaxSubmitJobPerUserLimit"));
        assert!(transient(
            "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!transient("squeue: unrecognized option '--me'"));
        assert!(!transient(
            "sbatch: error: invalid partition specified: gpu"
        ));
        assert!(!transient(
            "sbatch: error: Batch job submission failed: Requested node configuration is not available"
        ));
        assert!(is_active("PENDING") && is_active("COMPLETING"));
        assert!(!is_active("TIMEOUT") && !is_active("CANCELLED") && !is_active("NODE_FAIL"));
    }
}
