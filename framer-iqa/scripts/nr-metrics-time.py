#!/usr/bin/env python3
"""Times pyiqa's full-size MUSIQ and MANIQA networks on the CPU, for comparison with framer's
ports (`cargo run --release -p framer-iqa --example nr_metrics_time` does the same in Rust).

Builds `pyiqa.archs.musiq_arch.MUSIQ(pretrained=False)` and
`pyiqa.archs.maniqa_arch.MANIQA(pretrained=False, train_dataset="koniq", scale=0.8)` with
`timm.create_model` forced to `pretrained=False` (nothing is downloaded), overwrites every float
parameter with the deterministic formulas of `musiq-oracle.py` / `maniqa-oracle.py` (imported
from them), and scores one deterministic image (the pattern of each metric's tests; default 256x240)
in float32, eval mode, under `torch.no_grad()`. One warm-up score, then `--iters` timed scores
(default 3 for MUSIQ, 1 for MANIQA). Threads: torch's default unless `--threads T`. With
`--float64` it also prints each score computed in float64 (untimed), the reference that both
float32 scores are compared with.

The last line per metric is machine-readable, as in the Rust example:
`nr_metric_time metric=<musiq|maniqa> width=W height=H iters=N median_s=... min_s=... score=...`.

    /tmp/iqa-venv/bin/python framer-iqa/scripts/nr-metrics-time.py [--musiq] [--maniqa] \
        [--iters N] [--width W --height H] [--threads T]
(tested with torch 2.15, timm 1.0.31, pyiqa 0.1.16)
"""

import argparse
import importlib.util
import pathlib
import statistics
import time

import timm
import torch


def _load(script):
    """One of the oracle scripts beside this one, as a module (their file names have hyphens)."""
    path = pathlib.Path(__file__).with_name(script)
    spec = importlib.util.spec_from_file_location(script.replace("-", "_")[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# maniqa-oracle.py forces timm.create_model to pretrained=False (its full-size ViT when no small
# one is set), so nothing is downloaded.
_musiq_oracle = _load("musiq-oracle.py")
_maniqa_oracle = _load("maniqa-oracle.py")
MUSIQ, musiq_formula, musiq_image = _musiq_oracle.MUSIQ, _musiq_oracle.formula, _musiq_oracle.image
MANIQA, maniqa_formula, is_buffer = (
    _maniqa_oracle.MANIQA, _maniqa_oracle.formula, _maniqa_oracle.is_buffer)


def maniqa_image(width, height):
    """[1, 3, H, W]: maniqa-oracle.py's image of kind 0."""
    return _maniqa_oracle.image(width, height, 0)


def fill(model, formula):
    state = model.state_dict()
    new = {}
    for k, (name, t) in enumerate(state.items()):
        new[name] = t if is_buffer(name) else formula(name, k, tuple(t.shape))
    model.load_state_dict(new)
    return model.float().eval()


def timed(metric, model, img, iters, built, args):
    with torch.no_grad():
        start = time.perf_counter()
        warm = float(model(img).flatten()[0])
        print(f"{metric}: warm-up {time.perf_counter() - start:.3f} s, score {warm:.9e}",
              flush=True)
        times = []
        last = warm
        for i in range(iters):
            start = time.perf_counter()
            last = float(model(img).flatten()[0])
            t = time.perf_counter() - start
            times.append(t)
            print(f"{metric}: iteration {i + 1} {t:.3f} s, score {last:.9e}", flush=True)
    median = statistics.median(times)
    print(f"{metric}: {args.width}x{args.height}, build {built:.2f} s, median {median:.3f} s, "
          f"min {min(times):.3f} s over {iters}")
    print(f"nr_metric_time metric={metric} width={args.width} height={args.height} "
          f"iters={iters} median_s={median:.4f} min_s={min(times):.4f} score={last:.9e}",
          flush=True)


def float64_score(metric, model, img):
    with torch.no_grad():
        score = float(model.double()(img.double()).flatten()[0])
    print(f"{metric}: float64 score {score:.12e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--musiq", action="store_true")
    parser.add_argument("--maniqa", action="store_true")
    parser.add_argument("--iters", type=int)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--float64", action="store_true",
                        help="after the timing, also print the score in float64 (untimed)")
    args = parser.parse_args()
    if args.iters is not None and args.iters < 1:
        parser.error("--iters must be at least 1")
    if args.width < 1 or args.height < 1:
        parser.error("--width and --height must be positive")
    if not args.musiq and not args.maniqa:
        args.musiq = args.maniqa = True
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import pyiqa
    print(f"torch {torch.__version__}, timm {timm.__version__}, pyiqa {pyiqa.__version__}, "
          f"torch.get_num_threads() = {torch.get_num_threads()}", flush=True)

    if args.musiq:
        start = time.perf_counter()
        model = fill(MUSIQ(pretrained=False), musiq_formula)
        built = time.perf_counter() - start
        img = musiq_image(args.width, args.height)
        timed("musiq", model, img, args.iters or 3, built, args)
        if args.float64:
            float64_score("musiq", model, img)
        del model
    if args.maniqa:
        start = time.perf_counter()
        model = fill(MANIQA(pretrained=False, train_dataset="koniq", scale=0.8), maniqa_formula)
        built = time.perf_counter() - start
        img = maniqa_image(args.width, args.height)
        timed("maniqa", model, img, args.iters or 1, built, args)
        if args.float64:
            float64_score("maniqa", model, img)


if __name__ == "__main__":
    main()
