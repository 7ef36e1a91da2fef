//! What the diffusers oracle tests share: the fixture files of
//! `scripts/oracle/make_diffusers_fixtures.py`, their tensors and config, and the relative-error
//! check `max |a − b| / max |b|` ≤ [`TOLERANCE`] (`a` ours in f32, `b` diffusers' float64 result
//! stored as f32).

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

pub type Cpu = Flex;

/// The oracle tolerance on the relative error.
pub const TOLERANCE: f32 = 1e-4;

/// `tests/fixtures/diffusers/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers").join(name)
}

/// The tensors of one io fixture (`<model>.io.safetensors`).
pub struct Io {
    bytes: Vec<u8>,
}

impl Io {
    /// Reads `<model>.io.safetensors`.
    pub fn open(model: &str) -> Self {
        Self { bytes: std::fs::read(fixture(&format!("{model}.io.safetensors"))).expect("fixture") }
    }

    /// The f32 tensor `name` of rank 4.
    pub fn tensor(&self, name: &str) -> Tensor<Cpu, 4> {
        self.tensor_n(name)
    }

    /// The f32 tensor `name` of rank `D`.
    pub fn tensor_n<const D: usize>(&self, name: &str) -> Tensor<Cpu, D> {
        let st = SafeTensors::deserialize(&self.bytes).expect("fixture header");
        let view = st.tensor(name).expect("fixture tensor");
        assert_eq!(view.dtype(), Dtype::F32);
        assert_eq!(view.shape().len(), D, "{name}: rank");
        let values: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Tensor::from_data(TensorData::new(values, view.shape().to_vec()), &Default::default())
    }
}

/// `max |a − b| / max |b|`.
pub fn relative_error(a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let diff = (a - b.clone()).abs().max().into_scalar();
    diff / b.abs().max().into_scalar()
}

/// Asserts `relative_error(a, b) ≤ TOLERANCE`, printing it.
pub fn assert_close(what: &str, a: Tensor<Cpu, 4>, b: Tensor<Cpu, 4>) {
    let rel = relative_error(a, b);
    eprintln!("{what}: relative error {rel:e}");
    assert!(rel <= TOLERANCE, "{what}: relative error {rel:e} > {TOLERANCE:e}");
}

/// The oracle's config, from the weights file's `oracle` metadata.
pub fn oracle_config(model: &str) -> serde_json::Value {
    let bytes = std::fs::read(fixture(&format!("{model}.weights.safetensors"))).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let text = &metadata.metadata().as_ref().unwrap()["oracle"];
    serde_json::from_str::<serde_json::Value>(text).unwrap()["config"].clone()
}
