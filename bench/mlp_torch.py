"""Workload (b) in PyTorch, what a user would run instead of dptrain on the same machine: the MLP
45-512-512-1 (relu, relu, sigmoid in the loss), Adam 1e-3, global batch 1024 of synthetic rows,
on one process with 1 thread, and with DistributedDataParallel over 2 ranks (gloo on loopback,
1 thread each, 512 rows per rank).

  python3 bench/mlp_torch.py [--steps 40] [--warmup 5] [--configs 1,ddp2]

Prints one line per configuration: 'torch VERSION, CONFIG: median X ms/step, Y samples/s'.
"""
import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

BATCH = 1024
FEATURES = 45


def net():
    return nn.Sequential(nn.Linear(FEATURES, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1))


def data(rows, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, FEATURES, generator=g)
    y = (torch.rand(rows, 1, generator=g) < 0.5).float()
    return x, y


def train(model, x, y, steps, warmup, rows):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    times = []
    for step in range(warmup + steps):
        i = (step * rows) % (x.shape[0] - rows)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x[i:i + rows]), y[i:i + rows]).backward()
        opt.step()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ddp_rank(rank, world, port, steps, warmup, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    torch.manual_seed(1)
    model = nn.parallel.DistributedDataParallel(net())
    x, y = data(50_000, 2 + rank)
    med = train(model, x, y, steps, warmup, BATCH // world)
    # the step of the slowest rank is the step
    t = torch.tensor([med])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if rank == 0:
        out.put(t.item())
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--steps', type=int, default=40)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--configs', default='1,ddp2')
    a = p.parse_args()
    for config in a.configs.split(','):
        if config == '1':
            torch.set_num_threads(1)
            torch.manual_seed(1)
            x, y = data(50_000, 2)
            med = train(net(), x, y, a.steps, a.warmup, BATCH)
        elif config == 'ddp2':
            ctx = mp.get_context('spawn')
            out = ctx.SimpleQueue()
            port = 29500 + os.getpid() % 1000
            mp.start_processes(ddp_rank, args=(2, port, a.steps, a.warmup, out), nprocs=2, start_method='spawn')
            med = out.get()
        else:
            raise SystemExit(f'unknown config {config}')
        print(f'torch {torch.__version__}, {config}: median {med * 1000:.1f} ms/step, {BATCH / med:.0f} samples/s', flush=True)


if __name__ == '__main__':
    main()
