//! One error type for the whole tool. Every variant says where the problem is
//! (a TOML span, a file, a node) and, where we know it, what to do about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// The experiment file is malformed or inconsistent. `location` is
    /// `file:line:col` so editors and terminals can jump to it.
    #[error("{location}: {message}")]
    #[diagnostic(code(runner::config))]
    Config {
        location: String,
        message: String,
        #[source_code]
        src: NamedSource<Arc<str>>,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("{}: {source}", path.display())]
    #[diagnostic(code(runner::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Input data that exists but cannot be used as it is (shapes, NaNs, labels).
    #[error("{}: {message}", path.display())]
    #[diagnostic(code(runner::data))]
    Data {
        path: PathBuf,
        message: String,
        #[help]
        help: Option<String>,
    },

    /// A node failed while computing.
    #[error("node {node} failed: {message}")]
    #[diagnostic(code(runner::node))]
    Node {
        node: String,
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("cache {}: {message}", dir.display())]
    #[diagnostic(code(runner::cache))]
    Cache { dir: PathBuf, message: String },

    /// Slurm could not be used, or nodes failed on it (see [`crate::slurm`]).
    #[error("{message}")]
    #[diagnostic(code(runner::slurm))]
    Scheduler {
        message: String,
        #[help]
        help: Option<String>,
    },

    /// Wrong use of the command line.
    #[error("{message}")]
    #[diagnostic(code(runner::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn data(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
            help: None,
        }
    }

    pub fn node(node: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Node {
            node: node.into(),
            message: message.into(),
            help: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Error::Config { help, .. }
            | Error::Data { help, .. }
            | Error::Node { help, .. }
            | Error::Usage { help, .. }
            | Error::Scheduler { help, .. } => *help = Some(text.into()),
            Error::Io { .. } | Error::Cache { .. } => {}
        }
        self
    }

    /// Re-labels an error raised inside a node so the user sees which node it was,
    /// keeping data errors (which already name their file) as they are.
    pub fn in_node(self, node: &str) -> Self {
        match self {
            Error::Node { .. } | Error::Data { .. } | Error::Config { .. } => self,
            other => Error::Node {
                node: node.to_string(),
                message: other.to_string(),
                help: None,
            },
        }
    }
}

/// Adds the path to `std::io::Error`s, which otherwise never say which file failed.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
