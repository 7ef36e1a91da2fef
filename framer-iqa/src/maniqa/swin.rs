//! The Swin transformer stages of MANIQA (`pyiqa/archs/maniqa_swin.py`): window attention
//! with a relative position bias, cyclic shift by half a window in every second block (with
//! the −100 attention mask between regions that the shift brings together), an MLP of width
//! `dim_mlp`, and after each layer a 3×3 convolution with ReLU and the residual
//! `x ← scale·layer(x) + x`. No patch merging: the grid stays `224 / patch_size` square.

use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use super::{ManiqaConfig, PreNormBlock, Source};
use crate::error::Result;

/// `nn.LayerNorm`'s default ε, which the Swin blocks use.
const SWIN_LN_EPS: f64 = 1e-5;
/// The value pyiqa puts in the shifted-window mask between different regions.
const MASK_VALUE: f32 = -100.0;

/// The window of one Swin block, as `SwinBlock.__init__` settles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    /// Side of the token grid.
    pub(super) grid: usize,
    /// Window side.
    pub(super) size: usize,
    /// Cyclic shift (0 for an unshifted block).
    pub(super) shift: usize,
}

impl Window {
    /// Block `index` of a layer with window `window_size` on a `grid × grid` token grid:
    /// shift `window_size / 2` for odd blocks, and one unshifted window of the whole grid
    /// when `grid ≤ window_size`.
    pub(super) fn new(grid: usize, window_size: usize, index: usize) -> Self {
        let shift = if index.is_multiple_of(2) {
            0
        } else {
            window_size / 2
        };
        if grid <= window_size {
            Self {
                grid,
                size: grid,
                shift: 0,
            }
        } else {
            Self {
                grid,
                size: window_size,
                shift,
            }
        }
    }

    /// Number of windows per image.
    pub(super) fn count(&self) -> usize {
        let per_side = self.grid / self.size;
        per_side * per_side
    }

    /// The region label of each grid row (or column) in the shifted frame: 0, 1, 2 for
    /// `[0, G − ws)`, `[G − ws, G − shift)`, `[G − shift, G)`.
    fn region(&self, r: usize) -> usize {
        if r + self.size < self.grid {
            0
        } else if r + self.shift < self.grid {
            1
        } else {
            2
        }
    }

    /// Relative position bias plus shift mask, `[windows, heads, n, n]` (`windows` = 1 when
    /// unshifted) with `n = size²`, from the `[(2·size − 1)², heads]` table.
    fn bias(&self, table: &[f32], heads: usize) -> (Vec<f32>, usize) {
        let ws = self.size;
        let n = ws * ws;
        let span = 2 * ws - 1;
        let mut rel = vec![0.0f32; heads * n * n];
        for i in 0..n {
            let (hi, wi) = (i / ws, i % ws);
            for j in 0..n {
                let (hj, wj) = (j / ws, j % ws);
                let idx = (hi + ws - 1 - hj) * span + (wi + ws - 1 - wj);
                for h in 0..heads {
                    rel[(h * n + i) * n + j] = table[idx * heads + h];
                }
            }
        }
        if self.shift == 0 {
            return (rel, 1);
        }
        let per_side = self.grid / ws;
        let windows = per_side * per_side;
        let label = |w: usize, i: usize| {
            let r = (w / per_side) * ws + i / ws;
            let c = (w % per_side) * ws + i % ws;
            self.region(r) * 3 + self.region(c)
        };
        let mut out = Vec::with_capacity(windows * heads * n * n);
        for w in 0..windows {
            for h in 0..heads {
                for i in 0..n {
                    for j in 0..n {
                        let m = if label(w, i) == label(w, j) {
                            0.0
                        } else {
                            MASK_VALUE
                        };
                        out.push(rel[(h * n + i) * n + j] + m);
                    }
                }
            }
        }
        (out, windows)
    }
}

/// Rolls dims 1 and 2 of `[N, G, G, C]` by `-shift` (`forward`) or `+shift`, as `torch.roll`.
fn roll<B: Backend>(x: Tensor<B, 4>, shift: usize, forward: bool) -> Tensor<B, 4> {
    let g = x.dims()[1];
    let k = if forward { shift } else { g - shift };
    let mut x = x;
    for dim in [1, 2] {
        let head = x.clone().narrow(dim, 0, k);
        let tail = x.narrow(dim, k, g - k);
        x = Tensor::cat(vec![tail, head], dim);
    }
    x
}

#[derive(Clone, Debug)]
struct SwinBlock<B: Backend> {
    weights: PreNormBlock<B>,
    /// `[1, windows, heads, n, n]` (relative position bias + mask).
    bias: Tensor<B, 5>,
    heads: usize,
    window: Window,
}

impl<B: Backend> SwinBlock<B> {
    #[allow(clippy::too_many_arguments)]
    fn load(
        src: &Source<'_>,
        p: &str,
        c: &ManiqaConfig,
        dim: usize,
        heads: usize,
        index: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let window = Window::new(c.grid(), c.window_size, index);
        let span = 2 * window.size - 1;
        let table = src.host(
            &format!("{p}.attn.relative_position_bias_table"),
            &[span * span, heads],
        )?;
        let (bias, windows) = window.bias(&table.data, heads);
        let n = window.size * window.size;
        Ok(Self {
            weights: PreNormBlock::load(src, p, dim, c.dim_mlp, SWIN_LN_EPS, device)?,
            bias: Tensor::from_data(TensorData::new(bias, [1, windows, heads, n, n]), device),
            heads,
            window,
        })
    }

    /// `[N, G², C]` → `[N, G², C]`.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [n, l, c] = x.dims();
        let Window { grid, size, shift } = self.window;
        let per = grid / size;
        let windows = per * per;
        let t = size * size;
        let h = self.heads;
        let d = c / h;
        let w = &self.weights;
        let y = w.norm1.forward(x.clone()).reshape([n, grid, grid, c]);
        let y = if shift > 0 { roll(y, shift, true) } else { y };
        let win: Tensor<B, 3> = y
            .reshape([n, per, size, per, size, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([n * windows, t, c]);
        let [q, k, v] = w.split_qkv(win, h);
        let q = q.mul_scalar((d as f64).powf(-0.5));
        let attn = q
            .matmul(k.swap_dims(2, 3))
            .reshape([n, windows, h, t, t])
            .add(self.bias.clone())
            .reshape([n * windows, h, t, t]);
        let o = softmax(attn, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([n * windows, t, c]);
        let o = w
            .proj
            .forward(o)
            .reshape([n, per, per, size, size, c])
            .permute([0, 1, 3, 2, 4, 5])
            .reshape([n, grid, grid, c]);
        let o = if shift > 0 { roll(o, shift, false) } else { o };
        w.mlp_residual(x.add(o.reshape([n, l, c])))
    }
}

#[derive(Clone, Debug)]
struct SwinLayer<B: Backend> {
    blocks: Vec<SwinBlock<B>>,
    conv_weight: Tensor<B, 4>,
    conv_bias: Tensor<B, 1>,
}

/// One `SwinTransformer` of MANIQA (several layers on a fixed grid).
#[derive(Clone, Debug)]
pub(super) struct SwinStage<B: Backend> {
    layers: Vec<SwinLayer<B>>,
    grid: usize,
}

impl<B: Backend> SwinStage<B> {
    pub(super) fn load(
        src: &Source<'_>,
        prefix: &str,
        c: &ManiqaConfig,
        dim: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(c.depths.len());
        for (l, (&depth, &heads)) in c.depths.iter().zip(&c.num_heads).enumerate() {
            let p = format!("{prefix}.layers.{l}");
            let blocks = (0..depth)
                .map(|b| SwinBlock::load(src, &format!("{p}.blocks.{b}"), c, dim, heads, b, device))
                .collect::<Result<Vec<_>>>()?;
            layers.push(SwinLayer {
                blocks,
                conv_weight: src.tensor(&format!("{p}.conv.weight"), [dim, dim, 3, 3], device)?,
                conv_bias: src.tensor(&format!("{p}.conv.bias"), [dim], device)?,
            });
        }
        Ok(Self {
            layers,
            grid: c.grid(),
        })
    }

    /// `[N, G², C]` (tokens row-major) → `[N, G², C]`.
    pub(super) fn forward(&self, mut x: Tensor<B, 3>, scale: f64) -> Tensor<B, 3> {
        let [n, l, c] = x.dims();
        let g = self.grid;
        for layer in &self.layers {
            let skip = x.clone();
            for b in &layer.blocks {
                x = b.forward(x);
            }
            let img = x.reshape([n, g, g, c]).permute([0, 3, 1, 2]);
            let y = relu(conv2d(
                img,
                layer.conv_weight.clone(),
                Some(layer.conv_bias.clone()),
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ));
            x = y
                .permute([0, 2, 3, 1])
                .reshape([n, l, c])
                .mul_scalar(scale)
                .add(skip);
        }
        x
    }
}
