//! Stable-Diffusion-3-style MMDiT for super-resolution, as DiT4SR uses it, with diffusers names.
//!
//! `pos_embed` patchifies both the noisy input and the upsampled LR image with the same
//! convolution and position table; the two token streams are concatenated (`[x; lr]`, `2N`
//! tokens) and go through `transformer_blocks` ([`JointTransformerBlock`]: adaLN-Zero modulation
//! from the timestep embedding `time_text_embed`, joint attention in which the control stream has
//! its own `*_control` projections, a feed-forward whose control half is added back through a
//! depthwise `control_conv`). The image half then goes through `norm_out`
//! (`AdaLayerNormContinuous`) and `proj_out`, and is unpatchified.
//!
//! FRAMER students are the early exits of the reference implementation: after every block, the
//! image half is read out through the same `norm_out`/`proj_out` and unpatchified, giving
//! `num_layers` students in the output's space; the teacher is the model output. The read-out is
//! shared, so [`DiT`] needs no generated heads; freeze the read-out with
//! [`DiT::freeze_readout`] to match the reference, where only the control modules train.
//!
//! SD3's text stream is there when the config names its widths (`joint_attention_dim`,
//! `pooled_projection_dim`): `context_embedder` maps the text encoder's tokens to `dim`, the pooled
//! embedding joins the timestep embedding (`time_text_embed.text_embedder`), and every block
//! carries the text tokens with their own modulation and feed-forward (see
//! [`JointTransformerBlock`]); `dual_attention_layers` adds SD3.5's second attention `attn2`.
//! Parameter names are diffusers' own, so an SD3 / SD3.5 checkpoint loads unchanged (the control
//! modules, which it lacks, are the only missing keys), and with no LR image
//! ([`DiT::forward_with_text`] with `lr = None`) the model computes diffusers'
//! `SD3Transformer2DModel` (checked against diffusers itself in `tests/diffusers.rs`).
//!
//! [`DiT::forward`] (the training contract `(x_t, t, lr)`) passes the prompt set by
//! [`DiT::with_prompt`] (the engine sets it from the schedule's `[prompts]` at every step), or
//! none: the text stream then has no tokens and the pooled embedding is zero.

mod blocks;

pub use blocks::{
    AdaLayerNormContinuous, AdaLayerNormZero, FeedForward, JointAttention, JointTransformerBlock,
    REFERENCE_CONTROL_SCALE, TextStream, layer_norm_no_affine,
};

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use framer::{framer, framer_forward};

use crate::embeddings::{PatchEmbed, TimestepEmbedding, timestep_embedding};
use crate::{BackboneError, SrBackbone};

/// Configuration of [`DiT`]; field names follow diffusers' `SD3Transformer2DModel`.
///
/// Timestep convention: `t ∈ [0, 1]` (σ for rectified flow), multiplied by `timestep_scale`
/// (1000, as SD3 pipelines do) before the 256-wide sinusoidal projection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiTConfig {
    /// Channels of `x_t` and of the LR condition (they share `pos_embed`).
    pub in_channels: usize,
    /// Channels of the prediction.
    pub out_channels: usize,
    /// Training resolution (pixels or latents); sets the position-table scale.
    pub sample_size: usize,
    /// Patch side `p`.
    pub patch_size: usize,
    /// Number of transformer blocks.
    pub num_layers: usize,
    /// Width of one head.
    pub attention_head_dim: usize,
    /// Heads per attention; `dim = heads · head_dim`.
    pub num_attention_heads: usize,
    /// Side of the position-table grid (in patches): inputs up to `p · pos_embed_max_size`.
    pub pos_embed_max_size: usize,
    /// RMS norm on query and key heads (`qk_norm = "rms_norm"`, SD3.5).
    pub qk_norm: bool,
    /// Zero-initialise `to_{q,k,v}_control` and `control_conv` (DiT4SR, for fine-tuning a
    /// pretrained model); otherwise they get the default initialisation (training from scratch).
    pub zero_init_control: bool,
    /// Factor from `t ∈ [0, 1]` to model timestep units.
    pub timestep_scale: f64,
    /// Zero-initialise the final projection `proj_out` (weight and bias), as DiT does with its
    /// final layer: a freshly built model predicts exactly zero, so a residual host
    /// (`x̂0 = LR↑ − σ·v̂`) starts at the upsampled LR image. Default `false` (the diffusers
    /// initialisation); the main job turns it on.
    #[serde(default)]
    pub zero_init_out: bool,
    /// Normalise the control stream's own keys with `norm_k` (a departure from the reference,
    /// whose control keys are `norm_k` of the already normalised *image* keys: see
    /// [`JointAttention::control_keys_from_image`]). Default `false`: the reference's
    /// computation, so that its trained weights compute the same thing.
    #[serde(default)]
    pub fixed_control_norm_k: bool,
    /// Factor of the control signal in the feed-forward (`FeedForwardControl`'s `1.2 ·`; the
    /// reference's comment suggests 1.0 for training). Default 1.2.
    #[serde(default = "reference_control_scale")]
    pub control_ff_scale: f64,
    /// Width of the text encoder's token embeddings (4096 for SD3); `None` (default): no text
    /// stream. Set together with `pooled_projection_dim`.
    #[serde(default)]
    pub joint_attention_dim: Option<usize>,
    /// Width of the pooled text embedding (2048 for SD3); `None` (default): no text stream.
    #[serde(default)]
    pub pooled_projection_dim: Option<usize>,
    /// Blocks with SD3.5's second, image-only attention `attn2` (0 to 12 for SD3.5 medium).
    #[serde(default)]
    pub dual_attention_layers: Vec<usize>,
}

fn reference_control_scale() -> f64 {
    blocks::REFERENCE_CONTROL_SCALE
}

/// Width of the sinusoidal timestep projection (`Timesteps(256, flip_sin_to_cos=True)`).
pub const TIME_PROJ_DIM: usize = 256;

impl DiTConfig {
    /// Names accepted by [`DiTConfig::preset`].
    pub const PRESETS: [&'static str; 3] = ["tiny", "small", "sd35-medium"];

    /// CPU preset: RGB pixels at 64×64, 4×4 patches (256 tokens per stream), width 64 (2 heads of
    /// 32: on the CPU the 512×512 score matrices, not the widths, dominate), 4 blocks, RMS q/k norm.
    /// About 0.48 M parameters.
    pub fn tiny() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            sample_size: 64,
            patch_size: 4,
            num_layers: 4,
            attention_head_dim: 32,
            num_attention_heads: 2,
            pos_embed_max_size: 32,
            qk_norm: true,
            zero_init_control: false,
            timestep_scale: 1000.0,
            zero_init_out: false,
            fixed_control_norm_k: false,
            control_ff_scale: blocks::REFERENCE_CONTROL_SCALE,
            joint_attention_dim: None,
            pooled_projection_dim: None,
            dual_attention_layers: Vec::new(),
        }
    }

    /// GPU preset: RGB pixels at 128×128, 4×4 patches, width 384 (6 heads of 64), 8 blocks.
    pub fn small() -> Self {
        Self {
            in_channels: 3,
            out_channels: 3,
            sample_size: 128,
            patch_size: 4,
            num_layers: 8,
            attention_head_dim: 64,
            num_attention_heads: 6,
            pos_embed_max_size: 64,
            qk_norm: true,
            zero_init_control: false,
            timestep_scale: 1000.0,
            zero_init_out: false,
            fixed_control_norm_k: false,
            control_ff_scale: blocks::REFERENCE_CONTROL_SCALE,
            joint_attention_dim: None,
            pooled_projection_dim: None,
            dual_attention_layers: Vec::new(),
        }
    }

    /// Stable Diffusion 3.5 medium shapes on 16-channel latents (128×128 for 1024-pixel images):
    /// 2×2 patches, width 1536 (24 heads of 64), 24 blocks, RMS q/k norm, 384-patch position table,
    /// the text stream (4096-wide tokens, 2048-wide pooled embedding), dual attention in blocks 0
    /// to 12, zero-initialised control modules as DiT4SR. Documentation and GPU use only: about
    /// 2.82 G parameters, 351 M of them the control modules (without them, 2.47 G: SD3.5
    /// medium's own count) and 226 M the position table; its parameters are lazy, so only a
    /// forward pass allocates them.
    pub fn sd35_medium() -> Self {
        Self {
            in_channels: 16,
            out_channels: 16,
            sample_size: 128,
            patch_size: 2,
            num_layers: 24,
            attention_head_dim: 64,
            num_attention_heads: 24,
            pos_embed_max_size: 384,
            qk_norm: true,
            zero_init_control: true,
            timestep_scale: 1000.0,
            zero_init_out: false,
            fixed_control_norm_k: false,
            control_ff_scale: blocks::REFERENCE_CONTROL_SCALE,
            joint_attention_dim: Some(4096),
            pooled_projection_dim: Some(2048),
            dual_attention_layers: (0..13).collect(),
        }
    }

    /// The preset called `name` (one of [`DiTConfig::PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, BackboneError> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            "sd35-medium" => Ok(Self::sd35_medium()),
            other => Err(BackboneError::UnknownPreset {
                model: "dit",
                name: other.to_string(),
                known: Self::PRESETS.join(", "),
            }),
        }
    }

    /// Token width `num_attention_heads · attention_head_dim`.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Checks every constraint [`DiTConfig::init`] relies on.
    pub fn validate(&self) -> Result<(), BackboneError> {
        let invalid = |field, reason: String| Err(BackboneError::InvalidConfig { model: "dit", field, reason });
        for (field, n) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("patch_size", self.patch_size),
            ("num_layers", self.num_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("pos_embed_max_size", self.pos_embed_max_size),
        ] {
            if n == 0 {
                return invalid(field, "must be positive".into());
            }
        }
        if !self.inner_dim().is_multiple_of(4) {
            return invalid(
                "attention_head_dim",
                format!("times num_attention_heads must be a multiple of 4 (2-D sine table), got {}", self.inner_dim()),
            );
        }
        if !self.sample_size.is_multiple_of(self.patch_size) {
            return invalid("sample_size", format!("{} is not a multiple of patch_size {}", self.sample_size, self.patch_size));
        }
        if self.sample_size / self.patch_size > self.pos_embed_max_size {
            return invalid(
                "pos_embed_max_size",
                format!("{} is smaller than the training grid {}", self.pos_embed_max_size, self.sample_size / self.patch_size),
            );
        }
        if !self.timestep_scale.is_finite() {
            return invalid("timestep_scale", "must be finite".into());
        }
        if !self.control_ff_scale.is_finite() {
            return invalid("control_ff_scale", "must be finite".into());
        }
        match (self.joint_attention_dim, self.pooled_projection_dim) {
            (Some(0), _) => return invalid("joint_attention_dim", "must be positive".into()),
            (_, Some(0)) => return invalid("pooled_projection_dim", "must be positive".into()),
            (Some(_), None) => {
                return invalid("pooled_projection_dim", "must be set with joint_attention_dim (the text stream needs both)".into());
            }
            (None, Some(_)) => {
                return invalid("joint_attention_dim", "must be set with pooled_projection_dim (the text stream needs both)".into());
            }
            _ => {}
        }
        if let Some(&layer) = self.dual_attention_layers.iter().find(|&&l| l >= self.num_layers) {
            return invalid(
                "dual_attention_layers",
                format!("block {layer} does not exist (num_layers = {})", self.num_layers),
            );
        }
        Ok(())
    }

    /// Validates the config and builds a freshly initialised model on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<DiT<B>, BackboneError> {
        self.validate()?;
        let dim = self.inner_dim();
        let p = self.patch_size;
        Ok(DiT {
            pos_embed: PatchEmbed::new(
                self.in_channels,
                dim,
                p,
                self.pos_embed_max_size,
                self.sample_size / p,
                device,
            ),
            context_embedder: self.joint_attention_dim.map(|width| LinearConfig::new(width, dim).init(device)),
            time_text_embed: CombinedTimestepEmbedding {
                timestep_embedder: TimestepEmbedding::new(TIME_PROJ_DIM, dim, device),
                text_embedder: self.pooled_projection_dim.map(|width| TimestepEmbedding::new(width, dim, device)),
            },
            transformer_blocks: (0..self.num_layers)
                .map(|i| {
                    let text = match self.joint_attention_dim {
                        None => TextStream::None,
                        Some(_) if i + 1 == self.num_layers => TextStream::PreOnly,
                        Some(_) => TextStream::Full,
                    };
                    let mut block = JointTransformerBlock::with_streams(
                        dim,
                        self.num_attention_heads,
                        self.qk_norm,
                        self.zero_init_control,
                        text,
                        self.dual_attention_layers.contains(&i),
                        device,
                    );
                    for attn in std::iter::once(&mut block.attn).chain(block.attn2.as_mut()) {
                        attn.control_keys_from_image = !self.fixed_control_norm_k;
                    }
                    block.ff.control_scale = self.control_ff_scale;
                    block
                })
                .collect(),
            norm_out: AdaLayerNormContinuous::new(dim, device),
            proj_out: {
                let config = LinearConfig::new(dim, p * p * self.out_channels);
                if self.zero_init_out { config.with_initializer(Initializer::Zeros) } else { config }.init(device)
            },
            config: self.clone(),
            prompt: None,
        })
    }
}

/// Diffusers' `CombinedTimestepTextProjEmbeddings`: `temb = timestep_embedder(time_proj(t)) +
/// text_embedder(pooled)` (`time_proj` is the parameter-free [`timestep_embedding`]; the text half
/// only with a text stream).
#[derive(Module, Debug)]
pub struct CombinedTimestepEmbedding<B: Backend> {
    /// MLP `256 → dim → dim`.
    pub timestep_embedder: TimestepEmbedding<B>,
    /// MLP `pooled_projection_dim → dim → dim` with SiLU between (`PixArtAlphaTextProjection`).
    pub text_embedder: Option<TimestepEmbedding<B>>,
}

/// A prompt as SD3 sees it: the text encoders' token embeddings and pooled embedding.
///
/// # Shapes
/// - `tokens`: `[batch, M, joint_attention_dim]` (M = 333 for SD3: 77 CLIP + 256 T5 tokens)
/// - `pooled`: `[batch, pooled_projection_dim]`
#[derive(Module, Debug)]
pub struct TextCondition<B: Backend> {
    /// Token embeddings `[batch, M, joint_attention_dim]` (diffusers `encoder_hidden_states`).
    pub tokens: Tensor<B, 3>,
    /// Pooled embedding `[batch, pooled_projection_dim]` (diffusers `pooled_projections`).
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> TextCondition<B> {
    /// The prompt for a batch of `batch`: a prompt of batch 1 (e.g. the null prompt at
    /// inference) is repeated to serve every sample; any other is returned as it is.
    pub fn broadcast(self, batch: usize) -> Self {
        match self.tokens.dims()[0] {
            1 if batch > 1 => Self { tokens: self.tokens.repeat_dim(0, batch), pooled: self.pooled.repeat_dim(0, batch) },
            _ => self,
        }
    }
}

/// The SR MMDiT (see the [module docs](self)).
///
/// `#[framer(readout = read_out(temb, grid))]` marks every transformer block as a student read out
/// through the model's own `norm_out`/`proj_out`; `#[framer_forward]` generates
/// [`DiT::forward_with_taps`], which runs `forward` while recording the early exits
/// (`transformer_blocks.{i}`) and the output as teacher.
#[doc(alias = "SD3Transformer2DModel")]
#[doc(alias = "DiT4SR")]
#[doc(alias = "FRAMER_D")]
#[framer(readout = read_out(temb, grid))]
#[derive(Module, Debug)]
pub struct DiT<B: Backend> {
    /// Patch embedding shared by both streams.
    pub pos_embed: PatchEmbed<B>,
    /// Text tokens `joint_attention_dim → dim` (only with a text stream).
    pub context_embedder: Option<Linear<B>>,
    /// Timestep embedding `temb: [batch, dim]`.
    pub time_text_embed: CombinedTimestepEmbedding<B>,
    /// The joint blocks (students; each returns `(tokens, text tokens)`, the first is recorded).
    #[framer(student, tap = .0)]
    pub transformer_blocks: Vec<JointTransformerBlock<B>>,
    /// Final adaptive norm (also the students' read-out).
    pub norm_out: AdaLayerNormContinuous<B>,
    /// Final projection to `p·p·out_channels` per token (also the students' read-out).
    pub proj_out: Linear<B>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: DiTConfig,
    /// The prompt [`DiT::forward`] passes (set by [`DiT::with_prompt`]; not a parameter and not
    /// saved).
    #[module(skip)]
    pub prompt: Option<TextCondition<B>>,
}

#[framer_forward]
impl<B: Backend> DiT<B> {
    /// The prediction for `x_t: [batch, in_channels, H, W]`, `t: [batch]` in `[0, 1]` and the
    /// upsampled LR image `lr: [batch, in_channels, H, W]`; returns `[batch, out_channels, H, W]`.
    /// `H` and `W` must be multiples of `patch_size` (see [`SrBackbone::check_inputs`]).
    /// With a text stream, the prompt is the one set by [`DiT::with_prompt`], if any (see the
    /// [module docs](self)).
    pub fn forward(&self, x_t: Tensor<B, 4>, timesteps: Tensor<B, 1>, lr: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_with_text(x_t, timesteps, Some(lr), self.prompt.clone())
    }

    /// The prediction with an optional LR control image and an optional prompt (used only with a
    /// text stream; its batch is `batch` or 1, shared by every sample). `x_t: [batch, in_channels,
    /// H, W]`, `t: [batch]` in `[0, 1]`, `lr: [batch, in_channels, H, W]`; returns
    /// `[batch, out_channels, H, W]`. With
    /// `lr = None` the control modules are unused and the model is diffusers'
    /// `SD3Transformer2DModel` (timestep `t · timestep_scale`).
    pub fn forward_with_text(
        &self,
        x_t: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        lr: Option<Tensor<B, 4>>,
        text: Option<TextCondition<B>>,
    ) -> Tensor<B, 4> {
        let [_, _, height, width] = x_t.dims();
        let grid = [height / self.config.patch_size, width / self.config.patch_size];
        let [batch, _, _, _] = x_t.dims();
        let (tokens, pooled) = text.map(|t| t.broadcast(batch)).map(|t| (t.tokens, t.pooled)).unzip();
        let temb = self.time_embed_with_text(timesteps, pooled);
        let image = self.pos_embed.forward(x_t);
        let mut hidden = match lr {
            Some(lr) => Tensor::cat(vec![image, self.pos_embed.forward(lr)], 1),
            None => image,
        };
        let mut context = self.context_embedder.as_ref().zip(tokens).map(|(embed, t)| embed.forward(t));
        for block in &self.transformer_blocks {
            (hidden, context) = block.forward(hidden, context, temb.clone(), grid);
        }
        self.read_out(hidden, temb, grid)
    }
}

impl<B: Backend> DiT<B> {
    /// The model with `prompt` as the prompt of [`DiT::forward`] (tokens `[batch, M,
    /// joint_attention_dim]`, pooled `[batch, pooled_projection_dim]`; the batch must be that of
    /// the following calls), or none. The parameters are shared with `self`'s.
    pub fn with_prompt(mut self, prompt: Option<TextCondition<B>>) -> Self {
        self.prompt = prompt;
        self
    }

    /// Timestep embedding `temb: [batch, dim]` of `t: [batch]` in `[0, 1]` (no prompt).
    pub fn time_embed(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        self.time_embed_with_text(timesteps, None)
    }

    /// `temb: [batch, dim]` of `t: [batch]` in `[0, 1]` and, with a text stream, the pooled prompt
    /// embedding `[batch, pooled_projection_dim]` (zero when `None`).
    pub fn time_embed_with_text(&self, timesteps: Tensor<B, 1>, pooled: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        let [batch] = timesteps.dims();
        let device = timesteps.device();
        let t = timesteps.mul_scalar(self.config.timestep_scale);
        let temb = self.time_text_embed.timestep_embedder.forward(timestep_embedding(t, TIME_PROJ_DIM, true, 0.0));
        match (&self.time_text_embed.text_embedder, self.config.pooled_projection_dim) {
            (Some(embedder), Some(width)) => {
                let pooled = pooled.unwrap_or_else(|| Tensor::zeros([batch, width], (&device, temb.dtype())));
                temb + embedder.forward(pooled)
            }
            _ => temb,
        }
    }

    /// The read-out `norm_out → proj_out → unpatchify` of the image tokens of `hidden`
    /// (`[batch, N or 2N, dim]`, the first `N = grid[0]·grid[1]`) to
    /// `[batch, out_channels, grid[0]·p, grid[1]·p]`.
    pub fn read_out(&self, hidden: Tensor<B, 3>, temb: Tensor<B, 2>, grid: [usize; 2]) -> Tensor<B, 4> {
        let [b, _, dim] = hidden.dims();
        let image = hidden.slice([0..b, 0..grid[0] * grid[1], 0..dim]);
        let tokens = self.proj_out.forward(self.norm_out.forward(image, temb));
        self.unpatchify(tokens, grid)
    }

    /// [`unpatchify`] with this model's patch size and output channels.
    pub fn unpatchify(&self, tokens: Tensor<B, 3>, grid: [usize; 2]) -> Tensor<B, 4> {
        unpatchify(tokens, grid, self.config.patch_size, self.config.out_channels)
    }

    /// DiT4SR's initialisation of the control output projections: `to_out_control ← to_out` in
    /// every attention (`attn` and, with dual attention, `attn2`) of every block. Call it after
    /// loading a Stable Diffusion 3 checkpoint, which has no control weights (a freshly built
    /// model gives every projection its own random initialisation).
    pub fn init_control_from_image_stream(mut self) -> Self {
        self.transformer_blocks = self
            .transformer_blocks
            .into_iter()
            .map(|mut b| {
                b.attn = b.attn.copy_out_to_control();
                b.attn2 = b.attn2.map(JointAttention::copy_out_to_control);
                b
            })
            .collect();
        self
    }

    /// Stops gradients into `norm_out` and `proj_out` (the reference trains only the control
    /// modules and keeps the shared read-out frozen).
    pub fn freeze_readout(mut self) -> Self {
        self.norm_out = self.norm_out.no_grad();
        self.proj_out = self.proj_out.no_grad();
        self
    }
}

/// `[batch, h·w, p·p·C] → [batch, C, h·p, w·p]`, the einops pattern
/// `b (h w) (p q c) -> b c (h p) (w q)` of SD3 and DiT4SR.
pub fn unpatchify<B: Backend>(tokens: Tensor<B, 3>, grid: [usize; 2], patch: usize, channels: usize) -> Tensor<B, 4> {
    let [b, _, _] = tokens.dims();
    let [h, w] = grid;
    tokens
        .reshape([b, h, w, patch, patch, channels])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([b, channels, h * patch, w * patch])
}

impl<B: Backend> SrBackbone<B> for DiT<B> {
    fn in_channels(&self) -> usize {
        self.config.in_channels
    }

    fn lr_channels(&self) -> usize {
        self.config.in_channels
    }

    fn out_channels(&self) -> usize {
        self.config.out_channels
    }

    fn spatial_multiple(&self) -> usize {
        self.config.patch_size
    }

    fn max_spatial_size(&self) -> Option<usize> {
        Some(self.config.patch_size * self.config.pos_embed_max_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn unpatchify_places_token_channels_as_in_the_einops_pattern() {
        // tokens[b, i·w + j, (p·P + q)·C + c] must land at out[b, c, i·P + p, j·P + q].
        let (b, h, w, pp, c) = (2, 2, 3, 2, 3);
        let n = b * h * w * pp * pp * c;
        let values: Vec<f32> = (0..n).map(|v| v as f32).collect();
        let tokens = Tensor::<Flex, 3>::from_data(
            TensorData::new(values.clone(), [b, h * w, pp * pp * c]),
            &Default::default(),
        );
        let out = unpatchify(tokens, [h, w], pp, c).into_data().to_vec::<f32>().unwrap();
        let (oh, ow) = (h * pp, w * pp);
        for bi in 0..b {
            for i in 0..h {
                for j in 0..w {
                    for p in 0..pp {
                        for q in 0..pp {
                            for ci in 0..c {
                                let src = (bi * h * w + i * w + j) * pp * pp * c + (p * pp + q) * c + ci;
                                let dst = ((bi * c + ci) * oh + i * pp + p) * ow + j * pp + q;
                                assert_eq!(out[dst], values[src], "b{bi} i{i} j{j} p{p} q{q} c{ci}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn layer_norm_without_affine_standardises_the_last_dimension() {
        let x = Tensor::<Flex, 3>::from_floats([[[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 4.0, 4.0]]], &Default::default());
        let y = layer_norm_no_affine(x, 0.0).into_data().to_vec::<f32>().unwrap();
        // Row 1: mean 3, population variance 3.5; row 2: mean 2, variance 4.
        let s = 3.5f32.sqrt();
        let expect = [-2.0 / s, -1.0 / s, 0.0, 3.0 / s, -1.0, -1.0, 1.0, 1.0];
        for (a, e) in y.iter().zip(expect) {
            assert!((a - e).abs() < 1e-5, "{y:?}");
        }
    }

    #[test]
    fn a_prompt_of_batch_one_is_repeated_to_the_batch_pooled_width_zero_included() {
        let device = Default::default();
        let tokens = Tensor::<Flex, 3>::from_floats([[[1.0, 2.0], [3.0, 4.0]]], &device);
        let empty = Tensor::<Flex, 2>::zeros([1, 0], &device);
        let wide = TextCondition { tokens: tokens.clone(), pooled: empty }.broadcast(3);
        assert_eq!((wide.tokens.dims(), wide.pooled.dims()), ([3, 2, 2], [3, 0]));
        assert_eq!(wide.tokens.into_data().to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0].repeat(3));
        // a prompt of the batch's own size is left as it is
        let two = Tensor::cat(vec![tokens.clone(), tokens * 2.0], 0);
        let same = TextCondition { tokens: two.clone(), pooled: Tensor::zeros([2, 1], &device) }.broadcast(2);
        assert_eq!(same.tokens.into_data(), two.into_data());
    }
}
