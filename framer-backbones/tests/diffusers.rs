//! The backbones against diffusers itself: `tests/fixtures/diffusers/{sd3,sd35}_transformer.*` and
//! `unet2d_condition.*` were written by `scripts/oracle/make_diffusers_fixtures.py` (torch 2.9.1,
//! diffusers 0.36.0, float64 forward passes of tiny models with random weights). The burn models
//! load the state dicts unchanged (the key table is `framer_backbones::DIFFUSERS_KEY_REMAP`).
//! Tolerance: relative error `max |a − b| / max |b|` ≤ 1e-4, `a` ours (f32), `b` diffusers.

mod oracle;

use framer_backbones::dit::TextCondition;
use framer_backbones::unet::UNet2DConditionConfig;
use framer_backbones::unet::condition::{CrossAttnDownType, CrossAttnUpType};
use framer_backbones::{DiTConfig, LoadOptions, load_safetensors};
use oracle::{Cpu, Io, assert_close, fixture, oracle_config, relative_error};

fn usize_of(config: &serde_json::Value, key: &str) -> usize {
    config[key].as_u64().unwrap_or_else(|| panic!("oracle config lacks {key}")) as usize
}

/// The DiT config of diffusers' `SD3Transformer2DModel` config; timesteps in diffusers' units
/// (`timestep_scale = 1`).
fn dit_config(oracle: &serde_json::Value) -> DiTConfig {
    let heads = usize_of(oracle, "num_attention_heads");
    let head_dim = usize_of(oracle, "attention_head_dim");
    // diffusers' blocks are `heads · head_dim` wide; the caption projection must match that width
    assert_eq!(usize_of(oracle, "caption_projection_dim"), heads * head_dim);
    DiTConfig {
        in_channels: usize_of(oracle, "in_channels"),
        out_channels: usize_of(oracle, "out_channels"),
        sample_size: usize_of(oracle, "sample_size"),
        patch_size: usize_of(oracle, "patch_size"),
        num_layers: usize_of(oracle, "num_layers"),
        attention_head_dim: head_dim,
        num_attention_heads: heads,
        pos_embed_max_size: usize_of(oracle, "pos_embed_max_size"),
        qk_norm: match oracle["qk_norm"].as_str() {
            None => false,
            Some("rms_norm") => true,
            Some(other) => panic!("qk_norm {other}"),
        },
        zero_init_control: false,
        timestep_scale: 1.0,
        zero_init_out: false,
        fixed_control_norm_k: false,
        control_ff_scale: 1.2,
        joint_attention_dim: Some(usize_of(oracle, "joint_attention_dim")),
        pooled_projection_dim: Some(usize_of(oracle, "pooled_projection_dim")),
        dual_attention_layers: oracle["dual_attention_layers"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
            .unwrap_or_default(),
    }
}

/// Loads the transformer fixture into the DiT (only the control modules, which SD3 lacks, may be
/// missing; nothing may be unused) and compares the forward pass without an LR image.
fn check_transformer(model: &str) {
    let config = dit_config(&oracle_config(model));
    let mut dit = config.init::<Cpu>(&Default::default()).unwrap();
    let options = LoadOptions { allow_missing: true, ..LoadOptions::default() };
    let report = load_safetensors(&mut dit, fixture(&format!("{model}.weights.safetensors")), &options).unwrap();
    assert!(report.unused.is_empty(), "unused: {:?}", report.unused);
    assert!(!report.missing.is_empty());
    let not_control: Vec<_> = report.missing.iter().filter(|p| !p.contains("control")).collect();
    assert!(not_control.is_empty(), "missing beyond the control modules: {not_control:?}");

    let io = Io::open(model);
    let text = TextCondition { tokens: io.tensor_n::<3>("encoder_hidden_states"), pooled: io.tensor_n::<2>("pooled_projections") };
    let out = dit.forward_with_text(io.tensor("hidden_states"), io.tensor_n::<1>("timestep"), None, Some(text.clone()));
    assert_close(&format!("{model} forward"), out.clone(), io.tensor("sample"));

    // each input matters: without the prompt the output moves far past the tolerance
    let unprompted = dit.forward_with_text(io.tensor("hidden_states"), io.tensor_n::<1>("timestep"), None, None);
    assert!(relative_error(unprompted, out) > 1e-2);
}

#[test]
fn sd3_transformer_matches_diffusers() {
    check_transformer("sd3_transformer");
}

#[test]
fn sd35_transformer_with_qk_norm_and_dual_attention_matches_diffusers() {
    let oracle = oracle_config("sd35_transformer");
    assert_eq!(oracle["dual_attention_layers"], serde_json::json!([0]));
    check_transformer("sd35_transformer");
}

/// The U-Net config of diffusers' `UNet2DConditionModel` config.
fn unet_config(oracle: &serde_json::Value) -> UNet2DConditionConfig {
    let list = |key: &str| -> Vec<serde_json::Value> { oracle[key].as_array().unwrap_or_else(|| panic!("{key}")).clone() };
    let numbers = |key: &str| list(key).iter().map(|v| v.as_u64().unwrap() as usize).collect::<Vec<_>>();
    let types = |key: &str| list(key).iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>();
    UNet2DConditionConfig {
        in_channels: usize_of(oracle, "in_channels"),
        lr_channels: 0,
        timestep_scale: 1.0,
        out_channels: usize_of(oracle, "out_channels"),
        block_out_channels: numbers("block_out_channels"),
        down_block_types: types("down_block_types")
            .iter()
            .map(|t| match t.as_str() {
                "DownBlock2D" => CrossAttnDownType::DownBlock2D,
                "CrossAttnDownBlock2D" => CrossAttnDownType::CrossAttnDownBlock2D,
                other => panic!("{other}"),
            })
            .collect(),
        up_block_types: types("up_block_types")
            .iter()
            .map(|t| match t.as_str() {
                "UpBlock2D" => CrossAttnUpType::UpBlock2D,
                "CrossAttnUpBlock2D" => CrossAttnUpType::CrossAttnUpBlock2D,
                other => panic!("{other}"),
            })
            .collect(),
        layers_per_block: usize_of(oracle, "layers_per_block"),
        attention_head_dim: numbers("attention_head_dim"),
        cross_attention_dim: usize_of(oracle, "cross_attention_dim"),
        norm_num_groups: usize_of(oracle, "norm_num_groups"),
        norm_eps: 1e-5,
        use_linear_projection: oracle["use_linear_projection"].as_bool().unwrap(),
    }
}

#[test]
fn unet2d_condition_matches_diffusers() {
    let model = "unet2d_condition";
    let config = unet_config(&oracle_config(model));
    let mut unet = config.init::<Cpu>(&Default::default()).unwrap();
    // strict: every parameter comes from the file and every file tensor is used
    let report = load_safetensors(&mut unet, fixture(&format!("{model}.weights.safetensors")), &LoadOptions::default()).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty());

    let io = Io::open(model);
    let out = unet.forward_text(io.tensor("sample_in"), io.tensor_n::<1>("timestep"), io.tensor_n::<3>("encoder_hidden_states"));
    assert_close("UNet2DConditionModel forward", out.clone(), io.tensor("sample"));

    // the text tokens matter: other tokens move the output far past the tolerance
    let other = unet.forward_text(io.tensor("sample_in"), io.tensor_n::<1>("timestep"), io.tensor_n::<3>("encoder_hidden_states") * 0.5);
    assert!(relative_error(other, out) > 1e-2);
}

/// A prompt of batch 1 serves every sample (the null prompt at inference): the output equals that
/// of the prompt repeated over the batch, and `with_prompt` makes `forward` use it.
#[test]
fn a_prompt_of_batch_one_is_shared_by_the_batch() {
    let model = "sd3_transformer";
    let mut dit = dit_config(&oracle_config(model)).init::<Cpu>(&Default::default()).unwrap();
    let options = LoadOptions { allow_missing: true, ..LoadOptions::default() };
    load_safetensors(&mut dit, fixture(&format!("{model}.weights.safetensors")), &options).unwrap();
    let io = Io::open(model);
    let x = io.tensor("hidden_states");
    let t = io.tensor_n::<1>("timestep");
    let first = TextCondition {
        tokens: io.tensor_n::<3>("encoder_hidden_states").narrow(0, 0, 1),
        pooled: io.tensor_n::<2>("pooled_projections").narrow(0, 0, 1),
    };
    let repeated = TextCondition { tokens: first.tokens.clone().repeat_dim(0, 2), pooled: first.pooled.clone().repeat_dim(0, 2) };
    let shared = dit.forward_with_text(x.clone(), t.clone(), None, Some(first.clone()));
    let explicit = dit.forward_with_text(x.clone(), t.clone(), None, Some(repeated));
    assert_eq!(shared.clone().into_data(), explicit.into_data());
    // `forward` (the training contract) with the prompt set, against `forward_with_text`
    let lr = x.clone() * 0.5;
    let with_text = dit.forward_with_text(x.clone(), t.clone(), Some(lr.clone()), Some(first.clone()));
    let dit = dit.with_prompt(Some(first));
    assert_eq!(dit.forward(x, t, lr).into_data(), with_text.into_data());
}
