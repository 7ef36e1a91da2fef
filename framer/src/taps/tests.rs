use super::*;
use burn::backend::Flex;
use burn::tensor::{TensorData, Tolerance};

type B = Flex;

fn randn(shape: [usize; 4]) -> Tensor<B, 4> {
    crate::testing::normal(&mut crate::testing::rng(shape.iter().product::<usize>() as u64), shape, 0.0)
}

fn sample_taps(shapes: &[[usize; 4]], teacher: [usize; 4], in_teacher_space: bool) -> Taps<B> {
    let mut taps = Taps::new(in_teacher_space);
    for (i, shape) in shapes.iter().enumerate() {
        taps.push_student(tap_name("blocks", Some(i)), randn(*shape));
    }
    taps.set_teacher(OUTPUT_TAP.into(), randn(teacher));
    taps
}

#[test]
fn taps_list_students_in_order_then_the_teacher() {
    let taps = sample_taps(&[[1, 3, 4, 4]; 3], [1, 3, 4, 4], true);
    assert_eq!(taps.names(), ["blocks.0", "blocks.1", "blocks.2", "output"]);
    assert_eq!(taps.student_names(), ["blocks.0", "blocks.1", "blocks.2"]);
    assert_eq!((taps.len(), taps.num_students()), (4, 3));
    assert!(taps.get("blocks.1").is_some() && taps.get("blocks.7").is_none());
    let roles: Vec<TapRole> = taps.iter().map(|r| r.role).collect();
    assert_eq!(
        roles,
        [
            TapRole::Student,
            TapRole::Student,
            TapRole::Student,
            TapRole::Teacher
        ]
    );
    assert_eq!(
        TapInfo::new("mid_block", None, TapRole::Student).name,
        "mid_block"
    );
}

#[test]
fn framer_input_needs_a_teacher_and_the_teacher_space() {
    let param = Parameterization::RectifiedFlow { sigmas: Tensor::full([1], 0.5, &Default::default()) };
    let mut no_teacher = Taps::<B>::new(true);
    no_teacher.push_student("a".into(), randn([1, 1, 2, 2]));
    let err = no_teacher
        .framer_input(randn([1, 1, 2, 2]), param.clone(), vec![0])
        .unwrap_err();
    assert_eq!(err, TapsError::MissingTeacher);
    let hidden = sample_taps(&[[1, 8, 2, 2]; 2], [1, 3, 4, 4], false);
    let err = hidden
        .framer_input(randn([1, 3, 4, 4]), param.clone(), vec![1, 0])
        .unwrap_err();
    assert_eq!(err, TapsError::NotInTeacherSpace);
    let ok = sample_taps(&[[1, 3, 4, 4]; 2], [1, 3, 4, 4], true);
    let input = ok
        .framer_input(randn([1, 3, 4, 4]), param, vec![1, 0])
        .unwrap();
    assert_eq!(input.students.len(), 2);
}

#[test]
fn students_are_selected_by_name_in_recording_order() {
    let taps = sample_taps(&[[1, 3, 4, 4]; 4], [1, 3, 4, 4], true);
    let picked = taps
        .clone()
        .retain_students(&["blocks.3".into(), "blocks.1".into()])
        .unwrap();
    assert_eq!(picked.names(), ["blocks.1", "blocks.3", "output"]);
    let err = taps.retain_students(&["blocks.9".into()]).unwrap_err();
    assert_eq!(
        err,
        TapsError::UnknownStudent {
            name: "blocks.9".into(),
            known: "blocks.0, blocks.1, blocks.2, blocks.3".into()
        }
    );
}

#[test]
fn students_shaped_unlike_the_teacher_suggest_a_readout() {
    let taps = sample_taps(&[[1, 3, 4, 4], [1, 8, 2, 2]], [1, 3, 4, 4], true);
    let param = Parameterization::RectifiedFlow { sigmas: Tensor::full([1], 0.5, &Default::default()) };
    let err = taps.framer_input(randn([1, 3, 4, 4]), param, vec![1, 0]).unwrap_err();
    assert_eq!(
        err,
        TapsError::StudentShape {
            name: "blocks.1".into(),
            got: [1, 8, 2, 2],
            expected: [1, 3, 4, 4]
        }
    );
    let message = err.to_string();
    assert!(message.contains("heads = conv1x1") && message.contains("readout = method"), "{message}");
}

#[test]
fn loss_errors_surface_as_taps_errors() {
    // One student is too few for FRAMER: the loss's own error comes through.
    let taps = sample_taps(&[[1, 3, 4, 4]], [1, 3, 4, 4], true);
    let loss = crate::FramerLossConfig::new().init().unwrap();
    let param = Parameterization::RectifiedFlow { sigmas: Tensor::full([1], 0.5, &Default::default()) };
    let err = taps
        .loss(&loss, randn([1, 3, 4, 4]), param, vec![0])
        .unwrap_err();
    assert_eq!(err, TapsError::Loss(FramerError::TooFewStudents(1)));
}

#[test]
fn heads_are_a_one_by_one_convolution_at_the_teacher_resolution() {
    let device = Default::default();
    let taps = sample_taps(&[[2, 4, 3, 3]], [2, 2, 3, 3], false);
    let heads = FramerHeads::<B>::from_taps(&taps, &device).unwrap();
    assert_eq!(heads.len(), 1);
    let student = taps.students().remove(0);
    let mapped = heads.forward(taps).unwrap();
    assert!(mapped.in_teacher_space());
    // Oracle: out[b, o, y, x] = Σ_c w[o, c] · in[b, c, y, x] + bias[o].
    let conv = &heads.convs[0];
    let w = conv.weight.val().reshape([2, 4]);
    let bias = conv.bias.as_ref().unwrap().val();
    let pixels = student.permute([0, 2, 3, 1]).reshape([18, 4]); // [b·y·x, c]
    let expected = (pixels.matmul(w.transpose()) + bias.unsqueeze::<2>())
        .reshape([2, 3, 3, 2])
        .permute([0, 3, 1, 2]);
    let got = mapped.students().remove(0);
    got.into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
}

#[test]
fn heads_resize_to_the_teacher_and_keep_constants_constant() {
    let device = Default::default();
    let mut taps = Taps::<B>::new(false);
    let ones = Tensor::<B, 4>::ones([1, 2, 2, 2], &device);
    taps.push_student("down_blocks.1".into(), ones);
    taps.set_teacher(OUTPUT_TAP.into(), randn([1, 3, 8, 8]));
    let heads = FramerHeads::<B>::from_taps(&taps, &device).unwrap();
    let mapped = heads.forward(taps).unwrap().students().remove(0);
    assert_eq!(mapped.dims(), [1, 3, 8, 8]);
    // A spatially constant map stays constant under bilinear resizing.
    let spread = mapped.clone().max_dim(3).max_dim(2) - mapped.min_dim(3).min_dim(2);
    let zeros = TensorData::zeros::<f32, _>([1, 3, 1, 1]);
    spread
        .into_data()
        .assert_approx_eq::<f32>(&zeros, Tolerance::default());
}

#[test]
fn heads_reject_mismatched_taps() {
    let device = Default::default();
    let taps = sample_taps(&[[1, 4, 2, 2], [1, 8, 2, 2]], [1, 3, 2, 2], false);
    let heads = FramerHeads::<B>::init(&[4], 3, &device);
    let err = heads.forward(taps.clone()).unwrap_err();
    assert_eq!(
        err,
        TapsError::HeadCount {
            heads: 1,
            students: 2
        }
    );
    let heads = FramerHeads::<B>::init(&[4, 6], 3, &device);
    let err = heads.forward(taps.clone()).unwrap_err();
    assert_eq!(
        err,
        TapsError::HeadChannels {
            name: "blocks.1".into(),
            expected: 6,
            got: 8
        }
    );
    let heads = FramerHeads::<B>::init(&[4, 8], 3, &device);
    let mapped = heads.forward(taps).unwrap();
    assert_eq!(
        heads.forward(mapped).unwrap_err(),
        TapsError::AlreadyInTeacherSpace
    );
}
