#!/usr/bin/env python3
"""Reference values for framer-eval's MUSIQ tests, from pyiqa's own architecture code.

Builds `pyiqa.archs.musiq_arch.MUSIQ(pretrained=False, ...)` (nothing is downloaded), overwrites
every entry of its state dict with the deterministic formula of `formula` below, runs the model
in eval mode in float64 on deterministic images and prints the scores (and a few preprocessing
checksums) to paste into `framer-iqa/tests/musiq.rs`. The formulas are repeated there; keep both
in step.

With `--fixtures DIR` it writes `musiq-default-state-dict.txt`: the names and shapes of the
default configuration's `state_dict()` (the keys of pyiqa's released checkpoints), one
`name dim0,dim1,...` per line, in state-dict order.

With `--full` it also scores one 256x192 image with the default (full-size) configuration.

    /tmp/iqa-venv/bin/python framer-iqa/scripts/musiq-oracle.py \
        --fixtures framer-iqa/tests/fixtures --full
(tested with torch 2.15, pyiqa 0.1.16)
"""

import argparse
import math
import os

import numpy as np
import torch

from pyiqa.archs.musiq_arch import MUSIQ
from pyiqa.data.multiscale_trans_util import (
    get_hashed_spatial_pos_emb_index,
    get_multiscale_patches,
)


def formula(name, k, shape):
    """Deterministic weights: s = sin(2.3 i + k) (i = flat index, k = index of the tensor in
    state-dict order), scaled by tensor kind."""
    n = int(np.prod(shape))
    s = np.sin(2.3 * np.arange(n, dtype=np.float64) + k)
    if name.endswith(".bias"):
        v = 0.02 * s
    elif len(shape) == 4:  # convolutions (standardised by StdConv anyway)
        v = s
    elif len(shape) == 2 and name.endswith(".weight"):  # linear layers
        v = s / math.sqrt(shape[1])
    elif len(shape) == 1:  # GroupNorm / LayerNorm scales
        v = 1.0 + 0.2 * s
    else:  # cls token, position and scale embeddings
        v = 0.3 * s
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def image(width, height):
    """[1, 3, H, W] in [0, 1]: 0.5 + 0.4 sin(0.21 x + 0.17 y + 1.3 c)
    + 0.3 sin(0.9 x - 0.7 y + 0.5 c), clipped, rounded to float32."""
    x = np.arange(width, dtype=np.float64)[None, None, :]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    c = np.arange(3, dtype=np.float64)[:, None, None]
    v = 0.5 + 0.4 * np.sin(0.21 * x + 0.17 * y + 1.3 * c)
    v = np.clip(v + 0.3 * np.sin(0.9 * x - 0.7 * y + 0.5 * c), 0.0, 1.0)
    return torch.from_numpy(v.astype(np.float32))[None]


SMALL = dict(hidden_size=32, mlp_dim=64, num_heads=2, num_layers=2)


def build(**kw):
    model = MUSIQ(pretrained=False, **kw).eval()
    state = model.state_dict()
    new = {}
    for k, (name, t) in enumerate(state.items()):
        new[name] = formula(name, k, tuple(t.shape))
    model.load_state_dict(new)
    return model


def preprocessing(width, height):
    """Checksums of the default preprocessing: token count, the hashed positions, scale ids and
    mask (index-weighted sums and the first entries), and the sum and sum of (index-weighted) values of the patch."""
    x = (image(width, height).double() - 0.5) * 2
    p = get_multiscale_patches(x, 32, 32, 10, [224, 384], -1)[0]
    patches = p[:, :-3]
    w = torch.cos(0.01 * torch.arange(patches.shape[1], dtype=torch.float64))
    print(f"preprocessing {width}x{height}: {p.shape[0]} tokens")
    i = torch.arange(1, p.shape[0] + 1, dtype=torch.float64)
    for j, what in [(-3, "positions"), (-2, "scales"), (-1, "mask")]:
        print(f"  {what}: sum (i+1) v_i = {int((i * p[:, j]).sum())}, first 16 "
              f"{p[:16, j].long().tolist()}")
    print(f"  patch sum {float(patches.sum()):.12e}  weighted {float((patches * w).sum()):.12e}")


def score(model, width, height, dtype=torch.float64):
    m = model.to(dtype)
    with torch.no_grad():
        return float(m(image(width, height).to(dtype)).flatten()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", help="write musiq-default-state-dict.txt here")
    ap.add_argument("--full", action="store_true", help="also the full-size forward (slow)")
    args = ap.parse_args()

    if args.fixtures:
        os.makedirs(args.fixtures, exist_ok=True)
        path = os.path.join(args.fixtures, "musiq-default-state-dict.txt")
        with open(path, "w") as f:
            for name, t in MUSIQ(pretrained=False).state_dict().items():
                f.write(f"{name} {','.join(str(d) for d in t.shape)}\n")
        print(f"wrote {path}")

    for w, h in [(80, 48), (64, 35)]:
        preprocessing(w, h)
    # 154 patches across a 10-entry grid: PyTorch's float32 scale gives index 5 at patch 77
    # (float64 arithmetic would give 4)
    hashed = get_hashed_spatial_pos_emb_index(10, 1, 154).long().flatten()
    print(f"hash grid 10, 1x154 patches: [70:80] {hashed[70:80].tolist()}, "
          f"sum (i+1) v_i = {int((torch.arange(1, 155) * hashed).sum())}")
    # torch's GELU (nn.GELU() in the MLP) is the exact-erf form
    for v in [-3.0, -1.5, -0.5, 0.7, 2.2]:
        g = torch.nn.functional.gelu(torch.tensor(v, dtype=torch.float64))
        print(f"gelu({v}) = {float(g):.12e}")

    small = build(**SMALL)
    for w, h in [(80, 48), (40, 72), (64, 35), (260, 100)]:
        s64 = score(small, w, h)
        s32 = score(small, w, h, torch.float32)
        print(f"small num_class 1, {w}x{h}: float64 {s64:.12e}  float32 {s32:.9e}")
    ava = build(num_class=10, **SMALL)
    for w, h in [(80, 48)]:
        print(f"small num_class 10, {w}x{h}: float64 {score(ava, w, h):.12e}")

    if args.full:
        full = build()
        w, h = 256, 192
        print(f"full num_class 1, {w}x{h}: float64 {score(full, w, h):.12e}  "
              f"float32 {score(full, w, h, torch.float32):.9e}")


if __name__ == "__main__":
    main()
