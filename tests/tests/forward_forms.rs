//! Each form of `forward` that `#[framer_forward]` follows, on a small model of its own: iterator
//! adapters over student collections (`zip` as receiver or argument, nested, `enumerate`, `rev`,
//! `skip`, `take`, `step_by`, `chain`, `into_iter`), helper methods of the `impl` block, and an
//! `impl` block written before its struct.
//!
//! For every model: the tap names in order, `forward_with_taps` returning exactly (bit for bit)
//! what `forward` returns, and the FRAMER loss on the taps reaching every recorded student's
//! parameters. Inputs and weights come from seeded `StdRng`s, never from the backend's global
//! RNG, so that the tests are independent of the order they run in.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer::{
    FramerLossConfig, FramerModel, NegativeSampler, Parameterization, Taps, framer, framer_forward,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type B = Autodiff<Flex>;

/// Channels of every block: all students are shaped like the prediction (no readout needed).
const C: usize = 3;
const SHAPE: [usize; 4] = [2, C, 8, 8];

fn seeded<const D: usize>(shape: [usize; D], rng: &mut StdRng) -> Tensor<B, D> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// A shape-preserving residual block: `x + silu(conv3x3(x))`.
#[derive(Module, Debug)]
struct Block<B: Backend> {
    conv: Conv2d<B>,
}

impl<B: Backend> Block<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.clone() + silu(self.conv.forward(x))
    }
}

fn block(rng: &mut StdRng) -> Block<B> {
    let mut conv: Conv2d<B> = Conv2dConfig::new([C, C], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&Default::default());
    conv.weight = Param::from_tensor(seeded([C, C, 3, 3], rng).mul_scalar(0.3));
    conv.bias = Some(Param::from_tensor(seeded([C], rng).mul_scalar(0.1)));
    Block { conv }
}

fn blocks(n: usize, rng: &mut StdRng) -> Vec<Block<B>> {
    (0..n).map(|_| block(rng)).collect()
}

/// The checks shared by every form: `names` are the expected tap names (students in order, then
/// the teacher `output`); `params` maps each student tap name to its block.
fn check(
    seed: u64,
    forward: impl Fn(Tensor<B, 4>) -> Tensor<B, 4>,
    forward_with_taps: impl Fn(Tensor<B, 4>) -> (Tensor<B, 4>, Taps<B>),
    names: &[&str],
    params: &[(&str, &Block<B>)],
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = seeded(SHAPE, &mut rng);
    let plain = forward(x.clone());
    let (tapped, taps) = forward_with_taps(x.clone());
    assert_eq!(taps.names(), names);
    plain.into_data().assert_eq(&tapped.into_data(), true);

    let loss = FramerLossConfig::new().init().unwrap();
    let negatives = NegativeSampler::seeded(seed)
        .sample(0, taps.num_students())
        .unwrap();
    let parameterization = Parameterization::RectifiedFlow {
        sigmas: Tensor::from_floats([0.3, 0.7], &Default::default()),
    };
    let student_names: Vec<String> = taps.student_names().iter().map(|s| s.to_string()).collect();
    let out = taps.loss(&loss, x, parameterization, negatives).unwrap();
    let value: f32 = out.loss.clone().into_scalar();
    assert!(value.is_finite(), "loss {value}");
    let grads = out.loss.backward();
    for name in &student_names {
        let (_, block) = params
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no parameters listed for the student `{name}`"));
        let grad = block
            .conv
            .weight
            .val()
            .grad(&grads)
            .unwrap_or_else(|| panic!("`{name}` has no gradient"));
        let norm: f32 = grad.powf_scalar(2.0).sum().into_scalar();
        assert!(norm > 0.0, "`{name}` has a zero gradient");
    }
}

/// `(name, block)` for every element of a collection field.
fn named<'a>(field: &str, blocks: &'a [Block<B>]) -> Vec<(String, &'a Block<B>)> {
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("{field}.{i}"), b))
        .collect()
}

fn as_params<'a>(list: &'a [(String, &'a Block<B>)]) -> Vec<(&'a str, &'a Block<B>)> {
    list.iter().map(|(n, b)| (n.as_str(), *b)).collect()
}

// ---------------------------------------------------------------------------------------------
// `zip`: the student collection as receiver, as argument, and a NAFNet-style U with nested zips
// and the skips consumed in reverse.
// ---------------------------------------------------------------------------------------------

#[framer]
#[derive(Module, Debug)]
struct Zipped<B: Backend> {
    #[framer(student)]
    blocks: Vec<Block<B>>,
    mixers: Vec<Block<B>>,
    out: Block<B>,
}

#[framer_forward]
impl<B: Backend> Zipped<B> {
    fn forward(&self, mut h: Tensor<B, 4>) -> Tensor<B, 4> {
        for (block, mixer) in self.blocks.iter().zip(&self.mixers) {
            h = mixer.forward(block.forward(h));
        }
        for (mixer, block) in self.mixers.iter().zip(self.blocks.iter().rev()) {
            h = block.forward(mixer.forward(h));
        }
        self.out.forward(h)
    }
}

#[test]
fn zip_with_the_students_as_receiver_and_as_argument() {
    let mut rng = StdRng::seed_from_u64(1);
    let model = Zipped {
        blocks: blocks(3, &mut rng),
        mixers: blocks(3, &mut rng),
        out: block(&mut rng),
    };
    let params = named("blocks", &model.blocks);
    check(
        1,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &[
            "blocks.0", "blocks.1", "blocks.2", "blocks.2", "blocks.1", "blocks.0", "output",
        ],
        &as_params(&params),
    );
}

#[framer]
#[derive(Module, Debug)]
struct NafNet<B: Backend> {
    intro: Block<B>,
    #[framer(student)]
    encoders: Vec<Block<B>>,
    downs: Vec<Block<B>>,
    #[framer(student)]
    middle: Block<B>,
    #[framer(student)]
    decoders: Vec<Block<B>>,
    ups: Vec<Block<B>>,
    ending: Block<B>,
}

#[framer_forward]
impl<B: Backend> NafNet<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = self.intro.forward(x);
        let mut skips = Vec::new();
        for (encoder, down) in self.encoders.iter().zip(&self.downs) {
            h = encoder.forward(h);
            skips.push(h.clone());
            h = down.forward(h);
        }
        h = self.middle.forward(h);
        for ((decoder, up), skip) in self
            .decoders
            .iter()
            .zip(&self.ups)
            .zip(skips.into_iter().rev())
        {
            h = up.forward(h) + skip;
            h = decoder.forward(h);
        }
        self.ending.forward(h)
    }
}

#[test]
fn nested_zips_with_the_skips_in_reverse() {
    let mut rng = StdRng::seed_from_u64(2);
    let model = NafNet {
        intro: block(&mut rng),
        encoders: blocks(2, &mut rng),
        downs: blocks(2, &mut rng),
        middle: block(&mut rng),
        decoders: blocks(2, &mut rng),
        ups: blocks(2, &mut rng),
        ending: block(&mut rng),
    };
    let mut params = named("encoders", &model.encoders);
    params.push(("middle".to_string(), &model.middle));
    params.extend(named("decoders", &model.decoders));
    check(
        2,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &[
            "encoders.0",
            "encoders.1",
            "middle",
            "decoders.0",
            "decoders.1",
            "output",
        ],
        &as_params(&params),
    );
}

// ---------------------------------------------------------------------------------------------
// `enumerate`, `rev`, `skip(k)` with a run-time `k`, `take`, `step_by`, `into_iter()` on
// `&self.field`, `&self.field` and `.iter()`.
// ---------------------------------------------------------------------------------------------

#[framer]
#[derive(Module, Debug)]
struct Adapted<B: Backend> {
    #[framer(student, indices = [0, 1, 3, 4])]
    blocks: Vec<Block<B>>,
    out: Block<B>,
}

#[framer_forward]
impl<B: Backend> Adapted<B> {
    fn forward(&self, mut h: Tensor<B, 4>) -> Tensor<B, 4> {
        // A run-time skip: the batch size minus one (1 here).
        let k = h.dims()[0] - 1;
        for (i, block) in self.blocks.iter().enumerate().rev().take(2) {
            debug_assert!(i >= 3);
            h = block.forward(h);
        }
        for block in self.blocks.iter().skip(k).step_by(2) {
            h = block.forward(h);
        }
        for block in (&self.blocks).into_iter().take(1) {
            h = block.forward(h);
        }
        for block in &self.blocks {
            h = block.forward(h);
        }
        self.out.forward(h)
    }
}

#[test]
fn enumerate_rev_skip_take_step_by_and_into_iter() {
    let mut rng = StdRng::seed_from_u64(3);
    let model = Adapted {
        blocks: blocks(5, &mut rng),
        out: block(&mut rng),
    };
    let params = named("blocks", &model.blocks);
    // `indices = [0, 1, 3, 4]`: element 2 runs but is not recorded.
    check(
        3,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &[
            "blocks.4", "blocks.3", // enumerate().rev().take(2)
            "blocks.1", "blocks.3", // skip(1).step_by(2): 1, 3
            "blocks.0", // into_iter().take(1)
            "blocks.0", "blocks.1", "blocks.3", "blocks.4", // &self.blocks
            "output",
        ],
        &as_params(&params),
    );
}

// ---------------------------------------------------------------------------------------------
// `chain` of two student collections, and a `zip` of two student collections.
// ---------------------------------------------------------------------------------------------

#[framer]
#[derive(Module, Debug)]
struct Chained<B: Backend> {
    #[framer(student)]
    early: Vec<Block<B>>,
    #[framer(student, indices = [1])]
    late: Vec<Block<B>>,
    out: Block<B>,
}

#[framer_forward]
impl<B: Backend> Chained<B> {
    fn forward(&self, mut h: Tensor<B, 4>) -> Tensor<B, 4> {
        for (step, block) in self.early.iter().chain(&self.late).enumerate().skip(1) {
            debug_assert!(step >= 1);
            h = block.forward(h);
        }
        for (a, b) in self.late.iter().rev().zip(&self.early) {
            h = b.forward(a.forward(h));
        }
        self.out.forward(h)
    }
}

#[test]
fn chain_and_zip_of_two_student_collections() {
    let mut rng = StdRng::seed_from_u64(4);
    let model = Chained {
        early: blocks(2, &mut rng),
        late: blocks(2, &mut rng),
        out: block(&mut rng),
    };
    let mut params = named("early", &model.early);
    params.extend(named("late", &model.late));
    check(
        4,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &[
            "early.1", "late.1", // chain: early.0 skipped, late.0 not selected
            "late.1", "early.0", "early.1", // zip: (late.1, early.0), (late.0, early.1)
            "output",
        ],
        &as_params(&params),
    );
}

// ---------------------------------------------------------------------------------------------
// Helper methods of the same `impl` block, two levels deep, with a method of another `impl`
// block that calls no student.
// ---------------------------------------------------------------------------------------------

#[framer]
#[derive(Module, Debug)]
struct Helped<B: Backend> {
    #[framer(student)]
    encoders: Vec<Block<B>>,
    #[framer(student)]
    middle: Block<B>,
    #[framer(student)]
    decoders: Vec<Block<B>>,
    out: Block<B>,
}

#[framer_forward]
impl<B: Backend> Helped<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let (h, skips) = self.encode(x);
        let h = self.middle.forward(h);
        let h = self.decode(h, skips);
        self.out.forward(h.mul_scalar(self.scale()))
    }

    fn encode(&self, mut h: Tensor<B, 4>) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
        let mut skips = Vec::new();
        for encoder in &self.encoders {
            h = encoder.forward(h);
            skips.push(h.clone());
        }
        (h, skips)
    }

    fn decode(&self, mut h: Tensor<B, 4>, skips: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
        for (i, skip) in skips.into_iter().rev().enumerate() {
            h = self.decode_level(i, h + skip);
        }
        h
    }

    fn decode_level(&self, i: usize, h: Tensor<B, 4>) -> Tensor<B, 4> {
        self.decoders[i].forward(h)
    }
}

impl<B: Backend> Helped<B> {
    fn scale(&self) -> f32 {
        0.5
    }
}

#[test]
fn helper_methods_of_the_block_are_followed() {
    let mut rng = StdRng::seed_from_u64(5);
    let model = Helped {
        encoders: blocks(2, &mut rng),
        middle: block(&mut rng),
        decoders: blocks(2, &mut rng),
        out: block(&mut rng),
    };
    let mut params = named("encoders", &model.encoders);
    params.push(("middle".to_string(), &model.middle));
    params.extend(named("decoders", &model.decoders));
    check(
        5,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &[
            "encoders.0",
            "encoders.1",
            "middle",
            "decoders.0",
            "decoders.1",
            "output",
        ],
        &as_params(&params),
    );
    assert_eq!(model.num_students(), 5);
}

// ---------------------------------------------------------------------------------------------
// The `impl` block written before its struct.
// ---------------------------------------------------------------------------------------------

#[framer_forward]
impl<B: Backend> Early<B> {
    fn forward(&self, mut h: Tensor<B, 4>) -> Tensor<B, 4> {
        for block in self.blocks.iter() {
            h = block.forward(h);
        }
        self.out.forward(h)
    }
}

#[framer]
#[derive(Module, Debug)]
struct Early<B: Backend> {
    #[framer(student)]
    blocks: Vec<Block<B>>,
    out: Block<B>,
}

#[test]
fn an_impl_block_before_its_struct() {
    let mut rng = StdRng::seed_from_u64(6);
    let model = Early {
        blocks: blocks(2, &mut rng),
        out: block(&mut rng),
    };
    let params = named("blocks", &model.blocks);
    check(
        6,
        |x| model.forward(x),
        |x| model.forward_with_taps(x),
        &["blocks.0", "blocks.1", "output"],
        &as_params(&params),
    );
}
