//! Exponential moving average of the weights, kept as a second copy of the module.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, backend::Backend};

struct Collect<B: Backend> {
    params: HashMap<ParamId, Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.params.insert(param.id, t.reshape([n]));
    }
}

struct Blend<B: Backend> {
    params: HashMap<ParamId, Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, ema, mapper) = param.consume();
        let blended = match self.params.remove(&id) {
            Some(current) => {
                let current: Tensor<B, D> = current.reshape(ema.shape());
                ema.mul_scalar(self.decay) + current.mul_scalar(1.0 - self.decay)
            }
            None => ema,
        };
        Param::from_mapped_value(id, blended, mapper)
    }
}

struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Initialises every lazily initialised parameter of `module` in place.
///
/// burn initialises parameters on first use, and a clone of a parameter that was never used draws
/// its own random values; call this before cloning a fresh module (e.g. into an EMA copy) so that
/// the copies hold the same weights.
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    module.visit(&mut Materialize);
}

/// The decay used at update number `updates` (0-based): `min(decay, (1 + n)/(10 + n))`, the
/// warm-up of diffusers' `EMAModel`, so that early averages are not dominated by the random
/// initialisation.
pub fn effective_decay(decay: f64, updates: u64) -> f64 {
    decay.min((1.0 + updates as f64) / (10.0 + updates as f64))
}

/// `ema ← d·ema + (1 − d)·current` for every float parameter, matched by parameter id (the EMA is
/// a clone of the trained module, so the ids agree).
pub fn ema_update<B: Backend, M: Module<B>>(ema: M, current: &M, decay: f64) -> M {
    let mut collect = Collect {
        params: HashMap::new(),
    };
    current.visit(&mut collect);
    ema.map(&mut Blend {
        params: collect.params,
        decay,
    })
}
