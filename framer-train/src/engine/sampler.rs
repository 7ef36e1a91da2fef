//! Samplers for inference: Euler for flow matching, DDIM (η = 0) for ε- and v-prediction, one
//! network evaluation for the one-step host.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use super::objective::Objective;

/// Integrates the sampling ODE from pure noise to a clean sample in `steps` steps.
///
/// `predict(x_t, timesteps)` is the network (conditioned on whatever it needs); `timesteps` is
/// `[batch]` in `[0, 1]`: σ for flow matching, `t / T` for DDPM step `t` of `T`.
///
/// - Rectified flow: Euler on `σ_i = 1 − i/steps`: `x ← x + (σ_{i+1} − σ_i)·v̂`.
/// - DDPM: DDIM with η = 0 on the evenly spaced steps `t_i = ⌊i·T/steps⌋`, descending; the final
///   step goes to ᾱ = 1 (diffusers' `set_alpha_to_one`).
/// - One-step host: it starts from the upsampled LR image, not from noise; use [`sample_from`].
///   Given noise alone it returns `noise − σ·v̂(noise)`.
///
/// # Shapes
/// `noise`: `[batch, channels, height, width]`; returns the same shape.
pub fn sample<B: Backend>(
    objective: &Objective,
    noise: Tensor<B, 4>,
    steps: usize,
    predict: impl FnMut(Tensor<B, 4>, Tensor<B, 1>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let steps = steps.max(1);
    match objective {
        Objective::RectifiedFlow { .. } => euler(noise, 1.0, steps, predict),
        Objective::OneStep { sigma } => one_step(noise, *sigma, predict),
        Objective::Ddpm { v_prediction, alphas_cumprod } => {
            let total = alphas_cumprod.len();
            let ts: Vec<usize> =
                (0..steps.min(total)).map(|i| i * total / steps.min(total)).collect();
            ddim(noise, &ts, alphas_cumprod, *v_prediction, predict)
        }
    }
}

/// The sampler of `objective` started at `strength` from `start` noised with `noise`, instead of
/// from pure noise, as super-resolution samplers that start from the (upsampled) LR image do
/// (`strength = 1` is [`sample`] itself).
///
/// - Rectified flow: `x = (1 − s)·start + s·noise`, then Euler from σ = s to 0.
/// - DDPM: `x = √ᾱ_{t₀}·start + √(1 − ᾱ_{t₀})·noise` with `t₀ ≈ s·T`, then DDIM from `t₀`.
/// - One-step host: one evaluation at its own σ on `start` itself, `start − σ·v̂`; `noise`,
///   `strength` and `steps` are not used.
///
/// # Shapes
/// `start` and `noise`: `[batch, channels, height, width]`; returns the same shape.
pub fn sample_from<B: Backend>(
    objective: &Objective,
    start: Tensor<B, 4>,
    noise: Tensor<B, 4>,
    strength: f64,
    steps: usize,
    predict: impl FnMut(Tensor<B, 4>, Tensor<B, 1>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    if let Objective::OneStep { sigma } = objective {
        return one_step(start, *sigma, predict);
    }
    let strength = strength.clamp(1e-3, 1.0);
    if strength >= 1.0 {
        return sample(objective, noise, steps, predict);
    }
    let steps = steps.max(1);
    match objective {
        Objective::RectifiedFlow { .. } => {
            let x = start.mul_scalar(1.0 - strength) + noise.mul_scalar(strength);
            euler(x, strength, steps, predict)
        }
        Objective::OneStep { sigma } => one_step(start, *sigma, predict),
        Objective::Ddpm { v_prediction, alphas_cumprod } => {
            let total = alphas_cumprod.len();
            let span = ((strength * total as f64) as usize).clamp(1, total);
            let n = steps.min(span);
            let ts: Vec<usize> = (0..n).map(|i| i * span / n).collect();
            let a0 = alphas_cumprod[ts[n - 1]];
            let x = start.mul_scalar(a0.sqrt()) + noise.mul_scalar((1.0 - a0).sqrt());
            ddim(x, &ts, alphas_cumprod, *v_prediction, predict)
        }
    }
}

/// The one-step host: `x̂0 = x − σ·v̂(x, σ)`.
fn one_step<B: Backend>(
    x: Tensor<B, 4>,
    sigma: f64,
    mut predict: impl FnMut(Tensor<B, 4>, Tensor<B, 1>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let v = predict(x.clone(), times(sigma, &x));
    x - v.mul_scalar(sigma)
}

/// `[batch]` copies of `t`.
fn times<B: Backend>(t: f64, like: &Tensor<B, 4>) -> Tensor<B, 1> {
    let batch = like.dims()[0];
    Tensor::from_data(TensorData::new(vec![t as f32; batch], [batch]), &like.device())
}

/// Euler steps of the flow from σ = `from` to 0: `σ_i = from·(1 − i/steps)`.
fn euler<B: Backend>(
    mut x: Tensor<B, 4>,
    from: f64,
    steps: usize,
    mut predict: impl FnMut(Tensor<B, 4>, Tensor<B, 1>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    for i in 0..steps {
        let sigma = from * (1.0 - i as f64 / steps as f64);
        let next = from * (1.0 - (i + 1) as f64 / steps as f64);
        let v = predict(x.clone(), times(sigma, &x));
        x = x + v.mul_scalar(next - sigma);
    }
    x
}

/// DDIM (η = 0) over the ascending steps `ts`, run from the last down to ᾱ = 1.
fn ddim<B: Backend>(
    mut x: Tensor<B, 4>,
    ts: &[usize],
    alphas_cumprod: &[f64],
    v_prediction: bool,
    mut predict: impl FnMut(Tensor<B, 4>, Tensor<B, 1>) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let total = alphas_cumprod.len();
    for (k, &t) in ts.iter().enumerate().rev() {
        let a = alphas_cumprod[t];
        let a_prev = if k == 0 { 1.0 } else { alphas_cumprod[ts[k - 1]] };
        let out = predict(x.clone(), times(t as f64 / total as f64, &x));
        let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
        let (x0, eps) = if v_prediction {
            (
                x.clone().mul_scalar(sa) - out.clone().mul_scalar(sb),
                out.mul_scalar(sa) + x.mul_scalar(sb),
            )
        } else {
            ((x.clone() - out.clone().mul_scalar(sb)).div_scalar(sa), out)
        };
        x = x0.mul_scalar(a_prev.sqrt()) + eps.mul_scalar((1.0 - a_prev).sqrt());
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objective::alphas_cumprod;
    use crate::schedule::{BetaSchedule, SigmaSampling};
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    type B = Flex;

    /// A `[2, 3, 4, 4]` input from a seeded host generator (not the backend's shared one, which
    /// parallel tests draw from in any order): uniform in `[-1, 1)`, or standard normal.
    fn seeded(seed: u64, normal: bool) -> Tensor<B, 4> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<f32> = (0..96)
            .map(|_| {
                if normal {
                    rng.sample(StandardNormal)
                } else {
                    rng.random_range(-1.0..1.0)
                }
            })
            .collect();
        Tensor::from_data(TensorData::new(values, [2, 3, 4, 4]), &Default::default())
    }

    /// With the exact network of a point-mass data distribution at `c`, every sampler must land on
    /// `c`, whatever the step count: the flow is a straight line, and DDIM's x̂0 is exact.
    #[test]
    fn exact_networks_recover_a_point_mass() {
        let c = seeded(1, false);
        let noise = seeded(2, true);
        let flow = Objective::RectifiedFlow {
            sampling: SigmaSampling::LogitNormal,
            logit_mean: 0.0,
            logit_std: 1.0,
        };
        for steps in [1, 3, 40] {
            // v = (x − c)/σ
            let out = sample(&flow, noise.clone(), steps, |x, t| {
                let sigma = t.slice(0..1).into_scalar() as f64;
                (x - c.clone()).div_scalar(sigma)
            });
            let err: f32 = (out - c.clone()).abs().max().into_scalar();
            assert!(err < 1e-4, "Euler, {steps} steps: {err}");
        }
        let ac = alphas_cumprod(BetaSchedule::ScaledLinear, 0.00085, 0.012, 1000);
        for v_prediction in [false, true] {
            let ddpm = Objective::Ddpm {
                v_prediction,
                alphas_cumprod: ac.clone(),
            };
            for steps in [1, 10, 50] {
                let out = sample(&ddpm, noise.clone(), steps, |x, t| {
                    let a = ac[(t.slice(0..1).into_scalar() as f64 * 1000.0).round() as usize];
                    let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
                    let eps = (x - c.clone().mul_scalar(sa)).div_scalar(sb);
                    if v_prediction {
                        eps.mul_scalar(sa) - c.clone().mul_scalar(sb)
                    } else {
                        eps
                    }
                });
                let err: f32 = (out - c.clone()).abs().max().into_scalar();
                assert!(err < 1e-3, "DDIM v={v_prediction}, {steps} steps: {err}");
            }
        }
    }

    /// Started part-way from another image, the exact network of a point mass still lands on it,
    /// and the flow starts at σ = strength.
    #[test]
    fn partial_starts_recover_a_point_mass() {
        let c = seeded(3, false);
        let start = seeded(4, false);
        let noise = seeded(5, true);
        let flow = Objective::RectifiedFlow {
            sampling: SigmaSampling::LogitNormal,
            logit_mean: 0.0,
            logit_std: 1.0,
        };
        let mut first = None;
        let out = sample_from(&flow, start.clone(), noise.clone(), 0.4, 5, |x, t| {
            let sigma = t.slice(0..1).into_scalar() as f64;
            first.get_or_insert(sigma);
            (x - c.clone()).div_scalar(sigma)
        });
        assert!((first.unwrap() - 0.4).abs() < 1e-6);
        let err: f32 = (out - c.clone()).abs().max().into_scalar();
        assert!(err < 1e-4, "Euler from 0.4: {err}");
        let ac = alphas_cumprod(BetaSchedule::ScaledLinear, 0.00085, 0.012, 1000);
        for v_prediction in [false, true] {
            let ddpm = Objective::Ddpm { v_prediction, alphas_cumprod: ac.clone() };
            let out = sample_from(&ddpm, start.clone(), noise.clone(), 0.3, 10, |x, t| {
                let a = ac[(t.slice(0..1).into_scalar() as f64 * 1000.0).round() as usize];
                let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
                let eps = (x - c.clone().mul_scalar(sa)).div_scalar(sb);
                if v_prediction { eps.mul_scalar(sa) - c.clone().mul_scalar(sb) } else { eps }
            });
            let err: f32 = (out - c.clone()).abs().max().into_scalar();
            assert!(err < 1e-3, "DDIM v={v_prediction} from 0.3: {err}");
        }
    }

    #[test]
    fn euler_visits_the_expected_timesteps() {
        let device = Default::default();
        let flow = Objective::RectifiedFlow {
            sampling: SigmaSampling::Uniform,
            logit_mean: 0.0,
            logit_std: 1.0,
        };
        let mut seen = Vec::new();
        let noise = Tensor::<B, 4>::zeros([1, 1, 2, 2], &device);
        sample(&flow, noise.clone(), 4, |x, t| {
            seen.push(t.into_scalar());
            x.zeros_like()
        });
        assert_eq!(seen, [1.0, 0.75, 0.5, 0.25]);
        let ddpm = Objective::Ddpm {
            v_prediction: false,
            alphas_cumprod: vec![0.9; 1000],
        };
        let mut seen = Vec::new();
        sample(&ddpm, noise, 4, |x, t| {
            seen.push(t.into_scalar());
            x.zeros_like()
        });
        assert_eq!(seen, [0.75, 0.5, 0.25, 0.0]);
    }

    /// The one-step host evaluates the network once, at its σ, on the start image itself (no
    /// noise), whatever the strength and step count; the exact residual gives the target back.
    #[test]
    fn one_step_host_runs_once_on_the_start() {
        let hr = seeded(21, false);
        let lr_up = seeded(22, false);
        let noise = seeded(23, true);
        let host = Objective::OneStep { sigma: 0.5 };
        let mut calls = Vec::new();
        let out = sample_from(&host, lr_up.clone(), noise, 0.3, 20, |x, t| {
            let seen: f32 = (x.clone() - lr_up.clone()).abs().max().into_scalar();
            calls.push((seen, t.slice(0..1).into_scalar()));
            (x - hr.clone()).div_scalar(0.5)
        });
        assert_eq!(calls, [(0.0, 0.5)]);
        let err: f32 = (out - hr).abs().max().into_scalar();
        assert!(err < 1e-5, "{err}");
    }
}
