//! Diffusion training objectives: rectified flow with logit-normal σ sampling (SD3, the FRAMER
//! reference), DDPM ε- / v-prediction, and a one-step host with a residual target (OSEDiff /
//! PiSA-SR style).

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::schedule::{BetaSchedule, ObjectiveConfig, ObjectiveKind, SigmaSampling};

/// A built objective.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Rectified flow: `x_t = (1 − σ)·x0 + σ·ε`, the network predicts `v = ε − x0`.
    RectifiedFlow {
        /// σ sampling.
        sampling: SigmaSampling,
        /// Logit-normal mean.
        logit_mean: f64,
        /// Logit-normal standard deviation.
        logit_std: f64,
    },
    /// DDPM: `x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε`.
    Ddpm {
        /// `true`: v-prediction; `false`: ε-prediction.
        v_prediction: bool,
        /// ᾱ_t for `t = 0 .. T`.
        alphas_cumprod: Vec<f64>,
    },
    /// One-step host: the network input is the upsampled LR image itself at the fixed level
    /// `sigma` (no noise), the prediction `v̂` gives `x̂0 = x_t − σ·v̂` (so with σ = 1 the network
    /// predicts the residual `LR↑ − HR`), regressed onto the HR image; sampled in one step.
    OneStep {
        /// The fixed level σ, in (0, 1].
        sigma: f64,
    },
}

/// The per-sample noise levels of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseLevels {
    /// What the network is conditioned on, in `[0, 1]`: σ (flow) or `t / T` (DDPM step `t` of
    /// `T`), the convention of `framer-backbones` (each model scales it by 1000 itself).
    pub timesteps: Vec<f32>,
    /// σ (flow, one-step) or ᾱ_t (DDPM) per sample.
    pub levels: Vec<f32>,
}

/// The ᾱ_t of a DDPM β schedule, `t = 0 .. steps`.
pub fn alphas_cumprod(
    schedule: BetaSchedule,
    beta_start: f64,
    beta_end: f64,
    steps: usize,
) -> Vec<f64> {
    let lerp = |a: f64, b: f64, i: usize| {
        if steps == 1 {
            a
        } else {
            a + (b - a) * i as f64 / (steps - 1) as f64
        }
    };
    let mut acc = 1.0;
    (0..steps)
        .map(|i| {
            let beta = match schedule {
                BetaSchedule::Linear => lerp(beta_start, beta_end, i),
                BetaSchedule::ScaledLinear => lerp(beta_start.sqrt(), beta_end.sqrt(), i).powi(2),
            };
            acc *= 1.0 - beta;
            acc
        })
        .collect()
}

impl Objective {
    /// Builds the objective of a schedule.
    pub fn new(config: &ObjectiveConfig) -> Self {
        match config.kind {
            ObjectiveKind::RectifiedFlow => Self::RectifiedFlow {
                sampling: config.sigma_sampling,
                logit_mean: config.logit_mean,
                logit_std: config.logit_std,
            },
            ObjectiveKind::OneStep => Self::OneStep {
                sigma: config.one_step_sigma,
            },
            kind => Self::Ddpm {
                v_prediction: kind == ObjectiveKind::VPrediction,
                alphas_cumprod: alphas_cumprod(
                    config.beta_schedule,
                    config.beta_start,
                    config.beta_end,
                    config.num_train_timesteps,
                ),
            },
        }
    }

    /// Draws the noise level of each of `batch` samples.
    pub fn draw_levels(&self, batch: usize, rng: &mut impl Rng) -> NoiseLevels {
        match self {
            Self::RectifiedFlow {
                sampling,
                logit_mean,
                logit_std,
            } => {
                let sigmas: Vec<f32> = (0..batch)
                    .map(|_| match sampling {
                        SigmaSampling::LogitNormal => {
                            let n: f64 = StandardNormal.sample(rng);
                            1.0 / (1.0 + (-(logit_mean + logit_std * n)).exp())
                        }
                        SigmaSampling::Uniform => rng.random::<f64>(),
                    } as f32)
                    .collect();
                NoiseLevels {
                    timesteps: sigmas.clone(),
                    levels: sigmas,
                }
            }
            Self::OneStep { sigma } => NoiseLevels {
                timesteps: vec![*sigma as f32; batch],
                levels: vec![*sigma as f32; batch],
            },
            Self::Ddpm { alphas_cumprod, .. } => {
                let ts: Vec<usize> = (0..batch)
                    .map(|_| rng.random_range(0..alphas_cumprod.len()))
                    .collect();
                NoiseLevels {
                    timesteps: ts
                        .iter()
                        .map(|&t| (t as f64 / alphas_cumprod.len() as f64) as f32)
                        .collect(),
                    levels: ts.iter().map(|&t| alphas_cumprod[t] as f32).collect(),
                }
            }
        }
    }

    /// The noisy input `x_t` and the regression target of the network. `condition` is the
    /// upsampled LR image: the one-step host's input (the diffusion objectives ignore it and
    /// `noise`'s role there).
    ///
    /// # Shapes
    /// `x0`, `noise`, `condition`: `[batch, channels, height, width]`; returns two tensors of
    /// that shape.
    pub fn noisy_and_target<B: Backend>(
        &self,
        x0: Tensor<B, 4>,
        noise: Tensor<B, 4>,
        condition: Tensor<B, 4>,
        levels: &NoiseLevels,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let device = x0.device();
        let per_sample = |v: Vec<f32>| -> Tensor<B, 4> {
            let n = v.len();
            Tensor::<B, 1>::from_data(TensorData::new(v, [n]), &device).reshape([n, 1, 1, 1])
        };
        match self {
            Self::RectifiedFlow { .. } => {
                let s = per_sample(levels.levels.clone());
                let one_minus = per_sample(levels.levels.iter().map(|s| 1.0 - s).collect());
                let x_t = x0.clone() * one_minus + noise.clone() * s;
                (x_t, x0)
            }
            Self::OneStep { .. } => (condition, x0),
            Self::Ddpm { v_prediction, .. } => {
                let a = per_sample(levels.levels.iter().map(|a| a.sqrt()).collect());
                let b = per_sample(levels.levels.iter().map(|a| (1.0 - a).sqrt()).collect());
                let x_t = x0.clone() * a.clone() + noise.clone() * b.clone();
                let target = if *v_prediction {
                    noise * a - x0 * b
                } else {
                    noise
                };
                (x_t, target)
            }
        }
    }

    /// The base loss `[1]`.
    ///
    /// Rectified flow follows the reference (`precondition_outputs = 1`, uniform weighting): the
    /// prediction is turned into `x̂0 = x_t − σ·v̂` and regressed onto `x0` (`target`); the
    /// one-step host does the same at its fixed σ. DDPM regresses the raw prediction onto ε or v.
    /// All are means over every element.
    pub fn loss<B: Backend>(
        &self,
        prediction: Tensor<B, 4>,
        x_t: Tensor<B, 4>,
        target: Tensor<B, 4>,
        levels: &NoiseLevels,
    ) -> Tensor<B, 1> {
        let estimate = match self {
            Self::RectifiedFlow { .. } | Self::OneStep { .. } => {
                let n = levels.levels.len();
                let s = Tensor::<B, 1>::from_data(
                    TensorData::new(levels.levels.clone(), [n]),
                    &prediction.device(),
                )
                .reshape([n, 1, 1, 1]);
                x_t - prediction * s
            }
            Self::Ddpm { .. } => prediction,
        };
        (estimate - target).square().mean()
    }

    /// How FRAMER maps this objective's predictions to clean estimates, with the levels of
    /// `levels` (σ or ᾱ per sample) as a `[batch]` tensor on `device` (the one-step host through
    /// the rectified-flow form at its σ: `x̂0 = x_t − σ·v̂`).
    pub fn parameterization<B: Backend>(
        &self,
        levels: &NoiseLevels,
        device: &B::Device,
    ) -> framer::Parameterization<B> {
        let values = Tensor::<B, 1>::from_data(
            TensorData::new(levels.levels.clone(), [levels.levels.len()]),
            device,
        );
        match self {
            Self::RectifiedFlow { .. } | Self::OneStep { .. } => {
                framer::Parameterization::RectifiedFlow { sigmas: values }
            }
            Self::Ddpm {
                v_prediction: false,
                ..
            } => framer::Parameterization::Epsilon {
                alphas_cumprod: values,
            },
            Self::Ddpm {
                v_prediction: true, ..
            } => framer::Parameterization::Velocity {
                alphas_cumprod: values,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{Stream, step_rng};
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn beta_schedules_worked_by_hand() {
        // linear, 3 steps, β = 0.1, 0.2, 0.3: ᾱ = 0.9, 0.72, 0.504
        let a = alphas_cumprod(BetaSchedule::Linear, 0.1, 0.3, 3);
        for (x, e) in a.iter().zip([0.9, 0.72, 0.504]) {
            assert!((x - e).abs() < 1e-12, "{a:?}");
        }
        // scaled linear, 3 steps from 0.01 to 0.04: √β = 0.1, 0.15, 0.2
        let a = alphas_cumprod(BetaSchedule::ScaledLinear, 0.01, 0.04, 3);
        // middle β = ((0.1 + 0.2)/2)² = 0.0225
        let e = [0.99, 0.99 * 0.9775, 0.99 * 0.9775 * 0.96];
        for (x, e) in a.iter().zip(e) {
            assert!((x - e).abs() < 1e-12, "{a:?}");
        }
    }

    #[test]
    fn logit_normal_sigmas_have_the_right_median_and_spread() {
        let obj = Objective::RectifiedFlow {
            sampling: SigmaSampling::LogitNormal,
            logit_mean: 0.0,
            logit_std: 1.0,
        };
        let mut rng = step_rng(0, 0, Stream::Time);
        let mut s = obj.draw_levels(20000, &mut rng).levels;
        s.sort_by(f32::total_cmp);
        // median of sigmoid(N(0,1)) is 0.5; its quartiles are sigmoid(±0.6745) = 0.3375 / 0.6625
        assert!((s[10000] - 0.5).abs() < 0.01, "{}", s[10000]);
        assert!((s[5000] - 0.3375).abs() < 0.01, "{}", s[5000]);
        assert!((s[15000] - 0.6625).abs() < 0.01, "{}", s[15000]);
    }

    #[test]
    fn perfect_predictions_have_zero_loss_and_exact_clean_estimates() {
        let device = Default::default();
        let x0 = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.5f32, -0.25, 1.0, 0.0], [2, 1, 1, 2]),
            &device,
        );
        let eps = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.1f32, 0.7, -0.3, 2.0], [2, 1, 1, 2]),
            &device,
        );
        let levels = NoiseLevels {
            timesteps: vec![0.3, 0.8],
            levels: vec![0.3, 0.8],
        };
        // flow: v = ε − x0
        let flow = Objective::RectifiedFlow {
            sampling: SigmaSampling::Uniform,
            logit_mean: 0.0,
            logit_std: 1.0,
        };
        let (x_t, target) = flow.noisy_and_target(x0.clone(), eps.clone(), eps.clone(), &levels);
        // x_t of sample 0, first pixel: 0.7·0.5 + 0.3·0.1 = 0.38
        let xt: Vec<f32> = x_t.clone().into_data().to_vec().unwrap();
        assert!((xt[0] - 0.38).abs() < 1e-6);
        let v = eps.clone() - x0.clone();
        let loss: f32 = flow
            .loss(v.clone(), x_t.clone(), target, &levels)
            .into_scalar();
        assert!(loss.abs() < 1e-12);
        let back = flow
            .parameterization(&levels, &Default::default())
            .clean_estimate(v, x_t)
            .unwrap();
        let diff: f32 = (back - x0.clone()).abs().max().into_scalar();
        assert!(diff < 1e-6);
        // ε and v prediction
        let levels = NoiseLevels {
            timesteps: vec![0.01, 0.9],
            levels: vec![0.9, 0.2],
        };
        for v_prediction in [false, true] {
            let ddpm = Objective::Ddpm {
                v_prediction,
                alphas_cumprod: vec![],
            };
            let (x_t, target) = ddpm.noisy_and_target(x0.clone(), eps.clone(), eps.clone(), &levels);
            let loss: f32 = ddpm
                .loss(target.clone(), x_t.clone(), target.clone(), &levels)
                .into_scalar();
            assert_eq!(loss, 0.0);
            let back = ddpm
                .parameterization(&levels, &Default::default())
                .clean_estimate(target, x_t)
                .unwrap();
            let diff: f32 = (back - x0.clone()).abs().max().into_scalar();
            assert!(diff < 1e-5, "v_prediction={v_prediction}: {diff}");
        }
        // loss of a wrong flow prediction, by hand: v̂ = 0 → x̂0 = x_t, loss = mean((x_t − x0)²)
        let levels = NoiseLevels {
            timesteps: vec![0.5, 0.5],
            levels: vec![0.5, 0.5],
        };
        let (x_t, target) = flow.noisy_and_target(x0.clone(), eps.clone(), eps.clone(), &levels);
        let loss: f32 = flow
            .loss(x0.clone().zeros_like(), x_t, target, &levels)
            .into_scalar();
        // x_t − x0 = 0.5·(ε − x0) = 0.5·[-0.4, 0.95, -1.3, 2.0] → mean of squares = 0.25·(0.16 + 0.9025 + 1.69 + 4)/4
        let expected = 0.25 * (0.16 + 0.9025 + 1.69 + 4.0) / 4.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    /// The one-step host: its input is the condition, a zero prediction gives back the condition
    /// (bicubic), and with σ = 1 the exact prediction is the residual `LR↑ − HR`.
    #[test]
    fn one_step_host_predicts_the_residual() {
        let device = Default::default();
        let hr = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.5f32, -0.25, 1.0, 0.0], [2, 1, 1, 2]),
            &device,
        );
        let lr_up = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.25f32, 0.0, 0.5, 0.5], [2, 1, 1, 2]),
            &device,
        );
        let noise = Tensor::<B, 4>::ones([2, 1, 1, 2], &device);
        let obj = Objective::OneStep { sigma: 1.0 };
        let levels = obj.draw_levels(2, &mut step_rng(0, 0, Stream::Time));
        assert_eq!(levels.levels, [1.0, 1.0]);
        let (x_t, target) = obj.noisy_and_target(hr.clone(), noise, lr_up.clone(), &levels);
        let same: f32 = (x_t.clone() - lr_up.clone()).abs().max().into_scalar();
        assert_eq!(same, 0.0, "the input is the condition, without noise");
        // v̂ = 0 → x̂0 = LR↑: loss = mean((LR↑ − HR)²) = (0.0625 + 0.0625 + 0.25 + 0.25)/4
        let loss: f32 = obj
            .loss(hr.zeros_like(), x_t.clone(), target.clone(), &levels)
            .into_scalar();
        assert!((loss - 0.15625).abs() < 1e-6, "{loss}");
        // v̂ = LR↑ − HR → x̂0 = HR exactly, and FRAMER's clean estimate agrees
        let residual = lr_up - hr.clone();
        let loss: f32 = obj
            .loss(residual.clone(), x_t.clone(), target, &levels)
            .into_scalar();
        assert!(loss.abs() < 1e-12);
        let back = obj
            .parameterization::<B>(&levels, &Default::default())
            .clean_estimate(residual, x_t)
            .unwrap();
        let diff: f32 = (back - hr).abs().max().into_scalar();
        assert!(diff < 1e-6);
    }
}
