//! The FRAMER loss against the reference implementation's own outputs (`tests/golden/`, copied from
//! the reference run described in its README), plus worked examples and gradient checks.

use std::path::PathBuf;

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use framer::golden::{GoldenCase, MaskSource, Tolerances, check_case, check_case_with};
use framer::{
    BandMaskKind, FramerError, FramerInput, FramerLossConfig, LossExecution, NegativeSampler,
    Parameterization,
};

type A = Autodiff<Flex>;

fn case(name: &str) -> GoldenCase {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    GoldenCase::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_case(name: &str, mask: MaskSource) {
    let report = check_case::<A>(&case(name), mask, Tolerances::default(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(report.passed(), "{report}");
    // the report must actually compare something
    let expected_rows = match mask {
        MaskSource::Reference => 3 + 4 * case(name).shape[0] + 1,
        MaskSource::Own => 2,
    };
    assert_eq!(report.rows.len(), expected_rows);
}

/// The tensor path (dense DFT matrices, autodiff gradients: what GPU backends run) against the
/// reference too; the tests above go through the host path that CPU backends use.
#[test]
fn tensor_path_matches_reference_on_every_case() {
    let _serial = common::backward_lock();
    for name in ["tiny", "single", "paperlike"] {
        for mask in [MaskSource::Reference, MaskSource::Own] {
            let report = check_case_with::<A>(
                &case(name),
                mask,
                Tolerances::default(),
                LossExecution::Tensor,
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(report.passed(), "{name} (tensor path): {report}");
        }
    }
}

#[test]
fn tiny_matches_reference_with_reference_mask() {
    let _serial = common::backward_lock();
    assert_case("tiny", MaskSource::Reference);
}

#[test]
fn tiny_matches_reference_with_own_mask() {
    let _serial = common::backward_lock();
    assert_case("tiny", MaskSource::Own);
}

#[test]
fn single_matches_reference_with_reference_mask() {
    let _serial = common::backward_lock();
    assert_case("single", MaskSource::Reference);
}

#[test]
fn single_matches_reference_with_own_mask() {
    let _serial = common::backward_lock();
    assert_case("single", MaskSource::Own);
}

#[test]
fn paperlike_matches_reference_with_reference_mask() {
    let _serial = common::backward_lock();
    assert_case("paperlike", MaskSource::Reference);
}

#[test]
fn paperlike_matches_reference_with_own_mask() {
    let _serial = common::backward_lock();
    assert_case("paperlike", MaskSource::Own);
}

/// `N(mean, 1)` inputs from the test's own generator.
fn random(rng: &mut StdRng, shape: [usize; 4], mean: f32) -> Tensor<A, 4> {
    common::normal(rng, shape, mean)
}

/// Per-sample levels (σ or ᾱ) as a tensor.
fn levels<B: burn::tensor::backend::Backend>(values: &[f32]) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Default::default())
}

/// Students identical to the teacher, negatives identical too: every cosine is 1, so FAM = 1,
/// FAW = 1 (no energy gap), IntraCL = log 2 (two equal logits) and InterCL = log(2B)/… worked below.
#[test]
fn identical_layers_give_the_worked_example() {
    let _serial = common::backward_lock();
    let mut rng = common::rng(8);
    for (batch, tau) in [(1usize, 1.0f64), (3, 0.5)] {
        let shape = [batch, 2, 6, 5];
        let teacher = random(&mut rng, shape, 0.0);
        let x_t = random(&mut rng, shape, 0.5);
        let students = vec![teacher.clone(), teacher.clone(), teacher.clone()];
        let loss = FramerLossConfig::new().with_temperature(tau).init().unwrap();
        let out = loss
            .forward(FramerInput::new(
                students,
                teacher,
                x_t,
                Parameterization::RectifiedFlow { sigmas: Tensor::full([batch], 0.7, &Default::default()) },
                vec![1, 2, 0],
            ))
            .unwrap();
        let d = out.diagnostics();
        // IntraCL: logits (1/τ, 1/τ) → log 2. InterCL: own teacher and own negative give 1/τ; the other
        // samples' keys give c/τ with c their cosine; for B = 1 it is log 2.
        for layer in &d.layers {
            for b in 0..batch {
                assert!((layer.intra[b] - std::f32::consts::LN_2).abs() < 1e-5);
                assert!((layer.fam_low[b] - 1.0).abs() < 1e-5 && (layer.fam_high[b] - 1.0).abs() < 1e-5);
                assert!((layer.faw_low[b] - 1.0).abs() < 1e-5 && (layer.faw_high[b] - 1.0).abs() < 1e-5);
                assert!(layer.inter[b] >= std::f32::consts::LN_2 - 1e-5);
            }
        }
        if batch == 1 {
            assert!((d.loss - 2.0 * std::f32::consts::LN_2).abs() < 1e-5, "{}", d.loss);
        }
    }
}

/// Central finite differences of the whole loss with respect to a few student coefficients.
///
/// FAW, FAM and the random-layer negatives are under stop-gradient by design, so finite differences
/// see through them and autodiff does not. The check therefore turns FAW and FAM off, perturbs a
/// student that is no other student's negative, and injects a fixed mask: the loss is then an
/// ordinary differentiable function of that student, and any stop-gradient in the wrong place (or a
/// wrong backward) shows up as a mismatch. (The golden cases check the gradients with FAW and FAM on.)
#[test]
fn loss_gradient_matches_finite_differences() {
    let _serial = common::backward_lock();
    let mut rng = common::rng(9);
    let device = Default::default();
    let shape = [2, 2, 6, 7];
    let [b, c, h, w] = shape;
    let teacher = random(&mut rng, shape, 0.0);
    let x_t = random(&mut rng, shape, 0.0);
    let base: Vec<Tensor<A, 4>> = (0..3).map(|i| random(&mut rng, shape, 0.1 * i as f32)).collect();
    let loss = FramerLossConfig::new()
        .with_temperature(0.5)
        .with_adaptive_weight(false)
        .with_alignment_modulation(false)
        .init()
        .unwrap();
    let param = Parameterization::RectifiedFlow { sigmas: levels(&[0.4, 0.9]) };
    // student 2 is nobody's negative
    let negatives = vec![1, 0, 0];
    // fix the mask from the unperturbed teacher
    let mask = loss
        .forward(FramerInput::new(base.clone(), teacher.clone(), x_t.clone(), param.clone(), negatives.clone()))
        .unwrap()
        .low_mask()
        .detach();
    let eval = |students: Vec<Tensor<A, 4>>| {
        loss.forward(
            FramerInput::new(students, teacher.clone(), x_t.clone(), param.clone(), negatives.clone())
                .with_low_mask(mask.clone()),
        )
        .unwrap()
        .loss
    };
    let students: Vec<Tensor<A, 4>> = base.iter().map(|s| s.clone().detach().require_grad()).collect();
    let grads = eval(students.clone()).backward();
    let student = 2;
    let analytic: Vec<f32> = students[student].grad(&grads).unwrap().into_data().to_vec().unwrap();
    let values: Vec<f32> = base[student].to_data().to_vec().unwrap();
    // f32 loss ≈ 1: each evaluation carries ~1e-7 of rounding, i.e. ~1e-5 on the difference quotient
    let eps = 1e-2f32;
    let mut checked = 0;
    for k in [0, 5, 17, 40, 63, 80] {
        let perturbed = |delta: f32| {
            let mut v = values.clone();
            v[k] += delta;
            let mut s = base.clone();
            s[student] = Tensor::from_data(TensorData::new(v, [b, c, h, w]), &device);
            eval(s).into_scalar() as f64
        };
        let numeric = (perturbed(eps) - perturbed(-eps)) / (2.0 * eps as f64);
        let a = analytic[k] as f64;
        assert!((numeric - a).abs() < 1e-2 * numeric.abs().max(a.abs()) + 5e-5, "d/ds[{k}]: numeric {numeric:e}, autodiff {a:e}");
        checked += 1;
    }
    assert_eq!(checked, 6);
    assert!(analytic.iter().any(|g| g.abs() > 1e-6), "the student receives a gradient");
}

#[test]
fn teacher_receives_no_gradient() {
    let _serial = common::backward_lock();
    let mut rng = common::rng(10);
    let shape = [2, 2, 4, 4];
    let teacher = random(&mut rng, shape, 0.0).require_grad();
    let students: Vec<Tensor<A, 4>> = (0..2).map(|_| random(&mut rng, shape, 0.0).require_grad()).collect();
    let out = FramerLossConfig::new()
        .init()
        .unwrap()
        .forward(FramerInput::new(
            students.clone(),
            teacher.clone(),
            random(&mut rng, shape, 0.0),
            Parameterization::Sample,
            vec![1, 0],
        ))
        .unwrap();
    let grads = out.loss.backward();
    let teacher_grad = teacher.grad(&grads).map(|g| g.abs().max().into_scalar()).unwrap_or(0.0);
    assert_eq!(teacher_grad, 0.0, "the teacher is under stop-gradient");
    assert!(students[0].grad(&grads).is_some());
}

#[test]
fn switching_off_faw_and_fam_sets_their_weights_to_one() {
    let _serial = common::backward_lock();
    let mut rng = common::rng(11);
    let shape = [2, 3, 8, 8];
    let students: Vec<Tensor<A, 4>> = (0..3).map(|i| random(&mut rng, shape, i as f32)).collect();
    let input = FramerInput::new(students, random(&mut rng, shape, 0.0), random(&mut rng, shape, 0.0), Parameterization::Sample, vec![1, 2, 0]);
    let on = FramerLossConfig::new().init().unwrap().forward(input.clone()).unwrap().diagnostics();
    let off = FramerLossConfig::new()
        .with_adaptive_weight(false)
        .with_alignment_modulation(false)
        .init()
        .unwrap()
        .forward(input)
        .unwrap()
        .diagnostics();
    assert_eq!(off.avg_weight_low, 1.0);
    assert_eq!(off.avg_weight_high, 1.0);
    assert!(on.avg_weight_low < 1.0);
    // without weights, each layer's loss is the plain mean of intra + inter
    for l in &off.layers {
        let plain: f32 = l.intra.iter().zip(&l.inter).map(|(a, b)| a + b).sum::<f32>() / l.intra.len() as f32;
        assert!((l.loss - plain).abs() < 1e-5);
    }
}

#[test]
fn radial_masks_give_a_finite_differentiable_loss() {
    let _serial = common::backward_lock();
    let mut rng = common::rng(12);
    let shape = [2, 3, 12, 20];
    let students: Vec<Tensor<A, 4>> = (0..3).map(|i| random(&mut rng, shape, i as f32).require_grad()).collect();
    let loss = FramerLossConfig::new().with_mask(BandMaskKind::Radial { radius: 0.3 }).init().unwrap();
    let out = loss
        .forward(FramerInput::new(students.clone(), random(&mut rng, shape, 0.0), random(&mut rng, shape, 0.0), Parameterization::Sample, vec![2, 0, 1]))
        .unwrap();
    let mask: Vec<f32> = out.low_mask().into_data().to_vec().unwrap();
    let reference: Vec<f32> = framer::band::radial_low_mask::<Flex>(12, 20, 0.3, &Default::default()).into_data().to_vec().unwrap();
    assert_eq!(&mask[..240], &reference[..], "the radial mask is the same for every sample and channel");
    let value = out.loss.clone().into_scalar();
    assert!(value.is_finite() && value > 0.0);
    let grads = out.loss.backward();
    let g = students[0].grad(&grads).unwrap().abs().sum().into_scalar();
    assert!(g.is_finite() && g > 0.0);
}

#[test]
fn parameterizations_follow_their_closed_forms() {
    let _serial = common::backward_lock();
    let device = Default::default();
    let x_t = Tensor::<Flex, 4>::from_floats([[[[2.0]]], [[[4.0]]]], &device);
    let pred = Tensor::<Flex, 4>::from_floats([[[[1.0]]], [[[-1.0]]]], &device);
    let x0 = |p: Parameterization<Flex>| -> Vec<f32> {
        p.clean_estimate(pred.clone(), x_t.clone()).unwrap().into_data().to_vec().unwrap()
    };
    // rectified flow: x0 = x_t − σ v
    assert_eq!(x0(Parameterization::RectifiedFlow { sigmas: levels(&[0.5, 0.25]) }), vec![1.5, 4.25]);
    // ε: ᾱ = 0.64 → √ᾱ = 0.8, √(1−ᾱ) = 0.6: x0 = (2 − 0.6)/0.8 = 1.75, (4 + 0.6)/0.8 = 5.75
    let eps = x0(Parameterization::Epsilon { alphas_cumprod: levels(&[0.64, 0.64]) });
    assert!((eps[0] - 1.75).abs() < 1e-6 && (eps[1] - 5.75).abs() < 1e-6, "{eps:?}");
    // v: x0 = 0.8·x_t − 0.6·v = 1.0, 3.8
    let v = x0(Parameterization::Velocity { alphas_cumprod: levels(&[0.64, 0.64]) });
    assert!((v[0] - 1.0).abs() < 1e-6 && (v[1] - 3.8).abs() < 1e-6, "{v:?}");
    assert_eq!(x0(Parameterization::Sample), vec![1.0, -1.0]);
    assert!(matches!(
        Parameterization::Epsilon { alphas_cumprod: levels(&[0.0, 0.5]) }.clean_estimate(pred.clone(), x_t.clone()),
        Err(FramerError::InvalidSchedule(_))
    ));
    assert!(matches!(
        Parameterization::RectifiedFlow { sigmas: levels(&[0.5]) }.clean_estimate(pred, x_t),
        Err(FramerError::InvalidSchedule(_))
    ));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let _serial = common::backward_lock();
    let shape = [2, 2, 4, 4];
    let rng = std::cell::RefCell::new(common::rng(29));
    let draw = |shape: [usize; 4]| random(&mut rng.borrow_mut(), shape, 0.0);
    let s = || draw(shape);
    let loss = FramerLossConfig::new().init().unwrap();
    let p = || Parameterization::Sample;
    let err = |input: FramerInput<A>| loss.forward(input).unwrap_err();
    assert_eq!(err(FramerInput::new(vec![s()], s(), s(), p(), vec![0])), FramerError::TooFewStudents(1));
    assert!(matches!(
        err(FramerInput::new(vec![s(), draw([2, 2, 4, 5])], s(), s(), p(), vec![1, 0])),
        FramerError::ShapeMismatch { ref name, .. } if name == "students[1]"
    ));
    assert!(matches!(
        err(FramerInput::new(vec![s(), s()], s(), draw([2, 2, 4, 5]), p(), vec![1, 0])),
        FramerError::ShapeMismatch { ref name, .. } if name == "x_t"
    ));
    let empty = || draw([0, 2, 4, 4]);
    assert_eq!(err(FramerInput::new(vec![empty(), empty()], empty(), empty(), p(), vec![1, 0])), FramerError::EmptyBatch("teacher"));
    assert!(matches!(err(FramerInput::new(vec![s(), s()], s(), s(), p(), vec![0, 0])), FramerError::InvalidNegatives(_)));
    assert!(matches!(
        err(FramerInput::new(vec![s(), s()], s(), s(), p(), vec![1, 0]).with_low_mask(draw([2, 2, 4, 5]))),
        FramerError::ShapeMismatch { ref name, .. } if name == "low_mask"
    ));
    assert_eq!(FramerLossConfig::new().with_temperature(0.0).init().unwrap_err(), FramerError::NonPositiveTemperature(0.0));
    assert!(matches!(
        FramerLossConfig::new().with_mask(BandMaskKind::Quantile { cutoff: 1.0 }).init(),
        Err(FramerError::CutoffOutOfRange { name: "cutoff", .. })
    ));
    let msg = FramerError::TooFewStudents(1).to_string();
    assert!(msg.contains("at least 2 students"), "{msg}");
    let _ = NegativeSampler::seeded(0);
}

#[test]
fn golden_loader_names_the_file_on_bad_input() {
    let _serial = common::backward_lock();
    let dir = std::env::temp_dir().join(format!("framer-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("broken.json");
    std::fs::write(&json, "{ not json").unwrap();
    let e = GoldenCase::load(&json).unwrap_err().to_string();
    assert!(e.contains("broken.json"), "{e}");
    let good = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/single.json")).unwrap();
    let orphan = dir.join("orphan.json");
    std::fs::write(&orphan, good).unwrap();
    let e = GoldenCase::load(&orphan).unwrap_err().to_string();
    assert!(e.contains("orphan.safetensors"), "{e}");
}
