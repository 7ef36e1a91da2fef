//! End to end: small models written here, retrofitted with `#[framer]` attributes only. The taps
//! have the right names and shapes, `forward_with_taps` returns exactly what `forward` returns,
//! the FRAMER loss on the taps is finite, and its gradients reach the students (and the
//! generated heads).

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::backend::{AutodiffBackend, Backend, BackendTypes};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData, Tolerance};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use framer::{
    FramerLossConfig, FramerModel, NegativeSampler, Parameterization, ReadoutKind, TapElements,
    TapField, TapRole, framer, framer_forward,
};

type B = Autodiff<Flex>;

thread_local! {
    /// The inputs' generator, one per test thread, reset by [`seed`]: the backend's generator is
    /// shared by the tests running in parallel, which draw from it in any order.
    static INPUTS: std::cell::RefCell<StdRng> = std::cell::RefCell::new(StdRng::seed_from_u64(7));
}

fn seed() {
    <B as Backend>::seed(&Default::default(), 7);
    INPUTS.with(|r| *r.borrow_mut() = StdRng::seed_from_u64(7));
}

fn randn<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    let values: Vec<f32> = INPUTS.with(|r| {
        let mut rng = r.borrow_mut();
        (0..shape.iter().product::<usize>())
            .map(|_| rng.sample(StandardNormal))
            .collect()
    });
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn conv(
    c_in: usize,
    c_out: usize,
    stride: usize,
    device: &<B as BackendTypes>::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// L2 norm of a parameter's gradient.
fn grad_norm<const D: usize>(
    param: &Param<Tensor<B, D>>,
    grads: &<B as AutodiffBackend>::Gradients,
) -> f32 {
    let g = param.val().grad(grads).expect("parameter has a gradient");
    g.powf_scalar(2.0).sum().sqrt().into_scalar()
}

// ---------------------------------------------------------------------------------------------
// A DiT-like model: tokens through a `Vec` of joint blocks returning `(context, hidden)`, read out
// by the model's own early exit, which also needs the timestep embedding and the image size.
// ---------------------------------------------------------------------------------------------

const PATCH: usize = 2;
const DIM: usize = 16;

#[derive(Module, Debug)]
struct JointBlock<B: Backend> {
    mix: Linear<B>,
    context: Linear<B>,
}

impl<B: Backend> JointBlock<B> {
    /// `context [batch, dim]`, `hidden [batch, tokens, dim]`, `temb [batch, dim]`.
    fn forward(
        &self,
        context: Tensor<B, 2>,
        hidden: Tensor<B, 3>,
        temb: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 3>) {
        let cond = (context.clone() + temb).unsqueeze_dim::<3>(1);
        let hidden = hidden.clone() + gelu(self.mix.forward(hidden + cond));
        let context = context.clone() + self.context.forward(context);
        (context, hidden)
    }
}

#[framer(readout = early_exit(temb, height, width))]
#[derive(Module, Debug)]
struct TinyDit<B: Backend> {
    patch_embed: Conv2d<B>,
    time_embed: Linear<B>,
    #[framer(student, tap = .1)]
    transformer_blocks: Vec<JointBlock<B>>,
    norm_out: LayerNorm<B>,
    proj_out: Linear<B>,
}

#[framer_forward]
impl<B: Backend> TinyDit<B> {
    /// `x [batch, channels, height, width]`, `t [batch, 1]` → prediction like `x`.
    fn forward(&self, x: Tensor<B, 4>, t: Tensor<B, 2>) -> Tensor<B, 4> {
        let [batch, _, height, width] = x.dims();
        let temb = silu(self.time_embed.forward(t));
        let tokens = self.patch_embed.forward(x); // [batch, dim, h/p, w/p]
        let mut hidden = tokens
            .reshape([batch as i32, DIM as i32, -1])
            .swap_dims(1, 2);
        let mut context = hidden.clone().mean_dim(1).squeeze_dim::<2>(1);
        for block in &self.transformer_blocks {
            (context, hidden) = block.forward(context, hidden, temb.clone());
        }
        self.early_exit(hidden, temb, height, width)
    }

    /// The shared head: `hidden [batch, tokens, dim]` → `[batch, channels, height, width]`.
    fn early_exit(
        &self,
        hidden: Tensor<B, 3>,
        temb: Tensor<B, 2>,
        height: usize,
        width: usize,
    ) -> Tensor<B, 4> {
        let [batch, _, _] = hidden.dims();
        let hidden = self.norm_out.forward(hidden + temb.unsqueeze_dim::<3>(1));
        let patches = self.proj_out.forward(hidden); // [batch, tokens, channels * p * p]
        let channels = patches.dims()[2] / (PATCH * PATCH);
        let (h, w) = (height / PATCH, width / PATCH);
        patches
            .reshape([batch, h, w, channels, PATCH, PATCH])
            .permute([0, 3, 1, 4, 2, 5])
            .reshape([batch, channels, height, width])
    }
}

fn tiny_dit(blocks: usize) -> TinyDit<B> {
    let device = Default::default();
    TinyDit {
        patch_embed: Conv2dConfig::new([3, DIM], [PATCH, PATCH])
            .with_stride([PATCH, PATCH])
            .init(&device),
        time_embed: LinearConfig::new(1, DIM).init(&device),
        transformer_blocks: (0..blocks)
            .map(|_| JointBlock {
                mix: LinearConfig::new(DIM, DIM).init(&device),
                context: LinearConfig::new(DIM, DIM).init(&device),
            })
            .collect(),
        norm_out: LayerNormConfig::new(DIM).init(&device),
        proj_out: LinearConfig::new(DIM, 3 * PATCH * PATCH).init(&device),
    }
}

#[test]
fn dit_taps_have_burn_module_paths_and_the_prediction_shape() {
    seed();
    let model = tiny_dit(4);
    let (x, t) = (randn([2, 3, 8, 8]), randn([2, 1]));
    let (prediction, taps) = model.forward_with_taps(x, t);
    assert_eq!(
        taps.names(),
        [
            "transformer_blocks.0",
            "transformer_blocks.1",
            "transformer_blocks.2",
            "transformer_blocks.3",
            "output"
        ]
    );
    assert_eq!(taps.len(), 5);
    assert_eq!(taps.num_students(), 4);
    for student in taps.students() {
        assert_eq!(student.dims(), [2, 3, 8, 8]);
    }
    assert!(taps.in_teacher_space());
    // The last block's early exit is the model's own prediction.
    let last = taps.students().pop().unwrap();
    last.into_data()
        .assert_eq(&prediction.clone().into_data(), true);
    taps.teacher()
        .unwrap()
        .clone()
        .into_data()
        .assert_eq(&prediction.into_data(), true);

    // The generated metadata.
    assert_eq!(TinyDit::<B>::READOUT, ReadoutKind::Method("early_exit"));
    assert_eq!(
        TinyDit::<B>::TAP_FIELDS,
        &[TapField {
            field: "transformer_blocks",
            role: TapRole::Student,
            elements: TapElements::All,
            element: Some(1),
            weight: 1.0
        }]
    );
    let infos = model.taps();
    let names: Vec<&str> = infos.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, taps.names());
    assert_eq!(model.num_students(), 4);
    assert!(
        model
            .init_heads(&taps, &Default::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn dit_forward_with_taps_returns_exactly_what_forward_returns() {
    seed();
    let model = tiny_dit(3);
    let (x, t) = (randn([2, 3, 8, 8]), randn([2, 1]));
    let plain = model.forward(x.clone(), t.clone());
    let (tapped, _) = model.forward_with_taps(x, t);
    plain.into_data().assert_eq(&tapped.into_data(), true);
}

#[test]
fn dit_framer_loss_on_the_taps_is_finite_and_reaches_the_students() {
    seed();
    let model = tiny_dit(4);
    let (x, t) = (randn([2, 3, 8, 8]), randn([2, 1]));
    let (_, taps) = model.forward_with_taps(x.clone(), t);
    let loss = FramerLossConfig::new().init().unwrap();
    let negatives = NegativeSampler::seeded(3)
        .sample(0, taps.num_students())
        .unwrap();
    let param = Parameterization::RectifiedFlow {
        sigmas: Tensor::from_floats([0.3, 0.7], &Default::default()),
    };
    let out = taps.loss(&loss, x, param, negatives).unwrap();
    let value: f32 = out.loss.clone().into_scalar();
    assert!(value.is_finite(), "loss {value}");
    let grads = out.loss.backward();
    // Students 0..2 are trained by the loss; the teacher is detached.
    assert!(grad_norm(&model.transformer_blocks[0].mix.weight, &grads) > 0.0);
    assert!(grad_norm(&model.patch_embed.weight, &grads) > 0.0);
}

// ---------------------------------------------------------------------------------------------
// A U-Net-like model: down blocks returning `(hidden, skip)`, a mid block, up blocks indexed by
// position, generated 1×1-conv + resize heads, and a `cfg`'d field.
// ---------------------------------------------------------------------------------------------

#[derive(Module, Debug)]
struct Down<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Down<B> {
    fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let h = silu(self.conv.forward(x));
        (h.clone(), h)
    }
}

#[derive(Module, Debug)]
struct Mid<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Mid<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.clone() + silu(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
struct Up<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Up<B> {
    fn forward(&self, x: Tensor<B, 4>, skip: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let up = interpolate(
            x + skip,
            [2 * h, 2 * w],
            InterpolateOptions::new(InterpolateMode::Nearest),
        );
        silu(self.conv.forward(up))
    }
}

#[framer(heads = conv1x1)]
#[derive(Module, Debug)]
struct TinyUNet<B: Backend> {
    conv_in: Conv2d<B>,
    #[framer(student, tap = .0)]
    down_blocks: Vec<Down<B>>,
    #[framer(student)]
    mid_block: Mid<B>,
    #[framer(student)]
    up_blocks: Vec<Up<B>>,
    conv_out: Conv2d<B>,
    #[cfg(any())]
    #[framer(student)]
    disabled: Mid<B>,
}

#[framer_forward]
impl<B: Backend> TinyUNet<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = self.conv_in.forward(x);
        let mut skips = Vec::new();
        for (i, block) in self.down_blocks.iter().enumerate() {
            debug_assert_eq!(skips.len(), i);
            let (next, skip) = block.forward(h);
            skips.push(skip);
            h = next;
        }
        h = self.mid_block.forward(h);
        for i in 0..self.up_blocks.len() {
            let skip = skips.pop().expect("one skip per down block");
            h = self.up_blocks[i].forward(h, skip);
        }
        self.conv_out.forward(h)
    }
}

fn tiny_unet() -> TinyUNet<B> {
    let device = Default::default();
    TinyUNet {
        conv_in: conv(3, 4, 1, &device),
        down_blocks: vec![
            Down {
                conv: conv(4, 8, 2, &device),
            },
            Down {
                conv: conv(8, 16, 2, &device),
            },
        ],
        mid_block: Mid {
            conv: conv(16, 16, 1, &device),
        },
        up_blocks: vec![
            Up {
                conv: conv(16, 8, 1, &device),
            },
            Up {
                conv: conv(8, 4, 1, &device),
            },
        ],
        conv_out: conv(4, 3, 1, &device),
    }
}

#[test]
fn unet_taps_are_hidden_states_until_the_heads_map_them() {
    seed();
    let model = tiny_unet();
    let x = randn([2, 3, 16, 16]);
    let (prediction, taps) = model.forward_with_taps(x.clone());
    assert_eq!(
        taps.names(),
        [
            "down_blocks.0",
            "down_blocks.1",
            "mid_block",
            "up_blocks.0",
            "up_blocks.1",
            "output"
        ]
    );
    let shapes: Vec<[usize; 4]> = taps.students().iter().map(|s| s.dims()).collect();
    assert_eq!(
        shapes,
        [
            [2, 8, 8, 8],
            [2, 16, 4, 4],
            [2, 16, 4, 4],
            [2, 8, 8, 8],
            [2, 4, 16, 16]
        ]
    );
    assert!(!taps.in_teacher_space());
    prediction
        .clone()
        .into_data()
        .assert_eq(&model.forward(x).into_data(), true);

    let heads = model
        .init_heads(&taps, &Default::default())
        .unwrap()
        .expect("heads = conv1x1");
    assert_eq!(heads.len(), 5);
    let mapped = heads.forward(taps).unwrap();
    assert!(mapped.in_teacher_space());
    for s in mapped.students() {
        assert_eq!(s.dims(), [2, 3, 16, 16]);
    }
    // The taps metadata lists the same names; the `cfg`'d field is gone.
    let names: Vec<String> = model.taps().into_iter().map(|t| t.name).collect();
    assert_eq!(names, mapped.names());
    assert_eq!(TinyUNet::<B>::READOUT, ReadoutKind::Heads);
}

#[test]
fn unet_framer_loss_reaches_the_students_and_the_heads() {
    seed();
    let model = tiny_unet();
    let x = randn([2, 3, 16, 16]);
    let (_, taps) = model.forward_with_taps(x.clone());
    let heads = model
        .init_heads(&taps, &Default::default())
        .unwrap()
        .unwrap();
    // Unmapped taps cannot feed the loss.
    let loss = FramerLossConfig::new().init().unwrap();
    let param = Parameterization::Epsilon {
        alphas_cumprod: Tensor::from_floats([0.5, 0.9], &Default::default()),
    };
    let negatives = NegativeSampler::seeded(1).sample(0, 5).unwrap();
    let err = taps
        .clone()
        .loss(&loss, x.clone(), param.clone(), negatives.clone())
        .unwrap_err();
    assert_eq!(err, framer::TapsError::NotInTeacherSpace);

    let out = heads
        .forward(taps)
        .unwrap()
        .loss(&loss, x, param, negatives)
        .unwrap();
    let value: f32 = out.loss.clone().into_scalar();
    assert!(value.is_finite(), "loss {value}");
    let grads = out.loss.backward();
    assert!(grad_norm(&model.down_blocks[0].conv.weight, &grads) > 0.0);
    assert!(grad_norm(&model.mid_block.conv.weight, &grads) > 0.0);
    for conv in &heads.convs {
        assert!(grad_norm(&conv.weight, &grads) > 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Other generics, a where-clause, an array with a subset of students, and a teacher field.
// ---------------------------------------------------------------------------------------------

#[derive(Module, Debug)]
struct Layer<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Layer<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.clone() + self.conv.forward(x)
    }
}

#[framer]
#[derive(Module, Debug)]
struct Stack<B: Backend, const N: usize>
where
    Layer<B>: core::fmt::Debug,
{
    #[framer(student, indices = [0, 2])]
    layers: [Layer<B>; N],
    #[framer(teacher)]
    last: Layer<B>,
}

#[framer_forward]
impl<B: Backend, const N: usize> Stack<B, N> {
    /// Returns the prediction and a side output: the teacher is the `last` field, not this tuple.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, usize) {
        let mut h = x;
        for layer in self.layers.iter() {
            h = layer.forward(h);
        }
        (self.last.forward(h), N)
    }
}

#[test]
fn generic_model_taps_the_listed_elements_and_the_teacher_field() {
    seed();
    let device = Default::default();
    let layer = || Layer {
        conv: conv(3, 3, 1, &device),
    };
    let model: Stack<B, 3> = Stack {
        layers: [layer(), layer(), layer()],
        last: layer(),
    };
    let x = randn([1, 3, 8, 8]);
    let (out, taps) = model.forward_with_taps(x.clone());
    assert_eq!(out.1, 3);
    assert_eq!(taps.names(), ["layers.0", "layers.2", "last"]);
    taps.teacher()
        .unwrap()
        .clone()
        .into_data()
        .assert_eq(&out.0.clone().into_data(), true);
    let plain = model.forward(x);
    plain
        .0
        .into_data()
        .assert_approx_eq::<f32>(&out.0.into_data(), Tolerance::default());
    let names: Vec<String> = model.taps().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["layers.0", "layers.2", "last"]);
}
