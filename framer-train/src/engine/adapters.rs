//! `[lora]` in the training loop: the adapters and their optimiser beside the frozen model; and
//! [`step_model`], the model a step runs (adapters, mixed precision, prompts).
//!
//! Each step runs the model with `W + (α/r)·A·B` in place of every targeted weight
//! ([`crate::lora::LoraAdapters::apply`]); the backward pass gives gradients to `A`, `B` and the
//! FRAMER heads only (the model's weights are frozen: all of them, or all but `[train]
//! trainable`'s selection). The gradient norm and clipping cover both, and each has its AdamW
//! state. Checkpoints keep the adapters in `lora.mpk` and their optimiser in `lora_optim.mpk`.

use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig};
use burn::tensor::FloatDType;
use burn::tensor::backend::AutodiffBackend;
use framer::Framed;

use super::prompts::ApplyPrompt;
use super::{EngineError, TextCondition, precision};
use crate::lora::LoraAdapters;
use crate::schedule::Experiment;

/// The checkpoint file of the adapters.
pub const LORA_FILE: &str = "lora.mpk";

/// The adapters of a `[lora]` run and their optimiser.
pub(super) struct LoraState<B: AutodiffBackend> {
    pub adapters: LoraAdapters<B>,
    pub optim: OptimizerAdaptor<AdamW, LoraAdapters<B>, B>,
}

/// The seed offset of the adapters' `A` draws (the model's weights use `[train] seed` itself).
const LORA_SEED: u64 = 0x4C6F_5241;

/// For a `[lora]` schedule: `framed` with its model frozen (unless `[train] trainable` chose
/// what trains), and fresh adapters on the weights `[lora] targets` selects (`A` drawn from
/// `[train] seed`, `B` zero). `None` without `[lora]`.
///
/// # Errors
/// [`EngineError::Model`] naming the glob that selects no Linear / Conv2d weight, or a rank that
/// does not fit a target.
pub(super) fn setup<B: AutodiffBackend, M: Module<B>>(
    framed: Framed<B, M>,
    experiment: &Experiment,
    optimizer: &AdamWConfig,
    device: &B::Device,
) -> Result<(Framed<B, M>, Option<LoraState<B>>), EngineError> {
    let Some(settings) = &experiment.lora else {
        return Ok((framed, None));
    };
    let framed = if experiment.train.trainable.is_empty() {
        Framed { model: framed.model.no_grad(), heads: framed.heads }
    } else {
        framed
    };
    B::seed(device, experiment.train.seed ^ LORA_SEED);
    let adapters = settings
        .config()
        .init(&framed.model, device)
        .map_err(|e| EngineError::Model(format!("[lora] {e}")))?;
    let optim = optimizer.init::<B, LoraAdapters<B>>();
    Ok((framed, Some(LoraState { adapters, optim })))
}

/// The model one training step runs: `framed` with the LoRA adapters applied (with `[lora]`),
/// cast to the compute type `low` (with `[train] mixed_precision`, see [`super::precision`]),
/// then conditioned on the step's prompts (with `[prompts]`; the embeddings are cast to `low`
/// too). Gradients of the result reach the parameters of `framed` and of the adapters.
pub(super) fn step_model<B: AutodiffBackend, M: Module<B> + burn::module::ModuleDisplay>(
    framed: Framed<B, M>,
    lora: Option<&LoraState<B>>,
    low: Option<FloatDType>,
    prompt: Option<(TextCondition<B>, ApplyPrompt<B, M>)>,
) -> Framed<B, M> {
    let model = match lora {
        Some(lora) => lora.adapters.apply(framed),
        None => framed,
    };
    let model = match low {
        Some(dtype) => precision::cast_module(model, dtype),
        None => model,
    };
    match prompt {
        Some((prompt, apply)) => {
            let prompt = TextCondition {
                tokens: precision::to_dtype(prompt.tokens, low),
                pooled: precision::to_dtype(prompt.pooled, low),
            };
            Framed { model: apply(model.model, prompt), heads: model.heads }
        }
        None => model,
    }
}
