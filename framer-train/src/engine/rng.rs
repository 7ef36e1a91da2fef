//! Random draws derived from `(seed, step, stream)` only, so that a resumed run draws exactly what
//! an uninterrupted one would without saving any generator state.

use rand::{SeedableRng, rngs::StdRng};

/// Independent random streams of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The diffusion noise ε.
    Noise = 1,
    /// Timesteps / σ.
    Time = 2,
    /// Data order, crops and degradations.
    Data = 3,
    /// FRAMER's random-layer negatives.
    Negatives = 4,
    /// Sampling at inference.
    Sampling = 5,
    /// The VAE posterior draw of a latent training pair (`[latent] sample_posterior`).
    Posterior = 6,
    /// Whether a draw sees the null prompt (`[prompts] null_text_ratio`).
    Prompt = 7,
}

/// The SplitMix64 mixer, shared with framer's negative sampler (one definition, in the core).
pub use framer::splitmix64;

/// A 64-bit seed for `(seed, step, stream)`.
pub fn derive_seed(seed: u64, step: u64, stream: Stream) -> u64 {
    splitmix64(
        splitmix64(seed ^ splitmix64(step)) ^ (stream as u64).wrapping_mul(0xA24B_AED4_963E_E407),
    )
}

/// The generator of `stream` at `step`.
pub fn step_rng(seed: u64, step: u64, stream: Stream) -> StdRng {
    StdRng::seed_from_u64(derive_seed(seed, step, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = step_rng(1, 5, Stream::Noise).random();
        let b: u64 = step_rng(1, 5, Stream::Noise).random();
        assert_eq!(a, b);
        let c: u64 = step_rng(1, 5, Stream::Time).random();
        let d: u64 = step_rng(1, 6, Stream::Noise).random();
        let e: u64 = step_rng(2, 5, Stream::Noise).random();
        assert!(a != c && a != d && a != e);
    }
}
