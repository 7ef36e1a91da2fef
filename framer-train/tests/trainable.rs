//! `[train] trainable`: parameter counts worked by hand, frozen weights bit-identical after
//! training, optimiser state only for the trainable parameters, and schedule errors.

mod common;

use std::collections::HashSet;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param, ParamId};
use burn::tensor::{Tensor, backend::Backend};
use common::{Toy, schedule, temp_dir};
use framer_train::engine::trainable::{apply_trainable, param_entries};
use framer_train::engine::{FixedBatch, PairSource, SyntheticPairs, Trainer};

type B = Autodiff<Flex>;

/// Every float parameter's id and values.
fn values(m: &impl Module<B>) -> Vec<(ParamId, Vec<f32>)> {
    struct Collect(Vec<(ParamId, Vec<f32>)>);
    impl burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push((p.id, p.val().into_data().to_vec::<f32>().unwrap()));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

// Toy(depth 3, hidden 8), by hand: input conv 7→8 3×3 = 7·8·9 + 8 = 512; each block 8→8 3×3 =
// 8·8·9 + 8 = 584 (three: 1752); output 8→3 1×1 = 24 + 3 = 27; model 2291. Heads: one 1×1 conv
// 8→3 per student = 27, three: 81. Total 2372.
const MODEL: usize = 512 + 3 * 584 + 27;
const HEADS: usize = 3 * 27;

#[test]
fn parameter_paths_and_counts_match_a_hand_count() {
    let device = Default::default();
    let framed = Toy::<B>::framed(3, 8, &device);
    let entries = param_entries(&framed);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"model.input.weight"), "{paths:?}");
    assert!(paths.contains(&"model.blocks.2.bias"), "{paths:?}");
    assert_eq!(entries.iter().map(|e| e.numel()).sum::<usize>(), MODEL + HEADS);

    for (key, expected) in [
        ("trainable = [\"blocks.*\"]", 3 * 584 + HEADS),
        ("trainable_modules = [\"output\"]", 27 + HEADS),
        ("trainable = [\"input.weight\", \"blocks.1.*\"]", 7 * 8 * 9 + 584 + HEADS),
    ] {
        let exp = schedule(&format!("[train]\nsteps = 2\nbatch_size = 2\n{key}"));
        let (_, summary) = apply_trainable(Toy::<B>::framed(3, 8, &device), &exp).unwrap();
        assert_eq!(summary.trainable, expected, "{key}");
        assert_eq!(summary.total, MODEL + HEADS, "{key}");
    }
}

#[test]
fn frozen_weights_stay_bit_identical_and_get_no_optimizer_state() {
    let exp = schedule(
        "[train]\nsteps = 3\nbatch_size = 2\ntrainable = [\"blocks.*\"]\n[optimizer]\nlr = 1e-2\n\
         weight_decay = 0.1\n[framer]\nlambda = 0.1\n[checkpoint]\nevery = 1000\nresume = false",
    );
    let device = Default::default();
    <B as Backend>::seed(&device, 5);
    let framed = Toy::<B>::framed(3, 8, &device);
    let before = values(&framed);
    let trainable_ids: HashSet<ParamId> = param_entries(&framed)
        .into_iter()
        .filter(|e| e.path.starts_with("model.blocks.") || e.path.starts_with("heads."))
        .map(|e| e.id)
        .collect();
    let batch = FixedBatch(SyntheticPairs { seed: 3, size: 16, scale: 4 }.batch(0, 2).unwrap());
    let dir = temp_dir("trainable-frozen");
    let mut trainer = Trainer::new(&exp, framed, Box::new(batch), &dir, &device).unwrap();
    trainer.run(None).unwrap();
    let after = values(trainer.model());
    assert_eq!(before.len(), after.len());
    let mut changed = 0;
    for ((id, b), (id2, a)) in before.iter().zip(&after) {
        assert_eq!(id, id2);
        if trainable_ids.contains(id) {
            changed += usize::from(a != b);
        } else {
            assert_eq!(a, b, "a frozen parameter changed (weight decay applies to trained ones only)");
        }
    }
    assert!(changed >= 3, "the trained parameters moved ({changed} changed)");
    let state: HashSet<ParamId> = trainer.optimizer_state_params().into_iter().collect();
    assert!(!state.is_empty());
    assert!(
        state.is_subset(&trainable_ids),
        "optimiser state for a frozen parameter: {:?}",
        state.difference(&trainable_ids).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_pattern_that_matches_no_parameter_is_an_error_at_its_position() {
    let exp = schedule("[train]\nsteps = 2\nbatch_size = 2\ntrainable = [\"blokcs.*\"]");
    let err = match apply_trainable(Toy::<B>::framed(3, 8, &Default::default()), &exp) {
        Ok(_) => panic!("a misspelt pattern was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("\"blokcs.*\" matches no parameter"), "{err}");
    assert!(err.contains("test.toml:"), "{err}");
    assert!(err.contains("did you mean \"blocks."), "{err}");
}

#[test]
fn an_empty_list_is_rejected_by_the_schedule() {
    let src = "[model]\nbackbone = \"unet\"\n[train]\nsteps = 2\ntrainable = []\n";
    let err = framer_train::schedule::parse(src, "t.toml", std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("t.toml:5:"), "{err}");
    assert!(err.contains("nothing would be trained"), "{err}");
}

#[test]
fn check_counts_the_reference_control_subset_of_the_dit() {
    // The reference trains DiT4SR with `--trainable_modules control`.
    let src = "[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n[data]\ncrop_size = 16\n\
               [train]\nsteps = 2\ntrainable_modules = [\"control\"]\n";
    let exp = framer_train::schedule::parse(src, "dit.toml", std::path::Path::new(".")).unwrap();
    let report = framer_train::cli::check_experiment::<framer_train::registry::Builtin>(&exp).unwrap();
    assert!(report.trainable_params > 0, "the tiny DiT has control layers");
    assert!(report.trainable_params < report.total_params / 2, "{report:?}");
    let text = report.to_string();
    assert!(text.contains("# trainable parameters (*control*): "), "{text}");
}
