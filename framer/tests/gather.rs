//! Data-parallel FRAMER without a collective: each peer's input gathered by a stand-in that hands
//! back the global batch, checked against the loss of the whole batch in one call (the oracle),
//! on both execution paths. Every input is drawn from a seeded generator.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};
use common::{normal, rng, uniform};
use framer::{BatchGather, FramerError, FramerInput, FramerLossConfig, LossExecution, Parameterization};

type A = Autodiff<Flex>;

/// A peer of a simulated world: `gather_rows` returns the global tensor whose own rows equal
/// `local` (looked up among the global batch's tensors, so the call order does not matter).
struct SimulatedPeer {
    rank: usize,
    world: usize,
    global: Vec<Tensor<A, 2>>,
}

impl BatchGather<A> for SimulatedPeer {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn gather_rows(&self, local: Tensor<A, 2>) -> Result<Tensor<A, 2>, FramerError> {
        let [rows, width] = local.dims();
        let local: Vec<f32> = local.into_data().to_vec().unwrap();
        self.global
            .iter()
            .find(|g: &&Tensor<A, 2>| {
                g.dims() == [rows * self.world, width] && {
                    let own: Vec<f32> = (*g).clone().narrow(0, self.rank * rows, rows).into_data().to_vec().unwrap();
                    own == local
                }
            })
            .cloned()
            .ok_or_else(|| FramerError::Gather(format!("no global tensor holds rank {}'s rows", self.rank)))
    }
}

fn rows<const D: usize>(t: &Tensor<A, D>, start: usize, len: usize) -> Tensor<A, D> {
    t.clone().narrow(0, start, len)
}

fn values<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

/// 2 peers × batch 2 against one call on batch 4: the mean of the peers' losses is the global
/// loss (1e-6 relative) and the mean of their gradients is its gradient, per student and for
/// `x_t` (1e-5 of the largest entry). Keeping the negatives per peer changes the loss instead.
#[test]
fn peers_with_gathered_keys_equal_one_process_on_the_global_batch() {
    let _serial = common::backward_lock();
    let mut r = rng(17);
    let (world, local_batch, num_students) = (2, 2, 3);
    let shape = [world * local_batch, 3, 12, 10];
    let students: Vec<Tensor<A, 4>> = (0..num_students).map(|_| normal(&mut r, shape, 0.0)).collect();
    let teacher = normal::<A, 4>(&mut r, shape, 0.0);
    let x_t = normal::<A, 4>(&mut r, shape, 0.0);
    let sigmas: Tensor<A, 1> = uniform(&mut r, [shape[0]]);
    let sigmas = sigmas.mul_scalar(0.8).add_scalar(0.1);
    let negatives = vec![2, 0, 1];
    let flat = |t: &Tensor<A, 4>| t.clone().reshape([shape[0], 3 * 12 * 10]);
    let mut global: Vec<Tensor<A, 2>> = students.iter().map(flat).collect();
    global.push(flat(&teacher));
    global.push(flat(&x_t));
    global.push(sigmas.clone().reshape([shape[0], 1]));

    for execution in [LossExecution::Host, LossExecution::Tensor] {
        let loss = FramerLossConfig::new().with_execution(execution).init().unwrap();
        // the oracle: one process, the whole batch
        let leaves: Vec<Tensor<A, 4>> = students.iter().map(|s| s.clone().require_grad()).collect();
        let x_leaf = x_t.clone().require_grad();
        let param = Parameterization::RectifiedFlow { sigmas: sigmas.clone() };
        let input = FramerInput::new(leaves.clone(), teacher.clone(), x_leaf.clone(), param, negatives.clone());
        let out = loss.forward(input).unwrap();
        let want_loss: f32 = out.loss.clone().into_scalar();
        let grads = out.loss.backward();
        let mut want: Vec<Vec<f32>> = leaves.iter().map(|s| values(s.grad(&grads).unwrap())).collect();
        want.push(values(x_leaf.grad(&grads).unwrap()));

        let (mut gathered_loss, mut per_peer_loss) = (0.0f64, 0.0f64);
        let mut got: Vec<Vec<f32>> = vec![Vec::new(); num_students + 1];
        for rank in 0..world {
            let start = rank * local_batch;
            let peer = SimulatedPeer { rank, world, global: global.clone() };
            let local: Vec<Tensor<A, 4>> =
                students.iter().map(|s| rows(s, start, local_batch).require_grad()).collect();
            let local_x = rows(&x_t, start, local_batch).require_grad();
            let param = Parameterization::RectifiedFlow { sigmas: rows(&sigmas, start, local_batch) };
            let input = FramerInput::new(
                local.clone(),
                rows(&teacher, start, local_batch),
                local_x.clone(),
                param,
                negatives.clone(),
            );
            per_peer_loss += f64::from(loss.forward(input.clone()).unwrap().loss.into_scalar()) / world as f64;
            let out = loss.forward(input.gathered(&peer).unwrap()).unwrap();
            assert_eq!(out.terms.intra.dims(), [num_students, world * local_batch]);
            gathered_loss += f64::from(out.loss.clone().into_scalar()) / world as f64;
            let grads = out.loss.backward();
            for (i, leaf) in local.iter().chain(std::iter::once(&local_x)).enumerate() {
                // each peer's gradients are averaged over the peers
                let grad = leaf.grad(&grads).unwrap_or_else(|| panic!("{execution:?}: rank {rank}, leaf {i} has no gradient"));
                got[i].extend(values(grad).into_iter().map(|g| g / world as f32));
            }
        }
        let relative = (gathered_loss - f64::from(want_loss)).abs() / f64::from(want_loss).abs();
        assert!(relative <= 1e-6, "{execution:?}: peers {gathered_loss} vs one process {want_loss} ({relative:e})");
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(largest > 0.0, "{execution:?}: gradient {i} is zero");
            let worst = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(worst <= 1e-5 * largest, "{execution:?}: gradient {i} off by {worst} (largest {largest})");
        }
        // negatives kept per peer: InterCL sees half the keys, a different loss
        let gap = (per_peer_loss - f64::from(want_loss)).abs();
        assert!(gap > 1e-4, "{execution:?}: per-peer negatives {per_peer_loss} vs global {want_loss}");
    }
}

/// One peer is the plain loss: gathering a world of one changes nothing (bit for bit on the host
/// path).
#[test]
fn a_world_of_one_is_the_plain_loss() {
    let _serial = common::backward_lock();
    let mut r = rng(5);
    let shape = [3, 2, 8, 8];
    let students: Vec<Tensor<A, 4>> = (0..2).map(|_| normal(&mut r, shape, 0.0)).collect();
    let teacher = normal::<A, 4>(&mut r, shape, 0.0);
    let x_t = normal::<A, 4>(&mut r, shape, 0.0);
    let flat = |t: &Tensor<A, 4>| t.clone().reshape([3, 128]);
    let peer = SimulatedPeer {
        rank: 0,
        world: 1,
        global: students.iter().chain([&teacher, &x_t]).map(flat).collect(),
    };
    let input = FramerInput::new(students, teacher, x_t, Parameterization::Sample, vec![1, 0]);
    let loss = FramerLossConfig::new().with_execution(LossExecution::Host).init().unwrap();
    let plain: f32 = loss.forward(input.clone()).unwrap().loss.into_scalar();
    let gathered: f32 = loss.forward(input.gathered(&peer).unwrap()).unwrap().loss.into_scalar();
    assert_eq!(plain.to_bits(), gathered.to_bits());
}

/// Bad query rows and a gather that returns the wrong shape are errors that say what is wrong.
#[test]
fn bad_query_rows_and_bad_gathers_are_errors() {
    let _serial = common::backward_lock();
    let mut r = rng(9);
    let shape = [2, 1, 4, 4];
    let students: Vec<Tensor<A, 4>> = (0..2).map(|_| normal(&mut r, shape, 0.0)).collect();
    let teacher = normal::<A, 4>(&mut r, shape, 0.0);
    let input = FramerInput::new(students, teacher.clone(), teacher.clone(), Parameterization::Sample, vec![1, 0]);
    let loss = FramerLossConfig::new().init().unwrap();
    for rows in [0..0, 1..3] {
        let e = loss.forward(input.clone().with_query_rows(rows.clone())).unwrap_err();
        assert!(matches!(e, FramerError::InvalidQueryRows(_)), "{rows:?}: {e}");
        assert!(e.to_string().contains("2 samples"), "{e}");
    }
    // a gather that answers with a tensor of the wrong shape
    struct WrongShape;
    impl BatchGather<A> for WrongShape {
        fn rank(&self) -> usize {
            1
        }
        fn world_size(&self) -> usize {
            2
        }
        fn gather_rows(&self, local: Tensor<A, 2>) -> Result<Tensor<A, 2>, FramerError> {
            let [rows, width] = local.dims();
            Ok(Tensor::from_data(TensorData::new(vec![0.0f32; (rows + 1) * width], [rows + 1, width]), &local.device()))
        }
    }
    let e = input.clone().gathered(&WrongShape).unwrap_err();
    assert!(matches!(e, FramerError::Gather(_)) && e.to_string().contains("expected [4, 16]"), "{e}");
    // gathering twice
    let one = SimulatedPeer { rank: 0, world: 1, global: Vec::new() };
    let e = input.with_query_rows(0..2).gathered(&one).unwrap_err();
    assert!(e.to_string().contains("already gathered"), "{e}");
}
