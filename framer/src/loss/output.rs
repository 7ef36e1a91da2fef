//! What one evaluation of the FRAMER loss returns.

use burn::tensor::{Tensor, backend::Backend};

/// The detached per-layer, per-sample terms of one evaluation, for logging and analysis.
///
/// # Shapes
/// `layer` is `[S]`; every other field is `[S, B]` (student layer, sample).
#[derive(Debug, Clone)]
pub struct LayerTerms<B: Backend> {
    /// Each layer's loss, `mean_b[fam_low·faw_low·intra + fam_high·faw_high·inter]`, before its
    /// student weight.
    pub layer: Tensor<B, 1>,
    /// IntraCL per sample (low band).
    pub intra: Tensor<B, 2>,
    /// InterCL per sample (high band).
    pub inter: Tensor<B, 2>,
    /// FAM gate of the low band (ReLU'd cosine to the teacher), or 1 when FAM is off.
    pub fam_low: Tensor<B, 2>,
    /// FAM gate of the high band, or 1 when FAM is off.
    pub fam_high: Tensor<B, 2>,
    /// FAW weight of the low band, or 1 when FAW is off.
    pub faw_low: Tensor<B, 2>,
    /// FAW weight of the high band, or 1 when FAW is off.
    pub faw_high: Tensor<B, 2>,
}

/// The result of [`crate::FramerLoss::forward`].
#[derive(Debug, Clone)]
pub struct FramerOutput<B: Backend> {
    /// The distillation loss `[1]` (mean over student layers, each times its weight; λ not
    /// applied). Differentiable with
    /// respect to the students.
    pub loss: Tensor<B, 1>,
    /// Detached per-layer terms.
    pub terms: LayerTerms<B>,
    /// The low-band mask, `[B, C, H, W]`.
    pub(crate) low_mask: Tensor<B, 4>,
    /// The students' weights in the loss, when not all 1 (`[S]`).
    pub(crate) student_weights: Option<Vec<f64>>,
}

impl<B: Backend> FramerOutput<B> {
    /// The low-band mask that was used, `[B, C, H, W]` in the plain (unshifted) FFT layout; the
    /// high band is `1 − low`.
    pub fn low_mask(&self) -> Tensor<B, 4> {
        self.low_mask.clone()
    }

    /// Copies the loss and every term to the host (this synchronises with the device).
    pub fn diagnostics(&self) -> FramerDiagnostics {
        let host = |t: Tensor<B, 2>| -> Vec<Vec<f32>> {
            let [s, b] = t.dims();
            let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().unwrap_or_default();
            (0..s).map(|i| v[i * b..(i + 1) * b].to_vec()).collect()
        };
        let t = &self.terms;
        let layer: Vec<f32> =
            t.layer.clone().into_data().convert::<f32>().to_vec().unwrap_or_default();
        let (intra, inter) = (host(t.intra.clone()), host(t.inter.clone()));
        let (fam_low, fam_high) = (host(t.fam_low.clone()), host(t.fam_high.clone()));
        let (faw_low, faw_high) = (host(t.faw_low.clone()), host(t.faw_high.clone()));
        let layers: Vec<LayerDiagnostics> = (0..layer.len())
            .map(|i| LayerDiagnostics {
                loss: layer[i],
                intra: intra[i].clone(),
                inter: inter[i].clone(),
                fam_low: fam_low[i].clone(),
                fam_high: fam_high[i].clone(),
                faw_low: faw_low[i].clone(),
                faw_high: faw_high[i].clone(),
            })
            .collect();
        let mean_product = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            let n = a.iter().map(Vec::len).sum::<usize>().max(1) as f64;
            let sum: f64 = a
                .iter()
                .flatten()
                .zip(b.iter().flatten())
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum();
            (sum / n) as f32
        };
        FramerDiagnostics {
            loss: match &self.student_weights {
                Some(w) => layer.iter().zip(w).map(|(&v, w)| v as f64 * w).sum::<f64>(),
                None => layer.iter().map(|&v| v as f64).sum::<f64>(),
            } as f32
                / layer.len().max(1) as f32,
            avg_weight_low: mean_product(&fam_low, &faw_low),
            avg_weight_high: mean_product(&fam_high, &faw_high),
            layers,
        }
    }
}

/// Host copies of one evaluation's terms, for logs and plots.
#[derive(Debug, Clone, PartialEq)]
pub struct FramerDiagnostics {
    /// The loss: the mean of the layer losses, weighted by the students' weights when they are
    /// not all 1 (`Σ wᵢ·layerᵢ / S`).
    pub loss: f32,
    /// `mean(fam_low · faw_low)` over layers and samples (the reference's `avg_weight_low`).
    pub avg_weight_low: f32,
    /// `mean(fam_high · faw_high)` over layers and samples.
    pub avg_weight_high: f32,
    /// One entry per student layer.
    pub layers: Vec<LayerDiagnostics>,
}

/// One student layer's terms; every vector has one entry per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDiagnostics {
    /// The layer's loss (batch mean of the weighted terms).
    pub loss: f32,
    /// IntraCL per sample.
    pub intra: Vec<f32>,
    /// InterCL per sample.
    pub inter: Vec<f32>,
    /// FAM gate, low band.
    pub fam_low: Vec<f32>,
    /// FAM gate, high band.
    pub fam_high: Vec<f32>,
    /// FAW weight, low band.
    pub faw_low: Vec<f32>,
    /// FAW weight, high band.
    pub faw_high: Vec<f32>,
}
