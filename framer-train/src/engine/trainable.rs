//! Trainable subsets: `[train] trainable` freezes every other parameter of the model.
//!
//! A frozen parameter is marked as not requiring a gradient before the first step, so the backward
//! pass computes none for it, the optimiser keeps no state for it and never changes it (AdamW's
//! weight decay included), and the gradient clipping norm leaves it out. The generated FRAMER
//! heads ([`framer::Framed`]'s `heads`) are new layers and always train.

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleDisplay, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, backend::AutodiffBackend, backend::Backend};
use framer::Framed;

use super::EngineError;
use crate::schedule::{Experiment, ScheduleError, resolve_trainable};

/// One float parameter of a module: its path (`blocks.0.conv.weight`), id and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// Field names and `Vec` indices from the module to the parameter, joined by `.`.
    pub path: String,
    /// The parameter's id.
    pub id: ParamId,
    /// The parameter's shape.
    pub shape: Vec<usize>,
}

impl ParamEntry {
    /// Number of scalar values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Collects [`ParamEntry`]s, tracking the module path.
#[derive(Default)]
struct Collect {
    stack: Vec<String>,
    entries: Vec<ParamEntry>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.entries.push(ParamEntry {
            path: self.stack.join("."),
            id: param.id,
            shape: param.lazy_shape().to_vec(),
        });
    }
}

/// The float parameters of `module`, in visiting order (lazy parameters stay lazy).
pub fn param_entries<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamEntry> {
    let mut collect = Collect::default();
    module.visit(&mut collect);
    collect.entries
}

/// The float parameters of `module` (paths relative to it), each with whether `[train]
/// trainable` trains it (all of them when the key is absent).
///
/// # Errors
/// A [`ScheduleError`] at the pattern's `file:line:col` when a pattern matches no parameter.
pub fn trainable_selection<B: Backend, M: Module<B>>(
    module: &M,
    experiment: &Experiment,
) -> Result<Vec<(ParamEntry, bool)>, ScheduleError> {
    let entries = param_entries(module);
    let paths: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    let keep = resolve_trainable(experiment, &paths)?;
    Ok(entries.into_iter().zip(keep).collect())
}

/// Marks the parameters whose id is in `frozen` as not requiring a gradient.
struct Freeze {
    frozen: HashSet<ParamId>,
}

impl<B: Backend> ModuleMapper<B> for Freeze {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.frozen.contains(&param.id) {
            param.set_require_grad(false)
        } else {
            param
        }
    }
}

/// How many parameters train after [`apply_trainable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrainableSummary {
    /// Scalar values that train (the model's selected parameters plus the FRAMER heads).
    pub trainable: usize,
    /// All scalar values of the model and its heads.
    pub total: usize,
    /// Parameter tensors frozen.
    pub frozen_tensors: usize,
}

/// Freezes the parameters of `framed`'s model that `[train] trainable` does not select (nothing
/// when the key is absent).
///
/// # Errors
/// [`EngineError::Schedule`] at the pattern's `file:line:col` when a pattern matches no parameter.
pub fn apply_trainable<B: AutodiffBackend, M: Module<B> + ModuleDisplay>(
    framed: Framed<B, M>,
    experiment: &Experiment,
) -> Result<(Framed<B, M>, TrainableSummary), EngineError> {
    let frozen: HashMap<ParamId, usize> = trainable_selection(&framed.model, experiment)?
        .into_iter()
        .filter(|(_, keep)| !keep)
        .map(|(e, _)| (e.id, e.numel()))
        .collect();
    let total = param_entries(&framed).iter().map(ParamEntry::numel).sum();
    let summary = TrainableSummary {
        trainable: total - frozen.values().sum::<usize>(),
        total,
        frozen_tensors: frozen.len(),
    };
    if frozen.is_empty() {
        return Ok((framed, summary));
    }
    if summary.trainable == 0 {
        return Err(EngineError::Model(
            "`[train] trainable` freezes every parameter: nothing would train".into(),
        ));
    }
    Ok((framed.map(&mut Freeze { frozen: frozen.into_keys().collect() }), summary))
}
