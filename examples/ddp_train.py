"""Data-parallel training with fastopt.torch.Adam: a small MLP on synthetic regression data.

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py           # DDP
    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --zero    # + ZeroRedundancyOptimizer

Each process trains on its own share of every batch (DistributedSampler); DDP averages the gradients,
so every rank applies the same fastopt.torch.Adam step. With --zero, each rank keeps the Adam state of
its shard of the parameters only, and the checkpoint is consolidated on rank 0 before saving.
Runs on CPUs with the gloo backend.
"""
import argparse
import gc
import os

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import fastopt
import fastopt.torch


def synthetic_data(n=8192, d_in=32, d_out=8, seed=0):
    """y = a fixed random 2-layer network of x, plus noise: the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    w1, w2 = torch.randn(d_in, 64, generator=g) / d_in**0.5, torch.randn(64, d_out, generator=g) / 8
    y = torch.tanh(x @ w1) @ w2 + 0.01 * torch.randn(n, d_out, generator=g)
    return TensorDataset(x, y)


def global_loss(loss, world):
    """The mean loss over the global batch (a collective: every rank calls it)."""
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / world


def report(epoch, step, loss, rank, world):
    value = global_loss(loss, world)
    if rank == 0:
        print(f"epoch {epoch}  step {step:4d}  loss {value:.5f}", flush=True)


def train(args, rank, world, threads):
    torch.manual_seed(0)  # the same initial model everywhere (DDP also broadcasts rank 0's)
    model = DDP(torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.GELU(),
                                    torch.nn.Linear(128, 128), torch.nn.GELU(), torch.nn.Linear(128, 8)))
    if args.zero:
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=fastopt.torch.Adam, lr=args.lr)
    else:
        opt = fastopt.torch.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs, eta_min=args.lr / 10)

    data = synthetic_data()
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size // world, sampler=sampler, drop_last=True)

    step = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            step += 1
            if step % 10 == 0:
                report(epoch, step, loss, rank, world)
        scheduler.step()

    final = global_loss(loss, world)
    if args.zero:
        opt.consolidate_state_dict(to=0)  # a collective: every rank calls it
    if rank == 0:
        if args.checkpoint:  # opt.state_dict(): with --zero, the whole state, as from one fastopt.torch.Adam
            torch.save({"model": model.module.state_dict(), "optimizer": opt.state_dict()}, args.checkpoint)
        kind = "ZeroRedundancyOptimizer(fastopt.torch.Adam)" if args.zero else "fastopt.torch.Adam"
        print(f"done: {world} ranks x {threads} threads, {step} steps of {kind}, final loss {final:.5f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zero", action="store_true",
                        help="shard the optimizer state (ZeroRedundancyOptimizer)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch, split across the ranks")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint", default=None, help="save model + optimizer state here at the end")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    # ranks x threads <= cores: split this machine's CPUs between the ranks on it
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    torch.set_num_threads(threads)
    fastopt.set_num_threads(threads)

    train(args, rank, world, threads)
    # DDP is released (train() returned) before the process group is destroyed, so the group is not
    # torn down from DDP's destructor (which can deadlock with gloo's threads at exit)
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
