"""The Telco seed setup, trained the way tf.keras trains it, in PyTorch (Debian's python3-torch).

tf.keras cannot be installed here (no PyPI); this is its training loop written out: 64-64-1 on
raw features, glorot_uniform kernels and zero biases, binary cross-entropy from the logits,
Keras' Adam (lr 0.001, epsilon 1e-7 added to sqrt(v), bias correction folded into the step
size), batch 32 shuffled every epoch, validation on the last 20% of the training rows,
EarlyStopping(val_loss, patience P, restore_best_weights R). It reads the exact splits dptrain
trains on (`node dist/bench/telco-seeds.js --export DIR`), so the two differ only in their
random streams and float rounding: the spread over seeds is what this setup does in any
float32 Keras-like trainer.

    /usr/bin/python3 bench/telco_keras_like.py DIR [--seeds 1,2,42]
"""
import argparse
import json
import statistics

import torch


def glorot_(w, gen):
    fan_out, fan_in = w.shape
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        w.uniform_(-limit, limit, generator=gen)


def bce_logits(z, y):
    return (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()


def run(split, seed, patience, restore, epochs=1000, batch=32):
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.tensor(split["train"]["x"]), torch.tensor(split["train"]["y"]).unsqueeze(1)
    xv, yv = torch.tensor(split["val"]["x"]), torch.tensor(split["val"]["y"]).unsqueeze(1)
    xs, ys = torch.tensor(split["test"]["x"]), torch.tensor(split["test"]["y"]).unsqueeze(1)
    layers = [torch.nn.Linear(45, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 1)]
    for layer in layers:
        glorot_(layer.weight, gen)
        torch.nn.init.zeros_(layer.bias)
    params = [p for layer in layers for p in (layer.weight, layer.bias)]

    def forward(x):
        h = torch.relu(layers[0](x))
        h = torch.relu(layers[1](h))
        return layers[2](h)

    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    lr, b1, b2, eps, t = 1e-3, 0.9, 0.999, 1e-7, 0
    best, best_epoch, wait, best_state = float("inf"), 0, 0, None
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            loss = bce_logits(forward(xt[idx]), yt[idx])
            grads = torch.autograd.grad(loss, params)
            t += 1
            lr_t = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
            with torch.no_grad():
                for p, g, mi, vi in zip(params, grads, m, v):
                    mi.mul_(b1).add_(g, alpha=1 - b1)
                    vi.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.sub_(lr_t * mi / (vi.sqrt() + eps))
        with torch.no_grad():
            val = bce_logits(forward(xv), yv).item()
        if val < best:
            best, best_epoch, wait = val, epoch + 1, 0
            best_state = [p.detach().clone() for p in params]
        else:
            wait += 1
            if wait >= patience:
                break
    if restore and best_state is not None:
        with torch.no_grad():
            for p, b in zip(params, best_state):
                p.copy_(b)
    with torch.no_grad():
        z = forward(xs)
        loss = bce_logits(z, ys).item()
        acc = ((z > 0).float() == ys).float().mean().item()
    return {"accuracy": acc, "loss": loss, "epochs": epoch + 1, "best": best_epoch}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seeds", default="1,2,3,4,5,6,7,42")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"PyTorch {torch.__version__}, Keras' training loop, float32, one thread")
    for name, patience, restore in [("seed setup (patience 50, no restore)", 50, False), ("patience 5 + restoreBestWeights", 5, True)]:
        rows = []
        for seed in seeds:
            with open(f"{args.dir}/seed-{seed}.json") as f:
                split = json.load(f)
            r = run(split, seed, patience, restore)
            rows.append(r)
            print(f"  {name}, seed {seed}: accuracy {r['accuracy']:.4f}, loss {r['loss']:.4f}, {r['epochs']} epochs (best {r['best']})", flush=True)
        cells = " | ".join(f"{r['accuracy']:.3f} / {r['loss']:.3f} ({r['epochs']})" for r in rows)
        print(f"| {name} | {cells} | {min(r['accuracy'] for r in rows):.3f} | {statistics.median(r['loss'] for r in rows):.3f} |")


if __name__ == "__main__":
    main()
