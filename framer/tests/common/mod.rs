//! Seeded random inputs for the integration tests. Every test draws from its own generator: the backend's
//! `B::seed` is process-global, and parallel tests would race for it.
#![allow(dead_code)] // each test file uses some of these

use std::sync::{Mutex, MutexGuard};

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// A generator for one test.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `N(mean, 1)` values (Box–Muller).
pub fn normal_values(rng: &mut StdRng, len: usize, mean: f32) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
            let v: f64 = rng.random();
            mean + ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// A tensor of `N(mean, 1)` values.
pub fn normal<B: Backend, const D: usize>(rng: &mut StdRng, shape: [usize; D], mean: f32) -> Tensor<B, D> {
    let values = normal_values(rng, shape.iter().product(), mean);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// A tensor of `U(0, 1)` values.
pub fn uniform<B: Backend, const D: usize>(rng: &mut StdRng, shape: [usize; D]) -> Tensor<B, D> {
    let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random()).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Held by every test of a binary whose tests take gradients: in burn 0.21 a `backward()` on one
/// thread can free a step of a graph another thread is still building, and that thread's
/// gradient silently goes missing (tracel-ai/burn#5573). Seen here as "gradient 0 is zero" in
/// `paths.rs`, in about one run in four with the tests in parallel and never alone.
pub fn backward_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
