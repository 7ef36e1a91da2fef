//! The LPIPS network: the backbone's five ReLU outputs, unit-normalised, weighted by the linear
//! layers and averaged over space.

use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use framer_metrics::MetricImage;

use super::{LpipsFiles, LpipsNet, NORM_EPS, SCALE, SHIFT, WeightSpec};
use crate::error::{IqaError, Result};
use crate::weight_file::WeightFile;

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
    /// [`IqaError::Read`] for an unreadable file, [`IqaError::WeightFile`] naming the file and
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
    /// [`IqaError::InvalidShape`] if the shapes differ, the channel count is not 3, or a side
    /// is below [`LpipsNet::min_side`].
    pub fn layer_distances(&self, a: Tensor<B, 4>, b: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        let dims = a.dims();
        if dims != b.dims() || dims[1] != 3 {
            return Err(IqaError::InvalidShape(format!(
                "LPIPS needs two [N, 3, H, W] tensors of the same shape, got {dims:?} and {:?}",
                b.dims()
            )));
        }
        let min = self.net.min_side();
        if dims[2] < min || dims[3] < min {
            return Err(IqaError::InvalidShape(format!(
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
            return Err(IqaError::InvalidShape(format!(
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
    /// [`IqaError::SizeMismatch`] if the sizes differ, [`IqaError::InvalidShape`] if the
    /// cropped image is below [`LpipsNet::min_side`].
    pub fn image_layer_distances(
        &self,
        sr: &MetricImage,
        gt: &MetricImage,
        crop_border: usize,
    ) -> Result<[f64; 5]> {
        if (sr.width(), sr.height()) != (gt.width(), gt.height()) {
            return Err(IqaError::SizeMismatch {
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
            IqaError::InvalidShape(format!("LPIPS: cannot read the distances back: {e:?}"))
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
