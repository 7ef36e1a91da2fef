//! LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
//! Metric"), version 0.1, computed from weight files the user supplies.
//!
//! No crates.io, PyPI or Debian package ships the pretrained weights offline, so [`Lpips`] is
//! built from two files:
//!
//! - the **backbone**: torchvision's ImageNet AlexNet (`alexnet-owt-7be5be79.pth`, or the older
//!   `alexnet-owt-4df8aa71.pth`) or VGG16 (`vgg16-397923af.pth`), keys `features.N.weight` /
//!   `features.N.bias`;
//! - the **linear layers** of the `lpips` package (`lpips/weights/v0.1/alex.pth` or `vgg.pth`),
//!   keys `lin0.model.1.weight` … `lin4.model.1.weight`.
//!
//! Each may be a PyTorch `.pth` file or a `.safetensors` file with the same names (see
//! [`crate::weight_file`]). A full `lpips.LPIPS` state dict (`net.slice1.0.weight` …,
//! `lin0.model.1.weight` …) is accepted for either file.
//!
//! The computation follows `lpips.LPIPS.forward(in0, in1, normalize=True)` (and burn-train's
//! `LpipsAlex` / `LpipsVgg`): images in `[0, 1]` are mapped to `[-1, 1]`, then through the
//! scaling layer `(x − shift) / scale` with `shift = (−0.030, −0.088, −0.188)` and
//! `scale = (0.458, 0.448, 0.450)`; the backbone's five ReLU outputs (AlexNet `relu1`…`relu5`,
//! VGG16 `relu1_2`, `relu2_2`, `relu3_3`, `relu4_3`, `relu5_3`) are unit-normalised over the
//! channels (`x / (‖x‖ + 1e-10)`), the squared difference of the two images' features is
//! weighted by the 1×1 linear layer and averaged over space, and the five layer distances
//! are summed.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use framer_metrics::{Metric, MetricImage};

use crate::error::{EvalError, Result};
use crate::weight_file::WeightFile;

/// `lpips` v0.1 scaling-layer shift, per RGB channel.
pub const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
/// `lpips` v0.1 scaling-layer scale, per RGB channel.
pub const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
/// The ε added to the feature norm before dividing (`lpips.normalize_tensor`).
pub const NORM_EPS: f32 = 1e-10;

/// The backbone network of LPIPS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LpipsNet {
    /// AlexNet, the variant papers report (`lpips.LPIPS(net='alex')`).
    #[default]
    #[doc(alias = "alexnet")]
    Alex,
    /// VGG16 (`lpips.LPIPS(net='vgg')`).
    #[doc(alias = "vgg16")]
    Vgg,
}

/// One convolution of a backbone: index in torchvision's `features`, channels, kernel,
/// stride, padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConvSpec {
    index: usize,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

const fn conv(
    index: usize,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> ConvSpec {
    ConvSpec {
        index,
        in_channels,
        out_channels,
        kernel,
        stride,
        padding,
    }
}

/// One LPIPS slice: an optional max-pool (kernel, stride) before its convolutions (each
/// followed by ReLU); the slice's output is one LPIPS layer.
struct SliceSpec {
    pool: Option<(usize, usize)>,
    convs: &'static [ConvSpec],
}

const ALEX: [SliceSpec; 5] = [
    SliceSpec {
        pool: None,
        convs: &[conv(0, 3, 64, 11, 4, 2)],
    },
    SliceSpec {
        pool: Some((3, 2)),
        convs: &[conv(3, 64, 192, 5, 1, 2)],
    },
    SliceSpec {
        pool: Some((3, 2)),
        convs: &[conv(6, 192, 384, 3, 1, 1)],
    },
    SliceSpec {
        pool: None,
        convs: &[conv(8, 384, 256, 3, 1, 1)],
    },
    SliceSpec {
        pool: None,
        convs: &[conv(10, 256, 256, 3, 1, 1)],
    },
];

const VGG: [SliceSpec; 5] = [
    SliceSpec {
        pool: None,
        convs: &[conv(0, 3, 64, 3, 1, 1), conv(2, 64, 64, 3, 1, 1)],
    },
    SliceSpec {
        pool: Some((2, 2)),
        convs: &[conv(5, 64, 128, 3, 1, 1), conv(7, 128, 128, 3, 1, 1)],
    },
    SliceSpec {
        pool: Some((2, 2)),
        convs: &[
            conv(10, 128, 256, 3, 1, 1),
            conv(12, 256, 256, 3, 1, 1),
            conv(14, 256, 256, 3, 1, 1),
        ],
    },
    SliceSpec {
        pool: Some((2, 2)),
        convs: &[
            conv(17, 256, 512, 3, 1, 1),
            conv(19, 512, 512, 3, 1, 1),
            conv(21, 512, 512, 3, 1, 1),
        ],
    },
    SliceSpec {
        pool: Some((2, 2)),
        convs: &[
            conv(24, 512, 512, 3, 1, 1),
            conv(26, 512, 512, 3, 1, 1),
            conv(28, 512, 512, 3, 1, 1),
        ],
    },
];

/// A named tensor the network needs: its name in torchvision / `lpips` files and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightSpec {
    /// The name in the torchvision backbone file (`features.3.weight`) or the `lpips` linear
    /// file (`lin1.model.1.weight`).
    pub name: String,
    /// The name inside a full `lpips.LPIPS` state dict (`net.slice2.3.weight`).
    pub lpips_name: String,
    /// PyTorch shape: `[out, in, k, k]` for a convolution weight, `[out]` for a bias,
    /// `[1, C, 1, 1]` for a linear layer.
    pub shape: Vec<usize>,
}

impl LpipsNet {
    /// Parses `alex` / `alexnet` or `vgg` / `vgg16` (case-insensitive).
    ///
    /// # Errors
    /// [`EvalError::InvalidArgument`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(Self::Alex),
            "vgg" | "vgg16" => Ok(Self::Vgg),
            _ => Err(EvalError::InvalidArgument(format!(
                "LPIPS network `{s}`: expected alex or vgg"
            ))),
        }
    }

    /// `alex` or `vgg`, as the `lpips` package names them.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Alex => "alex",
            Self::Vgg => "vgg",
        }
    }

    fn slices(self) -> &'static [SliceSpec; 5] {
        match self {
            Self::Alex => &ALEX,
            Self::Vgg => &VGG,
        }
    }

    /// Channels of the five compared layers (AlexNet 64, 192, 384, 256, 256; VGG16 64, 128,
    /// 256, 512, 512).
    pub fn layer_channels(self) -> [usize; 5] {
        let s = self.slices();
        std::array::from_fn(|i| s[i].convs.last().map_or(0, |c| c.out_channels))
    }

    /// The backbone tensors, in network order (weight then bias of each convolution).
    pub fn backbone_weights(self) -> Vec<WeightSpec> {
        let mut out = Vec::new();
        for (s, slice) in self.slices().iter().enumerate() {
            for c in slice.convs {
                for (part, shape) in [
                    (
                        "weight",
                        vec![c.out_channels, c.in_channels, c.kernel, c.kernel],
                    ),
                    ("bias", vec![c.out_channels]),
                ] {
                    out.push(WeightSpec {
                        name: format!("features.{}.{part}", c.index),
                        lpips_name: format!("net.slice{}.{}.{part}", s + 1, c.index),
                        shape,
                    });
                }
            }
        }
        out
    }

    /// The five linear-layer tensors, `lin{k}.model.1.weight` of shape `[1, C_k, 1, 1]`.
    pub fn linear_weights(self) -> Vec<WeightSpec> {
        self.layer_channels()
            .iter()
            .enumerate()
            .map(|(k, &c)| WeightSpec {
                name: format!("lin{k}.model.1.weight"),
                lpips_name: format!("lin{k}.model.1.weight"),
                shape: vec![1, c, 1, 1],
            })
            .collect()
    }

    /// The smallest image side the backbone accepts (AlexNet 31, VGG16 16): every pooling
    /// must see at least its kernel.
    pub fn min_side(self) -> usize {
        (1..=4096)
            .find(|&n| self.feature_sides(n).is_some())
            .unwrap_or(usize::MAX)
    }

    /// The side of each compared layer for an input side `n`, or `None` if too small.
    fn feature_sides(self, mut n: usize) -> Option<[usize; 5]> {
        let mut out = [0; 5];
        for (i, slice) in self.slices().iter().enumerate() {
            if let Some((k, s)) = slice.pool {
                if n < k {
                    return None;
                }
                n = (n - k) / s + 1;
            }
            for c in slice.convs {
                if n + 2 * c.padding < c.kernel {
                    return None;
                }
                n = (n + 2 * c.padding - c.kernel) / c.stride + 1;
            }
            out[i] = n;
        }
        Some(out)
    }

    /// The usual file names of the pretrained weights, for messages and folder lookup:
    /// (backbone name prefix, linear-layer file stem).
    pub const fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Alex => ("alexnet", "alex"),
            Self::Vgg => ("vgg16", "vgg"),
        }
    }
}

impl std::fmt::Display for LpipsNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The two weight files of an LPIPS network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LpipsFiles {
    /// Backbone network.
    pub net: LpipsNet,
    /// torchvision backbone weights (`.pth` or `.safetensors`).
    pub backbone: PathBuf,
    /// `lpips` linear-layer weights (`.pth` or `.safetensors`).
    pub linear: PathBuf,
}

const WEIGHT_EXTENSIONS: [&str; 3] = ["pth", "pt", "safetensors"];

impl LpipsFiles {
    /// Finds the two files in `dir`: the backbone is the one file whose name starts with
    /// `alexnet` (`vgg16` for VGG) and the linear layers are `alex.pth` or `alex.safetensors`
    /// (`vgg.*`); extensions `.pth`, `.pt` and `.safetensors` are considered.
    ///
    /// # Errors
    /// [`EvalError::Read`] if `dir` cannot be listed, [`EvalError::InvalidArgument`] naming
    /// the folder and the expected names when a file is missing or ambiguous.
    pub fn find_in(dir: &Path, net: LpipsNet) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|source| EvalError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for e in entries {
            let path = e
                .map_err(|source| EvalError::Read {
                    path: dir.to_path_buf(),
                    source,
                })?
                .path();
            let ext_ok = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| WEIGHT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if path.is_file() && ext_ok {
                files.push(path);
            }
        }
        files.sort();
        let (backbone_prefix, linear_stem) = net.file_names();
        let stem = |p: &PathBuf| {
            p.file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        };
        let pick = |what: &str, expected: &str, found: Vec<&PathBuf>| -> Result<PathBuf> {
            match found.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err(EvalError::InvalidArgument(format!(
                    "LPIPS ({net}): no {what} file in {} (expected {expected}, extension \
                     .pth or .safetensors)",
                    dir.display()
                ))),
                many => Err(EvalError::InvalidArgument(format!(
                    "LPIPS ({net}): several {what} files in {}: {}; give one with the \
                     explicit file options",
                    dir.display(),
                    many.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        };
        let backbone = pick(
            "backbone",
            &format!("{backbone_prefix}*.pth, torchvision's ImageNet weights"),
            files
                .iter()
                .filter(|p| stem(p).starts_with(backbone_prefix))
                .collect(),
        )?;
        let linear = pick(
            "linear-layer",
            &format!("{linear_stem}.pth from the lpips package's weights/v0.1"),
            files.iter().filter(|p| stem(p) == linear_stem).collect(),
        )?;
        Ok(Self {
            net,
            backbone,
            linear,
        })
    }
}

struct Conv<B: Backend> {
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    options: ConvOptions<2>,
}

struct Slice<B: Backend> {
    pool: Option<(usize, usize)>,
    convs: Vec<Conv<B>>,
}

/// LPIPS v0.1 with loaded weights, on backend `B`.
#[doc(alias = "learned perceptual image patch similarity")]
pub struct Lpips<B: Backend> {
    net: LpipsNet,
    slices: Vec<Slice<B>>,
    /// `[1, C_k, 1, 1]` per layer.
    linear: Vec<Tensor<B, 4>>,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for Lpips<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpips").field("net", &self.net).finish()
    }
}

impl<B: Backend> Lpips<B> {
    /// Loads the backbone and linear-layer files (see the module documentation for names).
    ///
    /// # Errors
    /// [`EvalError::Read`] for an unreadable file, [`EvalError::WeightFile`] naming the file and
    /// the missing tensor or the wrong shape (expected vs found), or what makes the file
    /// unreadable.
    pub fn load(files: &LpipsFiles, device: &B::Device) -> Result<Self> {
        // Only the tensors the network uses are decoded (not torchvision's classifier), but
        // every name is kept for error messages.
        let wanted: std::collections::HashSet<String> = files
            .net
            .backbone_weights()
            .into_iter()
            .chain(files.net.linear_weights())
            .flat_map(|w| [w.name, w.lpips_name])
            .collect();
        let keep = |name: &str| wanted.contains(name);
        let backbone = WeightFile::read(&files.backbone, &keep)?;
        let linear = if files.linear == files.backbone {
            backbone.clone()
        } else {
            WeightFile::read(&files.linear, &keep)?
        };
        Self::from_files(files.net, &backbone, &linear, device)
    }

    fn from_files(
        net: LpipsNet,
        backbone: &WeightFile,
        linear: &WeightFile,
        device: &B::Device,
    ) -> Result<Self> {
        let tensor = |file: &WeightFile, spec: &WeightSpec| -> Result<TensorData> {
            let t = file.get(&[spec.name.clone(), spec.lpips_name.clone()], &spec.shape)?;
            Ok(TensorData::new(t.data.clone(), t.shape.clone()))
        };
        let mut specs = net.backbone_weights().into_iter();
        let mut slices = Vec::with_capacity(5);
        for slice in net.slices() {
            let mut convs = Vec::with_capacity(slice.convs.len());
            for c in slice.convs {
                let (Some(w), Some(b)) = (specs.next(), specs.next()) else {
                    unreachable!("backbone_weights lists a weight and a bias per convolution")
                };
                convs.push(Conv {
                    weight: Tensor::from_data(tensor(backbone, &w)?, device),
                    bias: Tensor::from_data(tensor(backbone, &b)?, device),
                    options: ConvOptions::new([c.stride; 2], [c.padding; 2], [1, 1], 1),
                });
            }
            slices.push(Slice {
                pool: slice.pool,
                convs,
            });
        }
        let linear = net
            .linear_weights()
            .iter()
            .map(|spec| Ok(Tensor::from_data(tensor(linear, spec)?, device)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            net,
            slices,
            linear,
            device: device.clone(),
        })
    }

    /// The backbone.
    pub fn net(&self) -> LpipsNet {
        self.net
    }

    /// The five layer outputs (after ReLU) for `x` of shape `[N, 3, H, W]`, already through
    /// the scaling layer.
    fn features(&self, mut x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut out = Vec::with_capacity(5);
        for slice in &self.slices {
            if let Some((k, s)) = slice.pool {
                x = max_pool2d(x, [k, k], [s, s], [0, 0], [1, 1], false);
            }
            for c in &slice.convs {
                x = burn::tensor::activation::relu(conv2d(
                    x,
                    c.weight.clone(),
                    Some(c.bias.clone()),
                    c.options.clone(),
                ));
            }
            out.push(x.clone());
        }
        out
    }

    fn scale(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let shift = Tensor::<B, 1>::from_floats(SHIFT, &self.device).reshape([1, 3, 1, 1]);
        let scale = Tensor::<B, 1>::from_floats(SCALE, &self.device).reshape([1, 3, 1, 1]);
        x.mul_scalar(2.0).sub_scalar(1.0).sub(shift).div(scale)
    }

    /// Per-layer distances `[N, 5]` between `a` and `b` (`[N, 3, H, W]`, values in `[0, 1]`);
    /// LPIPS is the sum over the last axis.
    ///
    /// # Errors
    /// [`EvalError::InvalidShape`] if the shapes differ, the channel count is not 3, or a side
    /// is below [`LpipsNet::min_side`].
    pub fn layer_distances(&self, a: Tensor<B, 4>, b: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        let dims = a.dims();
        if dims != b.dims() || dims[1] != 3 {
            return Err(EvalError::InvalidShape(format!(
                "LPIPS needs two [N, 3, H, W] tensors of the same shape, got {dims:?} and {:?}",
                b.dims()
            )));
        }
        let min = self.net.min_side();
        if dims[2] < min || dims[3] < min {
            return Err(EvalError::InvalidShape(format!(
                "LPIPS ({}): images of {}x{} (width x height) are below the backbone's \
                 minimum side of {min} pixels",
                self.net, dims[3], dims[2]
            )));
        }
        let n = dims[0];
        let batch = Tensor::cat(vec![a, b], 0);
        let feats = self.features(self.scale(batch));
        let layers = feats
            .into_iter()
            .zip(&self.linear)
            .map(|(f, w)| {
                let norm = f
                    .clone()
                    .powi_scalar(2)
                    .sum_dim(1)
                    .sqrt()
                    .add_scalar(NORM_EPS);
                let f = f.div(norm);
                let [_, c, h, w_] = f.dims();
                let fa = f.clone().narrow(0, 0, n);
                let fb = f.narrow(0, n, n);
                let d = fa.sub(fb).powi_scalar(2).mul(w.clone()).sum_dim(1);
                debug_assert_eq!(c, w.dims()[1]);
                d.reshape([n, h * w_]).mean_dim(1)
            })
            .collect::<Vec<_>>();
        Ok(Tensor::cat(layers, 1))
    }

    /// LPIPS per pair, `[N]`, for `a` and `b` of shape `[N, 3, H, W]` in `[0, 1]`.
    ///
    /// # Errors
    /// As [`Lpips::layer_distances`].
    pub fn forward(&self, a: Tensor<B, 4>, b: Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        let d = self.layer_distances(a, b)?;
        let n = d.dims()[0];
        Ok(d.sum_dim(1).reshape([n]))
    }

    /// The image as a `[1, 3, H, W]` tensor with `crop_border` pixels removed from each edge.
    fn image_tensor(&self, img: &MetricImage, crop_border: usize) -> Result<Tensor<B, 4>> {
        let (w, h) = (img.width(), img.height());
        if 2 * crop_border >= w || 2 * crop_border >= h {
            return Err(EvalError::InvalidShape(format!(
                "LPIPS: a border crop of {crop_border} leaves nothing of a {w}x{h} image"
            )));
        }
        let t = Tensor::<B, 3>::from_data(
            TensorData::new(img.data().to_vec(), [3, h, w]),
            &self.device,
        )
        .slice([
            0..3,
            crop_border..h - crop_border,
            crop_border..w - crop_border,
        ]);
        Ok(t.unsqueeze())
    }

    /// Per-layer distances between two images (`[3, H, W]` in `[0, 1]`) after removing
    /// `crop_border` pixels from every edge.
    ///
    /// # Errors
    /// [`EvalError::SizeMismatch`] if the sizes differ, [`EvalError::InvalidShape`] if the
    /// cropped image is below [`LpipsNet::min_side`].
    pub fn image_layer_distances(
        &self,
        sr: &MetricImage,
        gt: &MetricImage,
        crop_border: usize,
    ) -> Result<[f64; 5]> {
        if (sr.width(), sr.height()) != (gt.width(), gt.height()) {
            return Err(EvalError::SizeMismatch {
                what: "LPIPS: image vs reference".into(),
                width: sr.width(),
                height: sr.height(),
                ref_width: gt.width(),
                ref_height: gt.height(),
            });
        }
        let a = self.image_tensor(sr, crop_border)?;
        let b = self.image_tensor(gt, crop_border)?;
        let d = self.layer_distances(a, b)?;
        let v: Vec<f32> = d.into_data().convert::<f32>().into_vec().map_err(|e| {
            EvalError::InvalidShape(format!("LPIPS: cannot read the distances back: {e:?}"))
        })?;
        Ok(std::array::from_fn(|i| v[i] as f64))
    }

    /// LPIPS between two images (`[3, H, W]` in `[0, 1]`) after removing `crop_border` pixels
    /// from every edge; lower is more similar.
    ///
    /// # Errors
    /// As [`Lpips::image_layer_distances`].
    pub fn distance(&self, sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
        Ok(self
            .image_layer_distances(sr, gt, crop_border)?
            .iter()
            .sum())
    }
}

impl<B: Backend> crate::compare::PairMetric for Lpips<B> {
    fn metric(&self) -> Metric {
        Metric::Lpips
    }

    fn score(&self, sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
        self.distance(sr, gt, crop_border)
    }
}
