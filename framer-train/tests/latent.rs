//! Latent-space training through the command line, as a user drives it: `framer encode` writes the
//! latents of a `[latent]` schedule with a VAE (diffusers' tiny random SD3-form `AutoencoderKL`, the
//! oracle fixture), `framer train` trains a tiny 16-channel DiT on them, and `framer sr` encodes,
//! samples in latent space and decodes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use framer_train::commands::encode::{EncodeSettings, load_vae, run_encode};
use framer_train::engine::latents::{LatentManifest, MANIFEST, read_item};
use framer_train::engine::{DegradedPhotos, PairSource};

/// diffusers' `AutoencoderKL` in SD3 form (16 latent channels, shift and scaling), tiny sizes:
/// the `tiny-sd3` preset, downsampling by 4.
fn vae_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../framer-backbones/tests/fixtures/diffusers/vae_sd3.weights.safetensors")
}

/// 16² pixel crops → 16 × 4 × 4 latents; a DiT with 2×2 patches on them.
fn schedule(vae: &Path, preset: &str, in_channels: usize) -> String {
    format!(
        "name = \"latent\"\n\
         [model]\nbackbone = \"dit\"\n\
         [model.dit]\nin_channels = {in_channels}\nout_channels = {in_channels}\nsample_size = 4\n\
         patch_size = 2\nnum_layers = 2\nattention_head_dim = 8\nnum_attention_heads = 2\n\
         pos_embed_max_size = 8\nqk_norm = true\nzero_init_control = false\n\
         timestep_scale = 1000.0\n\
         [data]\ncrop_size = 16\nscale = 4\n\
         [latent]\npreset = \"{preset}\"\nvae = \"{}\"\nlatents = \"latents\"\n\
         [objective]\nsample_steps = 2\n\
         [train]\nsteps = 3\nbatch_size = 2\nseed = 5\n\
         [checkpoint]\nevery = 3\n[logging]\nprogress = false\n",
        vae.display()
    )
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("framer-latent-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn framer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_framer")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn encode_train_and_sr_in_latent_space() {
    let dir = Dir::new("cli");
    let schedule_path = dir.0.join("latent.toml");
    fs::write(&schedule_path, schedule(&vae_file(), "tiny-sd3", 16)).unwrap();
    let latents = dir.0.join("latents");

    let out = framer(&["encode", path(&schedule_path)]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest: LatentManifest =
        toml::from_str(&fs::read_to_string(latents.join(MANIFEST)).unwrap()).unwrap();
    // one pass over the eight embedded training photos
    assert_eq!((manifest.count, manifest.shape, manifest.preset.as_str()), (8, [16, 4, 4], "tiny-sd3"));
    assert_eq!(fs::read_dir(&latents).unwrap().count(), 9, "8 items and latents.toml");

    // a second encode into the same folder changes nothing
    let before = fs::read(latents.join("000000.safetensors")).unwrap();
    let again = framer(&["encode", path(&schedule_path)]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already holds latents"), "{}", text(&again));
    assert_eq!(fs::read(latents.join("000000.safetensors")).unwrap(), before);

    let run = dir.0.join("run");
    let out = framer(&["train", path(&schedule_path), "--out", path(&run)]);
    assert!(out.status.success(), "{}", text(&out));
    let resolved = fs::read_to_string(run.join("schedule.resolved.toml")).unwrap();
    assert!(resolved.contains("[latent]") && resolved.contains("tiny-sd3"), "{resolved}");
    let log = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");

    // a 12×8 LR image → 48×32 at the SR size, tiled in 16² pixel tiles (4² latents)
    let lr = dir.0.join("lr.png");
    image::RgbImage::from_fn(12, 8, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 128])).save(&lr).unwrap();
    let sr = dir.0.join("sr.png");
    let out = framer(&["sr", "--run", path(&run), path(&lr), path(&sr)]);
    assert!(out.status.success(), "{}", text(&out));
    let img = image::open(&sr).unwrap();
    assert_eq!((img.width(), img.height()), (48, 32));

    // a tile the VAE cannot divide is refused before anything runs
    let out = framer(&["sr", "--run", path(&run), "--tile", "18", path(&lr), path(&dir.0.join("x.png"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains("multiple of 4"), "{}", text(&out));
}

#[test]
fn encoded_items_are_the_vae_posteriors_of_the_training_draws() {
    let dir = Dir::new("oracle");
    let schedule_path = dir.0.join("latent.toml");
    fs::write(&schedule_path, schedule(&vae_file(), "tiny-sd3", 16)).unwrap();
    let experiment = framer_train::schedule::load(&schedule_path).unwrap();
    let device = Default::default();
    let settings = EncodeSettings { out: None, passes: 2, batch: 3, progress: false };
    let report = run_encode::<Flex>(&experiment, &settings, &device).unwrap();
    assert_eq!(report.manifest.count, 16);
    // draw n of the photo source, encoded alone, is item n (batching changes nothing)
    let vae = load_vae::<Flex>(&experiment, &device).unwrap();
    let photos = DegradedPhotos::from_experiment(&experiment).unwrap();
    for n in [0usize, 7, 13] {
        let pair = photos.batch(n as u64, 1).unwrap();
        let t = |v: Vec<f32>| Tensor::<Flex, 4>::from_data(TensorData::new(v, pair.shape), &device);
        let hr = vae.encode_posterior(t(pair.hr.clone())).unwrap();
        let lr = vae.encode_posterior(t(pair.lr_upsampled.clone())).unwrap();
        let item = read_item(&report.dir, n, [16, 4, 4]).unwrap();
        // the manifest names the photo of the draw (the key of its `[prompts]` file)
        assert_eq!(report.manifest.photos[n], pair.photos[0]);
        for (name, got, want) in [
            ("hr_mean", &item.hr_mean, hr.mean),
            ("hr_logvar", &item.hr_logvar, hr.logvar),
            ("lr_mean", &item.lr_mean, lr.mean),
        ] {
            let want = want.into_data().into_vec::<f32>().unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "item {n} {name}: max |Δ| {err}");
        }
    }
}

#[test]
fn latent_schedules_are_checked_at_their_keys() {
    let dir = Dir::new("bad");
    let s = dir.0.join("s.toml");
    fs::write(&s, schedule(&vae_file(), "sd4", 16)).unwrap();
    let out = framer(&["check", path(&s)]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("s.toml:20:10") && t.contains("unknown VAE preset \"sd4\""), "{t}");

    fs::write(&s, schedule(&dir.0.join("missing.safetensors"), "tiny-sd3", 16)).unwrap();
    let t = text(&framer(&["check", path(&s)]));
    assert!(t.contains("s.toml:21:7") && t.contains("missing.safetensors") && t.contains("is not a file"), "{t}");

    // a 3-channel model cannot take 16-channel latents: `train` says so before writing anything
    fs::write(&s, schedule(&vae_file(), "tiny-sd3", 3)).unwrap();
    let out = framer(&["encode", path(&s)]);
    assert!(out.status.success(), "{}", text(&out));
    let run = dir.0.join("run");
    let out = framer(&["train", path(&s), "--out", path(&run)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("16"), "{}", text(&out));
    assert!(!run.join("metrics.jsonl").exists());

    // training before encoding names the missing folder and the command
    fs::write(&s, schedule(&vae_file(), "tiny-sd3", 16).replace("\"latents\"", "\"elsewhere\"")).unwrap();
    let t = text(&framer(&["train", path(&s), "--out", path(&dir.0.join("run2"))]));
    assert!(t.contains("elsewhere") && t.contains("framer encode"), "{t}");
}

/// A prompt file for the text DiT below (`[2, 4]` tokens, `[3]` pooled), values from `offset`.
fn write_prompt(path: &Path, offset: f32) {
    use safetensors::tensor::{Dtype, TensorView};
    let tokens: Vec<u8> = (0..8).flat_map(|i| (offset + 0.1 * i as f32).to_le_bytes()).collect();
    let pooled: Vec<u8> = (0..3).flat_map(|i| (offset - 0.2 * i as f32).to_le_bytes()).collect();
    let views = [
        ("prompt_embeds", TensorView::new(Dtype::F32, vec![2, 4], &tokens).unwrap()),
        ("pooled_prompt_embeds", TensorView::new(Dtype::F32, vec![3], &pooled).unwrap()),
    ];
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn prompts_reach_latent_runs_through_the_manifest() {
    let dir = Dir::new("prompts");
    let schedule_path = dir.0.join("latent.toml");
    let text_stream = "joint_attention_dim = 4\npooled_projection_dim = 3\n";
    let prompts = "[prompts]\ndir = \"embeddings\"\nnull = \"null.safetensors\"\nnull_text_ratio = 0.5\n";
    let base = schedule(&vae_file(), "tiny-sd3", 16).replace("timestep_scale = 1000.0\n", &format!("timestep_scale = 1000.0\n{text_stream}"));
    fs::create_dir_all(dir.0.join("embeddings")).unwrap();
    write_prompt(&dir.0.join("null.safetensors"), 0.0);
    fs::write(&schedule_path, format!("{base}{prompts}")).unwrap();
    let out = framer(&["encode", path(&schedule_path)]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest: LatentManifest =
        toml::from_str(&fs::read_to_string(dir.0.join("latents").join(MANIFEST)).unwrap()).unwrap();
    // one pass: every embedded training photo once
    let mut photos = manifest.photos.clone();
    photos.sort();
    assert_eq!(photos.len(), 8);
    photos.dedup();
    assert_eq!(photos.len(), 8, "{:?}", manifest.photos);

    // every photo but the last has its prompt: training names the missing file
    for (i, name) in photos.iter().enumerate().take(7) {
        write_prompt(&dir.0.join("embeddings").join(format!("{name}.safetensors")), 1.0 + i as f32);
    }
    let out = framer(&["train", path(&schedule_path), "--out", path(&dir.0.join("run0"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&format!("{}.safetensors", photos[7])), "{}", text(&out));
    write_prompt(&dir.0.join("embeddings").join(format!("{}.safetensors", photos[7])), 9.0);
    let run = dir.0.join("run");
    let out = framer(&["train", path(&schedule_path), "--out", path(&run)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count(), 3);
    let lr = dir.0.join("lr.png");
    image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 128])).save(&lr).unwrap();
    let out = framer(&["sr", "--run", path(&run), path(&lr), path(&dir.0.join("sr.png"))]);
    assert!(out.status.success(), "{}", text(&out));
}
