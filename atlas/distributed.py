"""Sharded sweeps: every process torchrun starts runs the same sweep and computes its
share of the artifacts.

    torchrun --nproc-per-node 8 -m atlas sweep --config atlas.toml       # one machine
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint $HOST:29500 -m atlas build                 # four machines

torchrun starts the processes and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
``torch.distributed`` coordinates them (gloo for the small control tensors, which live
on the CPU; each rank computes on ``cuda:LOCAL_RANK`` when there is a GPU). Nothing
here schedules: every rank runs the same code in the same order, so every rank asks
about the same artifact keys in the same order, and at each ask (``Shard.claim``)

- the ranks agree whether the artifact is needed (one collective: needed if any rank
  finds it missing or damaged; its owner has not started on it yet, so all see the
  same store), and
- a needed artifact goes to the rank with the least work claimed so far, by the cost
  the stage gives it (ties to the lowest rank); counting from the start, not from the
  last ``sync``, spreads stages of one artifact each over the ranks too.

The assignment is therefore the same on every rank without any message but the
agreement, and a rerun with any number of ranks balances what is left. Each rank
writes its artifacts into the shared store; the store's atomic renames make
concurrent writers safe. ``sync`` (a barrier) ends a phase: the pipeline calls it
after every stage of every model, and a stage calls it before it reads artifacts of
its own stage (the previous layer's families, universality's pairs). Rank 0 alone
holds the store's lock, writes the manifests and the plan, logs progress, and renders.

A rank that dies takes the others down with it (torchrun's default); what was
finished is in the store, and the next run, with any number of ranks, resumes.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch


@dataclass
class Shard:
    """This process's place in a sharded sweep; the default is a sweep of one process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    computed: int = 0  # artifacts this rank claimed and computed
    needed: int = 0  # artifacts some rank had to compute
    _load: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._load = [0.0] * self.world

    @property
    def main(self) -> bool:
        return self.rank == 0

    def claim(self, needed: bool, cost: float = 1.0) -> bool:
        """Whether this rank computes an artifact that this rank finds ``needed`` (or
        not). Every rank must call it for the same artifacts in the same order."""
        if self.world > 1:
            flag = torch.tensor([int(needed)])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            needed = bool(flag.item())
        if not needed:
            return False
        owner = min(range(self.world), key=lambda r: (self._load[r], r))
        self._load[owner] += cost
        self.needed += 1
        self.computed += owner == self.rank
        return owner == self.rank

    def sync(self) -> None:
        """Wait until every rank has finished the work it claimed."""
        if self.world > 1:
            torch.distributed.all_reduce(torch.zeros(1))  # a barrier that gloo serves on the CPU

    def close(self) -> None:
        """After the last sync: leave the process group (a process that exits with gloo's
        threads still running can abort)."""
        if self.world > 1 and torch.distributed.is_initialized():
            self.sync()
            torch.distributed.destroy_process_group()

    def device(self, name: str) -> str:
        """The device this rank computes on for ``sweep.device`` ``name``: each rank of a
        machine gets its own GPU."""
        if self.world > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return name


def from_environment() -> Shard:
    """The shard torchrun's environment describes, its process group started; or a
    sweep of one process when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    if not torch.distributed.is_initialized():
        # The control tensors are CPU tensors, which gloo carries; NCCL serves any on a GPU.
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(hours=6))
    return Shard(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))
