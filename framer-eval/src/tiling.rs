//! Overlapping-tile inference for images larger (or smaller) than the model's training size.
//!
//! The input `[batch, channels, H, W]` is covered by square tiles of side `tile`, `overlap`
//! pixels apart from their neighbours (the last tile of a row or column is moved back so that
//! it ends at the border, so any size is covered). The caller's closure turns each tile into an
//! output tile `scale` times larger; the output tiles are multiplied by a smooth window
//! ([`BlendWindow`]), summed, and divided by the summed windows, so the result is a
//! convex combination of the tile outputs at every pixel.
//!
//! An image smaller than a tile along a side is padded on the bottom / right by reflection
//! (`reflect` mode, mirrored about the edge sample, as `torch.nn.functional.pad`; repeated for
//! pads longer than the side) and the output is cropped back to `scale·H × scale·W`.
//!
//! With `scale = 1` and an identity closure the input comes back unchanged (up to one f32
//! rounding of the normalisation); a closure that returns a constant gives that constant
//! everywhere, across every seam.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use framer_eval::tiling::{TileConfig, process_tiled};
//!
//! let device = Default::default();
//! let x = Tensor::<Flex, 4>::ones([1, 3, 40, 27], &device);
//! // a stand-in "model" of training size 16 that returns a tile twice as large
//! let config = TileConfig::new(16, 4, 2);
//! let y = process_tiled(x, &config, |tile, _region| {
//!     Ok::<_, std::convert::Infallible>(tile.repeat_dim(2, 2).repeat_dim(3, 2))
//! })?;
//! assert_eq!(y.dims(), [1, 3, 80, 54]);
//! # Ok::<(), framer_eval::EvalError>(())
//! ```

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use framer_data::Image;
use serde::{Deserialize, Serialize};

use crate::error::{BoxedError, EvalError, Result};

/// The weight profile used to blend overlapping tiles. Every profile is strictly positive, so
/// every output pixel has a non-zero total weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum BlendWindow {
    /// A separable Gaussian centred on the tile, `exp(−(i − (n−1)/2)² / (2 (σ·n)²))` along each
    /// axis of an output tile of side `n`. StableSR and DiT4SR use `σ = 0.1` (their
    /// `_gaussian_weights` with variance 0.01).
    Gaussian {
        /// Standard deviation as a fraction of the output tile side; must be positive.
        sigma: f64,
    },
    /// A separable trapezoid: 1 in the interior, falling linearly over the `overlap·scale`
    /// outermost output pixels to `1 / (overlap·scale + 1)` at the edge.
    LinearRamp,
}

impl Default for BlendWindow {
    fn default() -> Self {
        Self::Gaussian { sigma: 0.1 }
    }
}

impl BlendWindow {
    /// The 1-D profile for an output tile of side `side` with a ramp of `ramp` output pixels
    /// (used by [`BlendWindow::LinearRamp`] only). All values are in `(0, 1]`.
    pub fn profile(&self, side: usize, ramp: usize) -> Vec<f32> {
        match *self {
            Self::Gaussian { sigma } => {
                let mid = (side as f64 - 1.0) / 2.0;
                let s = sigma * side as f64;
                (0..side)
                    .map(|i| {
                        let d = i as f64 - mid;
                        // clamp away from zero so that f32 never underflows to 0
                        ((-d * d / (2.0 * s * s)).exp() as f32).max(1e-15)
                    })
                    .collect()
            }
            Self::LinearRamp => (0..side)
                .map(|i| {
                    let d = i.min(side - 1 - i);
                    ((d + 1) as f32 / (ramp + 1) as f32).min(1.0)
                })
                .collect(),
        }
    }
}

/// How an image is split into tiles: `TileConfig::new(tile, overlap, scale)` blends with a
/// Gaussian (σ = 0.1, as StableSR); `with_window` (burn's [`Config`] derive) sets another window.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct TileConfig {
    /// Side of an input tile in pixels (the model's training size, at the input resolution).
    pub tile: usize,
    /// Overlap between neighbouring input tiles in pixels; must be below `tile`.
    pub overlap: usize,
    /// Output pixels per input pixel along each side (1 when the model takes the upsampled LR).
    pub scale: usize,
    /// The blending window.
    #[config(default = "BlendWindow::default()")]
    pub window: BlendWindow,
}

impl TileConfig {
    /// Checks `tile ≥ 1`, `scale ≥ 1`, `overlap < tile` and a positive finite Gaussian σ.
    ///
    /// # Errors
    /// [`EvalError::InvalidTiling`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.tile == 0 {
            return Err(EvalError::InvalidTiling("tile side is 0".into()));
        }
        if self.scale == 0 {
            return Err(EvalError::InvalidTiling("scale is 0".into()));
        }
        if self.overlap >= self.tile {
            return Err(EvalError::InvalidTiling(format!(
                "overlap {} must be smaller than the tile side {}",
                self.overlap, self.tile
            )));
        }
        if let BlendWindow::Gaussian { sigma } = self.window
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(EvalError::InvalidTiling(format!(
                "Gaussian window σ must be positive and finite, got {sigma}"
            )));
        }
        Ok(())
    }

    /// The 2-D window of an output tile, row-major `[tile·scale, tile·scale]`.
    pub fn window_2d(&self) -> Vec<f32> {
        let side = self.tile * self.scale;
        let p = self.window.profile(side, self.overlap * self.scale);
        let mut w = Vec::with_capacity(side * side);
        for &a in &p {
            for &b in &p {
                // a floor keeps every weight (and so every weight sum) positive in f32
                w.push((a * b).max(1e-30));
            }
        }
        w
    }
}

/// The start offsets of tiles of side `tile` covering `0..len` with at least `overlap` pixels
/// of overlap: `0, stride, 2·stride, …` with `stride = tile − overlap`, the last one moved back
/// to `len − tile`. A side no longer than a tile gets the single start 0.
pub fn tile_starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile || tile == 0 {
        return vec![0];
    }
    let stride = (tile - overlap.min(tile - 1)).max(1);
    let mut starts = Vec::new();
    let mut s = 0;
    while s + tile < len {
        starts.push(s);
        s += stride;
    }
    starts.push(len - tile);
    starts
}

/// Reflection of index `i` into `0..n` (`reflect` mode), the padding rule of the data pipeline's
/// filters: one home, re-exported here for the tiling's callers.
pub use framer_data::filter::reflect_index;

/// One tile: where it sits in the (padded) input, and its place in the sequence (for progress
/// reporting and per-tile seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileRegion {
    /// Index of this tile, row-major, in `0..count`.
    pub index: usize,
    /// Number of tiles of the image.
    pub count: usize,
    /// Top edge in the padded input.
    pub top: usize,
    /// Left edge in the padded input.
    pub left: usize,
    /// Side of the input tile.
    pub size: usize,
}

/// The tiles of one image size under a [`TileConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct TilePlan {
    /// The configuration.
    pub config: TileConfig,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Height after reflection padding (`max(height, tile)`).
    pub padded_height: usize,
    /// Width after reflection padding (`max(width, tile)`).
    pub padded_width: usize,
    /// The tiles, row-major.
    pub tiles: Vec<TileRegion>,
}

impl TilePlan {
    /// Plans the tiles of an `height × width` input.
    ///
    /// # Errors
    /// [`EvalError::InvalidTiling`] for a bad configuration, [`EvalError::InvalidShape`] for a
    /// zero side.
    pub fn new(height: usize, width: usize, config: &TileConfig) -> Result<Self> {
        config.validate()?;
        if height == 0 || width == 0 {
            return Err(EvalError::InvalidShape(format!(
                "cannot tile a {width}x{height} (width x height) image: a side is 0"
            )));
        }
        let padded_height = height.max(config.tile);
        let padded_width = width.max(config.tile);
        let rows = tile_starts(padded_height, config.tile, config.overlap);
        let cols = tile_starts(padded_width, config.tile, config.overlap);
        let count = rows.len() * cols.len();
        let mut tiles = Vec::with_capacity(count);
        for &top in &rows {
            for &left in &cols {
                tiles.push(TileRegion {
                    index: tiles.len(),
                    count,
                    top,
                    left,
                    size: config.tile,
                });
            }
        }
        Ok(Self {
            config: *config,
            height,
            width,
            padded_height,
            padded_width,
            tiles,
        })
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether there are no tiles (never true for a plan built by [`TilePlan::new`]).
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The summed blending weight at every output pixel of the padded output, row-major
    /// `[padded_height·scale, padded_width·scale]`. Every entry is positive.
    pub fn weight_sum(&self) -> Vec<f32> {
        let s = self.config.scale;
        let (oh, ow) = (self.padded_height * s, self.padded_width * s);
        let side = self.config.tile * s;
        let window = self.config.window_2d();
        let mut sum = vec![0f32; oh * ow];
        for t in &self.tiles {
            let (top, left) = (t.top * s, t.left * s);
            for y in 0..side {
                let row = &mut sum[(top + y) * ow + left..(top + y) * ow + left + side];
                for (acc, w) in row.iter_mut().zip(&window[y * side..(y + 1) * side]) {
                    *acc += *w;
                }
            }
        }
        sum
    }
}

/// Reflection-pads `x` `[N, C, H, W]` on the bottom and right to `[N, C, ph, pw]`.
fn reflect_pad<B: Backend>(x: Tensor<B, 4>, ph: usize, pw: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let index = |len: usize, n: usize| {
        let idx: Vec<i64> = (0..len)
            .map(|i| reflect_index(i as isize, n) as i64)
            .collect();
        Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [len]), &device)
    };
    let mut x = x;
    if ph > h {
        x = x.select(2, index(ph, h));
    }
    if pw > w {
        x = x.select(3, index(pw, w));
    }
    x
}

/// Runs `f` on every tile of `input` and blends the results.
///
/// `f(tile, region)` receives an input tile `[N, C, tile, tile]` and must return
/// `[N, C_out, tile·scale, tile·scale]`; `C_out` is fixed by the first tile.
///
/// # Shapes
/// - `input`: `[N, C, H, W]`, any `H, W ≥ 1`
/// - returns `[N, C_out, H·scale, W·scale]`
///
/// # Errors
/// [`EvalError::InvalidTiling`], [`EvalError::InvalidShape`] (a zero dimension),
/// [`EvalError::TileFailed`] if `f` fails, [`EvalError::TileOutputShape`] if it returns the
/// wrong shape.
pub fn process_tiled<B, F, E>(
    input: Tensor<B, 4>,
    config: &TileConfig,
    mut f: F,
) -> Result<Tensor<B, 4>>
where
    B: Backend,
    F: FnMut(Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    let [n, c, h, w] = input.dims();
    if n == 0 || c == 0 {
        return Err(EvalError::InvalidShape(format!(
            "cannot tile a tensor of shape {:?}: batch and channels must be at least 1",
            [n, c, h, w]
        )));
    }
    let plan = TilePlan::new(h, w, config)?;
    let s = config.scale;
    let side = config.tile * s;
    let device = input.device();
    let padded = reflect_pad(input, plan.padded_height, plan.padded_width);
    let window = Tensor::<B, 4>::from_data(
        TensorData::new(config.window_2d(), [1, 1, side, side]),
        &device,
    );
    let (oh, ow) = (plan.padded_height * s, plan.padded_width * s);
    let mut acc: Option<Tensor<B, 4>> = None;
    for region in &plan.tiles {
        let (t, l) = (region.top, region.left);
        let tile = padded
            .clone()
            .slice([0..n, 0..c, t..t + config.tile, l..l + config.tile]);
        let out = f(tile, region).map_err(|e| EvalError::TileFailed {
            index: region.index,
            top: t,
            left: l,
            source: e.into(),
        })?;
        let got = out.dims();
        let c_out = acc.as_ref().map_or(got[1], |a| a.dims()[1]);
        check_tile_output(&region, got, [n, c_out, side, side])?;
        let weighted = out * window.clone();
        let ranges = [0..n, 0..c_out, t * s..t * s + side, l * s..l * s + side];
        let sum = acc.unwrap_or_else(|| Tensor::zeros([n, c_out, oh, ow], &device));
        let current = sum.clone().slice(ranges.clone());
        acc = Some(sum.slice_assign(ranges, current + weighted));
    }
    let acc = acc.ok_or_else(|| EvalError::Empty("tile: the plan has no tiles".into()))?;
    let weight_sum =
        Tensor::<B, 4>::from_data(TensorData::new(plan.weight_sum(), [1, 1, oh, ow]), &device);
    let c_out = acc.dims()[1];
    Ok((acc / weight_sum).slice([0..n, 0..c_out, 0..h * s, 0..w * s]))
}

/// [`process_tiled`] for an input that is never held whole: `tile_at(rows, cols)` returns the
/// input tile `[N, C, tile, tile]` made of the input rows `rows` and columns `cols` (indices into
/// the unpadded `height × width` input, reflected where the tile reaches past a side smaller than
/// the tile), and the blended output is accumulated on the host. The memory is that of one tile
/// until the first tile is done, then that of the output (`N · C_out · H·scale · W·scale` values
/// and one weight plane).
///
/// Returns the output, row-major `[N, C_out, height·scale, width·scale]`, and `C_out`.
///
/// # Errors
/// As [`process_tiled`]; the errors of `tile_at` as they are.
pub fn process_tiled_lazy<B, T, F, E>(
    height: usize,
    width: usize,
    config: &TileConfig,
    mut tile_at: T,
    mut f: F,
) -> Result<(Vec<f32>, usize)>
where
    B: Backend,
    T: FnMut(&[usize], &[usize]) -> Result<Tensor<B, 4>>,
    F: FnMut(Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    let plan = TilePlan::new(height, width, config)?;
    let s = config.scale;
    let side = config.tile * s;
    let window = config.window_2d();
    let (oh, ow) = (plan.padded_height * s, plan.padded_width * s);
    let mut acc: Vec<f32> = Vec::new();
    let mut shape: Option<(usize, usize)> = None; // (N, C_out) of the first tile
    for region in &plan.tiles {
        let (t, l) = (region.top, region.left);
        let rows: Vec<usize> = (t..t + config.tile)
            .map(|i| reflect_index(i as isize, height))
            .collect();
        let cols: Vec<usize> = (l..l + config.tile)
            .map(|i| reflect_index(i as isize, width))
            .collect();
        let tile = tile_at(&rows, &cols)?;
        let n = tile.dims()[0];
        let out = f(tile, region).map_err(|e| EvalError::TileFailed {
            index: region.index,
            top: t,
            left: l,
            source: e.into(),
        })?;
        let got = out.dims();
        let (n0, c_out) = *shape.get_or_insert((n, got[1]));
        check_tile_output(&region, got, [n0, c_out, side, side])?;
        let values: Vec<f32> = out
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| EvalError::InvalidShape(format!("cannot read tile data: {e:?}")))?;
        if acc.is_empty() {
            acc = vec![0f32; n0 * c_out * oh * ow];
        }
        for plane in 0..n0 * c_out {
            let src = &values[plane * side * side..(plane + 1) * side * side];
            let dst = &mut acc[plane * oh * ow..(plane + 1) * oh * ow];
            for y in 0..side {
                let row = &mut dst[(t * s + y) * ow + l * s..(t * s + y) * ow + l * s + side];
                for ((o, v), w) in row
                    .iter_mut()
                    .zip(&src[y * side..(y + 1) * side])
                    .zip(&window[y * side..(y + 1) * side])
                {
                    *o += v * w;
                }
            }
        }
    }
    let (n, c_out) = shape.ok_or_else(|| EvalError::Empty("tile: the plan has no tiles".into()))?;
    let weight_sum = plan.weight_sum();
    let (h, w) = (height * s, width * s);
    // normalise and crop in place: the write position never passes the read position
    let mut k = 0;
    for plane in 0..n * c_out {
        for y in 0..h {
            for x in 0..w {
                acc[k] = acc[plane * oh * ow + y * ow + x] / weight_sum[y * ow + x];
                k += 1;
            }
        }
    }
    acc.truncate(k);
    acc.shrink_to_fit();
    Ok((acc, c_out))
}

/// Checks the shape `got` of the model's output for `region` against `expected`
/// (`[n, c_out, side, side]`, with at least one channel).
///
/// # Errors
/// [`EvalError::TileOutputShape`] naming the tile.
fn check_tile_output(region: &TileRegion, got: [usize; 4], expected: [usize; 4]) -> Result<()> {
    if got != expected || expected[1] == 0 {
        return Err(EvalError::TileOutputShape {
            index: region.index,
            top: region.top,
            left: region.left,
            expected,
            got,
        });
    }
    Ok(())
}

/// [`process_tiled`] on an RGB [`Image`]: the image becomes a `[1, 3, H, W]` tensor on `device`
/// and the result, which must have 3 channels, becomes an image `scale` times larger.
///
/// # Errors
/// Those of [`process_tiled`], and [`EvalError::InvalidShape`] if the closure's output does not
/// have 3 channels.
pub fn process_tiled_image<B, F, E>(
    image: &Image,
    device: &B::Device,
    config: &TileConfig,
    f: F,
) -> Result<Image>
where
    B: Backend,
    F: FnMut(Tensor<B, 4>, &TileRegion) -> std::result::Result<Tensor<B, 4>, E>,
    E: Into<BoxedError>,
{
    let x = image_to_tensor::<B>(image, device);
    let y = process_tiled(x, config, f)?;
    tensor_to_image(y)
}

/// An RGB image as a `[1, 3, H, W]` tensor (values unchanged).
pub fn image_to_tensor<B: Backend>(image: &Image, device: &B::Device) -> Tensor<B, 4> {
    Tensor::from_data(
        TensorData::new(image.data().to_vec(), [1, 3, image.height(), image.width()]),
        device,
    )
}

/// A `[1, 3, H, W]` tensor as an RGB image (values unchanged, not clamped).
///
/// # Errors
/// [`EvalError::InvalidShape`] for another batch size or channel count.
pub fn tensor_to_image<B: Backend>(x: Tensor<B, 4>) -> Result<Image> {
    let [n, c, h, w] = x.dims();
    if n != 1 || c != 3 {
        return Err(EvalError::InvalidShape(format!(
            "expected a [1, 3, H, W] tensor for an RGB image, got {:?}",
            [n, c, h, w]
        )));
    }
    let data: Vec<f32> = x
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| EvalError::InvalidShape(format!("cannot read tensor data: {e:?}")))?;
    Ok(Image::from_chw(w, h, data)?)
}

#[cfg(test)]
mod tests;
