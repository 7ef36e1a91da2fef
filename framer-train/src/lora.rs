//! Low-rank adapters (LoRA) on any burn model, without changing its type.
//!
//! A [`LoraAdapters`] module holds, for every targeted weight `W` (a `Linear` weight or a `Conv2d`
//! kernel selected by globs over parameter paths), a down projection `A` and an up projection
//! `B`, and [`LoraAdapters::apply`] returns the model with `W + (α/r)·ΔW(A, B)` in place of `W`
//! (Hu et al., 2021; the layouts and initialisation of PEFT):
//!
//! | layer | `W` (burn) | `A` | `B` | `ΔW` |
//! |---|---|---|---|---|
//! | Linear | `[d_in, d_out]` | `[d_in, r]` | `[r, d_out]` | `A·B` |
//! | Conv2d | `[c_out, c_in/g, k_h, k_w]` | `[r, c_in/g·k_h·k_w]` | `[c_out, r]` | `(B·A)` reshaped to `W` |
//!
//! `A` starts Kaiming-uniform and `B` at zero, so the applied model starts equal to the base
//! model. On an autodiff backend the applied weights are functions of `A` and `B`: one backward
//! pass gives the adapters' gradients ([`burn::optim::GradientsParams::from_grads`] on the
//! adapters), while the base weights (freeze them, e.g. with `[train] trainable`) get none. For a
//! Conv2d, `W + s·ΔW` is the same operator as PEFT's unmerged `conv(x, W) + s·conv1×1(conv(x, A), B)`
//! (tested). The adapters save and load as a burn record of their own (only `A` and `B`);
//! [`LoraAdapters::merge`] folds them into the base weights for inference.

use std::collections::HashMap;

use burn::config::Config;
use burn::module::{AutodiffModule, Module, ModuleMapper, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};

use crate::engine::trainable::param_entries;
use crate::schedule::glob_matches;

/// Settings of the adapters.
#[derive(Config, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank `r` of every adapter.
    pub rank: usize,
    /// Scale numerator: `ΔW` is multiplied by `alpha / rank`.
    #[config(default = 1.0)]
    pub alpha: f64,
    /// Globs over parameter paths of the weights to adapt (`["*.to_q", "*.to_v"]` selects the
    /// layers; the pattern is matched against the layer's path and against the weight's path
    /// `<layer>.weight`). Only 2-D (Linear) and 4-D (Conv2d) weights are adapted.
    pub targets: Vec<String>,
}

/// What one adapter adapts.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraTarget {
    /// The weight's parameter path (`blocks.0.attn.to_q.weight`).
    pub path: String,
    /// The weight's parameter id in the base model.
    pub weight: ParamId,
    /// The weight's shape (2-D for Linear, 4-D for Conv2d).
    pub shape: Vec<usize>,
}

/// Why adapters cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoraError {
    /// `rank` is 0 or larger than the smaller side of a target's `ΔW`.
    #[error("LoRA rank {rank} does not fit `{path}` (ΔW is {rows}×{cols}); use 1..={max}", max = rows.min(cols))]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// The weight at fault.
        path: String,
        /// Rows of `ΔW`.
        rows: usize,
        /// Columns of `ΔW`.
        cols: usize,
    },
    /// A target glob selects no Linear or Conv2d weight.
    #[error("LoRA target \"{pattern}\" matches no Linear or Conv2d weight of the model{hint}")]
    NoMatch {
        /// The glob.
        pattern: String,
        /// A few weight paths, to show what paths look like.
        hint: String,
    },
}

/// The adapters of one model (a burn module: its record holds `A` and `B` only).
///
/// # Shapes
/// See the module docs: per target, `down` is `A` and `up` is `B`.
#[derive(Module, Debug)]
pub struct LoraAdapters<B: Backend> {
    /// `A` of each target.
    pub down: Vec<Param<Tensor<B, 2>>>,
    /// `B` of each target.
    pub up: Vec<Param<Tensor<B, 2>>>,
    /// The targets, in the order of `down` / `up`.
    #[module(skip)]
    pub targets: Vec<LoraTarget>,
    /// `alpha / rank`.
    #[module(skip)]
    pub scale: f64,
}

/// `(rows, cols)` of `ΔW` for a weight of `shape`: `[d_in, d_out]` for a Linear,
/// `[c_out, c_in/g·k_h·k_w]` for a Conv2d kernel.
fn delta_dims(shape: &[usize]) -> Option<(usize, usize)> {
    match *shape {
        [d_in, d_out] => Some((d_in, d_out)),
        [c_out, c_in, kh, kw] => Some((c_out, c_in * kh * kw)),
        _ => None,
    }
}

impl LoraConfig {
    /// Adapters for the weights of `model` that [`Self::targets`] select, on `device`: `A`
    /// Kaiming-uniform (bound `1/√fan_in`), `B` zero.
    ///
    /// # Errors
    /// [`LoraError::NoMatch`] for a glob that selects nothing, [`LoraError::Rank`] for a rank
    /// that does not fit a target.
    pub fn init<B: Backend, M: Module<B>>(
        &self,
        model: &M,
        device: &B::Device,
    ) -> Result<LoraAdapters<B>, LoraError> {
        let entries = param_entries(model);
        let adaptable: Vec<_> = entries
            .iter()
            .filter(|e| e.path.ends_with("weight"))
            .filter(|e| delta_dims(&e.shape).is_some())
            .map(|e| (e, e.shape.clone()))
            .collect();
        let selects = |pattern: &str, path: &str| {
            glob_matches(pattern, path)
                || path.strip_suffix(".weight").is_some_and(|layer| glob_matches(pattern, layer))
        };
        for pattern in &self.targets {
            if !adaptable.iter().any(|(e, _)| selects(pattern, &e.path)) {
                let shown: Vec<&str> =
                    adaptable.iter().take(6).map(|(e, _)| e.path.as_str()).collect();
                return Err(LoraError::NoMatch {
                    pattern: pattern.clone(),
                    hint: if shown.is_empty() {
                        String::new()
                    } else {
                        format!(" (weights look like: {})", shown.join(", "))
                    },
                });
            }
        }
        let (mut down, mut up, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for (e, shape) in adaptable {
            if !self.targets.iter().any(|p| selects(p, &e.path)) {
                continue;
            }
            let (rows, cols) = delta_dims(&shape).unwrap_or((0, 0));
            if self.rank == 0 || self.rank > rows.min(cols) {
                return Err(LoraError::Rank { rank: self.rank, path: e.path.clone(), rows, cols });
            }
            // A multiplies the layer's input: fan-in is d_in (Linear) or c_in·k_h·k_w (Conv2d).
            let (a_shape, b_shape, fan_in) = match shape.len() {
                2 => ([rows, self.rank], [self.rank, cols], rows),
                _ => ([self.rank, cols], [rows, self.rank], cols),
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            down.push(Param::from_tensor(Tensor::random(
                a_shape,
                Distribution::Uniform(-bound, bound),
                device,
            )));
            up.push(Param::from_tensor(Tensor::zeros(b_shape, device)));
            targets.push(LoraTarget { path: e.path.clone(), weight: e.id, shape });
        }
        Ok(LoraAdapters {
            down,
            up,
            targets,
            scale: self.alpha / self.rank as f64,
        })
    }
}

impl<B: Backend> LoraAdapters<B> {
    /// The adapted weights' paths.
    pub fn target_paths(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.path.as_str()).collect()
    }

    /// Points each target at the parameter of `model` with the target's path. Loading a record
    /// into a model gives its parameters the record's ids, so adapters made before the load must
    /// follow them (a resumed run).
    ///
    /// # Errors
    /// The path of a target `model` does not have.
    pub fn retarget<M: Module<B>>(&mut self, model: &M) -> Result<(), String> {
        let ids: HashMap<String, ParamId> =
            param_entries(model).into_iter().map(|e| (e.path, e.id)).collect();
        for t in &mut self.targets {
            t.weight = *ids
                .get(&t.path)
                .ok_or_else(|| format!("the model has no weight `{}` to adapt", t.path))?;
        }
        Ok(())
    }

    /// `s·ΔW` of target `i`, shaped like its weight.
    pub fn delta(&self, i: usize) -> Tensor<B, 2> {
        let (a, b) = (self.down[i].val(), self.up[i].val());
        let product = if self.targets[i].shape.len() == 2 { a.matmul(b) } else { b.matmul(a) };
        product.mul_scalar(self.scale)
    }

    /// `model` with every targeted weight replaced by `W + s·ΔW` (the same parameter ids). On an
    /// autodiff backend the new weights carry the graph back to `A` and `B`.
    pub fn apply<M: Module<B>>(&self, model: M) -> M {
        let deltas: HashMap<ParamId, (Tensor<B, 2>, Vec<usize>)> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.weight, (self.delta(i), t.shape.clone())))
            .collect();
        model.map(&mut AddDelta { deltas })
    }
}

impl<B: AutodiffBackend> LoraAdapters<B> {
    /// The model for inference: [`Self::apply`] on the inner backend, so the merged weights are
    /// plain parameters (no graph) and the adapters can be dropped.
    pub fn merge<M: AutodiffModule<B>>(&self, model: &M) -> M::InnerModule {
        self.valid().apply(model.valid())
    }
}

/// Adds each target's `s·ΔW` to its weight.
struct AddDelta<B: Backend> {
    deltas: HashMap<ParamId, (Tensor<B, 2>, Vec<usize>)>,
}

impl<B: Backend> ModuleMapper<B> for AddDelta<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some((delta, shape)) = self.deltas.remove(&param.id) else {
            return param;
        };
        let (id, weight, mapper) = param.consume();
        let dims: [usize; D] = match shape.try_into() {
            Ok(dims) => dims,
            Err(_) => return Param::from_mapped_value(id, weight, mapper),
        };
        Param::from_mapped_value(id, weight + delta.reshape(dims), mapper)
    }
}
