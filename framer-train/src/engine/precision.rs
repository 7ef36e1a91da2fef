//! Mixed precision (`[train] mixed_precision = "bf16"` or `"fp16"`), as accelerate's
//! `--mixed_precision` does it in the reference, without an autocast.
//!
//! Per step, with `d` the compute type (bf16 or f16):
//! 1. every float parameter of the model (and of its heads and LoRA adapters) is cast to `d` by
//!    [`cast_module`]. The cast stays in the autodiff graph, so the gradients reach the f32
//!    parameters (the master weights) and arrive there in f32: the optimiser, its state, the EMA
//!    and the checkpoints only ever see f32;
//! 2. the noisy input and the condition are cast to `d` ([`to_dtype`]); the timesteps stay f32
//!    and the backbones cast their sinusoidal embedding to the weights' type, as diffusers does;
//! 3. the prediction and the FRAMER taps come back to f32 before any loss: the base loss and the
//!    FRAMER loss (FFT masks, contrastive terms, FAW/FAM) run in f32;
//! 4. with f16 the loss is multiplied by a dynamic scale ([`LossScale`], the defaults of torch's
//!    `GradScaler`) before the backward pass and the gradients are divided by it after.
//!
//! burn 0.21 has no autocast, so unlike torch's every operation of the forward pass runs in `d`,
//! normalisation and softmax included (torch's autocast keeps those in f32).

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// Casts every float parameter of `module` to `dtype`, inside the autodiff graph: the result is
/// a copy of the module whose forward pass runs in `dtype` and whose gradients flow back, cast to
/// f32, to the parameters of `module`. Parameter ids are kept, so
/// `GradientsParams::from_grads(grads, &module)` collects them. Parameters already in `dtype` are
/// left as they are.
pub fn cast_module<B: Backend, M: Module<B>>(module: M, dtype: FloatDType) -> M {
    struct Cast(FloatDType);
    impl<B: Backend> ModuleMapper<B> for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor.cast(self.0), mapper)
        }
    }
    module.map(&mut Cast(dtype))
}

/// `tensor` in `dtype` (`None`: unchanged). A no-op when it is already in `dtype`.
pub fn to_dtype<B: Backend, const D: usize>(tensor: Tensor<B, D>, dtype: Option<FloatDType>) -> Tensor<B, D> {
    match dtype {
        Some(d) => tensor.cast(d),
        None => tensor,
    }
}

/// `loss · scale` (`None`: `loss`), the tensor whose backward pass a f16 step takes.
pub fn scaled<B: Backend>(loss: Tensor<B, 1>, scale: Option<LossScale>) -> Tensor<B, 1> {
    match scale {
        Some(s) => loss.mul_scalar(s.scale),
        None => loss,
    }
}

/// The dynamic loss scale of f16 training (torch's `GradScaler` with its defaults): the loss is
/// multiplied by [`LossScale::scale`] before the backward pass so that small gradients do not
/// flush to zero in f16, and the gradients are divided by it after. A step whose gradient
/// overflows (a non-finite norm from a finite loss) is skipped and the scale halved; after
/// [`LossScale::GROWTH_INTERVAL`] good steps in a row it doubles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The current scale.
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good_steps: u64,
}

impl Default for LossScale {
    fn default() -> Self {
        Self { scale: Self::INITIAL, good_steps: 0 }
    }
}

impl LossScale {
    /// The first scale, 2¹⁶.
    pub const INITIAL: f64 = 65536.0;
    /// Good steps after which the scale doubles.
    pub const GROWTH_INTERVAL: u64 = 2000;
    /// The smallest scale: below it an overflow is not the scale's fault, and the step counts
    /// against `[train] max_bad_steps` like any other non-finite step.
    pub const MIN: f64 = 1.0;

    /// Records a step from whether its loss and its gradient norm were finite. Returns whether
    /// the step is the scale's to absorb: a finite loss whose gradient overflowed, and a scale
    /// that could still be halved. Such a step is skipped without counting against
    /// `[train] max_bad_steps`.
    pub fn absorbs(&mut self, loss_finite: bool, grad_finite: bool) -> bool {
        match (loss_finite, grad_finite) {
            (true, true) => {
                self.good_step();
                false
            }
            (true, false) => self.overflow(),
            (false, _) => false,
        }
    }

    /// Records a step whose gradient was finite.
    pub fn good_step(&mut self) {
        self.good_steps += 1;
        if self.good_steps >= Self::GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
    }

    /// Records a step whose gradient overflowed. Returns whether the scale was halved (the step
    /// is the scale's to absorb); `false` once the scale is at [`Self::MIN`].
    pub fn overflow(&mut self) -> bool {
        self.good_steps = 0;
        if self.scale / 2.0 >= Self::MIN {
            self.scale /= 2.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LossScale;

    #[test]
    fn the_loss_scale_halves_on_overflow_doubles_after_its_interval_and_stops_at_its_minimum() {
        let mut s = LossScale::default();
        assert_eq!(s.scale, 65536.0);
        // an overflow from a finite loss: absorbed, halved
        assert!(s.absorbs(true, false));
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
        // a non-finite loss is not the scale's doing: not absorbed, nothing changes
        assert!(!s.absorbs(false, false));
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
        for _ in 0..1999 {
            assert!(!s.absorbs(true, true));
        }
        assert_eq!((s.scale, s.good_steps), (32768.0, 1999));
        assert!(!s.absorbs(true, true));
        assert_eq!((s.scale, s.good_steps), (65536.0, 0), "doubled after 2000 good steps");
        // an overflow resets the count of good steps
        s.good_steps = 1500;
        assert!(s.absorbs(true, false));
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
        // at the minimum an overflow counts against the guard
        let mut s = LossScale { scale: 2.0, good_steps: 0 };
        assert!(s.absorbs(true, false));
        assert_eq!(s.scale, 1.0);
        assert!(!s.absorbs(true, false));
        assert_eq!(s.scale, 1.0);
    }
}
