//! What the engine trains: any model whose `forward(x_t, timesteps, lr_upsampled)` is annotated
//! with `#[framer]` / `#[framer_forward]`, and the configuration type that builds it from the
//! schedule's `[model]` table.

use burn::module::{AutodiffModule, Module, ModuleDisplay};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use framer::FramerForward;
pub use framer_backbones::TextCondition;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The arguments of a super-resolution denoiser's `forward`: `(x_t, timesteps, lr_upsampled)`.
///
/// # Shapes
/// - `x_t`: `[batch, channels, height, width]`, the noisy HR sample
/// - `timesteps`: `[batch]` in `[0, 1]`: σ for rectified flow, `t / T` for DDPM step `t` of `T`
/// - `lr_upsampled`: `[batch, channels, height, width]`, the LR image upsampled to the HR size
pub type SrArgs<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>);

/// A super-resolution denoiser the engine can train: a burn module whose
/// `fn forward(&self, x_t: Tensor<B, 4>, timesteps: Tensor<B, 1>, lr_upsampled: Tensor<B, 4>)
/// -> Tensor<B, 4>` is annotated with `#[framer_forward]` (its struct with `#[framer(..)]`).
///
/// Implemented automatically; the prediction is `[batch, channels, height, width]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a FRAMER super-resolution model",
    label = "needs `#[framer]` and `#[framer_forward]` on a `forward(x_t, timesteps, lr)`",
    note = "annotate the struct with `#[framer(..)]` above `#[derive(Module)]`, and the `impl` block \
            with `#[framer_forward]`, where `fn forward(&self, x_t: Tensor<B, 4>, timesteps: \
            Tensor<B, 1>, lr_upsampled: Tensor<B, 4>) -> Tensor<B, 4>`"
)]
pub trait SrModel<B: Backend>:
    Module<B> + ModuleDisplay + FramerForward<B, Args = SrArgs<B>, Output = Tensor<B, 4>>
{
}

impl<B: Backend, M> SrModel<B> for M where
    M: Module<B> + ModuleDisplay + FramerForward<B, Args = SrArgs<B>, Output = Tensor<B, 4>>
{
}

/// The `[model]` table of a schedule, deserialised: builds the model on any backend.
///
/// Implement it for your model's configuration to train the model with a schedule and the whole
/// `framer` command line ([`crate::cli::main`]). Unknown keys should be rejected
/// (`#[serde(deny_unknown_fields)]`): they are then reported at `file:line:col`.
///
/// ```ignore
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// #[serde(deny_unknown_fields)]
/// pub struct EdsrConfig { pub channels: usize, pub blocks: usize }
///
/// impl ModelConfig for EdsrConfig {
///     const KIND: &'static str = "edsr";
///     type Model<B: Backend> = Edsr<B>;
///     type TrainModel<B: AutodiffBackend> = Edsr<B>;
///     fn init<B: Backend>(&self, device: &B::Device) -> Result<Edsr<B>, String> {
///         Ok(Edsr::new(self, device))
///     }
///     fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<Edsr<B>, String> {
///         self.init::<B>(device)
///     }
/// }
/// ```
pub trait ModelConfig: Serialize + DeserializeOwned + Clone + std::fmt::Debug + 'static {
    /// The name of this model family, recorded in run folders (`"edsr"`, `"dit"`).
    const KIND: &'static str;

    /// The model on a backend (inference, EMA).
    type Model<B: Backend>: SrModel<B>;

    /// The same model on an autodiff backend (training); its inner module is [`Self::Model`].
    /// For a `#[derive(Module)]` struct `M<B>`, write `type TrainModel<B: AutodiffBackend> = M<B>;`.
    type TrainModel<B: AutodiffBackend>: SrModel<B>
        + AutodiffModule<B, InnerModule = Self::Model<B::InnerBackend>>;

    /// A freshly initialised model on `device`, or a message saying what is wrong with the
    /// configuration.
    fn init<B: Backend>(&self, device: &B::Device) -> Result<Self::Model<B>, String>;

    /// [`Self::init`] on an autodiff backend (usually `self.init::<B>(device)`).
    fn init_train<B: AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> Result<Self::TrainModel<B>, String>;

    /// Checks that the model takes `channels`-channel inputs of `crop_size × crop_size` (the
    /// schedule's RGB crops, or with `[latent]` their VAE latents: see
    /// [`crate::schedule::Experiment::model_input`]), before anything runs. The default accepts
    /// everything.
    fn check_data(&self, channels: usize, crop_size: usize) -> Result<(), String> {
        let _ = (channels, crop_size);
        Ok(())
    }

    /// `[token width, pooled width]` of the prompt embeddings the model takes (`[prompts]`), or
    /// `None` (the default): the model takes no prompt, and a schedule with `[prompts]` is refused.
    /// A pooled width of 0: the model takes token embeddings only (SD2), and the prompt files
    /// need no `pooled_prompt_embeds`.
    fn prompt_widths(&self) -> Option<[usize; 2]> {
        None
    }

    /// `model` conditioned on `prompt` (tokens `[batch, M, widths[0]]`, pooled
    /// `[batch, widths[1]]`) in its following forward passes, for inference. Called only when
    /// [`Self::prompt_widths`] is `Some`; the default returns `model` unchanged.
    fn with_prompt<B: Backend>(model: Self::Model<B>, prompt: TextCondition<B>) -> Self::Model<B> {
        let _ = prompt;
        model
    }

    /// [`Self::with_prompt`] for the training model.
    fn with_prompt_train<B: AutodiffBackend>(model: Self::TrainModel<B>, prompt: TextCondition<B>) -> Self::TrainModel<B> {
        let _ = prompt;
        model
    }

    /// The FRAMER loss defaults the model declares with `#[framer(loss(..))]`.
    fn loss_defaults() -> &'static [framer::LossDefault] {
        <Self::Model<burn::backend::Flex> as framer::FramerModel<burn::backend::Flex>>::LOSS_DEFAULTS
    }
}
