//! Data-parallel FRAMER: the InterCL keys of the whole (global) batch, as the reference gathers
//! them with `accelerator.gather`.
//!
//! Each peer computes its own samples' students. The loss of one peer sees the teacher and the
//! students of *every* peer's samples (gathered, detached) and averages over its own samples
//! only ([`FramerInput::with_query_rows`]). Every per-sample quantity (masks, IntraCL, FAW, FAM)
//! depends on the sample alone, and InterCL's keys are detached, so the mean of the peers' losses
//! is the loss of the global batch and the mean of their gradients is its gradient.

use burn::tensor::{Tensor, backend::Backend};

use crate::{FramerError, FramerInput, Parameterization};

/// Concatenates the peers' batches along the batch axis, in rank order.
///
/// Implemented by the training engine on top of a collective (one implementation per
/// communication layer); framer's core only calls it. Every peer must call
/// [`BatchGather::gather_rows`] the same number of times, in the same order, with the same shapes.
#[doc(alias = "all_gather")]
#[doc(alias = "accelerator.gather")]
pub trait BatchGather<B: Backend> {
    /// This peer's rank, `0..world_size`.
    fn rank(&self) -> usize;

    /// The number of peers.
    fn world_size(&self) -> usize;

    /// Every peer's `local` rows, concatenated in rank order, detached.
    ///
    /// # Shapes
    /// - `local`: `[rows, n]`, the same on every peer
    /// - returns `[world_size · rows, n]`; rows `rank·rows .. (rank + 1)·rows` are `local`'s values
    ///
    /// # Errors
    /// [`FramerError::Gather`] naming what failed (a peer that is gone, a shape mismatch).
    fn gather_rows(&self, local: Tensor<B, 2>) -> Result<Tensor<B, 2>, FramerError>;
}

/// The global batch of `local` (`[b, ...]` → `[world_size·b, ...]`): the other peers' rows are
/// gathered and detached, this peer's rows are `local` itself (its gradient flows).
///
/// # Errors
/// The gather's error, or [`FramerError::Gather`] when it returns the wrong shape.
pub fn gather_batch<B: Backend, const D: usize>(
    gather: &dyn BatchGather<B>,
    local: Tensor<B, D>,
) -> Result<Tensor<B, D>, FramerError> {
    let dims = local.dims();
    let rows = dims[0];
    let width: usize = dims[1..].iter().product();
    let (rank, world) = (gather.rank(), gather.world_size());
    if rank >= world {
        return Err(FramerError::Gather(format!("rank {rank} is outside a world of {world} peers")));
    }
    let flat = local.clone().reshape([rows, width]);
    let all = gather.gather_rows(flat.clone().detach())?;
    if all.dims() != [world * rows, width] {
        return Err(FramerError::Gather(format!(
            "the gathered batch has shape {:?}, expected [{}, {width}] ({world} peers × {rows} rows)",
            all.dims(),
            world * rows
        )));
    }
    let all = all.detach();
    let mut parts = Vec::with_capacity(3);
    if rank > 0 {
        parts.push(all.clone().narrow(0, 0, rank * rows));
    }
    parts.push(flat);
    if rank + 1 < world {
        parts.push(all.narrow(0, (rank + 1) * rows, (world - rank - 1) * rows));
    }
    let mut global = dims;
    global[0] = world * rows;
    Ok(Tensor::cat(parts, 0).reshape(global))
}

impl<B: Backend> Parameterization<B> {
    /// The levels of the global batch (see [`gather_batch`]); [`Parameterization::Sample`] has
    /// none and stays as it is.
    ///
    /// # Errors
    /// The gather's error.
    pub fn gathered(self, gather: &dyn BatchGather<B>) -> Result<Self, FramerError> {
        let levels = |t: Tensor<B, 1>| -> Result<Tensor<B, 1>, FramerError> {
            let [n] = t.dims();
            Ok(gather_batch(gather, t.reshape([n, 1]))?.reshape([n * gather.world_size()]))
        };
        Ok(match self {
            Self::RectifiedFlow { sigmas } => Self::RectifiedFlow { sigmas: levels(sigmas)? },
            Self::Epsilon { alphas_cumprod } => Self::Epsilon { alphas_cumprod: levels(alphas_cumprod)? },
            Self::Velocity { alphas_cumprod } => Self::Velocity { alphas_cumprod: levels(alphas_cumprod)? },
            Self::Sample => Self::Sample,
        })
    }
}

impl<B: Backend> FramerInput<B> {
    /// This peer's input over the global batch: students, teacher, `x_t`, levels and an injected
    /// mask gathered from every peer, with this peer's samples as the queries
    /// ([`FramerInput::with_query_rows`]). With one peer it is the input itself.
    ///
    /// # Shapes
    /// - `self`: local tensors `[b, channels, height, width]`
    /// - returns global tensors `[world_size·b, channels, height, width]`, queries
    ///   `rank·b .. (rank + 1)·b`
    ///
    /// # Errors
    /// The gather's error; [`FramerError::InvalidQueryRows`] when query rows were already set.
    pub fn gathered(self, gather: &dyn BatchGather<B>) -> Result<Self, FramerError> {
        if self.query_rows.is_some() {
            return Err(FramerError::InvalidQueryRows(
                "the input is already gathered (it has query rows)".into(),
            ));
        }
        let rows = self.teacher.dims()[0];
        let rank = gather.rank();
        let students = self
            .students
            .into_iter()
            .map(|s| gather_batch(gather, s))
            .collect::<Result<Vec<_>, _>>()?;
        let low_mask = self.low_mask.map(|m| gather_batch(gather, m)).transpose()?;
        Ok(Self {
            students,
            teacher: gather_batch(gather, self.teacher)?,
            x_t: gather_batch(gather, self.x_t)?,
            parameterization: self.parameterization.gathered(gather)?,
            negatives: self.negatives,
            low_mask,
            student_weights: self.student_weights,
            query_rows: Some(rank * rows..(rank + 1) * rows),
        })
    }
}
