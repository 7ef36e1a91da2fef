//! The MUSIQ network: the ResNet stem of every patch, the embeddings, the masked transformer
//! and the head, loaded from a state dict.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor, TensorData};
use framer_metrics::MetricImage;

use super::layers::{
    channels_last_rows, cpu_backend, group_norm, layer_norm, max_pool_same, rows_in_parallel,
    same_pad, standardize, worker_threads,
};
use super::patches::{MultiscalePatches, multiscale_patches};
use super::{MASK_LOGIT, MusiqConfig, expected_tensors};
use crate::error::{IqaError, Result};
use crate::weight_file::{HostTensor, StateDict, WeightFile};

/// A linear layer: weight transposed to `[in, out]`, bias `[1, out]`.
struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Tensor<B, 2>,
}

impl<B: Backend> Linear<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        x.matmul(self.weight.clone()).add(self.bias.clone())
    }
}

/// Scale and shift of a GroupNorm or LayerNorm, `[C]`.
pub(super) struct Norm<B: Backend> {
    pub(super) weight: Tensor<B, 1>,
    pub(super) bias: Tensor<B, 1>,
}

/// A weight-standardised convolution (standardised once, when loading) with TensorFlow `SAME`
/// padding, and the GroupNorm after it.
struct StdConvNorm<B: Backend> {
    weight: Tensor<B, 4>,
    kernel: usize,
    stride: usize,
    norm: Norm<B>,
    eps: f64,
}

struct Block<B: Backend> {
    norm1: Norm<B>,
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    out: Linear<B>,
    norm2: Norm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// MUSIQ with loaded weights, on backend `B`: scores an image (`[3, H, W]` in `[0, 1]`).
#[doc(alias = "multi-scale image quality transformer")]
#[doc(alias = "MUSIQ")]
pub struct Musiq<B: Backend> {
    config: MusiqConfig,
    root: StdConvNorm<B>,
    conv1: StdConvNorm<B>,
    conv2: StdConvNorm<B>,
    conv3: StdConvNorm<B>,
    proj: StdConvNorm<B>,
    embedding: Linear<B>,
    /// `[1, D]`.
    cls: Tensor<B, 2>,
    /// `[grid², D]`.
    position_emb: Tensor<B, 2>,
    /// `[num_scales, D]`.
    scale_emb: Tensor<B, 2>,
    blocks: Vec<Block<B>>,
    encoder_norm: Norm<B>,
    head: Linear<B>,
    /// Whether the head ends with a softmax (pyiqa's `head.0` form).
    head_softmax: bool,
    /// Threads sharing the stem's patches and the transformer's query rows
    /// ([`worker_threads`] when built on a CPU backend, else 1); the results do not depend on it.
    threads: usize,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for Musiq<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Musiq")
            .field("config", &self.config)
            .field("head_softmax", &self.head_softmax)
            .finish()
    }
}

impl<B: Backend> Musiq<B> {
    /// Loads a pyiqa MUSIQ checkpoint (`.pth` or `.safetensors`). The head's form and output
    /// count come from the file (see the module documentation); the rest of `config` must match
    /// it (the default configuration for pyiqa's checkpoints).
    ///
    /// # Errors
    /// [`IqaError::Read`] for an unreadable file; [`IqaError::WeightFile`] naming the file and
    /// what is wrong (corrupt or truncated file, missing tensor, wrong shape, non-finite value);
    /// [`IqaError::InvalidArgument`] for an inconsistent `config`.
    pub fn load(path: &Path, config: MusiqConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let file = WeightFile::read(path, &|_| true)?;
        Self::build(config, &file.tensors, &file.names, &file.path, device)
    }

    /// Builds the network from tensors already read (names as in [`Musiq::load`]); the head's
    /// form and output count come from the tensors.
    ///
    /// # Errors
    /// As [`Musiq::load`], with `<tensors>` in place of a file name.
    pub fn from_tensors(
        config: MusiqConfig,
        tensors: &BTreeMap<String, HostTensor>,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let names: Vec<String> = tensors.keys().cloned().collect();
        Self::build(config, tensors, &names, Path::new("<tensors>"), device)
    }

    fn build(
        mut config: MusiqConfig,
        tensors: &BTreeMap<String, HostTensor>,
        names: &[String],
        path: &Path,
        device: &B::Device,
    ) -> Result<Self> {
        let src = StateDict {
            path,
            tensors,
            names,
            network: "MUSIQ",
        };
        // The head: `head.0.weight` ([num_class, D], Linear + Softmax) or `head.weight`.
        let head_softmax = src.find("head.0.weight").is_some();
        let head_name = if head_softmax { "head.0" } else { "head" };
        if let Some(t) = src.find(&format!("{head_name}.weight"))
            && let [n, _] = t.shape[..]
        {
            config.num_class = n;
        }
        config.validate()?;
        let specs: BTreeMap<String, Vec<usize>> = expected_tensors(&config).into_iter().collect();
        let host = |name: &str| -> Result<&HostTensor> {
            let shape = specs
                .get(name)
                .ok_or_else(|| IqaError::InvalidArgument(format!("no MUSIQ tensor `{name}`")))?;
            src.get(name, shape)
        };
        let tensor1 = |name: &str| -> Result<Tensor<B, 1>> {
            let t = host(name)?;
            Ok(Tensor::from_data(
                TensorData::new(t.data.clone(), [t.data.len()]),
                device,
            ))
        };
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<Tensor<B, 2>> {
            let t = host(name)?;
            Ok(Tensor::from_data(
                TensorData::new(t.data.clone(), [rows, cols]),
                device,
            ))
        };
        let norm = |name: &str| -> Result<Norm<B>> {
            Ok(Norm {
                weight: tensor1(&format!("{name}.weight"))?,
                bias: tensor1(&format!("{name}.bias"))?,
            })
        };
        let linear = |name: &str| -> Result<Linear<B>> {
            let t = host(&format!("{name}.weight"))?;
            let (out, inp) = (t.shape[0], t.shape[1]);
            let weight =
                Tensor::<B, 2>::from_data(TensorData::new(t.data.clone(), [out, inp]), device)
                    .transpose();
            let bias = tensor1(&format!("{name}.bias"))?.reshape([1, out]);
            Ok(Linear { weight, bias })
        };
        let std_conv = |conv: &str, gn: &str, stride: usize, eps: f64| -> Result<StdConvNorm<B>> {
            let t = host(&format!("{conv}.weight"))?;
            let shape: [usize; 4] = [t.shape[0], t.shape[1], t.shape[2], t.shape[3]];
            Ok(StdConvNorm {
                weight: Tensor::from_data(
                    TensorData::new(standardize(&t.data, shape[0]), shape),
                    device,
                ),
                kernel: shape[2],
                stride,
                norm: norm(gn)?,
                eps,
            })
        };
        let d = config.hidden_size;
        let te = "transformer_encoder";
        let g = config.spatial_pos_grid_size;
        let blocks = (0..config.num_layers)
            .map(|i| {
                let b = format!("{te}.transformer.encoderblock_{i}");
                Ok(Block {
                    norm1: norm(&format!("{b}.norm1"))?,
                    query: linear(&format!("{b}.attention.query"))?,
                    key: linear(&format!("{b}.attention.key"))?,
                    value: linear(&format!("{b}.attention.value"))?,
                    out: linear(&format!("{b}.attention.out"))?,
                    norm2: norm(&format!("{b}.norm2"))?,
                    fc1: linear(&format!("{b}.mlp.fc1"))?,
                    fc2: linear(&format!("{b}.mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            root: std_conv("conv_root", "gn_root", 2, 1e-6)?,
            conv1: std_conv("block1.conv1", "block1.gn1", 1, 1e-4)?,
            conv2: std_conv("block1.conv2", "block1.gn2", 1, 1e-4)?,
            conv3: std_conv("block1.conv3", "block1.gn3", 1, 1e-4)?,
            proj: std_conv("block1.conv_proj", "block1.gn_proj", 1, 1e-4)?,
            embedding: linear("embedding")?,
            cls: matrix(&format!("{te}.cls"), 1, d)?,
            position_emb: matrix(&format!("{te}.posembed_input.position_emb"), g * g, d)?,
            scale_emb: matrix(
                &format!("{te}.scaleembed_input.scale_emb"),
                config.num_scales,
                d,
            )?,
            blocks,
            encoder_norm: norm(&format!("{te}.encoder_norm"))?,
            head: linear(head_name)?,
            head_softmax,
            config,
            threads: if cpu_backend::<B>(device) {
                worker_threads()
            } else {
                1
            },
            device: device.clone(),
        })
    }

    /// The configuration, with `num_class` as found in the weights.
    pub fn config(&self) -> &MusiqConfig {
        &self.config
    }

    /// The same network splitting its stem's patches and its transformer's query rows between
    /// `threads` threads (at least 1) instead of the count chosen when it was built; the
    /// outputs do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The head output `q` (`[num_class]`, a distribution for a softmax head) for one image's
    /// token sequence (from [`multiscale_patches`] with this model's configuration).
    ///
    /// # Errors
    /// [`IqaError::InvalidShape`] if the sequence is empty, its arrays disagree in length, the
    /// patch size differs from the configuration's, or a position or scale id is out of range.
    pub fn forward_patches(&self, tokens: &MultiscalePatches) -> Result<Tensor<B, 1>> {
        let cfg = &self.config;
        let p = cfg.patch_size;
        let l = tokens.len();
        let g2 = cfg.spatial_pos_grid_size.pow(2);
        if l == 0
            || tokens.patch_size != p
            || tokens.patches.len() != l * 3 * p * p
            || tokens.scales.len() != l
            || tokens.mask.len() != l
        {
            return Err(IqaError::InvalidShape(format!(
                "MUSIQ: inconsistent token sequence: {l} positions, {} scales, {} mask entries, \
                 {} patch values of side {} (expected a non-empty sequence of [3, {p}, {p}] \
                 patches)",
                tokens.scales.len(),
                tokens.mask.len(),
                tokens.patches.len(),
                tokens.patch_size
            )));
        }
        if let Some(&bad) = tokens.positions.iter().find(|&&v| v >= g2) {
            return Err(IqaError::InvalidShape(format!(
                "MUSIQ: spatial position {bad} outside the {g2}-entry hash grid"
            )));
        }
        if let Some(&bad) = tokens.scales.iter().find(|&&v| v >= cfg.num_scales) {
            return Err(IqaError::InvalidShape(format!(
                "MUSIQ: scale id {bad} outside the {} scale embeddings",
                cfg.num_scales
            )));
        }
        let dev = &self.device;
        let x = self.stem_rows(&tokens.patches, l);
        let x = self.embedding.forward(x);
        let index = |v: &[usize]| {
            let v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [l]), dev)
        };
        let mut x = x.add(
            self.position_emb
                .clone()
                .select(0, index(&tokens.positions)),
        );
        if cfg.use_scale_emb {
            x = x.add(self.scale_emb.clone().select(0, index(&tokens.scales)));
        }
        let mut x = Tensor::cat(vec![self.cls.clone(), x], 0);
        let n = l + 1;
        // Without padding tokens the mask keeps every pair: multiplying by 1 and adding 0 would
        // change no logit, so it is skipped.
        let mask = tokens.mask.contains(&false).then(|| {
            let mut m = Vec::with_capacity(n);
            m.push(1.0f32);
            m.extend(tokens.mask.iter().map(|&b| if b { 1.0 } else { 0.0 }));
            let m = Tensor::<B, 1>::from_data(TensorData::new(m, [n]), dev);
            // [1, n·n]: 1 where both tokens are real.
            let keep = m
                .clone()
                .reshape([n, 1])
                .mul(m.reshape([1, n]))
                .reshape([1, n * n]);
            let fill = keep.clone().neg().add_scalar(1.0).mul_scalar(MASK_LOGIT);
            AttentionMask { keep, fill }
        });
        for b in &self.blocks {
            x = b.forward(x, cfg.num_heads, mask.as_ref(), self.threads);
        }
        let x = layer_norm(x, &self.encoder_norm, 1e-6);
        let q = self.head.forward(x.narrow(0, 0, 1));
        let q = if self.head_softmax { softmax(q, 1) } else { q };
        Ok(q.reshape([cfg.num_class]))
    }

    /// The MUSIQ score of `image` (`[3, H, W]` in `[0, 1]`): `Σ_k q_k · k` of the head output
    /// (see the module documentation); higher is better.
    ///
    /// The sequence holds `49 + 144 + ceil(H/32)·ceil(W/32)` tokens with the default
    /// configuration and attention is quadratic in it, as in pyiqa: a 256 × 240 image takes
    /// about 0.25 s on two CPU cores with the `Flex` backend in release mode, a 12-megapixel
    /// photo (about 12 000 tokens) needs several GB for the attention matrices.
    ///
    /// The stem's patches and the transformer's query rows are split between
    /// `RAYON_NUM_THREADS` threads when that variable is set, else one thread per available
    /// core (read when the model is built; on a GPU backend nothing is split); the result does
    /// not depend on the split.
    ///
    /// # Errors
    /// As [`multiscale_patches`] (an image whose resized side would be 0 pixels).
    pub fn score_image(&self, image: &MetricImage) -> Result<f64> {
        let tokens = multiscale_patches(image, &self.config)?;
        let q = self.forward_patches(&tokens)?;
        let q: Vec<f32> = q.into_data().convert::<f32>().into_vec().map_err(|e| {
            IqaError::InvalidShape(format!("MUSIQ: cannot read the head output back: {e:?}"))
        })?;
        Ok(q.iter()
            .enumerate()
            .map(|(k, &v)| f64::from(v) * (k + 1) as f64)
            .sum())
    }
}

/// The attention mask of a sequence of `n` tokens (class token included) with padding tokens,
/// as pyiqa's `masked_fill(mask2d == 0, -1e3)`: `logit · keep + fill`.
struct AttentionMask<B: Backend> {
    /// `[1, n·n]`: 1 for a pair of real tokens, else 0.
    keep: Tensor<B, 2>,
    /// `[1, n·n]`: 0 for a pair of real tokens, else [`MASK_LOGIT`].
    fill: Tensor<B, 2>,
}

impl<B: Backend> Musiq<B> {
    /// The ResNet stem of `count` patches (`[count, 3, p, p]` row-major), each patch's output
    /// `[256, p/4, p/4]` flattened in TensorFlow's `(h, w, c)` order: `[count, 256·(p/4)²]`.
    ///
    /// The patches are independent: they are split into one run of consecutive patches per
    /// thread ([`rows_in_parallel`]), whose stems run at the same time.
    fn stem_rows(&self, patches: &[f32], count: usize) -> Tensor<B, 2> {
        let p = self.config.patch_size;
        let per = 3 * p * p;
        rows_in_parallel(self.threads, count, |first, n| {
            let x = Tensor::<B, 4>::from_data(
                TensorData::new(
                    patches[first * per..(first + n) * per].to_vec(),
                    [n, 3, p, p],
                ),
                &self.device,
            );
            self.stem(x)
        })
    }

    /// `[N, 3, p, p]` -> `[N, 256·(p/4)²]` (see [`Musiq::stem_rows`]).
    fn stem(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        // [N, 3, p, p] -> [N, 256, p/4, p/4]
        let x = max_pool_same(relu(self.root.forward(x)));
        let identity = self.proj.forward(x.clone());
        let y = relu(self.conv1.forward(x));
        let y = relu(self.conv2.forward(y));
        let y = self.conv3.forward(y);
        let x = relu(y.add(identity));
        // TensorFlow channel order: [N, h, w, c] flattened.
        channels_last_rows(x)
    }
}

impl<B: Backend> Block<B> {
    /// `x`: `[n, D]`; `mask`: none when every token is real.
    ///
    /// Keys and values are computed for all tokens, then everything from the attention on is
    /// independent between query rows and runs on runs of rows in parallel
    /// ([`rows_in_parallel`]).
    fn forward(
        &self,
        x: Tensor<B, 2>,
        heads: usize,
        mask: Option<&AttentionMask<B>>,
        threads: usize,
    ) -> Tensor<B, 2> {
        let [n, d] = x.dims();
        let dh = d / heads;
        let y = layer_norm(x.clone(), &self.norm1, 1e-6);
        let split = |t: Tensor<B, 2>| {
            let [rows, _] = t.dims();
            t.reshape([rows, heads, dh]).swap_dims(0, 1)
        };
        // [heads, dh, n] and [heads, n, dh]
        let k = split(self.key.forward(y.clone())).swap_dims(1, 2);
        let v = split(self.value.forward(y.clone()));
        let q = self.query.forward(y);
        rows_in_parallel(threads, n, |first, m| {
            let attn = split(q.clone().narrow(0, first, m))
                .matmul(k.clone())
                .mul_scalar((dh as f64).powf(-0.5));
            // masked_fill(mask2d == 0, -1e3), on `[heads, m·n]` so that the mask is one row
            // shared by all heads (a contiguous sweep in the backend, where `[1, m, n]`
            // broadcast over `[heads, m, n]` is walked element by element).
            let attn = match mask {
                Some(mk) => attn
                    .reshape([heads, m * n])
                    .mul(mk.keep.clone().narrow(1, first * n, m * n))
                    .add(mk.fill.clone().narrow(1, first * n, m * n))
                    .reshape([heads, m, n]),
                None => attn,
            };
            let attn = softmax(attn, 2);
            let y = attn.matmul(v.clone()).swap_dims(0, 1).reshape([m, d]);
            let x = x.clone().narrow(0, first, m).add(self.out.forward(y));
            let y = layer_norm(x.clone(), &self.norm2, 1e-6);
            let y = self.fc2.forward(gelu(self.fc1.forward(y)));
            x.add(y)
        })
    }
}

impl<B: Backend> StdConvNorm<B> {
    /// `[N, C_in, H, W]` -> `[N, C_out, ceil(H/s), ceil(W/s)]`, convolution then GroupNorm.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = same_pad(x, self.kernel, self.stride);
        let x = conv2d(
            x,
            self.weight.clone(),
            None,
            ConvOptions::new([self.stride; 2], [0, 0], [1, 1], 1),
        );
        group_norm(x, &self.norm, self.eps)
    }
}
