//! Presets (module tree, taps, output shape, fixed-seed checksum), configuration parsing,
//! diffusers-named safetensors loading, and FRAMER training steps on the tiny backbones.
//!
//! Burn's CPU random generator is global and parameters are initialised lazily (on first use), so
//! every test that builds a model or draws random tensors holds [`rng_lock`].

use std::sync::{Mutex, MutexGuard};

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::store::ModuleSnapshot;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, Tolerance};
use framer::{Framed, FramerForward, FramerLossConfig, FramerModel, NegativeSampler, Parameterization};
use framer_backbones::summary::{module_tree, parameter_count};
use framer_backbones::{
    BackboneConfig, BackboneError, DiT, DiTConfig, LoadOptions, SrBackbone, UNet, UNetConfig,
    load_safetensors,
};

type Cpu = Flex;
type Train = Autodiff<Flex>;

fn rng_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A smooth deterministic test image `[batch, channels, size, size]` in about `[-1, 1]`.
fn pattern<B: Backend>(batch: usize, channels: usize, size: usize, phase: f32) -> Tensor<B, 4> {
    let mut v = Vec::with_capacity(batch * channels * size * size);
    for b in 0..batch {
        for c in 0..channels {
            for y in 0..size {
                for x in 0..size {
                    let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
                    let s = (6.0 * fx + 2.0 * c as f32 + phase + b as f32).sin()
                        * (4.0 * fy - 0.5 * c as f32).cos();
                    v.push(0.8 * s);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [batch, channels, size, size]), &Default::default())
}

fn inputs<B: Backend>(batch: usize, channels: usize, size: usize) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 4>) {
    let t: Vec<f32> = (0..batch).map(|i| 0.25 + 0.5 * i as f32 / batch.max(1) as f32).collect();
    (
        pattern(batch, channels, size, 0.0),
        Tensor::from_floats(t.as_slice(), &Default::default()),
        pattern(batch, channels, size, 1.3),
    )
}

fn shape_list(shapes: impl IntoIterator<Item = (String, [usize; 4])>) -> String {
    shapes.into_iter().map(|(n, s)| format!("{n} {s:?}\n")).collect()
}

// ---------------------------------------------------------------------------------------------
// Presets
// ---------------------------------------------------------------------------------------------

/// Runs the tapped forward at `size × size` and renders the tap list (raw and mapped shapes).
fn unet_taps_report(model: &UNet<Cpu>, size: usize) -> String {
    let (x, t, lr) = inputs::<Cpu>(1, model.config.in_channels, size);
    model.check_inputs(&x, &t, &lr).unwrap();
    let plain = model.forward(x.clone(), t.clone(), lr.clone());
    let (output, raw) = model.forward_with_taps(x.clone(), t.clone(), lr.clone());
    // The tapped forward is the plain forward.
    output.clone().into_data().assert_eq(&plain.into_data(), true);
    let raw_shapes: Vec<[usize; 4]> = raw.student_records().iter().map(|r| r.tensor.dims()).collect();
    assert_eq!(raw_shapes, model.student_shapes(1, size, size), "analytic student shapes");
    assert_eq!(raw.student_names(), model.student_names());
    let framed = Framed::new(model.clone(), (x.clone(), t.clone(), lr.clone()), &Default::default()).unwrap();
    let heads = framed.heads.clone().expect("the U-Net's students are read out by generated heads");
    let (prediction, taps) = framed.forward_with_taps((x, t, lr)).unwrap();
    let students = taps.students();
    assert_eq!(students.len(), raw_shapes.len());
    for s in &students {
        assert_eq!(s.dims(), prediction.dims());
    }
    let names = model.student_names();
    format!(
        "raw students:\n{}mapped students: {} × {:?}\nteacher output {:?}\nheads parameters: {}\n",
        shape_list(names.into_iter().zip(raw_shapes)),
        students.len(),
        students[0].dims(),
        prediction.dims(),
        parameter_count(&heads),
    )
}

fn dit_taps_report(model: &DiT<Cpu>, size: usize) -> String {
    let (x, t, lr) = inputs::<Cpu>(1, model.config.in_channels, size);
    model.check_inputs(&x, &t, &lr).unwrap();
    let plain = model.forward(x.clone(), t.clone(), lr.clone());
    let (output, taps) = model.forward_with_taps(x, t, lr);
    output.clone().into_data().assert_eq(&plain.clone().into_data(), true);
    // The last block's early exit is the model output (the reference's observation).
    let last = taps.students().pop().unwrap();
    last.into_data().assert_eq(&plain.into_data(), true);
    assert_eq!(taps.student_names(), model.student_names());
    assert_eq!(model.num_students(), model.config.num_layers);
    shape_list(taps.iter().map(|r| (r.name.clone(), r.tensor.dims())))
}

#[test]
fn unet_tiny_preset() {
    let _g = rng_lock();
    let model = UNetConfig::tiny().init::<Cpu>(&Default::default()).unwrap();
    insta::assert_snapshot!("unet_tiny_tree", module_tree(&model));
    insta::assert_snapshot!("unet_tiny_taps", unet_taps_report(&model, 64));
}

#[test]
fn unet_small_preset() {
    let _g = rng_lock();
    let model = UNetConfig::small().init::<Cpu>(&Default::default()).unwrap();
    insta::assert_snapshot!("unet_small_tree", module_tree(&model));
    // At 32×32 to keep the CPU test short; the tap list scales with the input.
    insta::assert_snapshot!("unet_small_taps", unet_taps_report(&model, 32));
}

#[test]
fn dit_tiny_preset() {
    let _g = rng_lock();
    let model = DiTConfig::tiny().init::<Cpu>(&Default::default()).unwrap();
    insta::assert_snapshot!("dit_tiny_tree", module_tree(&model));
    insta::assert_snapshot!("dit_tiny_taps", dit_taps_report(&model, 64));
}

#[test]
fn dit_small_preset() {
    let _g = rng_lock();
    let model = DiTConfig::small().init::<Cpu>(&Default::default()).unwrap();
    insta::assert_snapshot!("dit_small_tree", module_tree(&model));
    insta::assert_snapshot!("dit_small_taps", dit_taps_report(&model, 32));
}

/// The real-size presets are only described here: parameters are lazy, so the module tree costs no
/// tensor memory, and the tap shapes come from the configuration (no forward pass).
#[test]
fn real_size_presets_module_trees() {
    let unet = UNetConfig::sd2().init::<Cpu>(&Default::default()).unwrap();
    let size = unet.config.sample_size;
    let taps = shape_list(unet.student_names().into_iter().zip(unet.student_shapes(1, size, size)));
    insta::assert_snapshot!("unet_sd2_tree", module_tree(&unet));
    insta::assert_snapshot!("unet_sd2_taps", taps);

    let dit = DiTConfig::sd35_medium().init::<Cpu>(&Default::default()).unwrap();
    let c = &dit.config;
    let shape = [1, c.out_channels, c.sample_size, c.sample_size];
    let taps = shape_list(dit.student_names().into_iter().chain(["output".to_string()]).map(|n| (n, shape)));
    insta::assert_snapshot!("dit_sd35_medium_tree", module_tree(&dit));
    insta::assert_snapshot!("dit_sd35_medium_taps", taps);
}

/// The `sd2` preset of the text U-Net is Stable Diffusion 2's `UNet2DConditionModel`: its
/// 865,910,724 parameters (the count of `stabilityai/stable-diffusion-2`'s `unet`) plus the four
/// LR-latent input channels of `conv_in` (320 · 4 · 3 · 3 = 11,520).
#[test]
fn text_unet_sd2_preset_has_sd2s_parameter_count() {
    let unet = framer_backbones::unet::UNet2DConditionConfig::sd2().init::<Cpu>(&Default::default()).unwrap();
    let total: usize = framer_backbones::summary::parameter_shapes(&unet)
        .into_iter()
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    assert_eq!(total, 865_910_724 + 320 * 4 * 9);
}

/// Sum, absolute sum and a few values of the output, rounded so that summation order on other
/// CPUs does not change the text.
fn checksum(output: Tensor<Cpu, 4>) -> String {
    let dims = output.dims();
    let v = output.into_data().to_vec::<f32>().unwrap();
    let sum: f64 = v.iter().map(|x| *x as f64).sum();
    let abs: f64 = v.iter().map(|x| x.abs() as f64).sum();
    format!("shape {dims:?}\nsum {sum:.1}\nabs_sum {abs:.1}\nfirst {:.3} {:.3} {:.3}\n", v[0], v[1], v[2])
}

#[test]
fn fixed_seed_forward_checksums() {
    let _g = rng_lock();
    let device = Default::default();
    let run_unet = || {
        Cpu::seed(&device, 42);
        let model = UNetConfig::tiny().init::<Cpu>(&device).unwrap();
        let (x, t, lr) = inputs::<Cpu>(2, 3, 32);
        model.forward(x, t, lr)
    };
    let run_dit = || {
        Cpu::seed(&device, 42);
        let model = DiTConfig::tiny().init::<Cpu>(&device).unwrap();
        let (x, t, lr) = inputs::<Cpu>(2, 3, 32);
        model.forward(x, t, lr)
    };
    let (u1, u2) = (run_unet(), run_unet());
    u1.clone().into_data().assert_eq(&u2.into_data(), true);
    let (d1, d2) = (run_dit(), run_dit());
    d1.clone().into_data().assert_eq(&d2.into_data(), true);
    insta::assert_snapshot!("unet_tiny_checksum", checksum(u1));
    insta::assert_snapshot!("dit_tiny_checksum", checksum(d1));
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn backbone_config_from_toml_preset_and_full_table() {
    #[derive(serde::Deserialize)]
    struct Schedule {
        model: BackboneConfig,
    }
    let s: Schedule = toml::from_str("[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n").unwrap();
    assert_eq!(s.model, BackboneConfig::DiT(DiTConfig::tiny()));
    let s: Schedule = toml::from_str("[model]\nbackbone = \"unet\"\npreset = \"sd2\"\n").unwrap();
    assert_eq!(s.model, BackboneConfig::UNet(UNetConfig::sd2()));

    // A full table round-trips through TOML.
    let full = BackboneConfig::UNet(UNetConfig::tiny());
    let text = toml::to_string(&full).unwrap();
    let back: BackboneConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, full);

    for (bad, needle) in [
        ("backbone = \"dit\"\npreset = \"huge\"\n", "unknown dit preset `huge`"),
        ("backbone = \"vit\"\npreset = \"tiny\"\n", "unknown variant `vit`"),
        ("backbone = \"unet\"\n", "`preset` is missing"),
        ("backbone = \"dit\"\npreset = \"tiny\"\ncolor = 1\n", "unknown field `color`"),
    ] {
        let err = toml::from_str::<BackboneConfig>(bad).expect_err(bad).to_string();
        assert!(err.contains(needle), "{bad:?}: {err}");
    }
    let mut table = toml::Table::new();
    table.insert("backbone".into(), "dit".into());
    let mut dit = toml::Table::try_from(DiTConfig::tiny()).unwrap();
    dit.insert("num_attention_heads".into(), 3.into()); // 3 · 16 = 48 is fine
    dit.insert("attention_head_dim".into(), 5.into()); // 3 · 5 = 15 is not a multiple of 4
    table.insert("dit".into(), dit.into());
    let err = table.try_into::<BackboneConfig>().unwrap_err().to_string();
    assert!(err.contains("attention_head_dim"), "{err}");
}

#[test]
fn invalid_configs_and_inputs_are_errors_naming_the_field() {
    let mut c = UNetConfig::tiny();
    c.block_out_channels = vec![8, 30, 64];
    let err = c.init::<Cpu>(&Default::default()).err().unwrap().to_string();
    assert!(err.contains("block_out_channels") && err.contains("30"), "{err}");
    let mut c = UNetConfig::tiny();
    c.up_block_types.pop();
    assert!(matches!(c.validate(), Err(BackboneError::InvalidConfig { field: "up_block_types", .. })));
    let mut c = DiTConfig::tiny();
    c.pos_embed_max_size = 8;
    assert!(matches!(c.validate(), Err(BackboneError::InvalidConfig { field: "pos_embed_max_size", .. })));
    let text_half = DiTConfig { joint_attention_dim: Some(12), ..DiTConfig::tiny() };
    let err = text_half.validate().unwrap_err().to_string();
    assert!(err.contains("pooled_projection_dim") && err.contains("joint_attention_dim"), "{err}");
    let dual = DiTConfig { dual_attention_layers: vec![0, 4], ..DiTConfig::tiny() };
    let err = dual.validate().unwrap_err().to_string();
    assert!(err.contains("dual_attention_layers") && err.contains("block 4"), "{err}");
    assert!(matches!(BackboneConfig::preset("gan", "tiny"), Err(BackboneError::UnknownBackbone(_))));

    let _g = rng_lock();
    let model = DiTConfig::tiny().init::<Cpu>(&Default::default()).unwrap();
    let (x, t, lr) = inputs::<Cpu>(2, 3, 30);
    let err = model.check_inputs(&x, &t, &lr).unwrap_err().to_string();
    assert!(err.contains("x_t") && err.contains("multiple of 4"), "{err}");
    let (x, t, _) = inputs::<Cpu>(2, 3, 32);
    let lr = pattern::<Cpu>(2, 3, 16, 0.0);
    let err = model.check_inputs(&x, &t, &lr).unwrap_err().to_string();
    assert!(err.contains("lr_upsampled"), "{err}");
    let (x, _, lr) = inputs::<Cpu>(2, 3, 256);
    let t = Tensor::<Cpu, 1>::from_floats([0.5, 0.5], &Default::default());
    let err = model.check_inputs(&x, &t, &lr).unwrap_err().to_string();
    assert!(err.contains("exceeds the maximum 128"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Loading diffusers-named safetensors
// ---------------------------------------------------------------------------------------------

/// The diffusers key and PyTorch layout of one burn parameter: the inverse of what the loader
/// does, written independently of burn-store's own export. Returns `(key, shape, values)`.
fn to_diffusers(path: &str, module_type: &str, shape: &[usize], values: Vec<f32>) -> (String, Vec<usize>, Vec<f32>) {
    let mut key = path.replace(".to_out.", ".to_out.0.").replace(".net_0.", ".net.0.proj.").replace(".net_2.", ".net.2.");
    let is_norm = matches!(module_type, "Struct:GroupNorm" | "Struct:RmsNorm" | "Struct:LayerNorm");
    if is_norm {
        key = key.replace(".gamma", ".weight").replace(".beta", ".bias");
    }
    if module_type == "Struct:Linear" && key.ends_with(".weight") {
        // burn [in, out] → PyTorch [out, in]
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0.0; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = values[r * cols + c];
            }
        }
        return (key, vec![cols, rows], t);
    }
    (key, shape.to_vec(), values)
}

type Entry = (String, Vec<usize>, Vec<f32>);

/// Writes `model`'s parameters as a diffusers-style safetensors file.
fn export_diffusers<M: Module<Cpu>>(model: &M, extra: &[Entry]) -> (tempdir::Dir, std::path::PathBuf) {
    let mut entries: Vec<Entry> = model
        .collect(None, None, false)
        .iter()
        .map(|s| {
            let values = s.to_data().unwrap().to_vec::<f32>().unwrap();
            to_diffusers(&s.full_path(), &s.module_type().unwrap_or_default(), s.shape.as_slice(), values)
        })
        .collect();
    entries.extend_from_slice(extra);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = entries
        .into_iter()
        .map(|(k, s, v)| (k, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, s, b)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let dir = tempdir::Dir::new();
    let path = dir.path().join("diffusion_pytorch_model.safetensors");
    safetensors::serialize_to_file(views, None, &path).unwrap();
    (dir, path)
}

/// A throw-away directory under the target directory, removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("framer-backbones-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn diffusers_safetensors_load_reproduces_the_source_model() {
    let _g = rng_lock();
    let device = Default::default();
    let (x, t, lr) = inputs::<Cpu>(1, 3, 32);

    Cpu::seed(&device, 1);
    let source = DiTConfig::tiny().init::<Cpu>(&device).unwrap();
    let (_dir, path) = export_diffusers(&source, &[]);
    let expected = source.forward(x.clone(), t.clone(), lr.clone());
    Cpu::seed(&device, 2);
    let mut target = DiTConfig::tiny().init::<Cpu>(&device).unwrap();
    let before = target.forward(x.clone(), t.clone(), lr.clone());
    assert!((before - expected.clone()).abs().max().into_scalar() > 1e-3, "different seeds differ");
    let report = load_safetensors(&mut target, &path, &LoadOptions::default()).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report:?}");
    assert_eq!(report.applied.len(), source.collect(None, None, false).len());
    let got = target.forward(x.clone(), t.clone(), lr.clone());
    got.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));

    Cpu::seed(&device, 3);
    let source = UNetConfig::tiny().init::<Cpu>(&device).unwrap();
    let (_dir, path) = export_diffusers(&source, &[]);
    let expected = source.forward(x.clone(), t.clone(), lr.clone());
    let mut target = UNetConfig::tiny().init::<Cpu>(&device).unwrap();
    load_safetensors(&mut target, &path, &LoadOptions::default()).unwrap();
    let got = target.forward(x, t, lr);
    got.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
}

#[test]
fn loading_reports_missing_unused_and_mismatched_tensors() {
    let _g = rng_lock();
    let device = Default::default();
    let source = DiTConfig::tiny().init::<Cpu>(&device).unwrap();
    // An SD3 text-stream key that this model does not have.
    let extra = ("context_embedder.weight".to_string(), vec![64, 8], vec![0.0; 512]);
    let (_dir, path) = export_diffusers(&source, std::slice::from_ref(&extra));

    let mut model = DiTConfig::tiny().init::<Cpu>(&device).unwrap();
    let err = load_safetensors(&mut model, &path, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("context_embedder.weight") && err.contains(path.to_str().unwrap()), "{err}");
    let lenient = LoadOptions { allow_unused: true, ..LoadOptions::default() };
    let report = load_safetensors(&mut model, &path, &lenient).unwrap();
    assert_eq!(report.unused, ["context_embedder.weight"]);

    // A deeper model: the file lacks blocks 4 and 5.
    let mut deeper = DiTConfig { num_layers: 6, ..DiTConfig::tiny() }.init::<Cpu>(&device).unwrap();
    let err = load_safetensors(&mut deeper, &path, &lenient).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("transformer_blocks.4"), "{err}");
    let partial = LoadOptions { allow_missing: true, allow_unused: true, ..LoadOptions::default() };
    let report = load_safetensors(&mut deeper, &path, &partial).unwrap();
    assert!(report.missing.iter().all(|p| p.starts_with("transformer_blocks.4") || p.starts_with("transformer_blocks.5")));

    // A wider model: every shape disagrees.
    let mut wider = DiTConfig { num_attention_heads: 8, ..DiTConfig::tiny() }.init::<Cpu>(&device).unwrap();
    let err = load_safetensors(&mut wider, &path, &partial).unwrap_err().to_string();
    assert!(err.contains("pos_embed.proj.weight") && err.len() < 1000, "{err}");

    let missing = std::env::temp_dir().join("framer-backbones-no-such-file.safetensors");
    let err = load_safetensors(&mut model, &missing, &LoadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no such file") && err.contains("framer-backbones-no-such-file"), "{err}");
}

/// Reads f32 tensors `(values, shape)` from a safetensors file.
fn read_f32<const N: usize>(path: &str, names: [&str; N]) -> [(Vec<f32>, Vec<usize>); N] {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    names.map(|name| {
        let t = file.tensor(name).unwrap();
        let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        (v, t.shape().to_vec())
    })
}

/* Equivalent numpy code: tests/golden/mid_block.py (diffusers' UNetMidBlock2D: ResnetBlock2D,
   group-normed self-attention, ResnetBlock2D). */
#[test]
fn unet_mid_block_matches_the_numpy_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mid_block.safetensors");
    let device = Default::default();
    let mut block = framer_backbones::unet::UNetMidBlock2D::<Cpu>::with_dims(8, true, 16, 2, 1e-5, 4, &device);
    let options = LoadOptions { allow_unused: true, ..LoadOptions::default() };
    let report = load_safetensors(&mut block, path, &options).unwrap();
    assert_eq!(report.unused, ["expected.output", "input.temb", "input.x"]);
    assert!(report.missing.is_empty());
    let [(x, xs), (t, ts), (e, es)] = read_f32(path, ["input.x", "input.temb", "expected.output"]);
    let x = Tensor::<Cpu, 4>::from_data(TensorData::new(x, xs), &device);
    let temb = Tensor::<Cpu, 2>::from_data(TensorData::new(t, ts), &device);
    let out = block.forward(x, temb);
    out.into_data().assert_approx_eq::<f32>(&TensorData::new(e, es), Tolerance::absolute(1e-4));
}

/* Equivalent numpy code: tests/golden/joint_block.py (DiT4SR's JointTransformerBlock without text
   tokens, as its code computes it: control keys `norm_k(norm_k(image keys))`, control signal
   `1.2 ·`) wrote the weights under diffusers names and PyTorch layouts, the input, and the output
   of the reference and of the own-keys variant (`fixed_control_norm_k`). */
#[test]
fn joint_block_matches_the_numpy_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/joint_block.safetensors");
    let device = Default::default();
    let mut block = framer_backbones::dit::JointTransformerBlock::<Cpu>::new(8, 2, true, false, &device);
    assert!(block.attn.control_keys_from_image && block.ff.control_scale == 1.2, "the reference by default");
    let options = LoadOptions { allow_unused: true, ..LoadOptions::default() };
    let report = load_safetensors(&mut block, path, &options).unwrap();
    assert_eq!(report.unused, ["expected.output", "expected.output_own_keys", "input.hidden", "input.temb"]);
    assert!(report.missing.is_empty());
    let [(h, hs), (t, ts), (e, es), (o, os)] =
        read_f32(path, ["input.hidden", "input.temb", "expected.output", "expected.output_own_keys"]);
    // the two variants differ by far more than the tolerance, so each check below can fail
    let gap = e.iter().zip(&o).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(gap > 1e-2, "{gap}");
    let hidden = Tensor::<Cpu, 3>::from_data(TensorData::new(h, hs), &device);
    let temb = Tensor::<Cpu, 2>::from_data(TensorData::new(t, ts), &device);
    let (out, text) = block.forward(hidden.clone(), None, temb.clone(), [2, 2]);
    assert!(text.is_none());
    out.into_data().assert_approx_eq::<f32>(&TensorData::new(e, es), Tolerance::absolute(1e-4));
    block.attn.control_keys_from_image = false;
    let (own, _) = block.forward(hidden, None, temb, [2, 2]);
    own.into_data().assert_approx_eq::<f32>(&TensorData::new(o, os), Tolerance::absolute(1e-4));
}

// ---------------------------------------------------------------------------------------------
// FRAMER training steps
// ---------------------------------------------------------------------------------------------

/// Rectified-flow training on one fixed batch: `x_t = (1 − σ)·x0 + σ·ε`, target `v = ε − x0`,
/// loss `mse(v̂, v) + 0.5 · FRAMER(students, teacher)`. Returns the loss of every step.
fn train_steps<M>(model: M, steps: usize) -> (Vec<f32>, Vec<f32>)
where
    M: SrBackbone<Train>
        + AutodiffModule<Train>
        + burn::module::ModuleDisplay
        + FramerForward<Train, Args = (Tensor<Train, 4>, Tensor<Train, 1>, Tensor<Train, 4>), Output = Tensor<Train, 4>>,
    M::InnerModule: burn::module::ModuleDisplay,
{
    let device = Default::default();
    let (x_sample, t_sample, lr_sample) = inputs::<Train>(1, 3, 32);
    let mut params = Framed::new(model, (x_sample, t_sample, lr_sample), &device).unwrap();
    let mut optim = AdamConfig::new().init::<Train, Framed<Train, M>>();
    let (batch, size) = (2, 32);
    let x0 = pattern::<Train>(batch, 3, size, 0.4);
    let noise = pattern::<Train>(batch, 3, size, 2.1).mul_scalar(0.5) + pattern::<Train>(batch, 3, size, 5.0).mul_scalar(0.5);
    let lr = {
        use burn::tensor::module::interpolate;
        use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
        let small = interpolate(x0.clone(), [size / 4, size / 4], InterpolateOptions::new(InterpolateMode::Bilinear));
        interpolate(small, [size, size], InterpolateOptions::new(InterpolateMode::Bicubic))
    };
    let sigmas = vec![0.3f32, 0.7];
    let sigma = Tensor::<Train, 1>::from_floats(sigmas.as_slice(), &device).reshape([batch, 1, 1, 1]);
    let x_t = x0.clone() * (sigma.clone().neg().add_scalar(1.0)) + noise.clone() * sigma;
    let target = noise - x0;
    let t = Tensor::<Train, 1>::from_floats(sigmas.as_slice(), &device);
    let framer_loss = FramerLossConfig::new().init().unwrap();
    let sampler = NegativeSampler::seeded(5);
    let (mut totals, mut framers) = (Vec::new(), Vec::new());
    for step in 0..steps {
        params.model.check_inputs(&x_t, &t, &lr).unwrap();
        let (prediction, taps) = params.forward_with_taps((x_t.clone(), t.clone(), lr.clone())).unwrap();
        let negatives = sampler.sample(step as u64, taps.num_students()).unwrap();
        let param = Parameterization::RectifiedFlow { sigmas: Tensor::from_floats(sigmas.as_slice(), &device) };
        let framer = taps.loss(&framer_loss, x_t.clone(), param, negatives).unwrap().loss;
        let mse = (prediction - target.clone()).powf_scalar(2.0).mean();
        let total = mse + framer.clone().mul_scalar(0.5);
        totals.push(total.clone().into_scalar());
        framers.push(framer.into_scalar());
        let grads = GradientsParams::from_grads(total.backward(), &params);
        params = optim.step(2e-3, params, grads);
    }
    (totals, framers)
}

fn assert_falls(name: &str, totals: &[f32], framers: &[f32]) {
    eprintln!("{name}: total {totals:?}, FRAMER term {framers:?}");
    assert!(totals.iter().chain(framers).all(|v| v.is_finite()), "{name}: {totals:?} {framers:?}");
    let (first, last) = (totals[0], *totals.last().unwrap());
    assert!(last < 0.9 * first, "{name}: total loss did not fall: {totals:?} (FRAMER term {framers:?})");
}

#[test]
fn framer_training_steps_reduce_the_loss_on_tiny_unet() {
    let _g = rng_lock();
    Train::seed(&Default::default(), 11);
    let model = UNetConfig::tiny().init::<Train>(&Default::default()).unwrap();
    let (totals, framers) = train_steps(model, 6);
    assert_falls("unet", &totals, &framers);
}

#[test]
fn framer_training_steps_reduce_the_loss_on_tiny_dit() {
    let _g = rng_lock();
    Train::seed(&Default::default(), 12);
    let model = DiTConfig::tiny().init::<Train>(&Default::default()).unwrap();
    let (totals, framers) = train_steps(model, 6);
    assert_falls("dit", &totals, &framers);
}

#[test]
fn frozen_dit_readout_gets_no_gradient_but_passes_it_to_the_blocks() {
    let _g = rng_lock();
    let device = Default::default();
    let model = DiTConfig::tiny().init::<Train>(&device).unwrap().freeze_readout();
    let (x, t, lr) = inputs::<Train>(1, 3, 16);
    let (prediction, taps) = model.forward_with_taps(x.clone(), t, lr);
    let negatives = NegativeSampler::seeded(1).sample(0, taps.num_students()).unwrap();
    let param = Parameterization::RectifiedFlow { sigmas: Tensor::from_floats([0.5], &device) };
    let framer = taps.loss(&FramerLossConfig::new().init().unwrap(), x, param, negatives).unwrap().loss;
    let grads = (framer + prediction.powf_scalar(2.0).mean()).backward();
    assert!(model.proj_out.weight.val().grad(&grads).is_none());
    assert!(model.norm_out.linear.weight.val().grad(&grads).is_none());
    let g = model.transformer_blocks[0].attn.to_q_control.weight.val().grad(&grads).expect("control grad");
    assert!(g.abs().sum().into_scalar() > 0.0);
}

#[test]
fn zero_initialised_outputs_predict_exactly_zero_and_still_learn() {
    let _g = rng_lock();
    let device = Default::default();
    let dit = DiTConfig { zero_init_out: true, ..DiTConfig::tiny() }.init::<Train>(&device).unwrap();
    let unet = UNetConfig { zero_init_out: true, ..UNetConfig::tiny() }.init::<Train>(&device).unwrap();
    let (x, t, lr) = inputs::<Train>(2, 3, 16);
    for (name, out) in [
        ("dit", dit.forward(x.clone(), t.clone(), lr.clone())),
        ("unet", unet.forward(x.clone(), t.clone(), lr.clone())),
    ] {
        let v = out.into_data().to_vec::<f32>().unwrap();
        assert_eq!(v.len(), 2 * 3 * 16 * 16, "{name}");
        assert!(v.iter().all(|&p| p == 0.0), "{name}: a zero-initialised head must predict 0");
    }
    // The output layer still gets a gradient (so training moves away from zero).
    let out = dit.forward(x.clone(), t.clone(), lr.clone());
    let grads = (out - lr.clone()).powf_scalar(2.0).mean().backward();
    let g = dit.proj_out.weight.val().grad(&grads).expect("proj_out gradient");
    assert!(g.abs().sum().into_scalar() > 0.0);
    let out = unet.forward(x, t, lr.clone());
    let grads = (out - lr).powf_scalar(2.0).mean().backward();
    let g = unet.conv_out.weight.val().grad(&grads).expect("conv_out gradient");
    assert!(g.abs().sum().into_scalar() > 0.0);
    // Off by default, and absent keys in a full table mean off.
    assert!(!DiTConfig::tiny().zero_init_out && !UNetConfig::tiny().zero_init_out);
    let mut table = toml::Table::try_from(DiTConfig::tiny()).unwrap();
    table.remove("zero_init_out");
    assert_eq!(table.try_into::<DiTConfig>().unwrap(), DiTConfig::tiny());
}
