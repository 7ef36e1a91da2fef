//! The networks of `framer-iqa` as the models of [`crate::compare::MetricModels`] (feature
//! `iqa`): LPIPS as a [`PairMetric`], MUSIQ and MANIQA as [`ImageMetric`]s.

use burn::tensor::backend::Backend;
use framer_iqa::{Lpips, Maniqa, Musiq};
use framer_metrics::{Metric, MetricImage};

use crate::compare::{ImageMetric, PairMetric};
use crate::error::Result;

impl<B: Backend> PairMetric for Lpips<B> {
    fn metric(&self) -> Metric {
        Metric::Lpips
    }

    fn score(&self, sr: &MetricImage, gt: &MetricImage, crop_border: usize) -> Result<f64> {
        Ok(self.distance(sr, gt, crop_border)?)
    }
}

impl<B: Backend> ImageMetric for Musiq<B> {
    fn metric(&self) -> Metric {
        Metric::Musiq
    }

    fn score(&self, image: &MetricImage) -> Result<f64> {
        Ok(self.score_image(image)?)
    }
}

impl<B: Backend> ImageMetric for Maniqa<B> {
    fn metric(&self) -> Metric {
        Metric::Maniqa
    }

    fn score(&self, image: &MetricImage) -> Result<f64> {
        Ok(self.score_image(image)?)
    }
}
