//! Timestep and patch embeddings shared by both backbones (diffusers `embeddings.py`).

use framer::conv::conv2d;
use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{FloatDType, Tensor};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;

/// Sinusoidal timestep projection, diffusers `get_timestep_embedding`.
///
/// With `half = dim / 2` and `f_i = exp(−ln(10000)·i / (half − downscale_freq_shift))`, the output row
/// for timestep `t` is `[sin(t·f), cos(t·f)]`, or `[cos(t·f), sin(t·f)]` when `flip_sin_to_cos`
/// (the Stable Diffusion 2 and 3 setting).
///
/// # Shapes
/// - `timesteps`: `[batch]` (already in the model's timestep units, e.g. `0..1000`)
/// - returns `[batch, dim]`; `dim` must be even.
pub fn timestep_embedding<B: Backend>(
    timesteps: Tensor<B, 1>,
    dim: usize,
    flip_sin_to_cos: bool,
    downscale_freq_shift: f64,
) -> Tensor<B, 2> {
    let half = dim / 2;
    let device = timesteps.device();
    let exponent = Tensor::<B, 1, burn::tensor::Int>::arange(0..half as i64, &device)
        .float()
        .mul_scalar(-(10000f64.ln()) / (half as f64 - downscale_freq_shift));
    let freqs = exponent.exp().unsqueeze_dim::<2>(0); // [1, half]
    let args = timesteps.unsqueeze_dim::<2>(1).matmul(freqs); // [batch, half]
    let (sin, cos) = (args.clone().sin(), args.cos());
    if flip_sin_to_cos {
        Tensor::cat(vec![cos, sin], 1)
    } else {
        Tensor::cat(vec![sin, cos], 1)
    }
}

/// Two-layer MLP on the sinusoidal projection, diffusers `TimestepEmbedding`:
/// `linear_2(silu(linear_1(x)))`.
#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    /// `[in_channels] → [time_embed_dim]`.
    pub linear_1: Linear<B>,
    /// `[time_embed_dim] → [time_embed_dim]`.
    pub linear_2: Linear<B>,
}

impl<B: Backend> TimestepEmbedding<B> {
    /// Builds the MLP `in_channels → time_embed_dim → time_embed_dim`.
    pub fn new(in_channels: usize, time_embed_dim: usize, device: &B::Device) -> Self {
        Self {
            linear_1: LinearConfig::new(in_channels, time_embed_dim).init(device),
            linear_2: LinearConfig::new(time_embed_dim, time_embed_dim).init(device),
        }
    }

    /// `[batch, in_channels] → [batch, time_embed_dim]`.
    ///
    /// `x` is cast to the weights' float type first (the sinusoidal projection is computed in f32;
    /// diffusers casts it the same way when the model runs in half precision).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = x.cast(FloatDType::from(self.linear_1.weight.val().dtype()));
        self.linear_2.forward(silu(self.linear_1.forward(x)))
    }
}

/// Fixed 2-D sine-cosine position table, diffusers `get_2d_sincos_pos_embed` with
/// `interpolation_scale = 1`.
///
/// Grid index `i` sits at position `i · base_size / grid`. Row `r·grid + c` holds
/// `[emb_1d(c), emb_1d(r)]` (diffusers' meshgrid order: the column comes first), each half of width
/// `dim / 2` laid out as `[sin(pos·ω), cos(pos·ω)]` with `ω_i = 1 / 10000^(i / (dim/4))`.
/// Returns `[grid·grid, dim]` values in row-major order; `dim` must be a multiple of 4.
pub fn sincos_2d_table(dim: usize, grid: usize, base_size: usize) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> =
        (0..quarter).map(|i| 1.0 / 10000f64.powf(i as f64 / quarter as f64)).collect();
    let mut table = Vec::with_capacity(grid * grid * dim);
    for r in 0..grid {
        for c in 0..grid {
            // diffusers uses the meshgrid (w, h) order: the first half encodes the column.
            let scale = base_size as f64 / grid as f64;
            for pos in [c as f64 * scale, r as f64 * scale] {
                table.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                table.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    table
}

/// Patch embedding with a cropped fixed position table, diffusers `PatchEmbed` as used by SD3.
///
/// A `patch_size × patch_size` stride-`patch_size` convolution turns `[batch, C, H, W]` into
/// `[batch, (H/p)·(W/p), dim]` tokens, to which the centre crop of the
/// `pos_embed_max_size²` sine-cosine table is added.
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// The patchifying convolution `[dim, C, p, p]`.
    pub proj: Conv2d<B>,
    /// The position table `[1, max·max, dim]` (a non-trainable parameter; a key of SD3 checkpoints).
    pub pos_embed: Param<Tensor<B, 3>>,
    /// `p`.
    pub patch_size: usize,
    /// Side of the position table grid.
    pub pos_embed_max_size: usize,
}

impl<B: Backend> PatchEmbed<B> {
    /// Builds the embedding for `in_channels` inputs and `dim`-wide tokens; `base_size` is the
    /// training token-grid side (`sample_size / patch_size`) that scales the table positions.
    pub fn new(
        in_channels: usize,
        dim: usize,
        patch_size: usize,
        pos_embed_max_size: usize,
        base_size: usize,
        device: &B::Device,
    ) -> Self {
        let rows = pos_embed_max_size * pos_embed_max_size;
        // Lazy, like burn's own initialisers: the table of a real-size model is only computed
        // when it is used (and never when a checkpoint overwrites it).
        let pos_embed = Param::uninitialized(
            ParamId::new(),
            move |device, _| {
                let table = sincos_2d_table(dim, pos_embed_max_size, base_size);
                Tensor::<B, 1>::from_floats(table.as_slice(), device).reshape([1, rows, dim])
            },
            device.clone(),
            false,
            [1, rows, dim].into(),
        );
        Self {
            proj: Conv2dConfig::new([in_channels, dim], [patch_size, patch_size])
                .with_stride([patch_size, patch_size])
                .init(device),
            pos_embed,
            patch_size,
            pos_embed_max_size,
        }
    }

    /// `[batch, C, H, W] → [batch, (H/p)·(W/p), dim]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let x = conv2d(&self.proj, x); // [b, dim, h, w]
        let [b, dim, h, w] = x.dims();
        let tokens = x.reshape([b, dim, h * w]).swap_dims(1, 2);
        let max = self.pos_embed_max_size;
        let (top, left) = ((max - h) / 2, (max - w) / 2);
        let pos = self
            .pos_embed
            .val()
            .reshape([max, max, dim])
            .slice([top..top + h, left..left + w])
            .reshape([1, h * w, dim]);
        tokens + pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Tolerance, TensorData};

    /* Equivalent PyTorch code (diffusers.models.embeddings.get_timestep_embedding):
       get_timestep_embedding(torch.tensor([0., 1., 500.]), 6, flip_sin_to_cos=True,
                              downscale_freq_shift=0)
       half = 3, freqs = exp(-ln(1e4) * [0, 1, 2] / 3) = [1, 0.0464159, 0.00215443] */
    #[test]
    fn timestep_embedding_matches_closed_form() {
        let device = Default::default();
        let t = Tensor::<Flex, 1>::from_floats([0.0, 1.0, 500.0], &device);
        let emb = timestep_embedding(t, 6, true, 0.0);
        let f = [1.0f64, 10000f64.powf(-1.0 / 3.0), 10000f64.powf(-2.0 / 3.0)];
        let mut expected = Vec::new();
        for t in [0.0f64, 1.0, 500.0] {
            expected.extend(f.iter().map(|f| (t * f).cos() as f32));
            expected.extend(f.iter().map(|f| (t * f).sin() as f32));
        }
        emb.into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [3, 6]),
            Tolerance::absolute(1e-4),
        );
    }

    #[test]
    fn sincos_table_row_encodes_column_then_row() {
        let dim = 8;
        let table = sincos_2d_table(dim, 3, 3);
        // Row for (r = 1, c = 2): first half encodes c = 2, second half r = 1; ω = [1, 0.01].
        let row = &table[(3 + 2) * dim..(3 + 3) * dim];
        let expect = [
            2f64.sin(),
            0.02f64.sin(),
            2f64.cos(),
            0.02f64.cos(),
            1f64.sin(),
            0.01f64.sin(),
            1f64.cos(),
            0.01f64.cos(),
        ];
        for (a, b) in row.iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6, "{row:?}");
        }
    }
}
