#!/usr/bin/env bash
# GPU check for framer: golden cases on CUDA, the loss benchmark at the issue's sizes, FRAMER's share
# of a training step of the small DiT at batch 16 (time and memory), MUSIQ and MANIQA per image,
# training in f32, bf16 and fp16 (step time and peak memory), and one table.
#
# Build here (x86_64, with network for crates), then carry the bundle to a machine with an NVIDIA
# GPU and no network/toolchain:
#   scripts/gpu-check.sh build      # cargo build --release --features cuda; stripped binaries in
#                                   # gpu-bundle/ and compressed in gpu-bundle.tgz (≈ 45 MB)
#   scripts/gpu-check.sh run        # on the GPU machine, from the repository root (unpacks
#                                   # gpu-bundle.tgz if gpu-bundle/ is not there)
#
# The golden cases are read from framer/tests/golden/ (tracked, so they travel with the tree).
# The binaries dlopen libcuda.so and libnvrtc.so (CUDA 13, see .cargo/config.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle

case "${1:-run}" in
  build)
    cargo build --release -p framer --features cuda,golden --example golden --bench loss
    cargo build --release -p framer-train --features cuda
    cargo build --release -p framer-backbones --features cuda --example step_overhead
    cargo build --release -p framer-iqa --features cuda --example nr_metrics_time
    rm -rf "$bundle" && mkdir -p "$bundle"
    cp target/release/framer "$bundle/framer"
    cp target/release/examples/golden "$bundle/golden"
    cp target/release/examples/step_overhead "$bundle/step-overhead"
    cp target/release/examples/nr_metrics_time "$bundle/nr-metrics-time"
    # the bench binary has a hashed name: take the newest
    cp "$(ls -t target/release/deps/loss-* | grep -v '\.d$' | head -1)" "$bundle/loss-bench"
    if command -v strip >/dev/null; then strip "$bundle"/*; fi
    tar czf "$bundle.tgz" -C "$bundle" .
    ls -l "$bundle.tgz"
    echo "bundle ready in $bundle/ and $bundle.tgz"
    ;;
  run)
    if [ ! -d "$bundle" ] && [ -f "$bundle.tgz" ]; then
      mkdir -p "$bundle" && tar xzf "$bundle.tgz" -C "$bundle"
    fi
    cases=framer/tests/golden
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "== golden cases on CUDA (TF32 tolerances) =="
    golden_status=ok
    "$bundle/golden" --cuda "$cases"/tiny.json "$cases"/single.json "$cases"/paperlike.json \
      | grep -v '^layer' || golden_status=FAILED
    echo "== loss forward+backward =="
    rows=()
    for b in 4 16; do
      line=$("$bundle/loss-bench" --cuda --batch "$b" --channels 16 --size 64 --students 24 --iters 30 | tail -1) \
        || line="loss-bench --cuda --batch $b FAILED"
      rows+=("$line")
    done
    cpu=$("$bundle/loss-bench" --batch 4 --iters 10 | tail -1) || cpu="loss-bench (CPU) FAILED"
    echo "== FRAMER's share of a training step (small DiT, batch 16) =="
    step_rows=()
    for variant in both baseline framer; do
      line=$("$bundle/step-overhead" --cuda --preset small --batch 16 --steps 20 --variant "$variant" | tail -1) \
        || line="step-overhead --variant $variant FAILED"
      step_rows+=("$line")
    done
    echo "== no-reference metrics per image (full-size MUSIQ and MANIQA, 256x240) =="
    nr_rows=()
    for metric in musiq maniqa; do
      line=$("$bundle/nr-metrics-time" --cuda --"$metric" --iters 5 | tail -1) \
        || line="nr-metrics-time --cuda --$metric FAILED"
      nr_rows+=("$line")
    done
    echo "== mixed precision: the small DiT, batch 16, 30 steps per precision =="
    mp_rows=()
    for precision in no bf16 fp16; do
      dir=$(mktemp -d)
      sed "s/@PRECISION@/$precision/" scripts/gpu-mixed-precision.toml > "$dir/mp.toml"
      peak=0
      ( while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; done ) \
        > "$dir/memory.txt" 2>/dev/null &
      poller=$!
      start=$(date +%s.%N)
      if "$bundle/framer" train "$dir/mp.toml" --out "$dir/run" --device cuda > "$dir/log.txt" 2>&1; then
        status=ok
      else
        status="FAILED ($(tail -1 "$dir/log.txt"))"
      fi
      end=$(date +%s.%N)
      kill "$poller" 2>/dev/null || true
      peak=$(sort -n "$dir/memory.txt" | tail -1)
      # median of the logged step times, the first 5 steps (warm-up) left out
      median=$(grep -o '"seconds":[0-9.e-]*' "$dir/run/metrics.jsonl" 2>/dev/null | cut -d: -f2 | tail -n +6 \
        | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}')
      mp_rows+=("mixed_precision=$precision: $status, median step ${median} s, wall $(echo "$end - $start" | bc) s, peak GPU memory ${peak:-n/a} MiB")
    done
    echo "== the main job on the GPU (short budget) =="
    demo_status=ok
    ( cd "$bundle" && ./framer demo --device cuda --steps 100 --out report-gpu ) || demo_status=FAILED
    echo
    echo "| check | result |"
    echo "|---|---|"
    echo "| golden (tiny, single, paperlike) on CUDA | $golden_status |"
    for r in "${rows[@]}" "$cpu"; do echo "| loss fwd+bwd | $r |"; done
    for r in "${step_rows[@]}"; do echo "| training step | $r |"; done
    for r in "${nr_rows[@]}"; do echo "| no-reference metric | $r |"; done
    for r in "${mp_rows[@]}"; do echo "| mixed precision | $r |"; done
    echo "| main job on CUDA (100 steps) | $demo_status |"
    ;;
  *)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
