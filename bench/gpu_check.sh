#!/bin/bash
# The real-GPU checks of bench/NOTES.md entries 25–27 (and of 30, 32 and 45, made for GPUs since) in one command, for a machine with a GPU (run from the
# repository root; `deno` on the PATH, the Vulkan loader and the GPU's driver installed, PyTorch with CUDA for
# the baselines). Usage: bash bench/gpu_check.sh OUT_DIR [PEAK_GFLOPS]
#   OUT_DIR      where the logs go: adapter.txt, lora.txt, gemm.txt, step_base.txt, profile.txt (+ profile/),
#                gputests.txt
#   PEAK_GFLOPS  the card's fp32 peak for `bench gemm --peak-gflops` (e.g. 66900 for an H100 SXM)
# Each part has a time limit, so a slow part cannot eat the rest; about 5 minutes on an H100.
set -u
out=${1:?usage: bash bench/gpu_check.sh OUT_DIR [PEAK_GFLOPS]}
peak=${2:-}
mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
t0=$(date +%s)
part() { echo "[gpu_check +$(($(date +%s) - t0))s] $*" >&2; }
part adapter
deno eval --unstable-webgpu 'const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
const i = a?.info;
console.log(a ? JSON.stringify({ vendor: i.vendor, architecture: i.architecture, device: i.device,
  description: i.description, features: [...a.features] }) : "no WebGPU adapter");' 2>&1 |
  tee "$out/adapter.txt"
part "LoRA sums: splits (the GPU default) against one pass, same run"
timeout 60 deno task bench gemm --lora-only --reps 10 2>&1 | tee "$out/lora.txt"
part "bench gemm"
timeout 150 deno task bench gemm --reps 10 --no-ts ${peak:+--peak-gflops "$peak"} 2>&1 | tee "$out/gemm.txt"
part "bench step (base, B8 x T128, vs torch on CUDA)"
timeout 200 deno task bench step --preset base --batch 8 --seq 128 --steps 5 --compare-shared-tile 2>&1 |
  tee "$out/step_base.txt"
part profile
timeout 90 deno task profile --preset base --batch 8 --seq 128 --steps 3 --out "$out/profile" 2>&1 |
  head -40 | tee "$out/profile.txt"
part "WebGPU tests"
timeout 300 deno test --no-check --allow-all --unstable-webgpu tests/*.gpu.test.ts >"$out/gputests.txt" 2>&1
echo "WebGPU tests exit code $?"
sed 's/\x1b\[[0-9;]*m//g' "$out/gputests.txt" | grep -E "^(ok|FAILED) \||=> |^error" | tail -20
part done
