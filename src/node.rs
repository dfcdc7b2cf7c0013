//! What every node kind is: a type whose serialisable fields are its key
//! parameters, with beside them, in its own file, a kind name, a code version,
//! a memory estimate, `run`, and the warnings it has for the user.
//!
//! The plan stores nodes behind this trait and the executor runs them without
//! knowing what they mean, as a build system runs actions.

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::cache::{Entry, EntryWriter};
use crate::error::{Error, Result};

/// The parameters hashed into a node's key: its serde form, for every node
/// type (so that a field can never be left out of the key by hand).
pub trait KeyParams {
    fn params(&self) -> serde_json::Value;
}

impl<T: Serialize> KeyParams for T {
    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("node parameters serialize")
    }
}

pub trait NodeKind: KeyParams + Send + Sync + std::fmt::Debug {
    /// The first part of node ids and of every key (`fit`, `extract`, ...).
    fn kind(&self) -> &'static str;
    /// Bump it when the output would change for the same inputs.
    fn version(&self) -> u32;
    /// Rough peak memory, so the executor does not run two giants at once.
    fn mem_bytes(&self) -> u64;
    fn run(&self, ctx: &Ctx) -> Result<()>;
    /// Things the user should hear after every exec, whether the entry was
    /// computed now or reused (an α at the grid's edge, an empty ROI).
    /// `entry` opens this node's entry; most kinds never call it.
    /// Where a file of the entry goes among the results, for nodes whose
    /// files are results (a submission's `subj01/lh_pred_test.npy`).
    fn result_name(&self, file: &str) -> String {
        file.to_string()
    }
    fn warnings(&self, _entry: &dyn Fn() -> Result<Entry>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// What a running node sees: its verified inputs by role, and where to write.
pub struct Ctx<'a> {
    pub node: &'a str,
    pub upstream: BTreeMap<String, Entry>,
    pub out: &'a EntryWriter,
    /// Scratch space that survives a killed run (resumable state); removed
    /// once the entry is committed.
    pub work: &'a std::path::Path,
    pub progress: &'a ProgressBar,
}

impl Ctx<'_> {
    pub fn input(&self, role: &str) -> Result<&Entry> {
        self.upstream
            .get(role)
            .ok_or_else(|| Error::node(self.node, format!("missing upstream `{role}`")))
    }

    /// Every input whose role starts with `prefix`, by the rest of the role, in order.
    pub fn inputs_with(&self, prefix: &str) -> Vec<(&str, &Entry)> {
        self.upstream
            .iter()
            .filter_map(|(role, e)| role.strip_prefix(prefix).map(|r| (r, e)))
            .collect()
    }

    /// A line for the user on stderr (above the progress bars when they are drawn).
    pub fn note(&self, message: impl AsRef<str>) {
        let line = format!("{}: {}", self.node, message.as_ref());
        if self.progress.is_hidden() {
            eprintln!("{line}");
        } else {
            self.progress.println(line);
        }
    }

    pub fn fail(&self, message: impl Into<String>) -> Error {
        Error::node(self.node, message)
    }
}

/// Reads `indices.npy`-style integer arrays.
pub fn as_indices(a: &crate::npy::Array<f64>) -> Vec<usize> {
    a.data.iter().map(|&x| x as usize).collect()
}

/// A feature matrix (stimuli × features, stimulus order) that a node reads:
/// an external `.npy` (its bytes hashed as the input `features`) or a file of
/// the upstream entry `features` (an extraction or a reduction).
#[derive(Debug, Clone, Serialize)]
pub struct FeatureRef {
    pub upstream_file: Option<String>,
    #[serde(skip)]
    pub path: std::path::PathBuf,
}

impl FeatureRef {
    pub fn read(&self, ctx: &Ctx) -> Result<crate::npy::Array<f32>> {
        use crate::error::IoContext;
        match &self.upstream_file {
            Some(name) => ctx.input("features")?.read_f32(name),
            None => crate::npy::read_f32(&self.path).at(&self.path),
        }
    }

    /// As f64 from the upstream (or external file) under `role`: analyses
    /// that fit several feature matrices jointly name each one's role.
    pub fn read_f64_as(&self, ctx: &Ctx, role: &str) -> Result<crate::npy::Array<f64>> {
        use crate::error::IoContext;
        match &self.upstream_file {
            Some(name) => ctx.input(role)?.read_f64(name),
            None => crate::npy::read_f64(&self.path).at(&self.path),
        }
    }

    /// Where the bytes are, for readers that stream them (the entry's copy
    /// is verified against its manifest first).
    pub fn file(&self, ctx: &Ctx) -> Result<std::path::PathBuf> {
        match &self.upstream_file {
            Some(name) => {
                let e = ctx.input("features")?;
                e.verify_file(name)?;
                Ok(e.path(name))
            }
            None => Ok(self.path.clone()),
        }
    }
}
