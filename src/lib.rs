//! runner: declarative, cached model-to-brain neural fitting.
//!
//! Read top-down: [`config`] (TOML → checked experiment) → [`plan`] (DAG of
//! content-keyed nodes) → [`cache`] (atomic, locked, verified entries) →
//! [`exec`] (parallel scheduler) → [`nodes`] (one file per node kind), with
//! the numerics in [`ridge`] and [`metrics`], the data layout in [`nsd`], and
//! training on HW2's Barcode task in [`train`] and [`barcode`].

// Errors carry the TOML source for miette; they are rare and cold, so their
// size does not matter.
#![allow(clippy::result_large_err)]

pub mod algonauts;
pub mod analyses;
pub mod barcode;
pub mod cache;
pub mod cli;
pub mod compile;
pub mod config;
pub mod error;
pub mod exec;
pub mod gratings;
pub mod hdf5;
pub mod key;
pub mod lab08;
pub mod mat;
pub mod model;
pub mod node;
pub mod nodes;
pub mod npy;
pub mod npz;
pub mod npz_responses;
pub mod nsd;
pub mod numerics;
pub mod pickle;
pub mod plan;
pub mod preprocess;
pub mod record;
pub mod results;
pub mod shared_fs;
pub mod slurm;
pub mod source;
pub mod synth;
pub mod train;
pub mod vim1;
pub mod vocab;
pub mod volume;
