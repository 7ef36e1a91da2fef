//! The host path (FFTs, closed-form gradient) against the tensor path (dense DFT, autodiff), and
//! both on degenerate input. Every input is drawn from a generator seeded per test.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use common::{normal, rng};
use framer::{BandMaskKind, FramerInput, FramerLossConfig, LossExecution, Parameterization, dft};

type A = Autodiff<Flex>;

/// Per-sample levels (σ or ᾱ) as a tensor.
fn levels(values: &[f32]) -> Tensor<A, 1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Default::default())
}

/// Host path against tensor path: values, every term, the mask and the gradients with
/// respect to the students and to `x_t`, on shapes with odd sizes, an odd number of planes,
/// both mask kinds, an injected asymmetric mask, FAW/FAM off and three parameterizations.
#[test]
fn host_path_equals_tensor_path() {
    let device = Default::default();
    struct Case {
        shape: [usize; 4],
        students: usize,
        config: FramerLossConfig,
        param: Parameterization<A>,
        asymmetric_mask: bool,
    }
    let base = FramerLossConfig::new();
    let cases = [
        Case { shape: [2, 3, 8, 10], students: 3, config: base.clone(), param: Parameterization::RectifiedFlow { sigmas: levels(&[0.3, 0.9]) }, asymmetric_mask: false },
        Case { shape: [1, 3, 7, 9], students: 4, config: base.clone().with_temperature(0.5), param: Parameterization::Sample, asymmetric_mask: false },
        Case { shape: [3, 2, 6, 5], students: 2, config: base.clone().with_mask(BandMaskKind::Radial { radius: 0.4 }), param: Parameterization::Epsilon { alphas_cumprod: levels(&[0.9, 0.5, 0.2]) }, asymmetric_mask: false },
        Case { shape: [2, 2, 8, 8], students: 3, config: base.clone().with_adaptive_weight(false), param: Parameterization::RectifiedFlow { sigmas: levels(&[0.5, 0.1]) }, asymmetric_mask: true },
        Case { shape: [2, 1, 1, 5], students: 2, config: base.clone(), param: Parameterization::RectifiedFlow { sigmas: levels(&[0.4, 0.6]) }, asymmetric_mask: false },
        Case { shape: [1, 3, 5, 1], students: 3, config: base.clone().with_mask(BandMaskKind::Radial { radius: 0.5 }), param: Parameterization::RectifiedFlow { sigmas: levels(&[0.4]) }, asymmetric_mask: false },
        Case { shape: [2, 1, 5, 4], students: 3, config: base.clone().with_alignment_modulation(false).with_mask(BandMaskKind::Quantile { cutoff: 0.6 }), param: Parameterization::RectifiedFlow { sigmas: levels(&[0.7, 0.2]) }, asymmetric_mask: false },
    ];
    // deterministic inputs (the backend's generator is shared by concurrent tests)
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for case in cases {
        let shape = case.shape;
        let numel = shape.iter().product::<usize>();
        let mut random = || {
            // sums of uniforms: roughly normal
            let values: Vec<f32> = (0..numel).map(|_| next() + next() + next() - 1.5).collect();
            Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device)
        };
        let students: Vec<Tensor<A, 4>> = (0..case.students).map(|_| random().require_grad()).collect();
        let x_t = random().require_grad();
        let negatives: Vec<usize> = (0..case.students).map(|i| (i + 1) % case.students).collect();
        let mut input =
            FramerInput::new(students.clone(), random(), x_t.clone(), case.param.clone(), negatives);
        if case.asymmetric_mask {
            let values: Vec<f32> = (0..numel).map(|_| if next() < 0.3 { 1.0 } else { 0.0 }).collect();
            let mask = Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device);
            assert!(!dft::is_conjugate_symmetric(&mask));
            input = input.with_low_mask(mask);
        }
        let run = |execution: LossExecution| {
            let loss = case.config.clone().with_execution(execution).init().unwrap();
            let out = loss.forward(input.clone()).unwrap();
            let diag = out.diagnostics();
            let mask: Vec<f32> = out.low_mask().into_data().to_vec().unwrap();
            let grads = out.loss.backward();
            let host = |t: &Tensor<A, 4>| -> Vec<f32> { t.grad(&grads).unwrap().into_data().to_vec().unwrap() };
            let mut g: Vec<Vec<f32>> = students.iter().map(host).collect();
            g.push(host(&x_t));
            (diag, mask, g)
        };
        let (host_diag, host_mask, host_grads) = run(LossExecution::Host);
        let (tensor_diag, tensor_mask, tensor_grads) = run(LossExecution::Tensor);
        let what = format!("{shape:?} {:?}", case.config);
        assert_eq!(host_mask, tensor_mask, "{what}: masks");
        let close = |a: f32, b: f32, scale: f32, tol: f32, name: &str| {
            assert!((a - b).abs() <= tol * scale.max(1e-6), "{what}: {name}: host {a} vs tensor {b}");
        };
        close(host_diag.loss, tensor_diag.loss, tensor_diag.loss.abs(), 2e-5, "loss");
        close(host_diag.avg_weight_low, tensor_diag.avg_weight_low, 1.0, 2e-5, "avg_weight_low");
        close(host_diag.avg_weight_high, tensor_diag.avg_weight_high, 1.0, 2e-5, "avg_weight_high");
        for (h, t) in host_diag.layers.iter().zip(&tensor_diag.layers) {
            close(h.loss, t.loss, t.loss.abs(), 2e-5, "layer");
            for (name, hv, tv) in [
                ("intra", &h.intra, &t.intra),
                ("inter", &h.inter, &t.inter),
                ("fam_low", &h.fam_low, &t.fam_low),
                ("fam_high", &h.fam_high, &t.fam_high),
                ("faw_low", &h.faw_low, &t.faw_low),
                ("faw_high", &h.faw_high, &t.faw_high),
            ] {
                for (a, b) in hv.iter().zip(tv) {
                    close(*a, *b, b.abs(), 2e-5, name);
                }
            }
        }
        for (k, (h, t)) in host_grads.iter().zip(&tensor_grads).enumerate() {
            let scale = t.iter().fold(0f32, |m, g| m.max(g.abs()));
            // x_t (the last) has no influence under x0-prediction
            let x0 = matches!(case.param, Parameterization::Sample);
            assert!(scale > 0.0 || (k == case.students && x0), "{what}: gradient {k} is zero");
            for (a, b) in h.iter().zip(t) {
                close(*a, *b, scale, 2e-4, &format!("gradient {k}"));
            }
        }
    }
}

/// An empty band (here an injected all-zero low mask) has a zero-norm student vector: the
/// reference's `F.normalize` gives it a finite gradient, and so must both paths (the tensor
/// path once produced 0·∞ = NaN through the square root of the norm).
#[test]
fn empty_band_gives_finite_gradients() {
    let device = Default::default();
    let shape = [2, 2, 4, 6];
    let mut rng = rng(7);
    let mut random = || normal::<A, 4>(&mut rng, shape, 0.0);
    let students: Vec<Tensor<A, 4>> = (0..3).map(|_| random().require_grad()).collect();
    let input = FramerInput::new(
        students.clone(),
        random(),
        random(),
        Parameterization::RectifiedFlow { sigmas: levels(&[0.5, 0.5]) },
        vec![1, 2, 0],
    )
    .with_low_mask(Tensor::zeros(shape, &device));
    let mut results = Vec::new();
    for execution in [LossExecution::Tensor, LossExecution::Host] {
        let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
        let out = loss.forward(input.clone()).unwrap();
        let value: f32 = out.loss.clone().into_scalar();
        let grads = out.loss.backward();
        let g: Vec<f32> = students[0].grad(&grads).unwrap().into_data().to_vec().unwrap();
        assert!(value.is_finite(), "{execution:?}: loss {value}");
        assert!(g.iter().all(|v| v.is_finite()), "{execution:?}: non-finite gradient");
        assert!(g.iter().any(|&v| v != 0.0), "{execution:?}: the high band still has a gradient");
        results.push((value, g));
    }
    let (tensor, host) = (&results[0], &results[1]);
    assert!((tensor.0 - host.0).abs() < 1e-5 * tensor.0.abs());
    let scale = tensor.1.iter().fold(0f32, |m, g| m.max(g.abs()));
    for (a, b) in tensor.1.iter().zip(&host.1) {
        assert!((a - b).abs() < 2e-4 * scale, "{a} vs {b}");
    }
}

/// A NaN or infinity in a student reaches the loss as a non-finite value (which the engine's
/// guard catches) on both paths; it does not panic in the mask selection or the FFTs.
#[test]
fn non_finite_students_give_a_non_finite_loss_not_a_panic() {
    let device = Default::default();
    let shape = [2, 2, 6, 6];
    let mut rng = rng(13);
    for bad in [f32::NAN, f32::INFINITY] {
        let mut values = vec![0.25f32; 2 * 2 * 6 * 6];
        values[7] = bad;
        let broken = Tensor::<A, 4>::from_data(TensorData::new(values, shape), &device).require_grad();
        let mut random = || normal::<A, 4>(&mut rng, shape, 0.0);
        let input = FramerInput::new(
            vec![broken, random().require_grad(), random().require_grad()],
            random(),
            random(),
            Parameterization::RectifiedFlow { sigmas: levels(&[0.5, 0.5]) },
            vec![1, 2, 0],
        );
        for execution in [LossExecution::Tensor, LossExecution::Host] {
            let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
            let value: f32 = loss.forward(input.clone()).unwrap().loss.into_scalar();
            assert!(!value.is_finite(), "{execution:?} with {bad}: loss {value}");
        }
    }
}
