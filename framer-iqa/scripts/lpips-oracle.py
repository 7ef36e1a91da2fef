#!/usr/bin/env python3
"""Reference values for framer-eval's LPIPS tests, from the `lpips` PyPI package.

Builds `lpips.LPIPS` (v0.1, AlexNet and VGG16 backbones) with deterministic weights instead of
the pretrained ones (no download: `pnet_rand=True`, `pretrained=False`), scores deterministic
image pairs and prints the distances, total and per layer (in float64, and in float32 for
comparison), to paste into
`framer-iqa/tests/lpips.rs`. With `--fixtures DIR` it also writes the small `.pth` files the
weight-reader tests load (the AlexNet linear layers, in the legacy and the zip format of
`torch.save`, plus two tensors that exercise strides and float64).

The formulas below are repeated in `framer-iqa/tests/lpips.rs`; keep both in step.

    pip install torch lpips
    python3 framer-iqa/scripts/lpips-oracle.py --fixtures framer-iqa/tests/fixtures
"""

import argparse
import math
import os

import numpy as np
import torch
import lpips

ALEX_FEATURES = [0, 3, 6, 8, 10]
VGG_FEATURES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def canonical_keys(features):
    """Backbone keys (torchvision names) then linear-layer keys (lpips names)."""
    keys = []
    for n in features:
        keys += [f"features.{n}.weight", f"features.{n}.bias"]
    keys += [f"lin{k}.model.1.weight" for k in range(5)]
    return keys


def formula(key, k, shape):
    """Deterministic weights: sin(2.3 i + k), scaled by tensor kind (i = flat index)."""
    n = int(np.prod(shape))
    s = np.sin(2.3 * np.arange(n, dtype=np.float64) + k)
    if key.startswith("lin"):
        v = 0.05 * (1.5 + s)
    elif key.endswith(".bias"):
        v = 0.01 * s
    else:
        fan_in = int(np.prod(shape[1:]))
        v = 2.0 * s / math.sqrt(fan_in)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def torch_name(key, features):
    """The parameter name inside lpips.LPIPS for a canonical key."""
    if key.startswith("lin"):
        return key
    n = int(key.split(".")[1])
    # lpips splits the torchvision `features` into 5 slices and keeps the indices as names
    bounds = [4, 9, 16, 23, 30] if features is VGG_FEATURES else [2, 5, 8, 10, 12]
    slice_index = next(j for j, b in enumerate(bounds) if n < b) + 1
    return f"net.slice{slice_index}.{n}.{key.split('.')[2]}"


def image(width, height, kind):
    """[1, 3, H, W] in [0, 1]; kind 0: base, 1: base + ripple, 2: base shifted by 1.5 px."""
    x = np.arange(width, dtype=np.float64)[None, None, :]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    c = np.arange(3, dtype=np.float64)[:, None, None]
    shift = 1.5 if kind == 2 else 0.0
    v = 0.5 + 0.4 * np.sin(0.21 * (x + shift) + 0.17 * y + 1.3 * c)
    if kind == 1:
        v = np.clip(v + 0.3 * np.sin(0.9 * x - 0.7 * y + 0.5 * c), 0.0, 1.0)
    return torch.from_numpy(v.astype(np.float32))[None]


def build(net, features):
    model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False).eval()
    params = dict(model.named_parameters())
    for k, key in enumerate(canonical_keys(features)):
        p = params[torch_name(key, features)]
        with torch.no_grad():
            p.copy_(formula(key, k, tuple(p.shape)))
    return model


def report(net, features, width, height):
    """Prints the distances computed in float64 (the reference the tests use) and, for
    comparison, in float32 as `lpips` does by default."""
    model = build(net, features)
    base = image(width, height, 0)
    for kind in (1, 2):
        other = image(width, height, kind)
        for dtype in (torch.float64, torch.float32):
            m = model.to(dtype)
            with torch.no_grad():
                total, layers = m(base.to(dtype), other.to(dtype), retPerLayer=True,
                                  normalize=True)
            per_layer = ", ".join(f"{float(v.flatten()[0]):.9e}" for v in layers)
            print(f"{net} {width}x{height} pair 0-{kind} {str(dtype)[6:]}: "
                  f"total {float(total.flatten()[0]):.9e} layers [{per_layer}]")


def write_fixtures(out):
    os.makedirs(out, exist_ok=True)
    keys = canonical_keys(ALEX_FEATURES)
    shapes = [(1, c, 1, 1) for c in (64, 192, 384, 256, 256)]
    state = {}
    for j, shape in enumerate(shapes):
        key = f"lin{j}.model.1.weight"
        state[key] = formula(key, keys.index(key), shape)
    # a transposed view (strides (1, 3)) and a float64 tensor
    state["extra.transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    state["extra.double"] = torch.tensor([0.25, -1.5], dtype=torch.float64)
    torch.save(state, os.path.join(out, "lpips-alex-linear-legacy.pth"),
               _use_new_zipfile_serialization=False)
    torch.save(state, os.path.join(out, "lpips-alex-linear-zip.pth"))
    print(f"wrote fixtures to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", help="folder for the .pth fixtures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, lpips {getattr(lpips, '__version__', '?')}")
    report("alex", ALEX_FEATURES, 64, 48)
    report("vgg", VGG_FEATURES, 32, 24)
    if args.fixtures:
        write_fixtures(args.fixtures)


if __name__ == "__main__":
    main()
