//! What a job asks Slurm for, from the plan: memory from the node's own
//! estimate, CPUs and a time limit by node kind, a GPU for the nodes that run
//! a net on a GPU build; the user's profile overrides any of it per kind.

use crate::plan::Node;
use crate::slurm::profile::{Profile, format_time};

/// How a kind is scheduled by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeClass {
    /// Runs a net (extract, train): its own job, a GPU on a GPU build.
    Gpu,
    /// Minutes of numerics over big matrices: its own job, several CPUs.
    Heavy,
    /// Seconds of work (scores, tables, plots, ROI masks): grouped.
    Small,
}

/// Every node kind, with its class. A kind missing here is scheduled as
/// Small; `tests` below checks that none is missing.
pub const KINDS: &[(&str, NodeClass)] = &[
    ("extract", NodeClass::Gpu),
    ("train", NodeClass::Gpu),
    ("decompose", NodeClass::Heavy),
    ("fit", NodeClass::Heavy),
    ("holdout_fit", NodeClass::Heavy),
    ("import", NodeClass::Heavy),
    ("linear_fit", NodeClass::Heavy),
    ("pls_fit", NodeClass::Heavy),
    ("reduce", NodeClass::Heavy),
    ("rdm", NodeClass::Heavy),
    ("best_layer", NodeClass::Small),
    ("holdout_score", NodeClass::Small),
    ("linear_score", NodeClass::Small),
    ("plot", NodeClass::Small),
    ("roi", NodeClass::Small),
    ("rsa", NodeClass::Small),
    ("score", NodeClass::Small),
    ("split", NodeClass::Small),
    ("split_stats", NodeClass::Small),
    ("subject", NodeClass::Heavy),
    ("submission", NodeClass::Small),
    ("surface_map", NodeClass::Small),
    ("table", NodeClass::Small),
    ("tuning", NodeClass::Small),
    ("varpart", NodeClass::Small),
    ("volume_maps", NodeClass::Small),
];

/// runner itself (binary, plan, buffers) before a node allocates anything.
const BASE_MEM_MB: u64 = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub cpus: u32,
    pub mem_mb: u64,
    pub time_s: u64,
    pub gres: Option<String>,
    pub partition: Option<String>,
    /// In a job of its own.
    pub alone: bool,
}

impl Resources {
    /// The node's own request. The time limit is the profile's for its
    /// kind, else what history says (three times its slowest run, see
    /// [`crate::slurm::history`]), else the profile's default, else the
    /// class's.
    pub fn of(
        node: &Node,
        profile: &Profile,
        gpu_build: bool,
        history_s: Option<u64>,
    ) -> Resources {
        let kind = node.task.kind();
        let class = crate::slurm::profile::class_of(kind);
        let k = profile.kind(kind);
        let (cpus, time_s) = match class {
            NodeClass::Gpu => (4, 4 * 3600),
            NodeClass::Heavy => (2, 3600),
            NodeClass::Small => (1, 15 * 60),
        };
        let estimate_mb =
            (node.mem_bytes as f64 * profile.mem_margin / (1u64 << 20) as f64).ceil() as u64;
        Resources {
            cpus: k.cpus.unwrap_or(cpus),
            mem_mb: k.mem_mb.unwrap_or(BASE_MEM_MB + estimate_mb),
            time_s: k.time_s.or(history_s).or(profile.time_s).unwrap_or(time_s),
            gres: match (&k.gres, class) {
                (Some(g), _) => Some(g.clone()),
                (None, NodeClass::Gpu) if gpu_build => Some(profile.gres.clone()),
                _ => None,
            },
            partition: k.partition.or_else(|| profile.partition.clone()),
            alone: k.alone.unwrap_or(class != NodeClass::Small),
        }
    }

    /// A job running several nodes one after another: the most any of them
    /// asks for, and their time limits added up.
    pub fn merge(&mut self, other: &Resources) {
        self.cpus = self.cpus.max(other.cpus);
        self.mem_mb = self.mem_mb.max(other.mem_mb);
        self.time_s += other.time_s;
        if self.gres.is_none() {
            self.gres = other.gres.clone();
        }
    }

    /// The sbatch flags for these resources (the profile adds its own).
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut a = vec![
            format!("--cpus-per-task={}", self.cpus),
            format!("--mem={}M", self.mem_mb),
            format!("--time={}", format_time(self.time_s)),
        ];
        if let Some(g) = &self.gres {
            a.push(format!("--gres={g}"));
        }
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        a
    }
}

/// Whether two nodes' jobs can be one (same partition and GPU request).
pub fn compatible(a: &Resources, b: &Resources) -> bool {
    a.partition == b.partition && a.gres == b.gres
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `fn kind(&self) -> &'static str { "…" }` in the sources has a
    /// class here, so a new kind is never scheduled by accident.
    #[test]
    fn every_node_kind_in_the_sources_has_a_class() {
        let mut missing = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.ends_with("slurm/resources.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let mut rest = text.as_str();
                while let Some(i) = rest.find("fn kind(&self) -> &'static str {") {
                    rest = &rest[i..];
                    let body = &rest[..rest.find('}').unwrap()];
                    if let Some(q) = body.find('"') {
                        let name = &body[q + 1..];
                        let name = &name[..name.find('"').unwrap()];
                        if !KINDS.iter().any(|(n, _)| *n == name) {
                            missing.push(format!("{name} ({})", p.display()));
                        }
                    }
                    rest = &rest[1..];
                }
            }
        }
        assert!(
            missing.is_empty(),
            "kinds without a Slurm class: {missing:?}"
        );
    }
}
