//! The SD VAEs against diffusers: `tests/fixtures/diffusers/vae_{sd2,sd3}.*` were written by
//! `scripts/oracle/make_diffusers_fixtures.py` (torch 2.9.1, diffusers 0.36.0, float64 forward
//! passes). Tolerance: relative error `max |a − b| / max |b|` ≤ 1e-4, `a` ours (f32), `b` diffusers.

mod oracle;

use std::path::Path;

use burn::tensor::Tensor;
use framer_backbones::summary::parameter_count;
use framer_backbones::{AutoencoderKL, BackboneError, LoadOptions, VaeConfig, VaeTiling, load_safetensors};
use oracle::{Cpu, Io, assert_close, fixture, oracle_config, relative_error};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

fn loaded(variant: &str, config: &VaeConfig) -> AutoencoderKL<Cpu> {
    let mut vae = config.init::<Cpu>(&Default::default()).unwrap();
    let path = fixture(&format!("{variant}.weights.safetensors"));
    let report = load_safetensors(&mut vae, &path, &LoadOptions::default()).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty());
    vae
}

fn check_variant(variant: &str, config: VaeConfig) {
    // The preset is the oracle's config.
    let oracle = oracle_config(variant);
    assert_eq!(oracle["latent_channels"], config.latent_channels);
    assert_eq!(oracle["block_out_channels"], serde_json::json!(config.block_out_channels));
    assert_eq!(oracle["layers_per_block"], config.layers_per_block);
    assert_eq!(oracle["norm_num_groups"], config.norm_num_groups);
    assert_eq!(oracle["scaling_factor"], config.scaling_factor);
    assert_eq!(oracle["shift_factor"].as_f64().unwrap_or(0.0), config.shift_factor);
    assert_eq!(oracle["use_quant_conv"].as_bool().unwrap_or(true), config.use_quant_conv);

    let vae = loaded(variant, &config);
    let io = Io::open(variant);
    let posterior = vae.encode_posterior(io.tensor("image")).unwrap();
    assert_close("posterior mean", posterior.mean.clone(), io.tensor("posterior_mean"));
    assert_close("posterior logvar", posterior.logvar.clone(), io.tensor("posterior_logvar"));
    let encoded = vae.encode(io.tensor("image"), Some(io.tensor("noise"))).unwrap();
    assert_close("encode (sample, scaled)", encoded, io.tensor("encoded"));
    let decoded = vae.decode(io.tensor("latents")).unwrap();
    assert_close("decode", decoded.clone(), io.tensor("decoded"));
    let tiling = VaeTiling { tile_latent_size: 4, overlap_factor: 0.25 };
    let tiled = vae.tiled_decode(io.tensor("latents"), &tiling).unwrap();
    assert_close("tiled decode", tiled.clone(), io.tensor("decoded_tiled"));
    // The tiles were really used: 4×4-latent tiles of this random VAE decode differently from the
    // whole 8×6 latent (the mid-block attention sees one tile).
    let seams = relative_error(tiled, decoded);
    eprintln!("tiled vs whole decode: relative difference {seams:e}");
    assert!(seams > 0.05);
}

#[test]
fn sd2_vae_matches_diffusers() {
    check_variant("vae_sd2", VaeConfig::tiny_sd2());
}

#[test]
fn sd3_vae_matches_diffusers() {
    check_variant("vae_sd3", VaeConfig::tiny_sd3());
}

#[test]
fn tiled_decode_equals_whole_decode_when_one_tile_covers_the_latent() {
    let vae = loaded("vae_sd3", &VaeConfig::tiny_sd3());
    let latents = Io::open("vae_sd3").tensor("latents"); // [2, 16, 8, 6]
    let whole = vae.decode(latents.clone()).unwrap();
    let tiled = vae.tiled_decode(latents, &VaeTiling { tile_latent_size: 8, overlap_factor: 0.25 }).unwrap();
    assert_eq!(relative_error(tiled, whole), 0.0);
}

#[test]
fn encode_without_noise_is_the_scaled_mean() {
    let vae = loaded("vae_sd3", &VaeConfig::tiny_sd3());
    let io = Io::open("vae_sd3");
    let mean = io.tensor("posterior_mean");
    let expected = mean.sub_scalar(0.0609).mul_scalar(1.5305);
    assert_close("encode (mean)", vae.encode(io.tensor("image"), None).unwrap(), expected);
    // scale/unscale are inverse.
    let l = io.tensor("latents");
    assert_close("unscale∘scale", vae.scale_latents(vae.unscale_latents(l.clone())), l);
}

#[test]
fn real_presets_have_diffusers_parameter_counts() {
    // Counted with diffusers 0.36 (`sum(p.numel() for p in vae.parameters())`).
    let device = Default::default();
    let sd2 = VaeConfig::sd2().init::<Cpu>(&device).unwrap();
    assert_eq!(parameter_count(&sd2), 83_653_863);
    assert_eq!(parameter_count(&sd2.encoder), 34_163_592);
    let sd3 = VaeConfig::sd3().init::<Cpu>(&device).unwrap();
    assert_eq!(parameter_count(&sd3), 83_819_683);
    assert_eq!(parameter_count(&sd3.decoder), 49_545_475);
    assert!(sd3.quant_conv.is_none() && sd3.post_quant_conv.is_none());
    assert_eq!(sd3.downscale_factor(), 8);
}

#[test]
fn bad_inputs_and_configs_are_named() {
    let vae = VaeConfig::tiny_sd2().init::<Cpu>(&Default::default()).unwrap();
    let err = vae.decode(Tensor::zeros([1, 16, 4, 4], &Default::default())).unwrap_err();
    assert!(err.to_string().contains("`latents`") && err.to_string().contains("[batch, 4, H, W]"), "{err}");
    let err = vae.encode_posterior(Tensor::zeros([1, 4, 8, 8], &Default::default())).unwrap_err();
    assert!(err.to_string().contains("`image`"), "{err}");
    let image = Tensor::zeros([1, 3, 16, 16], &Default::default());
    let err = vae.encode(image, Some(Tensor::zeros([1, 4, 3, 3], &Default::default()))).unwrap_err();
    assert!(err.to_string().contains("`noise`"), "{err}");
    let err = vae
        .tiled_decode(Tensor::zeros([1, 4, 9, 9], &Default::default()), &VaeTiling { tile_latent_size: 1, overlap_factor: 0.5 })
        .unwrap_err();
    assert!(err.to_string().contains("zero tile stride"), "{err}");

    let err = VaeConfig::tiny_sd2().with_norm_num_groups(3).validate().unwrap_err();
    assert!(err.to_string().contains("block_out_channels"), "{err}");
    let err = VaeConfig::preset("sd4").unwrap_err();
    assert!(err.to_string().contains("sd2, sd3, tiny-sd2, tiny-sd3"), "{err}");
}

/// A fixed-seed linear congruential generator for the values of the corrupted tensor.
fn lcg_values(n: usize, mut seed: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn load_error(path: &Path) -> String {
    let mut vae = VaeConfig::tiny_sd2().init::<Cpu>(&Default::default()).unwrap();
    match load_safetensors(&mut vae, path, &LoadOptions::default()) {
        Err(err @ BackboneError::Load { .. }) => err.to_string(),
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn truncated_weight_file_names_the_file_and_the_tensor() {
    let bytes = std::fs::read(fixture("vae_sd2.weights.safetensors")).unwrap();
    let dir = std::env::temp_dir().join(format!("framer-vae-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vae.safetensors");
    let kept = bytes.len() - 100;
    std::fs::write(&path, &bytes[..kept]).unwrap();
    // The first tensor (in file order) whose bytes reach past the cut is the one named.
    let (header_len, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let data = kept - 8 - header_len;
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let first_cut = st
        .names()
        .into_iter()
        .map(|n| (metadata.info(n).unwrap().data_offsets, n.to_string()))
        .filter(|((_, end), _)| *end > data)
        .min()
        .unwrap()
        .1;
    let message = load_error(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("truncated") && message.contains(&format!("`{first_cut}`")), "{message}");
}

#[test]
fn misshaped_and_misnamed_tensors_are_listed_together() {
    let bytes = std::fs::read(fixture("vae_sd2.weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let bad_values: Vec<u8> = lcg_values(3 * 8 * 3 * 2, 16).iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut tensors: Vec<(String, TensorView)> = Vec::new();
    for (name, view) in st.tensors() {
        match name.as_str() {
            "decoder.conv_out.weight" => {
                tensors.push((name, TensorView::new(Dtype::F32, vec![3, 8, 3, 2], &bad_values).unwrap()))
            }
            "encoder.conv_in.weight" => tensors.push(("encoder.conv_inn.weight".to_string(), view)),
            "quant_conv.bias" => {}
            _ => tensors.push((name, view)),
        }
    }
    let dir = std::env::temp_dir().join(format!("framer-vae-misshaped-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vae.safetensors");
    safetensors::serialize_to_file(tensors, None, &path).unwrap();
    let message = load_error(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("{message}");
    for expected in [
        path.display().to_string().as_str(),
        "tensor `decoder.conv_out.weight`: expected shape [3, 8, 3, 3], found [3, 8, 3, 2]",
        "2 model parameter(s) missing from the file:",
        "`encoder.conv_in.weight` (did you mean file key `encoder.conv_inn.weight`?)",
        "`quant_conv.bias`\n",
        "1 file tensor(s) match no model parameter:\n  `encoder.conv_inn.weight`",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
    }
}
