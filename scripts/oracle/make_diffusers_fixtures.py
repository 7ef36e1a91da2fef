#!/usr/bin/env python3
"""Oracle fixtures for framer-backbones: tiny diffusers models, random weights, fixed seeds.

For each model this writes two safetensors files under
framer-backbones/tests/fixtures/diffusers/ (or --out):

  <name>.weights.safetensors  the model's state dict exactly as diffusers names and lays it out
                              (float32), so the Rust side loads it unchanged;
  <name>.io.safetensors       the seeded inputs and the outputs diffusers computed from them.

Every parameter is redrawn from a seeded normal distribution (norm scales around 1, biases and
weights non-zero), so no layer is hidden behind diffusers' zero initialisations. The forward
passes run in float64 from those float32 weights and the outputs are rounded to float32 once: the
fixtures hold diffusers' result to float32 precision, not float32 accumulation error.

Usage (see scripts/oracle/README.md in the fixtures folder for the exact versions):

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install -r scripts/oracle/requirements.txt
    /tmp/oracle-venv/bin/python scripts/oracle/make_diffusers_fixtures.py
"""

import argparse
import json
import math
import os

import diffusers
import safetensors
import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
from safetensors.torch import save_file

DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "..",
    "framer-backbones",
    "tests",
    "fixtures",
    "diffusers",
)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Redraws every parameter: 1-D `weight`s (norm scales) as 1 + 0.2·N(0,1), other 1-D tensors
    (biases, norm shifts) as 0.2·N(0,1), and weight matrices / kernels as N(0,1)/sqrt(fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.2 * noise)
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(noise / math.sqrt(fan_in))


def state_dict_f32(model: torch.nn.Module) -> dict:
    return {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}


def save(out: str, name: str, model: torch.nn.Module, io: dict, meta: dict) -> None:
    weights = state_dict_f32(model)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in io.items()}
    meta = dict(meta, torch=torch.__version__, diffusers=diffusers.__version__)
    # One metadata entry: safetensors writes several in hash order, which would change the bytes.
    meta = {"oracle": json.dumps(meta, sort_keys=True, default=str)}
    save_file(weights, os.path.join(out, f"{name}.weights.safetensors"), metadata=meta)
    save_file(tensors, os.path.join(out, f"{name}.io.safetensors"), metadata=meta)
    n = sum(v.numel() for v in weights.values())
    print(f"{name}: {len(weights)} tensors, {n} parameters; io: {sorted(tensors)}")


def randn(gen, *shape):
    return torch.randn(shape, generator=gen, dtype=torch.float32)


# Tiny AutoencoderKL: three levels (two downsamplers, ×4), widths 8/8/16, 4 norm groups, one ResNet
# per encoder level (two per decoder level), the mid-block attention. The real SD2/SD3 VAEs are
# the same code with [128, 256, 512, 512], layers_per_block 2, 32 groups.
VAE_TINY = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(8, 8, 16),
    layers_per_block=1,
    act_fn="silu",
    norm_num_groups=4,
    sample_size=32,
    mid_block_add_attention=True,
)
VAE_VARIANTS = {
    # SD2: 4 latent channels, quant_conv / post_quant_conv, latents = z · 0.18215.
    "vae_sd2": dict(latent_channels=4, scaling_factor=0.18215, shift_factor=None),
    # SD3: 16 latent channels, no quant convs, latents = (z − 0.0609) · 1.5305.
    "vae_sd3": dict(
        latent_channels=16,
        scaling_factor=1.5305,
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ),
}
# Tiled decode: latent tiles of 4×4 (16×16 pixels), diffusers' overlap factor 0.25.
VAE_TILE_LATENT = 4


def vae_fixture(out: str, name: str, seed: int) -> None:
    config = dict(VAE_TINY, **VAE_VARIANTS[name])
    vae = AutoencoderKL(**config)
    randomize(vae, seed)
    vae = vae.eval().to(torch.float64)
    scale = vae.config.scaling_factor
    shift = vae.config.shift_factor or 0.0

    gen = torch.Generator().manual_seed(seed + 1)
    image = (torch.rand((2, 3, 32, 24), generator=gen) * 2.0 - 1.0).to(torch.float32)
    c = config["latent_channels"]
    noise = randn(gen, 2, c, 8, 6)
    latents = randn(gen, 2, c, 8, 6)  # pipeline-scaled latents to decode

    with torch.no_grad():
        posterior = vae.encode(image.double()).latent_dist
        sample = posterior.mean + posterior.std * noise.double()
        # Pipelines: SD2 `latents = sample · scale`; SD3 `latents = (sample − shift) · scale`.
        encoded = (sample - shift) * scale
        # Pipelines: SD2 `decode(latents / scale)`; SD3 `decode(latents / scale + shift)`.
        z = latents.double() / scale + shift
        decoded = vae.decode(z).sample
        vae.use_tiling = True
        vae.tile_latent_min_size = VAE_TILE_LATENT
        vae.tile_sample_min_size = VAE_TILE_LATENT * 2 ** (len(config["block_out_channels"]) - 1)
        decoded_tiled = vae.decode(z).sample
        vae.use_tiling = False

    io = dict(
        image=image,
        noise=noise,
        posterior_mean=posterior.mean,
        posterior_logvar=posterior.logvar,
        encoded=encoded,
        latents=latents,
        decoded=decoded,
        decoded_tiled=decoded_tiled,
    )
    meta = dict(
        model="AutoencoderKL",
        config=config,
        seed=seed,
        tile_latent_min_size=vae.tile_latent_min_size,
        tile_sample_min_size=vae.tile_sample_min_size,
        tile_overlap_factor=vae.tile_overlap_factor,
    )
    save(out, name, vae, io, meta)


# Tiny SD3 MMDiT: 2 joint blocks of 2 heads × 8, patch 2, 4 latent channels. `sd3` is SD3-medium's
# block (no q/k norm); `sd35` has SD3.5-medium's RMS q/k norms and a dual-attention first block.
DIT_TINY = dict(
    sample_size=8,
    patch_size=2,
    in_channels=4,
    out_channels=4,
    num_layers=2,
    attention_head_dim=8,
    num_attention_heads=2,
    joint_attention_dim=12,
    caption_projection_dim=16,
    pooled_projection_dim=6,
    pos_embed_max_size=8,
)
DIT_VARIANTS = {
    "sd3_transformer": dict(),
    "sd35_transformer": dict(qk_norm="rms_norm", dual_attention_layers=(0,)),
}


def transformer_fixture(out: str, name: str, seed: int) -> None:
    config = dict(DIT_TINY, **DIT_VARIANTS[name])
    model = SD3Transformer2DModel(**config)
    randomize(model, seed)
    model = model.eval().to(torch.float64)
    gen = torch.Generator().manual_seed(seed + 1)
    hidden_states = randn(gen, 2, 4, 8, 8)
    encoder_hidden_states = randn(gen, 2, 5, config["joint_attention_dim"])
    pooled_projections = randn(gen, 2, config["pooled_projection_dim"])
    timestep = torch.tensor([250.0, 731.5])
    with torch.no_grad():
        sample = model(
            hidden_states=hidden_states.double(),
            encoder_hidden_states=encoder_hidden_states.double(),
            pooled_projections=pooled_projections.double(),
            timestep=timestep.double(),
        ).sample
    io = dict(
        hidden_states=hidden_states,
        encoder_hidden_states=encoder_hidden_states,
        pooled_projections=pooled_projections,
        timestep=timestep,
        sample=sample,
    )
    save(out, name, model, io, dict(model="SD3Transformer2DModel", config=config, seed=seed))


# Tiny SD2-style UNet2DConditionModel: two levels 8/16 (a plain and a cross-attention level), one
# ResNet per level, 4 norm groups, linear projections in the transformers and heads of width 8 as
# in SD2 (whose `attention_head_dim` lists head counts: [5, 10, 20, 20]).
UNET_TINY = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(8, 16),
    layers_per_block=1,
    norm_num_groups=4,
    cross_attention_dim=12,
    attention_head_dim=(1, 2),
    use_linear_projection=True,
)


def unet_fixture(out: str, name: str, seed: int) -> None:
    model = UNet2DConditionModel(**UNET_TINY)
    randomize(model, seed)
    model = model.eval().to(torch.float64)
    gen = torch.Generator().manual_seed(seed + 1)
    sample_in = randn(gen, 2, 4, 8, 8)
    encoder_hidden_states = randn(gen, 2, 5, UNET_TINY["cross_attention_dim"])
    timestep = torch.tensor([17.0, 803.0])
    with torch.no_grad():
        sample = model(
            sample_in.double(), timestep.double(), encoder_hidden_states=encoder_hidden_states.double()
        ).sample
    io = dict(
        sample_in=sample_in,
        encoder_hidden_states=encoder_hidden_states,
        timestep=timestep,
        sample=sample,
    )
    save(out, name, model, io, dict(model="UNet2DConditionModel", config=UNET_TINY, seed=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="fixture folder")
    args = parser.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, safetensors {safetensors.__version__}")
    vae_fixture(out, "vae_sd2", seed=1602)
    vae_fixture(out, "vae_sd3", seed=1603)
    transformer_fixture(out, "sd3_transformer", seed=1604)
    transformer_fixture(out, "sd35_transformer", seed=1605)
    unet_fixture(out, "unet2d_condition", seed=1606)


if __name__ == "__main__":
    main()
