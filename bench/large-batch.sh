#!/usr/bin/env bash
# The MNIST CNN of examples/mnist-cnn.yaml at batch 128 against batch 1024 with the linear scaling
# rule (compile.learningRateScaling), with and without its warmup, and unscaled; at the example's
# Adam rate 0.001 and at 0.003, where the scaled rate (0.024) is large enough for warmup to
# matter. 5 epochs each, seeds 1-3; prints each run's test loss and accuracy. Needs `npm run build`.
#   bash bench/large-batch.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
node "$root/scripts/mnist-csv.mjs" --out "$out/mnist.csv" >/dev/null
variant() { # name batch learning-rate scaling-line
  sed -e "s/^seed: 1/seed: SEED/" -e "s/^  batchSize: 128/  batchSize: $2/" -e "s/learningRate: 0.001 }/learningRate: $3 }/" "$root/examples/mnist-cnn.yaml" |
    awk -v line="$4" '{ print } /^  metrics: \[accuracy\]$/ && line != "" { print line }' > "$out/$1.yaml"
}
scaled='  learningRateScaling: { referenceBatchSize: 128 }'
warmup='  learningRateScaling: { referenceBatchSize: 128, warmupSteps: 16 }'
variant b128 128 0.001 ''
variant b1024-scaled 1024 0.001 "$scaled"
variant b1024-scaled-warmup 1024 0.001 "$warmup"
variant b1024-unscaled 1024 0.001 ''
variant b128-lr3 128 0.003 ''
variant b1024-lr3-scaled 1024 0.003 "$scaled"
variant b1024-lr3-scaled-warmup 1024 0.003 "$warmup"
for seed in 1 2 3; do
  for v in b128 b1024-scaled b1024-scaled-warmup b1024-unscaled b128-lr3 b1024-lr3-scaled b1024-lr3-scaled-warmup; do
    sed "s/SEED/$seed/" "$out/$v.yaml" > "$out/$v-$seed.yaml"
    node "$root/bin/dptrain.js" start --config "$out/$v-$seed.yaml" --data "$out/mnist.csv" --out "$out/run-$v-$seed" --metrics-listen off > "$out/log-$v-$seed.txt" 2>&1
    echo "$v seed $seed: test $(node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(JSON.stringify(s.test))' "$out/run-$v-$seed/summary.json")"
  done
done
