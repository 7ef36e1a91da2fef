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

use crate::error::{IqaError, Result};

mod model;

pub use model::Lpips;

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
    /// [`IqaError::InvalidArgument`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(Self::Alex),
            "vgg" | "vgg16" => Ok(Self::Vgg),
            _ => Err(IqaError::InvalidArgument(format!(
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
    /// [`IqaError::Read`] if `dir` cannot be listed, [`IqaError::InvalidArgument`] naming
    /// the folder and the expected names when a file is missing or ambiguous.
    pub fn find_in(dir: &Path, net: LpipsNet) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|source| IqaError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for e in entries {
            let path = e
                .map_err(|source| IqaError::Read {
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
                [] => Err(IqaError::InvalidArgument(format!(
                    "LPIPS ({net}): no {what} file in {} (expected {expected}, extension \
                     .pth or .safetensors)",
                    dir.display()
                ))),
                many => Err(IqaError::InvalidArgument(format!(
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
