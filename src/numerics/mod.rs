//! Numerics more than one analysis uses, each checked against the library
//! researchers would otherwise call: ridge and its leave-one-out α choice
//! (scikit-learn RidgeCV), PCA and IncrementalPCA (scikit-learn), ordinary
//! least squares (LinearRegression), ridge with λ per voxel on a holdout
//! (Lab08's `solve_ridge_fast`), partial least squares (PLSRegression),
//! per-voxel metrics (scikit-learn, scipy), and numpy's legacy random draws.

pub mod linear;
pub mod metrics;
pub mod numpy_random;
pub mod pca;
pub mod pls;
pub mod ridge;
pub mod ridge_holdout;
pub mod rsa;
