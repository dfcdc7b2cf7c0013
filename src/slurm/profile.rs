//! The user's Slurm profile: where and how jobs are submitted on *their*
//! cluster (partition, account, QOS, time limits, extra flags, how many jobs
//! at once). It is never part of an experiment file, which stays portable
//! between a laptop and any cluster.
//!
//! Looked up in this order: `--slurm-profile FILE`, `$RUNNER_SLURM_PROFILE`,
//! `$XDG_CONFIG_HOME/runner/slurm.toml`, `~/.config/runner/slurm.toml`; with
//! none of them, the defaults below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, IoContext, Result};
use crate::slurm::resources::{KINDS, NodeClass};
use crate::source::Source;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProfile {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    time: Option<String>,
    extra_args: Vec<String>,
    max_in_flight: Option<usize>,
    max_tries: Option<u32>,
    poll_seconds: Option<f64>,
    group_max: Option<usize>,
    gres: Option<String>,
    mem_margin: Option<f64>,
    patience_minutes: Option<f64>,
    runner: Option<PathBuf>,
    kinds: BTreeMap<String, toml::Spanned<RawKind>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
struct RawKind {
    cpus: Option<u32>,
    time: Option<String>,
    partition: Option<String>,
    gres: Option<String>,
    mem_gb: Option<f64>,
    alone: Option<bool>,
}

/// What one node kind's jobs ask for, where the profile says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindProfile {
    pub cpus: Option<u32>,
    pub time_s: Option<u64>,
    pub partition: Option<String>,
    pub gres: Option<String>,
    pub mem_mb: Option<u64>,
    /// One job per node (true), or grouped with other small ready nodes.
    pub alone: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Where it was read from (None: the defaults).
    pub path: Option<PathBuf>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// The time limit of a job whose kind sets none (seconds).
    pub time_s: Option<u64>,
    /// Passed to sbatch as they are (`--constraint=a100`, `--exclude=n12`).
    pub extra_args: Vec<String>,
    pub max_in_flight: usize,
    /// Submissions of one node before it is reported as failed.
    pub max_tries: u32,
    pub poll_seconds: f64,
    /// Small nodes in one job at most.
    pub group_max: usize,
    /// What a GPU node (extract, train) asks for on a GPU build.
    pub gres: String,
    /// `--mem` is the node's estimate times this (estimates are rough).
    pub mem_margin: f64,
    /// How long sbatch/squeue may keep failing before the run gives up.
    pub patience_s: f64,
    /// The runner binary the jobs run (default: this one, which must be on
    /// a filesystem the compute nodes see).
    pub runner: Option<PathBuf>,
    pub kinds: BTreeMap<String, KindProfile>,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            path: None,
            partition: None,
            account: None,
            qos: None,
            time_s: None,
            extra_args: Vec::new(),
            max_in_flight: 100,
            max_tries: 3,
            poll_seconds: 5.0,
            group_max: 50,
            gres: "gpu:1".into(),
            mem_margin: 1.5,
            patience_s: 30.0 * 60.0,
            runner: None,
            kinds: BTreeMap::new(),
        }
    }
}

/// The profile file in effect: the one named, else the first that exists of
/// the user-level places.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("RUNNER_SLURM_PROFILE") {
        return Some(PathBuf::from(p));
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let p = config_home.join("runner").join("slurm.toml");
    p.is_file().then_some(p)
}

pub fn load(explicit: Option<&Path>) -> Result<Profile> {
    match locate(explicit) {
        None => Ok(Profile::default()),
        Some(path) => {
            let text = std::fs::read_to_string(&path).at(&path)?;
            parse(&path, text)
        }
    }
}

/// Slurm's time formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn parse_time(s: &str) -> Option<u64> {
    let num = |x: &str| -> Option<u64> {
        (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse().ok())
            .flatten()
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

/// Seconds as Slurm's `D-HH:MM:SS`, rounded up to a whole minute.
pub fn format_time(secs: u64) -> String {
    let m = secs.div_ceil(60).max(1);
    let (d, h, m) = (m / 1440, (m % 1440) / 60, m % 60);
    format!("{d}-{h:02}:{m:02}:00")
}

pub fn parse(path: &Path, text: String) -> Result<Profile> {
    let src = Source::new(path, text);
    let raw: RawProfile = toml::from_str(&src.text).map_err(|e| src.from_toml(e))?;
    let time_help = "Slurm's formats: `90` (minutes), `2:00:00`, `1-12:00:00`";
    let bad = |key: &str, what: String, help: &str| {
        Error::usage(format!("{}: `{key}` {what}", path.display())).with_help(help.to_string())
    };
    let time = |key: &str, t: &Option<String>| -> Result<Option<u64>> {
        t.as_ref()
            .map(|t| {
                parse_time(t)
                    .ok_or_else(|| bad(key, format!("= {t:?} is not a time limit"), time_help))
            })
            .transpose()
    };
    let d = Profile::default();
    let mut kinds = BTreeMap::new();
    for (name, spanned) in raw.kinds {
        let span = spanned.span();
        let k = spanned.into_inner();
        if !KINDS.iter().any(|(n, _)| *n == name) {
            let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            return Err(src
                .error_labeled(
                    span,
                    format!("unknown node kind `{name}` in [kinds]"),
                    "not a node kind",
                )
                .with_help(format!("node kinds: {}", known.join(", "))));
        }
        if k.cpus == Some(0) {
            return Err(bad(
                &format!("kinds.{name}.cpus"),
                "must be at least 1".into(),
                "",
            ));
        }
        let mem_mb = match k.mem_gb {
            Some(g) if !(g > 0.0 && g < 1e6) => {
                return Err(bad(
                    &format!("kinds.{name}.mem_gb"),
                    format!("= {g} is not a memory size"),
                    "",
                ));
            }
            Some(g) => Some((g * 1024.0).ceil() as u64),
            None => None,
        };
        kinds.insert(
            name.clone(),
            KindProfile {
                cpus: k.cpus,
                time_s: time(&format!("kinds.{name}.time"), &k.time)?,
                partition: k.partition,
                gres: k.gres,
                mem_mb,
                alone: k.alone,
            },
        );
    }
    let positive = |key: &str, v: Option<f64>, default: f64| -> Result<f64> {
        match v {
            Some(x) if !(x > 0.0 && x.is_finite()) => {
                Err(bad(key, format!("= {x} must be positive"), ""))
            }
            Some(x) => Ok(x),
            None => Ok(default),
        }
    };
    let at_least_one = |key: &str, v: Option<usize>, default: usize| -> Result<usize> {
        match v {
            Some(0) => Err(bad(key, "must be at least 1".into(), "")),
            Some(x) => Ok(x),
            None => Ok(default),
        }
    };
    Ok(Profile {
        path: Some(path.to_path_buf()),
        partition: raw.partition,
        account: raw.account,
        qos: raw.qos,
        time_s: time("time", &raw.time)?,
        extra_args: raw.extra_args,
        max_in_flight: at_least_one("max_in_flight", raw.max_in_flight, d.max_in_flight)?,
        max_tries: at_least_one(
            "max_tries",
            raw.max_tries.map(|t| t as usize),
            d.max_tries as usize,
        )? as u32,
        poll_seconds: positive("poll_seconds", raw.poll_seconds, d.poll_seconds)?,
        group_max: at_least_one("group_max", raw.group_max, d.group_max)?,
        gres: raw.gres.unwrap_or(d.gres),
        mem_margin: positive("mem_margin", raw.mem_margin, d.mem_margin)?,
        patience_s: positive(
            "patience_minutes",
            raw.patience_minutes,
            d.patience_s / 60.0,
        )? * 60.0,
        runner: raw.runner,
        kinds,
    })
}

impl Profile {
    pub fn kind(&self, kind: &str) -> KindProfile {
        self.kinds.get(kind).cloned().unwrap_or_default()
    }
}

/// The default class of a kind (for `runner exec --help`-style listings).
pub fn class_of(kind: &str) -> NodeClass {
    KINDS
        .iter()
        .find(|(n, _)| *n == kind)
        .map(|(_, c)| *c)
        .unwrap_or(NodeClass::Small)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_formats() {
        assert_eq!(parse_time("90"), Some(5400));
        assert_eq!(parse_time("5:30"), Some(330));
        assert_eq!(parse_time("2:00:00"), Some(7200));
        assert_eq!(parse_time("1-12"), Some(129600));
        assert_eq!(parse_time("1-0:30"), Some(88200));
        assert_eq!(parse_time("2-01:02:03"), Some(176523));
        for bad in ["", "0", "1h", "1-", "-5", "1:2:3:4", "a:b", "1-2-3"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
        assert_eq!(format_time(5400), "0-01:30:00");
        assert_eq!(format_time(61), "0-00:02:00");
        assert_eq!(format_time(176523), "2-01:03:00");
        assert_eq!(parse_time(&format_time(7200)), Some(7200));
    }

    #[test]
    fn a_profile_is_read_and_checked() {
        let p = parse(
            Path::new("slurm.toml"),
            r#"
partition = "cpu"
account = "lab"
time = "2:00:00"
extra_args = ["--constraint=avx2"]
max_in_flight = 20
[kinds.extract]
partition = "gpu"
gres = "gpu:a100:1"
cpus = 8
time = "1-0"
[kinds.fit]
mem_gb = 1.5
"#
            .into(),
        )
        .unwrap();
        assert_eq!(p.partition.as_deref(), Some("cpu"));
        assert_eq!(p.time_s, Some(7200));
        assert_eq!(p.max_in_flight, 20);
        assert_eq!(p.max_tries, 3);
        let e = p.kind("extract");
        assert_eq!(
            (e.cpus, e.time_s, e.gres.as_deref()),
            (Some(8), Some(86400), Some("gpu:a100:1"))
        );
        assert_eq!(p.kind("fit").mem_mb, Some(1536));
        assert_eq!(p.kind("score"), KindProfile::default());
    }

    #[test]
    fn unknown_keys_kinds_and_bad_values_are_errors_with_their_place() {
        let err = |text: &str| {
            parse(Path::new("p.toml"), text.into())
                .unwrap_err()
                .to_string()
        };
        let e = err("partiton = \"cpu\"\n");
        assert!(e.starts_with("p.toml:1:1") && e.contains("partiton"), "{e}");
        let e = err("[kinds.fitt]\ncpus = 2\n");
        assert!(
            e.starts_with("p.toml:") && e.contains("unknown node kind `fitt`"),
            "{e}"
        );
        let e = err("[kinds.fit]\ncpu = 2\n");
        assert!(e.starts_with("p.toml:2:1") && e.contains("cpu"), "{e}");
        assert!(err("time = \"2h\"\n").contains("`time` = \"2h\" is not a time limit"));
        assert!(err("max_tries = 0\n").contains("`max_tries` must be at least 1"));
        assert!(err("poll_seconds = -1.0\n").contains("`poll_seconds` = -1 must be positive"));
    }
}
