//! The one place where `--device` becomes a Burn backend: the CPU is `flex`, a CUDA GPU is
//! `burn::backend::Cuda` (in a build with the `cuda` feature). Each command hands its work over
//! as an [`OnBackend`] task; training runs on the autodiff backend `B`, inference on
//! `B::InnerBackend`.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use clap::ValueEnum;

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Device {
    /// The CPU, `flex` backend.
    Cpu,
    /// The first CUDA GPU (a build with the `cuda` feature).
    Cuda,
}

/// A command's work, generic over the backend [`Device::run`] chooses.
pub(super) trait OnBackend {
    /// What the command returns.
    type Output;

    /// Runs on `B` (autodiff; inference uses `B::InnerBackend`, whose device is the same).
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Self::Output, String>;
}

#[cfg(not(feature = "cuda"))]
const NO_CUDA: &str = "this `framer` was built without the `cuda` feature; rebuild with \
                       `cargo build --release --features cuda`";

impl Device {
    /// Runs `task` on this device's backend.
    ///
    /// # Errors
    /// The task's, or a message naming the missing `cuda` feature.
    pub(super) fn run<T: OnBackend>(self, task: T) -> Result<T::Output, String> {
        match self {
            Device::Cpu => task.run::<Autodiff<Flex>>(&Default::default()),
            #[cfg(feature = "cuda")]
            Device::Cuda => task.run::<Autodiff<burn::backend::Cuda>>(&Default::default()),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda => {
                drop(task);
                Err(NO_CUDA.into())
            }
        }
    }
}
