//! The MANIQA network: ViT features of every crop, two stages of TABlock and Swin, and the
//! weight-averaged patch score.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer_metrics::MetricImage;

use super::crops::uniform_crops;
use super::layers::{Head, Linear, TokenAttention};
use super::state_dict::{Source, required_tensors};
use super::swin::SwinStage;
use super::vit::Vit;
use super::{CROP_SIZE, ManiqaConfig, WEIGHT_EPS};
use crate::error::{IqaError, Result};
use crate::weight_file::{HostTensor, STATE_DICT_PREFIXES, WeightFile};

/// MANIQA with loaded weights, on backend `B`.
#[doc(alias = "multi-dimension attention network for image quality assessment")]
pub struct Maniqa<B: Backend> {
    config: ManiqaConfig,
    vit: Vit<B>,
    tab1: Vec<TokenAttention<B>>,
    conv1: Linear<B>,
    swin1: SwinStage<B>,
    tab2: Vec<TokenAttention<B>>,
    conv2: Linear<B>,
    swin2: SwinStage<B>,
    fc_score: Head<B>,
    fc_weight: Head<B>,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for Maniqa<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maniqa")
            .field("config", &self.config)
            .finish()
    }
}

impl<B: Backend> Maniqa<B> {
    /// Loads a checkpoint (see the module documentation for the files and name forms). Only
    /// the tensors the network runs are decoded.
    ///
    /// # Errors
    /// [`IqaError::InvalidArgument`] for an inconsistent `config`, [`IqaError::Read`] for an
    /// unreadable file, [`IqaError::WeightFile`] naming the file and the missing tensor, the
    /// wrong shape (found vs expected) or what makes the file unreadable.
    pub fn load(path: &Path, config: ManiqaConfig, device: &B::Device) -> Result<Self> {
        config.validate()?;
        let wanted: HashSet<String> = required_tensors(&config)
            .into_iter()
            .flat_map(|(n, _)| STATE_DICT_PREFIXES.map(|p| format!("{p}{n}")))
            .collect();
        let file = WeightFile::read(path, &|name: &str| wanted.contains(name))?;
        Self::build(
            config,
            &Source::new(path, &file.tensors, &file.names),
            device,
        )
    }

    /// Builds the network from named tensors (names as in [`expected_tensors`], optionally
    /// with a `module.` or `params.` prefix); extra tensors are ignored.
    ///
    /// # Errors
    /// [`IqaError::InvalidArgument`] for an inconsistent `config`, [`IqaError::WeightFile`]
    /// (with the path `<tensors>`) naming a missing tensor or a wrong shape.
    pub fn from_tensors(
        config: ManiqaConfig,
        tensors: &BTreeMap<String, HostTensor>,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let names: Vec<String> = tensors.keys().cloned().collect();
        let path = PathBuf::from("<tensors>");
        Self::build(config, &Source::new(&path, tensors, &names), device)
    }

    fn build(config: ManiqaConfig, src: &Source<'_>, device: &B::Device) -> Result<Self> {
        let e = config.embed_dim;
        let g = config.grid();
        let tokens = g * g;
        let vit = Vit::load(src, &config, device)?;
        let tabs = |stage: usize| -> Result<Vec<TokenAttention<B>>> {
            (0..config.num_tab)
                .map(|i| TokenAttention::load(src, &format!("tablock{stage}.{i}"), tokens, device))
                .collect()
        };
        let tab1 = tabs(1)?;
        let conv1 = src.pointwise("conv1", 4 * e, e, device)?;
        let swin1 = SwinStage::load(src, "swintransformer1", &config, e, device)?;
        let tab2 = tabs(2)?;
        let conv2 = src.pointwise("conv2", e, e / 2, device)?;
        let swin2 = SwinStage::load(src, "swintransformer2", &config, e / 2, device)?;
        let fc_score = Head::load(src, "fc_score", e / 2, device)?;
        let fc_weight = Head::load(src, "fc_weight", e / 2, device)?;
        Ok(Self {
            config,
            vit,
            tab1,
            conv1,
            swin1,
            tab2,
            conv2,
            swin2,
            fc_score,
            fc_weight,
            device: device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManiqaConfig {
        &self.config
    }

    /// Per-patch scores and weights for crops `[N, 3, 224, 224]` (already normalised, as
    /// [`uniform_crops`] makes them): two `[N, L]` tensors with `L = (224 / patch_size)²`
    /// patches per crop, the scores after the ReLU and the weights after the sigmoid.
    ///
    /// # Errors
    /// [`IqaError::InvalidShape`] if `crops` is not `[N, 3, 224, 224]` with `N ≥ 1`.
    pub fn patch_scores(&self, crops: Tensor<B, 4>) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
        let [n, c, h, w] = crops.dims();
        if n == 0 || c != 3 || h != CROP_SIZE || w != CROP_SIZE {
            return Err(IqaError::InvalidShape(format!(
                "MANIQA needs crops of shape [N, 3, {CROP_SIZE}, {CROP_SIZE}] with N ≥ 1, got \
                 {:?}",
                crops.dims()
            )));
        }
        let e = self.config.embed_dim;
        let l = self.config.grid() * self.config.grid();
        // [N, L, 4E] → [N, 4E, L]
        let mut x = self.vit.features(crops).swap_dims(1, 2);
        for t in &self.tab1 {
            x = t.forward(x);
        }
        // 1×1 convolution over channels, tokens-major: [N, L, E]
        let x = self.conv1.forward(x.swap_dims(1, 2));
        let x = self.swin1.forward(x, self.config.scale);
        let mut x = x.swap_dims(1, 2);
        for t in &self.tab2 {
            x = t.forward(x);
        }
        let x = self.conv2.forward(x.swap_dims(1, 2));
        let x = self.swin2.forward(x, self.config.scale);
        debug_assert_eq!(x.dims(), [n, l, e / 2]);
        let score = relu(self.fc_score.forward(x.clone())).reshape([n, l]);
        let weight = sigmoid(self.fc_weight.forward(x)).reshape([n, l]);
        Ok((score, weight))
    }

    /// The MANIQA score of crops `[N, 3, 224, 224]` of one image: `Σ w·s / (Σ w + 1e-8)` over
    /// the patches of all crops (run `crop_batch` crops at a time).
    ///
    /// # Errors
    /// As [`Maniqa::patch_scores`]; [`IqaError::InvalidShape`] if the result is not finite.
    pub fn score_crops(&self, crops: Tensor<B, 4>) -> Result<f64> {
        let n = crops.dims()[0];
        if n == 0 {
            // reports the shape error
            self.patch_scores(crops)?;
            return Ok(0.0);
        }
        let mut num = 0.0f64;
        let mut den = 0.0f64;
        for start in (0..n).step_by(self.config.crop_batch) {
            let len = self.config.crop_batch.min(n - start);
            let (s, w) = self.patch_scores(crops.clone().narrow(0, start, len))?;
            let s = to_host(s)?;
            let w = to_host(w)?;
            for (s, w) in s.iter().zip(&w) {
                num += f64::from(*s) * f64::from(*w);
                den += f64::from(*w);
            }
        }
        let score = num / (den + WEIGHT_EPS);
        if !score.is_finite() {
            return Err(IqaError::InvalidShape(format!(
                "MANIQA: the score is not finite ({score}); check the checkpoint"
            )));
        }
        Ok(score)
    }

    /// The MANIQA score of an image `[3, H, W]` in `[0, 1]`, any size (see [`uniform_crops`]);
    /// about 0 to 1, higher is better.
    ///
    /// # Errors
    /// As [`Maniqa::score_crops`].
    pub fn score_image(&self, image: &MetricImage) -> Result<f64> {
        let crops = uniform_crops(image, self.config.test_sample);
        let crops =
            Tensor::<B, 4>::from_data(TensorData::new(crops.data, crops.shape), &self.device);
        self.score_crops(crops)
    }
}

pub(super) fn to_host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| IqaError::InvalidShape(format!("MANIQA: cannot read values back: {e:?}")))
}
