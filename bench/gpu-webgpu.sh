#!/usr/bin/env bash
# On a machine with a real GPU (rarely at hand): the MNIST CNN (c) and the 45-512-512-1 MLP (b)
# on WebGPU and on wasm, samples/s and the adapter, a few minutes. Needs node_modules and dist
# (npm ci && npm run build) and the GPU's Vulkan driver. Nothing in CI or the tests uses it.
#   bash bench/gpu-webgpu.sh [OUT_DIR]       # then add the numbers to BENCHMARKS.md with the date
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-bench}}
mkdir -p "$out"
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5 || true
  ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1 || true
  node --version
  node bin/worker.js backends --backend webgpu 2>&1 | grep -v 'artificially reduced'
  node bin/worker.js backends --backend auto 2>&1 | grep -v 'artificially reduced'
} | tee "$out/gpu-machine.txt"
timeout 480 node dist/bench/backend-speed.js --backends webgpu,wasm --workloads b,c --repeats 10 --rounds 2 --out "$out/backend-speed-gpu.json" 2>&1 | grep -v 'artificially reduced' | tee "$out/backend-speed-gpu.txt"
