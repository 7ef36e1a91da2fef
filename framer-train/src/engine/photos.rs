//! `framer-data`'s degraded photo crops as a [`PairSource`].

use framer_data::{Degrader, TrainPairs, TrainPairsOptions, upsample_bicubic};

use super::EngineError;
use super::data::{PairBatch, PairSource};
use crate::schedule::Experiment;

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
    /// The file stem of each photo, in index order (the names of their `[prompts]` files).
    stems: Vec<String>,
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
            stems: pairs.names().into_iter().map(photo_stem).collect(),
            pairs,
            seed: experiment.train.seed,
            scale: experiment.data.scale,
        })
    }
}

impl DegradedPhotos {
    /// The number of training photos (one epoch).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The file stem of photo `index` (any item index: it wraps around the photos), the name of its
    /// `[prompts]` file.
    pub fn photo_stem(&self, index: usize) -> String {
        self.stems[index % self.stems.len()].clone()
    }

    /// The dataset item of draw `n`: `epoch·P + perm_epoch[n mod P]`, which `TrainPairs` maps to
    /// photo `perm_epoch[n mod P]` with a random state unique to the draw.
    pub(crate) fn item(&self, n: u64) -> usize {
        let photos = self.pairs.len();
        let (epoch, index) = visit(self.seed, n, photos);
        epoch as usize * photos + index
    }
}

/// The file stem of a photo name (a path or an embedded name): `photos/0801.png` → `0801`.
pub fn photo_stem(name: &str) -> String {
    let path = std::path::Path::new(name);
    path.file_stem().map_or_else(|| name.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Which of `len` items draw `n` visits: `(epoch, index)` with `epoch = n / len` and `index` at
/// slot `n mod len` of [`epoch_order`]`(seed, epoch, len)`.
pub fn visit(seed: u64, n: u64, len: usize) -> (u64, usize) {
    let (epoch, slot) = (n / len as u64, (n % len as u64) as usize);
    (epoch, epoch_order(seed, epoch, len)[slot])
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
        let mut photos = Vec::with_capacity(batch_size);
        for i in 0..batch_size {
            let index = self.item(step * batch_size as u64 + i as u64);
            photos.push(self.photo_stem(index));
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
            photos,
        })
    }

    fn photos(&self) -> Vec<String> {
        self.stems.clone()
    }
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
