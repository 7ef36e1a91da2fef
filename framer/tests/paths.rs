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
    let _serial = common::backward_lock();
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
    let _serial = common::backward_lock();
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
    let _serial = common::backward_lock();
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

/// Student weights (`Σ_i w_i·layer_i / S`) on both paths: the host path's closed-form gradient
/// scales each student's gradient by its weight exactly as autodiff does through the tensor path
/// (loss within 2e-5 relative, gradients within 2e-4 of the largest gradient, as above); by hand,
/// weights (2, 0, 0) give twice the first layer term over S = 3, no gradient for the students
/// weighted 0, and twice the unweighted gradient of the first student; bad weights are rejected.
#[test]
fn weighted_students_agree_on_both_paths_and_by_hand() {
    let _serial = common::backward_lock();
    let shape = [2, 2, 6, 8];
    let mut rng = rng(29);
    let mut random = || normal::<A, 4>(&mut rng, shape, 0.0);
    let students: Vec<Tensor<A, 4>> = (0..3).map(|_| random().require_grad()).collect();
    let (teacher, x_t) = (random(), random().require_grad());
    let input = FramerInput::new(
        students.clone(),
        teacher,
        x_t.clone(),
        Parameterization::RectifiedFlow { sigmas: levels(&[0.3, 0.8]) },
        vec![1, 2, 0],
    );
    let run = |execution: LossExecution, weights: Option<Vec<f64>>| {
        let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
        let input = match weights {
            Some(w) => input.clone().with_student_weights(w),
            None => input.clone(),
        };
        let out = loss.forward(input).unwrap();
        let diag = out.diagnostics();
        let grads = out.loss.backward();
        let host = |t: &Tensor<A, 4>| -> Vec<f32> {
            t.grad(&grads).map_or(vec![0.0; shape.iter().product()], |g| g.into_data().to_vec().unwrap())
        };
        let mut g: Vec<Vec<f32>> = students.iter().map(host).collect();
        g.push(host(&x_t));
        (diag, g)
    };
    let close = |a: f32, b: f32, scale: f32, tol: f32, what: &str| {
        assert!((a - b).abs() <= tol * scale.max(1e-6), "{what}: {a} vs {b}");
    };
    let max = |g: &[f32]| g.iter().fold(0f32, |m, v| m.max(v.abs()));

    // host against tensor with non-unit weights
    let weights = vec![0.25, 1.5, 3.0];
    let (host, host_grads) = run(LossExecution::Host, Some(weights.clone()));
    let (tensor, tensor_grads) = run(LossExecution::Tensor, Some(weights.clone()));
    close(host.loss, tensor.loss, tensor.loss.abs(), 2e-5, "weighted loss");
    for (k, (h, t)) in host_grads.iter().zip(&tensor_grads).enumerate() {
        assert!(max(t) > 0.0, "gradient {k} is zero");
        for (a, b) in h.iter().zip(t) {
            close(*a, *b, max(t), 2e-4, &format!("weighted gradient {k}"));
        }
    }
    // the layer terms are those of the unweighted loss; the loss is their weighted mean
    for execution in [LossExecution::Host, LossExecution::Tensor] {
        let (plain, plain_grads) = run(execution, None);
        let (weighted, _) = run(execution, Some(weights.clone()));
        let layers: Vec<f32> = plain.layers.iter().map(|l| l.loss).collect();
        for (w, p) in weighted.layers.iter().zip(&layers) {
            assert_eq!(w.loss, *p, "{execution:?}: layer terms are unweighted");
        }
        let expected: f32 = layers.iter().zip(&weights).map(|(l, w)| l * *w as f32).sum::<f32>() / 3.0;
        close(weighted.loss, expected, expected.abs(), 1e-6, &format!("{execution:?}: Σ w·layer / S"));

        // weights (2, 0, 0): twice the first layer term over S = 3
        let (two, two_grads) = run(execution, Some(vec![2.0, 0.0, 0.0]));
        close(two.loss, 2.0 * layers[0] / 3.0, layers[0].abs(), 1e-6, &format!("{execution:?}: (2, 0, 0)"));
        // student 0's own terms scale by 2; students 1 and 2 (weight 0) get no gradient: only
        // the first layer term depends on them, and only through detached negatives
        let (_, first_only) = run(execution, Some(vec![1.0, 0.0, 0.0]));
        for (a, b) in two_grads[0].iter().zip(&first_only[0]) {
            close(*a, 2.0 * b, max(&first_only[0]), 1e-5, &format!("{execution:?}: gradient of student 0"));
        }
        assert!(two_grads[1].iter().chain(&two_grads[2]).all(|&g| g == 0.0), "{execution:?}: weight-0 students");
        // all-one weights are exactly the unweighted loss
        let (ones, ones_grads) = run(execution, Some(vec![1.0; 3]));
        assert_eq!(ones.loss, plain.loss, "{execution:?}: all-one weights");
        assert_eq!(ones_grads, plain_grads, "{execution:?}: all-one weights, gradients");
    }

    // bad weights are errors naming them
    let loss = FramerLossConfig::new().init().unwrap();
    for (weights, needle) in [(vec![1.0, 1.0], "2 weights for 3 students"), (vec![1.0, -0.5, 1.0], "students[1] is -0.5"), (vec![1.0, 1.0, f64::NAN], "students[2] is NaN")] {
        let err = loss.forward(input.clone().with_student_weights(weights)).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}
