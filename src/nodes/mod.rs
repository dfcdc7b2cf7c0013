//! The nodes every analysis shares, one file per kind (each implements
//! [`crate::node::NodeKind`]): the subject's brain data, ROIs, a net runner
//! trains, its extracted features, the split of stimuli into fit and score
//! sets, the experiment's results table and its plots.
//!
//! Data flows one way: subject → roi, split; train → extract → (an
//! analysis's nodes) → table → plot. What one analysis alone needs lives in
//! its file under [`crate::analyses`].

pub mod bars;
pub mod extract;
pub mod extract_gratings;
pub mod font;
pub mod import;
pub mod plot;
pub mod reduce;
pub mod roi;
pub mod rsa_figures;
pub mod rsa_plots;
pub mod scatter;
pub mod set_bars;
pub mod split;
pub mod subject;
pub mod table;
pub mod train;
pub mod volume_maps;
