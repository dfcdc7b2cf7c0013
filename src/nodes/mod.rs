//! One file per node kind. Each kind has a task (its parameters, serialized
//! into the node key), a code version (bump it when the output would change),
//! and a `run` that reads verified upstream entries and writes its own.
//!
//! Data flows one way: subject → roi; features → decompose; decompose + roi →
//! fit → score → table → plot; train → extract → decompose when features come
//! from a net (train only for nets runner trains itself).

pub mod decompose;
pub mod extract;
pub mod fit;
pub mod plot;
pub mod roi;
pub mod score;
pub mod subject;
pub mod table;
pub mod train;

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::cache::{Entry, EntryWriter};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Task {
    Subject(subject::SubjectTask),
    Roi(roi::RoiTask),
    Train(train::TrainTask),
    Extract(extract::ExtractTask),
    Decompose(decompose::DecomposeTask),
    Fit(fit::FitTask),
    Score(score::ScoreTask),
    Table(table::TableTask),
    Plot(plot::PlotTask),
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Subject(_) => "subject",
            Task::Roi(_) => "roi",
            Task::Train(_) => "train",
            Task::Extract(_) => "extract",
            Task::Decompose(_) => "decompose",
            Task::Fit(_) => "fit",
            Task::Score(_) => "score",
            Task::Table(_) => "table",
            Task::Plot(_) => "plot",
        }
    }

    /// Part of every key: bump a kind's version when its output changes for the same inputs.
    pub fn code_version(&self) -> String {
        let v = match self {
            Task::Subject(_) => subject::VERSION,
            Task::Roi(_) => roi::VERSION,
            Task::Train(_) => train::VERSION,
            Task::Extract(_) => extract::VERSION,
            Task::Decompose(_) => decompose::VERSION,
            Task::Fit(_) => fit::VERSION,
            Task::Score(_) => score::VERSION,
            Task::Table(_) => table::VERSION,
            Task::Plot(_) => plot::VERSION,
        };
        format!("{}-{v}", self.kind())
    }

    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        match self {
            Task::Subject(t) => t.run(ctx),
            Task::Roi(t) => t.run(ctx),
            Task::Train(t) => t.run(ctx),
            Task::Extract(t) => t.run(ctx),
            Task::Decompose(t) => t.run(ctx),
            Task::Fit(t) => t.run(ctx),
            Task::Score(t) => t.run(ctx),
            Task::Table(t) => t.run(ctx),
            Task::Plot(t) => t.run(ctx),
        }
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

/// Reads `indices.npy`-style integer arrays written as f64-compatible npy.
pub fn as_indices(a: &crate::npy::Array<f64>) -> Vec<usize> {
    a.data.iter().map(|&x| x as usize).collect()
}
