//! The bridge to `framer-backbones`: any [`SrBackbone`] with its student heads is a [`Denoiser`],
//! and `framer-data`'s degraded photo crops are a [`PairSource`].

use std::marker::PhantomData;

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Tensor, backend::Backend};
use framer_backbones::{BackboneConfig, DiT, SrBackbone, UNet};
use framer_data::{Degrader, TrainPairs, TrainPairsOptions, upsample_bicubic};

use super::EngineError;
use super::data::{PairBatch, PairSource};
use super::model::Denoiser;
use crate::schedule::{BackboneKind, Experiment};

/// A backbone and its training-only student heads, trained together.
#[derive(Module, Debug)]
pub struct WithHeads<B: Backend, M: Module<B>, H: Module<B>> {
    /// The denoiser.
    pub backbone: M,
    /// The students' read-out heads.
    pub heads: H,
    _backend: PhantomData<B>,
}

impl<B, M, H> WithHeads<B, M, H>
where
    B: Backend,
    M: SrBackbone<B, Heads = H> + ModuleDisplay,
    H: Module<B> + ModuleDisplay,
{
    /// `backbone` with freshly initialised heads.
    pub fn new(backbone: M, device: &B::Device) -> Self {
        let heads = backbone.init_student_heads(device);
        Self {
            backbone,
            heads,
            _backend: PhantomData,
        }
    }
}

impl<B, M, H> Denoiser<B> for WithHeads<B, M, H>
where
    B: Backend,
    M: SrBackbone<B, Heads = H> + ModuleDisplay,
    H: Module<B> + ModuleDisplay,
{
    fn num_taps(&self) -> usize {
        self.backbone.student_names().len()
    }

    fn predict(
        &self,
        x_t: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        condition: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        self.backbone.predict(x_t, timesteps, condition)
    }

    fn predict_with_students(
        &self,
        x_t: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        condition: Tensor<B, 4>,
        students: &[usize],
    ) -> Result<(Tensor<B, 4>, Vec<Tensor<B, 4>>), EngineError> {
        let (prediction, all) = self
            .backbone
            .predict_with_students(&self.heads, x_t, timesteps, condition)
            .map_err(|e| EngineError::Model(e.to_string()))?;
        let n = all.len();
        if students.len() == n && students.iter().enumerate().all(|(i, &s)| i == s) {
            return Ok((prediction, all));
        }
        let mut slots: Vec<Option<Tensor<B, 4>>> = all.into_iter().map(Some).collect();
        let picked: Vec<_> = students
            .iter()
            .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
            .collect();
        if picked.len() != students.len() {
            return Err(EngineError::Model(format!(
                "the students {students:?} are not distinct taps of the {n} the backbone produced"
            )));
        }
        Ok((prediction, picked))
    }
}

/// Real photo crops degraded by the Real-ESRGAN pipeline of `framer-data`, mapped to `[-1, 1]`;
/// the condition is the LR image upsampled bicubically to the HR size.
///
/// Slot `i` of step `step`'s batch is draw `n = step·batch + i`: epoch `n / P` visits the `P`
/// photos in an order shuffled by `(seed, epoch)`, and the crop, flips and degradation of the draw
/// come from `(seed, n)`. The data order, crops and degradations are therefore functions of
/// `(seed, step)`, and a resumed run sees the same data as an uninterrupted one.
#[derive(Debug, Clone)]
pub struct DegradedPhotos {
    pairs: TrainPairs,
    seed: u64,
    scale: usize,
}

impl DegradedPhotos {
    /// The source a schedule describes: `[data] hr_dir` (or the embedded photos), `crop_size`,
    /// and `[degradation]`.
    pub fn from_experiment(experiment: &Experiment) -> Result<Self, EngineError> {
        let data_err = |e: framer_data::DataError| EngineError::Data(e.to_string());
        let degrader = Degrader::new(experiment.degradation.clone()).map_err(data_err)?;
        let options = TrainPairsOptions {
            crop_size: experiment.data.crop_size,
            ..Default::default()
        };
        let pairs = match &experiment.data.hr_dir {
            Some(dir) => TrainPairs::from_folder(dir, degrader, options),
            None => TrainPairs::embedded(degrader, options),
        }
        .map_err(data_err)?;
        Ok(Self {
            pairs,
            seed: experiment.train.seed,
            scale: experiment.data.scale,
        })
    }
}

impl DegradedPhotos {
    /// The dataset item of draw `n`: `epoch·P + perm_epoch[n mod P]`, which `TrainPairs` maps to
    /// photo `perm_epoch[n mod P]` with a random state unique to the draw.
    fn item(&self, n: u64) -> usize {
        let photos = self.pairs.len() as u64;
        let (epoch, slot) = (n / photos, n % photos);
        let order = epoch_order(self.seed, epoch, photos as usize);
        (epoch * photos) as usize + order[slot as usize]
    }
}

/// The visiting order of `len` photos in `epoch`: a Fisher–Yates shuffle seeded by `(seed, epoch)`.
pub fn epoch_order(seed: u64, epoch: u64, len: usize) -> Vec<usize> {
    use rand::Rng;
    let mut rng = super::rng::step_rng(seed, epoch, super::rng::Stream::Data);
    let mut order: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

impl PairSource for DegradedPhotos {
    fn batch(&self, step: u64, batch_size: usize) -> Result<PairBatch, EngineError> {
        let data_err = |e: framer_data::DataError| EngineError::Data(e.to_string());
        let mut hr = Vec::new();
        let mut lr = Vec::new();
        let mut shape = [batch_size, 3, 0, 0];
        for i in 0..batch_size {
            let index = self.item(step * batch_size as u64 + i as u64);
            let pair = self.pairs.get(index, self.seed).map_err(data_err)?;
            let up = upsample_bicubic(&pair.lr, self.scale).map_err(data_err)?;
            let [_, h, w] = pair.hr.shape();
            if up.shape() != pair.hr.shape() {
                return Err(EngineError::Data(format!(
                    "item {index}: the upsampled LR image is {:?}, the HR crop {:?}",
                    up.shape(),
                    pair.hr.shape()
                )));
            }
            shape = [batch_size, 3, h, w];
            hr.extend(pair.hr.data().iter().map(|v| v * 2.0 - 1.0));
            lr.extend(up.data().iter().map(|v| (v * 2.0 - 1.0).clamp(-1.0, 1.0)));
        }
        Ok(PairBatch {
            hr,
            lr_upsampled: lr,
            shape,
        })
    }
}

/// A U-Net with its student heads.
pub type UNetWithHeads<B> = WithHeads<B, UNet<B>, <UNet<B> as SrBackbone<B>>::Heads>;
/// A DiT with its student heads.
pub type DiTWithHeads<B> = WithHeads<B, DiT<B>, <DiT<B> as SrBackbone<B>>::Heads>;

/// The backbone that an experiment's `[model]` names, with fresh weights and student heads.
#[derive(Debug)]
pub enum ExperimentModel<B: Backend> {
    /// `backbone = "unet"`.
    UNet(UNetWithHeads<B>),
    /// `backbone = "dit"`.
    DiT(DiTWithHeads<B>),
}

/// Builds the backbone and preset of `experiment`'s `[model]` on `device` (fresh weights and
/// student heads), after checking that it trains on the schedule's RGB crops ([`check_fits`]).
///
/// # Errors
/// [`EngineError::Model`] for an unknown preset or a backbone that does not fit the schedule.
pub fn build_model<B: Backend>(
    experiment: &Experiment,
    device: &B::Device,
) -> Result<ExperimentModel<B>, EngineError> {
    let model_err = |e: framer_backbones::BackboneError| EngineError::Model(e.to_string());
    let kind = match experiment.model.backbone {
        BackboneKind::Unet => framer_backbones::BackboneKind::UNet,
        BackboneKind::Dit => framer_backbones::BackboneKind::DiT,
    };
    Ok(
        match BackboneConfig::preset_of(kind, &experiment.model.preset).map_err(model_err)? {
            BackboneConfig::UNet(c) => {
                let model = c.init::<B>(device).map_err(model_err)?;
                check_fits(&model, experiment)?;
                ExperimentModel::UNet(WithHeads::new(model, device))
            }
            BackboneConfig::DiT(c) => {
                let model = c.init::<B>(device).map_err(model_err)?;
                check_fits(&model, experiment)?;
                ExperimentModel::DiT(WithHeads::new(model, device))
            }
        },
    )
}

/// Checks that a backbone trains on this schedule's RGB pixel crops.
pub fn check_fits<B: Backend, M: SrBackbone<B>>(
    model: &M,
    experiment: &Experiment,
) -> Result<(), EngineError> {
    let crop = experiment.data.crop_size;
    let bad = |m: String| Err(EngineError::Model(m));
    if model.in_channels() != 3 || model.lr_channels() != 3 || model.out_channels() != 3 {
        return bad(format!(
            "preset \"{}\" works on {}-channel inputs; training here is on RGB pixels (3 channels)",
            experiment.model.preset,
            model.in_channels()
        ));
    }
    if !crop.is_multiple_of(model.spatial_multiple()) {
        return bad(format!(
            "`data.crop_size` {crop} is not a multiple of {}, which preset \"{}\" needs",
            model.spatial_multiple(),
            experiment.model.preset
        ));
    }
    if let Some(max) = model.max_spatial_size()
        && crop > max
    {
        return bad(format!(
            "`data.crop_size` {crop} exceeds the largest size preset \"{}\" accepts ({max})",
            experiment.model.preset
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_visit_every_photo_once_in_a_seeded_order() {
        let a = epoch_order(3, 0, 10);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(3, 0, 10));
        assert_ne!(a, epoch_order(3, 1, 10), "each epoch is reshuffled");
        assert_ne!(a, epoch_order(4, 0, 10));
        assert_eq!(epoch_order(0, 0, 1), [0]);
    }
}
