//! Deep nets whose activations become feature matrices: the architecture
//! (`alexnet`) and where its weights come from (`load`).

pub mod alexnet;
pub mod device;
pub mod load;
pub mod sequential;
