"""Data-parallel training across processes: torchrun's ranks, the process group, and what each rank does.

`torchrun --nproc-per-node N -m lenet train ...` starts N copies of lenet; each reads its rank
from the variables torchrun sets (read here, in from_environment, and nowhere else). Rank 0 alone
writes the model directory and reports; every rank trains on its slice of each global batch and
DistributedDataParallel averages the gradients. Collectives have a deadline, so a rank that dies
stops the others instead of leaving them waiting.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from .errors import LenetError

if TYPE_CHECKING:
    import torch
    from torch import nn

# How long a collective (gradient average, stop vote) may wait for the slowest rank before the run
# is stopped: long enough for rank 0's validation and checkpoints, short enough not to hang.
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run."""
    rank: int
    world_size: int
    local_rank: int   # the rank on this machine: which GPU it uses

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Distributed | None:
    """The rank torchrun gave this process (RANK, WORLD_SIZE, LOCAL_RANK), or None when not launched by it."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise LenetError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
    if not 0 <= rank < world_size:
        raise LenetError(f"RANK {rank} is not below WORLD_SIZE {world_size}")
    return Distributed(rank, world_size, local_rank)


@contextlib.contextmanager
def process_group(distributed: Distributed, device: "torch.device", timeout_s: float = DEFAULT_TIMEOUT_S
                  ) -> Iterator["Group"]:
    """Join the run's process group (NCCL for GPUs, gloo for CPUs) for the block, and leave it after."""
    import torch.distributed as dist
    if not 0 < timeout_s < 10 ** 6:
        raise LenetError(f"--dist-timeout must be a positive number of seconds, got {timeout_s:g}")
    timeout = datetime.timedelta(seconds=timeout_s)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timeout, rank=distributed.rank, world_size=distributed.world_size)
    try:
        # Small votes (stop now?) go through gloo on the CPU, so they never wait for the GPU.
        votes = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
        yield Group(distributed, votes)
        # Leave together: a rank that went on to tear down its gloo connections while rank 0 was still
        # evaluating and saving aborted at exit ("terminate called without an active exception",
        # SIGABRT), failing a run that had finished. After an error there is no barrier to wait for.
        dist.barrier()
    finally:
        dist.destroy_process_group()


class Group:
    """The collectives the training loop needs, each a no-op for a single process (group None)."""

    def __init__(self, distributed: Distributed | None, votes=None):
        self.distributed, self._votes = distributed, votes

    @property
    def world_size(self) -> int:
        return self.distributed.world_size if self.distributed else 1

    @property
    def rank(self) -> int:
        return self.distributed.rank if self.distributed else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: "torch.Tensor") -> "torch.Tensor":
        """This rank's contiguous slice of a global batch's indices."""
        size = len(indices) // self.world_size
        return indices[self.rank * size:(self.rank + 1) * size]

    def wrap(self, model: "nn.Module") -> "nn.Module":
        """MODEL wrapped so that backward averages the gradients over the ranks (MODEL itself when alone)."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        from .models import model_device
        device = model_device(model)
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sum(self, tensor: "torch.Tensor") -> "torch.Tensor":
        """TENSOR summed over the ranks (in place); a sync point."""
        if self.distributed:
            import torch.distributed as dist
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether FLAG is true on any rank: every rank stops at the same step when one is asked to."""
        if not self.distributed:
            return flag
        import torch
        import torch.distributed as dist
        vote = torch.tensor([1 if flag else 0])
        dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self._votes)
        return bool(vote.item())

    def gather_rng_states(self, state: "torch.Tensor") -> list["torch.Tensor"]:
        """Every rank's CPU generator state, in rank order (so that a resumed run draws the same dropout)."""
        if not self.distributed:
            return [state]
        import torch.distributed as dist
        states = [state.clone() for _ in range(self.world_size)]
        dist.all_gather(states, state, group=self._votes)
        return states
