"""Data-parallel RBM training on torch.distributed (NCCL on GPUs, gloo on CPUs).

Launch (one machine, N GPUs or N CPU processes)::

    torchrun --nproc-per-node=N -m recommender train --ratings PATH --out DIR --distributed

Several machines: the same command on each, with ``--nnodes=M --node-rank=R
--rdzv-backend=c10d --rdzv-endpoint=HOST:PORT`` (torchrun's own rendezvous).

How it works: users are sharded by index (user ``u`` belongs to rank ``u % world_size``), and
each rank densifies only its own users. Every rank walks the same global mini-batches (the
shuffle is seeded identically); for each, a rank computes the CD statistics of its rows, the
statistics are all-reduced (weighted by rows, so the sum equals the statistics of the whole
global batch) and every rank applies the same update: weights stay identical on all ranks,
and match a single-process run over the same global batches up to float rounding (exactly so
with ``sample_hidden=False``; with sampling each rank draws its own hidden states). Rank 0
writes the artifact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from ..data.ratings import Ratings

if TYPE_CHECKING:  # for the annotation only: model imports this module (through base)
    from .model import RBMRecommender


class Shard:
    """This rank's share of the users, and the collectives the training loop needs."""

    def __init__(self, rank: int, world_size: int, n_global: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size). Received: rank={rank}, "
                             f"world_size={world_size}")
        self.rank = rank
        self.world_size = world_size
        self.n_global = n_global

    @classmethod
    def from_process_group(cls, n_global: int) -> Shard:
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("distributed=True needs an initialised torch.distributed process "
                             "group: launch with torchrun, or call fit_distributed()")
        return cls(dist.get_rank(), dist.get_world_size(), n_global)

    def owns(self, global_index: int) -> bool:
        return global_index % self.world_size == self.rank

    def local_rows(self, global_rows: torch.Tensor) -> torch.Tensor:
        """The rows of a global batch that live on this rank, as local row indices."""
        mine = global_rows[global_rows % self.world_size == self.rank]
        return mine // self.world_size

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def average(self, tensors: Sequence[torch.Tensor], local_rows: int) -> list[torch.Tensor]:
        """Row-weighted average over ranks of per-rank batch means, in one all-reduce."""
        device = tensors[0].device
        flat = torch.cat([t.reshape(-1).to(torch.float32) * local_rows for t in tensors]
                         + [torch.tensor([float(local_rows)], device=device)])
        self.sum(flat)
        total = flat[-1].clamp_min(1.0)
        out: list[torch.Tensor] = []
        offset = 0
        for t in tensors:
            n = t.numel()
            out.append((flat[offset:offset + n] / total).view_as(t).to(t.dtype))
            offset += n
        return out


def init_from_env(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (if not joined yet).

    Returns (rank, world_size, device for this rank).
    """
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def fit_distributed(model: RBMRecommender, ratings: Ratings, verbose: int = 1,
                    **fit_kwargs: Any) -> int:
    """Train ``model`` data-parallel across the process group; returns this process's rank.

    Every rank ends with identical weights; the caller saves on rank 0.
    """
    rank, _world, device = init_from_env(model.config.device)
    model.device = device
    model.fit(ratings, verbose=verbose if rank == 0 else 0, distributed=True, **fit_kwargs)
    dist.barrier()
    return rank
