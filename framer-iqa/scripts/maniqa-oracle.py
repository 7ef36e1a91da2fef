#!/usr/bin/env python3
"""Reference values for framer-eval's MANIQA tests, from pyiqa's own architecture code.

Builds `pyiqa.archs.maniqa_arch.MANIQA(pretrained=False, ...)` with `timm.create_model`
monkeypatched so that nothing is downloaded (the full-size run gets timm's
`vit_base_patch8_224` with `pretrained=False`; the small test configurations get a small
`timm.models.vision_transformer.VisionTransformer`), overwrites every float parameter of its
state dict with the deterministic formula of `formula` below, runs the model in eval mode in
float64 on deterministic images and prints the scores (and checksums of the preprocessed
crops) to paste into `framer-iqa/tests/maniqa.rs`. The formulas are repeated there; keep both
in step.

With `--fixtures DIR` it writes `maniqa-default-state-dict.txt`: the names and shapes of the
default configuration's `state_dict()` (the keys of pyiqa's released checkpoints), one
`name dim0,dim1,...` per line, in state-dict order (integer buffers included).

It also writes `maniqa-tiny-checkpoint.pth`, a tiny configuration's state dict saved by
`torch.save` as `{"params": {"module.<name>": float16 tensor}}` (integer buffers included),
and prints that model's score.

With `--full` it also scores one 256x240 image with the default (full-size) configuration
(ViT-B/8, 20 crops; takes a few minutes on two cores).

    /tmp/iqa-venv/bin/python framer-iqa/scripts/maniqa-oracle.py \
        --fixtures framer-iqa/tests/fixtures --full
(tested with torch 2.15, timm 1.0.31, pyiqa 0.1.16)
"""

import argparse
import math
import os

import numpy as np
import torch
import timm
from timm.models.vision_transformer import VisionTransformer

_ORIGINAL_CREATE_MODEL = timm.create_model
# The small ViT the next MANIQA construction gets (None: timm's full-size model, no download).
SMALL_VIT = None


def create_model(name, pretrained=False, **kwargs):
    if SMALL_VIT is not None:
        return VisionTransformer(**SMALL_VIT)
    return _ORIGINAL_CREATE_MODEL(name, pretrained=False, **kwargs)


timm.create_model = create_model

from pyiqa.archs.arch_util import uniform_crop  # noqa: E402
from pyiqa.archs.maniqa_arch import MANIQA  # noqa: E402

# Small configurations of the same architecture for the pasted values (see the Rust tests).
CONFIGS = {
    # 14x14 tokens, window 7 with a shift of 3 (the shifted-window mask is used).
    "a": dict(
        vit=dict(img_size=224, patch_size=16, embed_dim=32, depth=12, num_heads=2,
                 mlp_ratio=4.0, num_classes=10),
        maniqa=dict(embed_dim=32, patch_size=16, depths=[2, 2], window_size=7, dim_mlp=48,
                    num_heads=[2, 2], num_tab=2, scale=0.8, test_sample=4),
    ),
    # 7x7 tokens, window 8 >= 7: pyiqa uses one 7x7 window without shift.
    "b": dict(
        vit=dict(img_size=224, patch_size=32, embed_dim=24, depth=10, num_heads=3,
                 mlp_ratio=2.0, num_classes=5),
        maniqa=dict(embed_dim=24, patch_size=32, depths=[1, 2], window_size=8, dim_mlp=20,
                    num_heads=[2, 3], num_tab=1, scale=0.13, test_sample=3),
    ),
}

# Written as a checkpoint fixture (float16, nested under `params` with `module.` names, buffers
# included): 8x8 tokens, window 4 with a shift of 2.
TINY = dict(
    vit=dict(img_size=224, patch_size=28, embed_dim=8, depth=10, num_heads=2,
             mlp_ratio=2.0, num_classes=2),
    maniqa=dict(embed_dim=8, patch_size=28, depths=[2], window_size=4, dim_mlp=8,
                num_heads=[2], num_tab=1, scale=0.5, test_sample=2),
)
TINY_IMAGE = (240, 180, 1)

# (width, height) of the images scored with each configuration.
IMAGES = {
    "a": [(250, 236, 0), (150, 100, 1)],
    "b": [(230, 300, 2), (260, 213, 0), (7, 5, 1)],
}


def formula(name, k, shape):
    """Deterministic weights: s = sin(2.3 i + k) (i = flat index, k = index of the entry in
    state-dict order), scaled by tensor kind."""
    n = int(np.prod(shape))
    s = np.sin(2.3 * np.arange(n, dtype=np.float64) + k)
    if name.endswith("relative_position_bias_table"):
        v = 0.2 * s
    elif name.endswith("cls_token") or name.endswith("pos_embed"):
        v = 0.1 * s
    elif name.endswith(".bias"):
        v = 0.02 * s
    elif len(shape) == 1:  # LayerNorm weights
        v = 1.0 + 0.1 * s
    elif name.endswith("c_q.weight") or name.endswith("c_k.weight"):
        # TABlock attention logits stay moderate (no near-ties of an argmax-like softmax)
        v = 0.25 * s / math.sqrt(shape[1])
    else:  # linear and convolution weights
        v = 2.0 * s / math.sqrt(int(np.prod(shape[1:])))
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def is_buffer(name):
    return name.endswith("relative_position_index") or name.endswith("attn_mask")


def image(width, height, kind):
    """[1, 3, H, W] float32 values in [0, 1]."""
    x = np.arange(width, dtype=np.float64)[None, None, :]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    c = np.arange(3, dtype=np.float64)[:, None, None]
    v = (0.5 + 0.3 * np.sin(0.21 * x + 0.17 * y + 1.3 * c)
         + 0.1 * np.sin(0.9 * x - 0.7 * y + 0.5 * c + kind)
         + 0.05 * np.sin(2.1 * x + 1.3 * y + 0.01 * x * y - c))
    return torch.from_numpy(v.astype(np.float32))[None]


def build(vit, maniqa, train_dataset="koniq"):
    global SMALL_VIT
    SMALL_VIT = vit
    try:
        model = MANIQA(pretrained=False, train_dataset=train_dataset, **maniqa)
    finally:
        SMALL_VIT = None
    state = model.state_dict()
    new_state = {}
    for k, (name, t) in enumerate(state.items()):
        new_state[name] = t if is_buffer(name) else formula(name, k, tuple(t.shape))
    model.load_state_dict(new_state)
    return model.double().eval()


def crops(model, img):
    """The preprocessed crops, as in MANIQA.forward in eval mode."""
    x = (img - model.default_mean.to(img)) / model.default_std.to(img)
    return uniform_crop(x, crop_size=224, crop_num=model.test_sample)


def report(label, model, width, height, kind):
    img = image(width, height, kind).double()
    with torch.no_grad():
        c = crops(model, img)
        score = float(model(img).flatten()[0])
    print(f"config {label} {width}x{height} kind {kind}: crops {tuple(c.shape)} "
          f"sum {float(c.sum()):.12e} sumsq {float((c * c).sum()):.12e} "
          f"weighted {float((c * torch.arange(c.numel(), dtype=c.dtype).reshape(c.shape).sin()).sum()):.12e}")
    print(f"config {label} {width}x{height} kind {kind}: score {score:.12e}")


def write_state_dict_fixture(out):
    os.makedirs(out, exist_ok=True)
    model = MANIQA(pretrained=False, train_dataset="koniq", scale=0.8)
    path = os.path.join(out, "maniqa-default-state-dict.txt")
    with open(path, "w") as f:
        for name, t in model.state_dict().items():
            f.write(f"{name} {','.join(str(d) for d in t.shape)}\n")
    print(f"wrote {path}")


def write_tiny_checkpoint(out):
    """The TINY model's state dict as pyiqa's `load_pretrained_network(..., weight_keys='params')`
    reads it after `clean_state_dict`: `{"params": {"module.<name>": tensor}}`, float tensors
    in float16 (the integer `relative_position_index` buffers as they are). Returns the model
    with the float16-rounded weights."""
    model = build(TINY["vit"], TINY["maniqa"])
    state = model.state_dict()
    saved = {}
    for name, t in state.items():
        if t.is_floating_point():
            t = t.half()
        saved["module." + name] = t
    path = os.path.join(out, "maniqa-tiny-checkpoint.pth")
    torch.save({"params": saved}, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    model.load_state_dict({k[len("module."):]: v.double() if v.is_floating_point() else v
                           for k, v in saved.items()})
    return model.double().eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", help="folder for the state-dict names fixture")
    parser.add_argument("--full", action="store_true", help="also score the full-size model")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, timm {timm.__version__}")
    for label, cfg in CONFIGS.items():
        model = build(cfg["vit"], cfg["maniqa"])
        for width, height, kind in IMAGES[label]:
            report(label, model, width, height, kind)
    if args.fixtures:
        write_state_dict_fixture(args.fixtures)
        model = write_tiny_checkpoint(args.fixtures)
        report("tiny (float16 checkpoint)", model, *TINY_IMAGE)
    if args.full:
        model = build(None, dict(scale=0.8))
        report("default", model, 256, 240, 0)


if __name__ == "__main__":
    main()
