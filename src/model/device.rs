//! Where a net runs: burn's device for the experiment's `device` choice.

use burn::prelude::*;

use crate::error::{Error, Result};
use crate::vocab::DeviceChoice;

/// The burn device for a choice, and a name for logs and benchmarks.
///
/// Default builds run on burn's pure-Rust `flex` CPU backend. Builds with the
/// `tch` feature use libtorch: CUDA when asked for or, with "auto", when a GPU
/// is present, and libtorch's CPU kernels otherwise.
pub fn device_for(choice: DeviceChoice) -> Result<(Device, &'static str)> {
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is deprecated upstream but is the libtorch/CUDA route here
    {
        let cuda = tch::Cuda::is_available();
        match choice {
            DeviceChoice::Cuda if !cuda => Err(Error::usage("device = \"cuda\" but libtorch sees no CUDA device")
                .with_help("check the driver (nvidia-smi) and that torch was installed with CUDA; or use device = \"auto\"")),
            DeviceChoice::Cuda | DeviceChoice::Auto if cuda => Ok((Device::libtorch_cuda(0), "libtorch CUDA")),
            _ => Ok((Device::libtorch(), "libtorch CPU")),
        }
    }
    #[cfg(not(feature = "tch"))]
    match choice {
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok((Device::flex(), "flex (CPU)")),
        DeviceChoice::Cuda => Err(Error::usage("device = \"cuda\" needs a GPU build of runner").with_help(
            "build with `--features tch` against a CUDA PyTorch (see README), or use device = \"auto\"",
        )),
    }
}
