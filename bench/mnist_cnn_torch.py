"""The issue's MNIST CNN in PyTorch on the same digits, for BENCHMARKS.md's comparison:
conv 32 3x3 relu, max-pool 2, conv 64 3x3 relu, max-pool 2, flatten, dense 128 relu, dense 10
(softmax in the loss); Adam 1e-3, batch 128; the first 8,000 rows of the CSV train, the last
2,000 test (dptrain's split is stratified and seeded, so the rows differ; the counts match).

  node scripts/mnist-csv.mjs --out mnist.csv
  python3 bench/mnist_cnn_torch.py mnist.csv [--threads 1,2] [--epochs 5] [--steps 30]

Prints, per thread count, the median samples/s of training steps (after 5 warm-up steps) and
the test accuracy after `--epochs` epochs (0: timing only).
"""
import argparse
import csv
import statistics
import time

import torch
import torch.nn as nn


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))[1:]
    x = torch.tensor([[float(v) for v in r[:-1]] for r in rows], dtype=torch.float32).reshape(-1, 1, 28, 28)
    y = torch.tensor([int(r[-1]) for r in rows])
    return x, y


def net():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument('csv')
    p.add_argument('--threads', default='1,2')
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--steps', type=int, default=30)
    a = p.parse_args()
    x, y = load(a.csv)
    xt, yt, xv, yv = x[:8000], y[:8000], x[8000:], y[8000:]
    loss_fn = nn.CrossEntropyLoss()
    for threads in [int(t) for t in a.threads.split(',')]:
        torch.set_num_threads(threads)
        torch.manual_seed(1)
        model = net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = []
        for step in range(5 + a.steps):
            i = (step * 128) % (8000 - 128)
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(xt[i:i + 128]), yt[i:i + 128]).backward()
            opt.step()
            if step >= 5:
                times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        line = f'torch {torch.__version__}, {threads} thread(s): median {median * 1000:.1f} ms per step of 128, {128 / median:.0f} samples/s'
        if a.epochs > 0:
            torch.manual_seed(1)
            model = net()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            for _ in range(a.epochs):
                order = torch.randperm(8000)
                for s in range(0, 8000, 128):
                    idx = order[s:s + 128]
                    opt.zero_grad()
                    loss_fn(model(xt[idx]), yt[idx]).backward()
                    opt.step()
            with torch.no_grad():
                acc = (model(xv).argmax(1) == yv).float().mean().item()
            line += f'; test accuracy after {a.epochs} epochs {acc:.4f}'
        print(line, flush=True)


if __name__ == '__main__':
    main()
