#!/usr/bin/env bash
# The MNIST CNN of examples/mnist-cnn.yaml at batch 128 against batch 1024 with the linear scaling
# rule (compile.learningRateScaling), with and without its warmup, and unscaled; 5 epochs each,
# seeds 1-3; prints each run's test loss and accuracy. Needs `npm run build` first.
#   bash bench/large-batch.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
node "$root/scripts/mnist-csv.mjs" --out "$out/mnist.csv" >/dev/null
variant() { # name batch scaling-line
  sed -e "s/^seed: 1/seed: SEED/" -e "s/^  batchSize: 128/  batchSize: $2/" "$root/examples/mnist-cnn.yaml" |
    awk -v line="$3" '{ print } /^  metrics: \[accuracy\]$/ && line != "" { print line }' > "$out/$1.yaml"
}
variant b128 128 ''
variant b1024-scaled-warmup 1024 '  learningRateScaling: { referenceBatchSize: 128, warmupSteps: 16 }'
variant b1024-scaled 1024 '  learningRateScaling: { referenceBatchSize: 128 }'
variant b1024-unscaled 1024 ''
for seed in 1 2 3; do
  for v in b128 b1024-scaled-warmup b1024-scaled b1024-unscaled; do
    sed "s/SEED/$seed/" "$out/$v.yaml" > "$out/$v-$seed.yaml"
    node "$root/bin/dptrain.js" start --config "$out/$v-$seed.yaml" --data "$out/mnist.csv" --out "$out/run-$v-$seed" --metrics-listen off > "$out/log-$v-$seed.txt" 2>&1
    echo "$v seed $seed: test $(node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(JSON.stringify(s.test))' "$out/run-$v-$seed/summary.json")"
  done
done
