//! `[prompts]`: precomputed prompt embeddings condition a text DiT during training, a share of the
//! draws sees the null prompt, `check` refuses a model that takes no prompt, and `sr` samples
//! with the null prompt.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::{Autodiff, Flex};
use framer_backbones::DiTConfig;
use framer_backbones::unet::UNet2DConditionConfig;
use framer_train::engine::{Trainer, build_framed, open_prompts, pair_source};
use framer_train::schedule::{self, Experiment};
use safetensors::tensor::{Dtype, TensorView};

type B = Autodiff<Flex>;

/// Token and pooled widths of the test DiT's text stream.
const WIDTHS: [usize; 2] = [4, 3];
/// Tokens per prompt.
const TOKENS: usize = 2;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-prompts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A prompt file whose values are `offset + 0.1·i` (seeded by the offset, no randomness).
fn write_prompt(path: &Path, offset: f32) {
    let tokens: Vec<u8> = (0..TOKENS * WIDTHS[0]).flat_map(|i| (offset + 0.1 * i as f32).to_le_bytes()).collect();
    let pooled: Vec<u8> = (0..WIDTHS[1]).flat_map(|i| (offset - 0.2 * i as f32).to_le_bytes()).collect();
    let views = [
        ("prompt_embeds", TensorView::new(Dtype::F32, vec![TOKENS, WIDTHS[0]], &tokens).unwrap()),
        ("pooled_prompt_embeds", TensorView::new(Dtype::F32, vec![WIDTHS[1]], &pooled).unwrap()),
    ];
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Two 48×48 photos `a.png` and `b.png`, and prompt files for them (`a`: 1.0, `b`: −1.0) and the
/// null prompt (0.5).
fn setup(dir: &Path) {
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for (name, k) in [("a", 3u32), ("b", 7)] {
        image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([(x * k % 256) as u8, (y * 5) as u8, ((x + y) * 2) as u8]))
            .save(photos.join(format!("{name}.png")))
            .unwrap();
    }
    let embeddings = dir.join("embeddings");
    std::fs::create_dir_all(&embeddings).unwrap();
    write_prompt(&embeddings.join("a.safetensors"), 1.0);
    write_prompt(&embeddings.join("b.safetensors"), -1.0);
    write_prompt(&dir.join("null.safetensors"), 0.5);
}

fn model_table(backbone: &str) -> String {
    match backbone {
        "dit" => {
            let config =
                DiTConfig { joint_attention_dim: Some(WIDTHS[0]), pooled_projection_dim: Some(WIDTHS[1]), ..DiTConfig::tiny() };
            format!("[model]\nbackbone = \"dit\"\n\n[model.dit]\n{}", toml::to_string(&config).unwrap())
        }
        "unet2d_condition" => {
            let config = text_unet();
            format!("[model]\nbackbone = \"unet2d_condition\"\n\n[model.unet2d_condition]\n{}", toml::to_string(&config).unwrap())
        }
        _ => "[model]\nbackbone = \"unet\"\n".to_string(),
    }
}

/// SD2's text U-Net, tiny, attending to tokens of the test width (no pooled embedding).
fn text_unet() -> UNet2DConditionConfig {
    UNet2DConditionConfig { cross_attention_dim: WIDTHS[0], ..UNet2DConditionConfig::tiny() }
}

fn schedule_text(backbone: &str, ratio: f64, steps: u64) -> String {
    format!(
        "{model}\n[data]\nhr_dir = \"photos\"\ncrop_size = 16\n[train]\nsteps = {steps}\nbatch_size = 2\nseed = 5\n\
         [objective]\nsample_steps = 1\n[checkpoint]\nevery = {steps}\n[logging]\nprogress = false\n\
         [prompts]\ndir = \"embeddings\"\nnull = \"null.safetensors\"\nnull_text_ratio = {ratio:?}\n",
        model = model_table(backbone)
    )
}

fn experiment(dir: &Path, ratio: f64) -> Experiment {
    schedule::parse(&schedule_text("dit", ratio, 3), "prompts.toml", dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The losses of three training steps of the text DiT on `exp`, conditioned on its prompts.
fn losses(exp: &Experiment, out: &Path) -> Vec<f64> {
    let device = Default::default();
    let config = DiTConfig { joint_attention_dim: Some(WIDTHS[0]), pooled_projection_dim: Some(WIDTHS[1]), ..DiTConfig::tiny() };
    let source = pair_source(exp).unwrap();
    let prompts = open_prompts(&config, exp, source.as_ref()).unwrap().expect("[prompts]");
    let framed = build_framed::<B, DiTConfig>(&config, exp, &device).unwrap();
    let mut trainer = Trainer::new(exp, framed, source, out, &device)
        .unwrap()
        .with_prompts(prompts, |model, prompt| model.with_prompt(Some(prompt)));
    (0..3).map(|_| trainer.train_step().unwrap().loss).collect()
}

#[test]
fn prompts_condition_training_and_the_null_ratio_swaps_in_the_null_prompt() {
    let dir = temp("train");
    setup(&dir);
    let prompted = losses(&experiment(&dir, 0.0), &dir.join("r0"));
    assert!(prompted.iter().all(|l| l.is_finite()));
    // every draw takes the null prompt: the same losses as photos whose files hold the null prompt
    let all_null = losses(&experiment(&dir, 1.0), &dir.join("r1"));
    assert_ne!(prompted, all_null, "the photos' prompts change the loss");
    let null_files = temp("null-files");
    setup(&null_files);
    write_prompt(&null_files.join("embeddings/a.safetensors"), 0.5);
    write_prompt(&null_files.join("embeddings/b.safetensors"), 0.5);
    assert_eq!(losses(&experiment(&null_files, 0.0), &null_files.join("r")), all_null);
    // half the draws: neither all prompts nor all null, and the same again for the same seed
    let half = losses(&experiment(&dir, 0.5), &dir.join("r2"));
    assert!(half != prompted && half != all_null, "{half:?}");
    assert_eq!(losses(&experiment(&dir, 0.5), &dir.join("r3")), half);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&null_files);
}

#[test]
fn bad_prompt_settings_are_errors_that_name_the_key_or_the_file() {
    let dir = temp("errors");
    setup(&dir);
    let e = schedule::parse(&schedule_text("dit", 1.5, 2), "prompts.toml", &dir).unwrap_err().to_string();
    assert!(e.contains("prompts.toml:") && e.contains("null_text_ratio") && e.contains("1.5"), "{e}");
    let text = schedule_text("dit", 0.2, 2).replace("dir = \"embeddings\"", "dir = \"missing\"");
    let e = schedule::parse(&text, "prompts.toml", &dir).unwrap_err().to_string();
    assert!(e.contains("prompts.dir") && e.contains("missing"), "{e}");
    // a photo without its file is named when the run starts
    std::fs::remove_file(dir.join("embeddings/b.safetensors")).unwrap();
    let exp = experiment(&dir, 0.0);
    let config = DiTConfig { joint_attention_dim: Some(WIDTHS[0]), pooled_projection_dim: Some(WIDTHS[1]), ..DiTConfig::tiny() };
    let source = pair_source(&exp).unwrap();
    let e = open_prompts(&config, &exp, source.as_ref()).unwrap_err().to_string();
    assert!(e.contains("`b`") && e.contains("b.safetensors"), "{e}");
    // a DiT without a text stream takes no prompt
    let e = open_prompts(&DiTConfig::tiny(), &exp, source.as_ref()).unwrap_err().to_string();
    assert!(e.contains("takes no prompt"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_train_and_sr_through_the_command_line() {
    let dir = temp("cli");
    setup(&dir);
    let framer = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_framer")).args(args).output().unwrap();
    // the U-Net takes no prompt: `check` stops at [prompts]
    let unet = dir.join("unet.toml");
    std::fs::write(&unet, schedule_text("unet", 0.2, 2)).unwrap();
    let out = framer(&["check", unet.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("unet.toml:") && e.contains("[prompts]") && e.contains("takes no prompt"), "{e}");
    // the text DiT trains with prompts and samples with the null prompt
    let dit = dir.join("dit.toml");
    std::fs::write(&dit, schedule_text("dit", 0.2, 2)).unwrap();
    let out = framer(&["check", dit.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (run, lr) = common::train_and_sample(&dir, &dit);
    // without the null prompt's file the run cannot be sampled, and the file is named
    std::fs::remove_file(dir.join("null.safetensors")).unwrap();
    let out = framer(&["sr", "--run", run.to_str().unwrap(), lr.to_str().unwrap(), dir.join("x.png").to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("null.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A token-only prompt file (SD2's text encoder has no pooled embedding): `offset + 0.1·i`.
fn write_tokens(path: &Path, offset: f32) {
    let tokens: Vec<u8> = (0..TOKENS * WIDTHS[0]).flat_map(|i| (offset + 0.1 * i as f32).to_le_bytes()).collect();
    let views = [("prompt_embeds", TensorView::new(Dtype::F32, vec![1, TOKENS, WIDTHS[0]], &tokens).unwrap())];
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn the_text_unet_trains_on_token_embeddings_and_samples_through_the_command_line() {
    let dir = temp("unet-text");
    setup(&dir);
    write_tokens(&dir.join("embeddings/a.safetensors"), 1.0);
    write_tokens(&dir.join("embeddings/b.safetensors"), -1.0);
    write_tokens(&dir.join("null.safetensors"), 0.5);
    // the engine: the photos' prompts change the loss against the null prompt's
    let device = Default::default();
    let losses = |ratio: f64, out: &str| -> Vec<f64> {
        let exp = schedule::parse(&schedule_text("unet2d_condition", ratio, 3), "prompts.toml", &dir)
            .unwrap_or_else(|e| panic!("{e}"));
        let source = pair_source(&exp).unwrap();
        let prompts = open_prompts(&text_unet(), &exp, source.as_ref()).unwrap().expect("[prompts]");
        let framed = build_framed::<B, UNet2DConditionConfig>(&text_unet(), &exp, &device).unwrap();
        let mut trainer = Trainer::new(&exp, framed, source, dir.join(out), &device)
            .unwrap()
            .with_prompts(prompts, |model, prompt| model.with_prompt(Some(prompt)));
        (0..3).map(|_| trainer.train_step().unwrap().loss).collect()
    };
    let prompted = losses(0.0, "r0");
    let null = losses(1.0, "r1");
    assert!(prompted.iter().chain(&null).all(|l| l.is_finite()));
    assert_ne!(prompted, null, "the cross-attention sees the prompt");
    // the command line: check, train, sr with the null prompt
    let framer = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_framer")).args(args).output().unwrap();
    let path = dir.join("unet-text.toml");
    std::fs::write(&path, schedule_text("unet2d_condition", 0.2, 2)).unwrap();
    let out = framer(&["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    common::train_and_sample(&dir, &path);
    let _ = std::fs::remove_dir_all(&dir);
}
