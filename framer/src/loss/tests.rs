//! Tests of the loss that need its private entry points; the path parity tests that use only the
//! public API are in `tests/paths.rs`.

use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;

use super::*;
use crate::testing::{normal, rng};
use crate::{BandMaskKind, Parameterization};

/// The half spectrum weighted by multiplicities must give the full-spectrum sums exactly (up to
/// rounding), gradients included, for even and odd widths and both mask kinds.
#[test]
fn half_spectrum_equals_full_spectrum() {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let mut rng = rng(19);
    for (shape, mask) in [
        ([2, 3, 8, 10], BandMaskKind::Quantile { cutoff: 0.3 }),
        ([3, 2, 7, 9], BandMaskKind::Quantile { cutoff: 0.2 }),
        ([2, 2, 6, 5], BandMaskKind::Radial { radius: 0.4 }),
    ] {
        let mut random = || normal::<A, 4>(&mut rng, shape, 0.0);
        let students: Vec<Tensor<A, 4>> = (0..3).map(|_| random().require_grad()).collect();
        let input = FramerInput::new(
            students.clone(),
            random(),
            random(),
            Parameterization::RectifiedFlow { sigmas: Tensor::full([shape[0]], 0.5, &device) },
            vec![2, 0, 1],
        );
        let loss = FramerLossConfig::new()
            .with_mask(mask)
            .with_execution(LossExecution::Tensor)
            .init()
            .unwrap();
        let run = |full: bool| {
            let out = loss.forward_with(input.clone(), full).unwrap();
            let value: f32 = out.loss.clone().into_scalar();
            let grads = out.loss.backward();
            // FAM can gate every term of student 0 to zero: then it has no gradient, i.e. zero
            let g: Vec<f32> = match students[0].grad(&grads) {
                Some(g) => g.into_data().to_vec().unwrap(),
                None => vec![0.0; shape.iter().product()],
            };
            (value, g)
        };
        let (half, half_grad) = run(false);
        let (full, full_grad) = run(true);
        assert!((half - full).abs() < 1e-5 * full.abs(), "{shape:?}: {half} vs {full}");
        let scale = full_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        for (a, b) in half_grad.iter().zip(&full_grad) {
            assert!((a - b).abs() < 1e-4 * scale, "{shape:?}: gradient {a} vs {b}");
        }
    }
}

/// The loss is shareable between threads and keeps its scratch for the next call.
#[test]
fn the_loss_owns_its_scratch() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FramerLoss>();
    type A = Autodiff<Flex>;
    let device = Default::default();
    let mut rng = rng(3);
    let shape = [2, 2, 8, 8];
    let mut random = || normal::<A, 4>(&mut rng, shape, 0.0);
    let input = FramerInput::new(
        vec![random().require_grad(), random().require_grad()],
        random(),
        random(),
        Parameterization::RectifiedFlow { sigmas: Tensor::full([2], 0.5, &device) },
        vec![1, 0],
    );
    let loss = FramerLossConfig::new().with_execution(LossExecution::Host).init().unwrap();
    assert_eq!(loss.scratch.capacity(), 0, "init allocates nothing");
    let first: f32 = loss.forward(input.clone()).unwrap().loss.into_scalar();
    assert!(loss.scratch.capacity() > 0, "the spectra are kept");
    let second: f32 = loss.forward(input).unwrap().loss.into_scalar();
    assert_eq!(first, second, "recycled buffers give the same result");
    assert_eq!(loss.clone().scratch.capacity(), 0, "a clone starts with no scratch");
}

/// `Auto` takes the host path on the CPU backend, autodiff or not.
#[test]
fn auto_runs_on_the_host_for_flex() {
    assert!(host_path_applies::<Flex>());
    assert!(host_path_applies::<Autodiff<Flex>>());
    assert!(LossExecution::Auto.runs_on_host::<Autodiff<Flex>>());
    assert!(!LossExecution::Tensor.runs_on_host::<Flex>());
}
