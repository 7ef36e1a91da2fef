//! `[init]`: training starts from a weights file. The built model holds exactly the file's
//! tensors; what the file lacks or has in excess is an error naming it, unless a glob allows it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use framer_backbones::DiTConfig;
use framer_train::engine::build_framed;
use framer_train::schedule;

type B = Autodiff<Flex>;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(name: &str) -> Dir {
    let dir = std::env::temp_dir().join(format!("framer-init-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Dir(dir)
}

/// Every tensor of a safetensors file: key → (shape, bytes).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn write(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, (shape, data))| {
            (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn save(model: &impl Module<B>, path: &Path) {
    model.clone().save_into(&mut SafetensorsStore::from_file(path)).unwrap();
}

/// The tiny DiT with zero-initialised control modules off, so every tensor is random.
fn experiment(dir: &Path, seed: u64, init: &str) -> schedule::Experiment {
    let text = format!(
        "[model]\nbackbone = \"dit\"\n[data]\ncrop_size = 16\n[train]\nsteps = 1\nbatch_size = 1\n\
         seed = {seed}\n{init}"
    );
    schedule::parse(&text, "init.toml", dir).unwrap_or_else(|e| panic!("{e}"))
}

fn build(exp: &schedule::Experiment) -> Result<framer::Framed<B, framer_backbones::DiT<B>>, String> {
    build_framed::<B, DiTConfig>(&DiTConfig::tiny(), exp, &Default::default()).map_err(|e| e.to_string())
}

#[test]
fn the_built_model_holds_the_files_tensors() {
    let dir = temp("exact");
    let source = dir.0.join("source.safetensors");
    save(&build(&experiment(&dir.0, 1, "")).unwrap().model, &source);
    let init = "[init]\nweights = \"source.safetensors\"\nlayout = \"burn\"\n";
    let exp = experiment(&dir.0, 2, init);
    // the run folder's resolved schedule reads back as the same experiment
    assert_eq!(schedule::parse(&exp.to_string(), "resolved.toml", Path::new("/")).unwrap(), exp);
    let loaded = build(&exp).unwrap();
    let out = dir.0.join("loaded.safetensors");
    save(&loaded.model, &out);
    let (want, got) = (tensors(&source), tensors(&out));
    assert!(want.len() > 20);
    assert_eq!(got, want, "every tensor, bit for bit");
    // seed 2 alone draws other weights: the equality above comes from the file
    let fresh = dir.0.join("fresh.safetensors");
    save(&build(&experiment(&dir.0, 2, "")).unwrap().model, &fresh);
    assert_ne!(tensors(&fresh), want);
}

#[test]
fn missing_and_unused_tensors_are_errors_unless_a_glob_allows_them() {
    let dir = temp("globs");
    let full = dir.0.join("full.safetensors");
    save(&build(&experiment(&dir.0, 1, "")).unwrap().model, &full);
    let mut partial = tensors(&full);
    let before = partial.len();
    partial.retain(|k, _| !k.contains("control"));
    let dropped = before - partial.len();
    assert!(dropped > 0);
    let (extra_shape, extra) = partial.values().next().cloned().unwrap();
    partial.insert("extra.weight".into(), (extra_shape, extra));
    write(&dir.0.join("partial.safetensors"), &partial);

    let strict = "[init]\nweights = \"partial.safetensors\"\nlayout = \"burn\"\n";
    let e = build(&experiment(&dir.0, 2, strict)).unwrap_err();
    assert!(e.contains("partial.safetensors") && e.contains(&format!("{dropped} model parameter(s) missing")), "{e}");
    assert!(e.contains("to_q_control") && e.contains("extra.weight"), "{e}");

    let missing_only = format!("{strict}allow_missing = [\"*control*\"]\n");
    let e = build(&experiment(&dir.0, 2, &missing_only)).unwrap_err();
    assert!(e.contains("1 file tensor(s)") && e.contains("extra.weight"), "{e}");
    assert!(!e.contains("to_q_control"), "{e}");

    let both = format!("{missing_only}allow_unused = [\"extra.*\"]\n");
    let loaded = build(&experiment(&dir.0, 2, &both)).unwrap();
    let out = dir.0.join("loaded.safetensors");
    save(&loaded.model, &out);
    // the file's tensors where it has them; the control modules keep seed 2's own draws
    let fresh = dir.0.join("fresh.safetensors");
    save(&build(&experiment(&dir.0, 2, "")).unwrap().model, &fresh);
    let (got, fresh) = (tensors(&out), tensors(&fresh));
    for (k, v) in &got {
        if k.contains("control") {
            assert_eq!(v, &fresh[k], "{k}");
        } else {
            assert_eq!(v, &partial[k], "{k}");
        }
    }
}

#[test]
fn a_missing_file_is_reported_at_its_key_and_a_diffusers_file_of_another_model_names_its_tensors() {
    let dir = temp("bad");
    let text = "[model]\nbackbone = \"dit\"\n[train]\nsteps = 1\nbatch_size = 1\n[init]\nweights = \"nope.safetensors\"\n";
    let e = schedule::parse(text, "init.toml", &dir.0).unwrap_err().to_string();
    assert!(e.contains("init.toml:7:11") && e.contains("nope.safetensors") && e.contains("is not a file"), "{e}");

    // diffusers' SD3Transformer2DModel (text stream, other sizes) is not the tiny DiT
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../framer-backbones/tests/fixtures/diffusers/sd3_transformer.weights.safetensors");
    let init = format!("[init]\nweights = \"{}\"\n", fixture.display());
    let e = build(&experiment(&dir.0, 0, &init)).unwrap_err();
    assert!(e.contains("sd3_transformer.weights.safetensors") && e.contains("context_embedder"), "{e}");
}
