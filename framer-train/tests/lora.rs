//! LoRA adapters: the applied Linear equals `x·W + b + s·(x·A)·B` worked out separately, the
//! applied Conv2d equals PEFT's unmerged two-convolution form, zero `B` leaves the model unchanged,
//! gradients reach `A` and `B` only, the merged inference model equals the applied one, and the
//! adapters' record holds `A` and `B` only.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor, backend::Backend};
use framer_train::lora::{LoraConfig, LoraError};

type B = Autodiff<Flex>;

#[derive(Module, Debug)]
struct Net<B: Backend> {
    proj: Linear<B>,
    head: Linear<B>,
    conv: Conv2d<B>,
}

fn net(device: &burn::tensor::Device<B>) -> Net<B> {
    <B as Backend>::seed(device, 7);
    Net {
        proj: LinearConfig::new(5, 4).init(device),
        head: LinearConfig::new(4, 3).init(device),
        conv: Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device),
    }
}

/// Adapters with a non-zero `B` (as after some training), seeded.
fn trained_adapters(
    config: &LoraConfig,
    model: &Net<B>,
    device: &burn::tensor::Device<B>,
) -> framer_train::lora::LoraAdapters<B> {
    let mut adapters = config.init(model, device).unwrap();
    adapters.up = adapters
        .up
        .into_iter()
        .map(|p| {
            let shape = p.val().shape();
            Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.0, 0.5), device))
        })
        .collect();
    adapters
}

fn max_abs_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn applied_linear_equals_the_unmerged_low_rank_path() {
    let device = Default::default();
    let model = net(&device);
    let config = LoraConfig::new(2, vec!["proj".into()]).with_alpha(4.0);
    let adapters = trained_adapters(&config, &model, &device);
    assert_eq!(adapters.target_paths(), ["proj.weight"]);
    <B as Backend>::seed(&device, 1);
    let x = Tensor::<B, 2>::random([6, 5], Distribution::Normal(0.0, 1.0), &device);
    let s = 4.0 / 2.0;
    let (w, b) = (model.proj.weight.val(), model.proj.bias.as_ref().unwrap().val());
    let (a, up) = (adapters.down[0].val(), adapters.up[0].val());
    let expected = x.clone().matmul(w) + b.unsqueeze() + x.clone().matmul(a).matmul(up).mul_scalar(s);
    let applied = adapters.apply(model);
    let got = applied.proj.forward(x);
    let err = max_abs_diff(got, expected);
    assert!(err < 1e-5, "max |Δ| = {err}");
}

#[test]
fn applied_conv_equals_the_two_convolution_form() {
    let device = Default::default();
    let model = net(&device);
    let config = LoraConfig::new(2, vec!["conv".into()]);
    let adapters = trained_adapters(&config, &model, &device);
    <B as Backend>::seed(&device, 2);
    let x = Tensor::<B, 4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    // PEFT's unmerged form: conv(x, W) + s·conv1x1(conv(x, A as [r, c_in, 3, 3]), B as [c_out, r, 1, 1]).
    let s = 1.0 / 2.0;
    let opts = |p| ConvOptions::new([1, 1], [p, p], [1, 1], 1);
    let a = adapters.down[0].val().reshape([2, 3, 3, 3]);
    let up = adapters.up[0].val().reshape([4, 2, 1, 1]);
    let low = conv2d(conv2d(x.clone(), a, None, opts(1)), up, None, opts(0));
    let expected = model.conv.forward(x.clone()) + low.mul_scalar(s);
    let got = adapters.apply(model).conv.forward(x);
    let err = max_abs_diff(got, expected);
    assert!(err < 1e-5, "max |Δ| = {err}");
}

#[test]
fn fresh_adapters_leave_the_model_unchanged() {
    let device = Default::default();
    let model = net(&device);
    let adapters = LoraConfig::new(2, vec!["*".into()]).init(&model, &device).unwrap();
    assert_eq!(adapters.target_paths(), ["proj.weight", "head.weight", "conv.weight"]);
    let x = Tensor::<B, 2>::random([3, 5], Distribution::Normal(0.0, 1.0), &device);
    let before = model.head.forward(model.proj.forward(x.clone()));
    let applied = adapters.apply(model);
    let after = applied.head.forward(applied.proj.forward(x));
    assert_eq!(before.into_data(), after.into_data(), "B = 0 at init: ΔW = 0 exactly");
}

#[test]
fn gradients_reach_the_adapters_only_and_the_merge_matches() {
    let device = Default::default();
    let model = net(&device);
    // the base is frozen, as `[train] trainable` does for the layers outside the adapters
    let model = model.no_grad();
    let config = LoraConfig::new(2, vec!["proj".into(), "head".into()]);
    let adapters = trained_adapters(&config, &model, &device);
    let x = Tensor::<B, 2>::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
    let applied = adapters.apply(model.clone());
    let y = applied.head.forward(applied.proj.forward(x.clone()));
    let grads = y.clone().powi_scalar(2).mean().backward();
    let adapter_grads = GradientsParams::from_grads(grads, &adapters);
    assert_eq!(adapter_grads.len(), 4, "A and B of both targets receive a gradient");
    let grads = y.clone().powi_scalar(2).mean().backward();
    let base_grads = GradientsParams::from_grads(grads, &model);
    assert!(base_grads.is_empty(), "the frozen base weights get no gradient");

    let merged = adapters.merge(&model);
    let x_inner = x.inner();
    let y_merged = merged.head.forward(merged.proj.forward(x_inner));
    let err = (y.inner() - y_merged).abs().max().into_scalar();
    assert!(err < 1e-6, "merged vs applied: {err}");
}

#[test]
fn the_record_holds_a_and_b_only() {
    let device = Default::default();
    let model = net(&device);
    let adapters = LoraConfig::new(1, vec!["proj".into()]).init(&model, &device).unwrap();
    // proj: A [5, 1] + B [1, 4]
    assert_eq!(adapters.num_params(), 5 + 4);
}

#[test]
fn bad_targets_and_ranks_are_named() {
    let device = Default::default();
    let model = net(&device);
    let err = LoraConfig::new(2, vec!["porj".into()]).init(&model, &device).unwrap_err();
    assert!(matches!(&err, LoraError::NoMatch { pattern, .. } if pattern == "porj"), "{err}");
    assert!(err.to_string().contains("proj.weight"), "{err}");
    let err = LoraConfig::new(4, vec!["head".into()]).init(&model, &device).unwrap_err();
    assert!(
        err.to_string().contains("LoRA rank 4 does not fit `head.weight` (ΔW is 4×3); use 1..=3"),
        "{err}"
    );
}
