//! Human-readable module summaries (used by the snapshot tests and handy in logs).
//!
//! Shapes are read without initialising lazy parameters, so the summary of a real-size preset
//! costs no tensor memory.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};

#[derive(Default)]
struct ShapeCollector {
    path: Vec<String>,
    params: Vec<(String, Vec<usize>)>,
}

impl ShapeCollector {
    fn push(&mut self, shape: Vec<usize>) {
        self.params.push((self.path.join("."), shape));
    }
}

impl<B: Backend> ModuleVisitor<B> for ShapeCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.push(param.lazy_shape().to_vec());
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        self.push(param.lazy_shape().to_vec());
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        self.push(param.lazy_shape().to_vec());
    }
}

/// Every parameter of `model` as `(path, shape)` in visiting order (burn layouts: Linear weights
/// are `[in, out]`). Does not initialise lazy parameters.
pub fn parameter_shapes<B: Backend, M: Module<B>>(model: &M) -> Vec<(String, Vec<usize>)> {
    let mut collector = ShapeCollector::default();
    model.visit(&mut collector);
    collector.params
}

/// Total number of scalar parameters of `model`, without initialising lazy parameters.
pub fn parameter_count<B: Backend, M: Module<B>>(model: &M) -> usize {
    parameter_shapes(model).iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

/// Every parameter as `path [shape] count`, one per line, then the parameter count of each
/// top-level field and the total.
pub fn module_tree<B: Backend, M: Module<B>>(model: &M) -> String {
    let mut out = String::new();
    let mut groups: Vec<(String, usize)> = Vec::new();
    let mut total = 0usize;
    for (path, shape) in parameter_shapes(model) {
        let n: usize = shape.iter().product();
        total += n;
        out.push_str(&format!("{path} {shape:?} {n}\n"));
        let top = path.split('.').next().unwrap_or_default().to_string();
        match groups.last_mut() {
            Some((name, count)) if *name == top => *count += n,
            _ => groups.push((top, n)),
        }
    }
    out.push_str("--\n");
    for (name, count) in groups {
        out.push_str(&format!("{name}: {count}\n"));
    }
    out.push_str(&format!("total: {total}\n"));
    out
}
