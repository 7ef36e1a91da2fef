//! Tiled decoding for large images, diffusers `AutoencoderKL.tiled_decode`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{AutoencoderKL, VaeConfig};
use crate::BackboneError;

/// Tile sizes of [`AutoencoderKL::tiled_decode`].
///
/// With a latent tile `t`, an image tile `T = t·f` (`f` the downscale factor) and the overlap
/// factor `o`, tiles start every `⌊t·(1 − o)⌋` latent pixels along each axis, each is decoded on
/// its own, the first `⌊T·o⌋` image rows (columns) of a tile are blended linearly with the last
/// ones of the tile above (to the left), and each tile keeps its first `T − ⌊T·o⌋` rows and
/// columns. These are diffusers' `tile_latent_min_size`, `tile_sample_min_size` and
/// `tile_overlap_factor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VaeTiling {
    /// Latent tile edge `t` (diffusers `tile_latent_min_size`).
    pub tile_latent_size: usize,
    /// Overlap factor `o` ∈ [0, 1) (diffusers `tile_overlap_factor`, 0.25).
    pub overlap_factor: f64,
}

impl VaeTiling {
    /// diffusers' defaults for `config`: image tiles of `sample_size` pixels (latent tiles of
    /// `sample_size / f`), overlap 0.25.
    pub fn for_config(config: &VaeConfig) -> Self {
        Self { tile_latent_size: config.sample_size / config.downscale_factor(), overlap_factor: 0.25 }
    }

    fn invalid(reason: String) -> BackboneError {
        BackboneError::BadInput { input: "tiling", reason }
    }

    /// `(stride between latent tiles, blended image rows, kept image rows per tile)`.
    fn steps(&self, factor: usize) -> Result<(usize, usize, usize), BackboneError> {
        let o = self.overlap_factor;
        if !(0.0..1.0).contains(&o) {
            return Err(Self::invalid(format!("overlap_factor {o} is outside [0, 1)")));
        }
        let t = self.tile_latent_size;
        let stride = (t as f64 * (1.0 - o)) as usize;
        if stride == 0 {
            return Err(Self::invalid(format!("tile_latent_size {t} with overlap {o} gives a zero tile stride")));
        }
        let sample = t * factor;
        let blend = (sample as f64 * o) as usize;
        Ok((stride, blend, sample - blend))
    }
}

/// `b` with its first `extent` entries along `dim` blended from the last ones of `a`:
/// `b[y] ← a[len − e + y]·(1 − y/e) + b[y]·(y/e)`, `e = min(extent, len(a), len(b))` (diffusers
/// `blend_v` for `dim = 2`, `blend_h` for `dim = 3`).
fn blend<B: Backend>(a: &Tensor<B, 4>, b: Tensor<B, 4>, extent: usize, dim: usize) -> Tensor<B, 4> {
    let (la, lb) = (a.dims()[dim], b.dims()[dim]);
    let e = extent.min(la).min(lb);
    if e == 0 {
        return b;
    }
    let weights: Vec<f32> = (0..e).map(|y| y as f32 / e as f32).collect();
    let mut shape = [1; 4];
    shape[dim] = e;
    let w = Tensor::<B, 1>::from_floats(weights.as_slice(), &b.device()).reshape(shape);
    let head = a.clone().narrow(dim, la - e, e) * w.clone().neg().add_scalar(1.0) + b.clone().narrow(dim, 0, e) * w;
    if e == lb { head } else { Tensor::cat(vec![head, b.narrow(dim, e, lb - e)], dim) }
}

impl<B: Backend> AutoencoderKL<B> {
    /// [`AutoencoderKL::decode`] in overlapping tiles, bounding the decoder's activation memory by
    /// the tile size; the result equals diffusers' `vae.decode` with tiling enabled. Latents no
    /// larger than one tile along both axes are decoded whole, as diffusers does.
    ///
    /// Tiling approximates the whole-image decode: the mid-block attention and the receptive field
    /// of the convolutions see one tile only, so seams differ from the untiled result by an amount
    /// that depends on the weights (tests/vae.rs states it for the oracle's random tiny VAE).
    ///
    /// # Shapes
    /// - `latents`: `[batch, latent_channels, h, w]` (scaled)
    /// - output: `[batch, out_channels, h·f, w·f]`
    pub fn tiled_decode(&self, latents: Tensor<B, 4>, tiling: &VaeTiling) -> Result<Tensor<B, 4>, BackboneError> {
        Self::check(&latents, "latents", self.latent_channels, "latent")?;
        let (stride, blend_extent, keep) = tiling.steps(self.downscale_factor)?;
        let z = self.unscale_latents(latents);
        let [_, _, h, w] = z.dims();
        let t = tiling.tile_latent_size;
        if h <= t && w <= t {
            return Ok(self.decode_z(z));
        }
        let mut rows: Vec<Vec<Tensor<B, 4>>> = Vec::new();
        for i in (0..h).step_by(stride) {
            let mut row: Vec<Tensor<B, 4>> = Vec::new();
            for j in (0..w).step_by(stride) {
                let tile = z.clone().narrow(2, i, t.min(h - i)).narrow(3, j, t.min(w - j));
                let mut tile = self.decode_z(tile);
                // diffusers blends in place: the tiles above and to the left are already blended.
                if let Some(above) = rows.last() {
                    tile = blend(&above[row.len()], tile, blend_extent, 2);
                }
                if let Some(left) = row.last() {
                    tile = blend(left, tile, blend_extent, 3);
                }
                row.push(tile);
            }
            rows.push(row);
        }
        let crop = |tile: &Tensor<B, 4>| {
            let [_, _, th, tw] = tile.dims();
            tile.clone().narrow(2, 0, keep.min(th)).narrow(3, 0, keep.min(tw))
        };
        let bands = rows.iter().map(|row| Tensor::cat(row.iter().map(crop).collect(), 3)).collect();
        Ok(Tensor::cat(bands, 2))
    }
}
