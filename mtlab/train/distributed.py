"""Data-parallel training on several processes, started by `torchrun` (torch.distributed: gloo on
CPU, NCCL on CUDA). mtlab adds no transport or scheduler of its own; it decides *what* is reduced.

Why not `DistributedDataParallel`: DDP all-reduces the one gradient of one backward pass. A
gradient-combination strategy needs each task's gradient of the shared parameters, averaged over
the whole global batch, *before* it combines them (PCGrad's projections, MGDA's min-norm weights are
not linear in the gradients: combining per process and then averaging is another method). So the
fit loop reduces, with `torch.distributed.all_reduce`:

* per task, the global loss value and the number of rows its mean runs over (the conversion task
  averages over clicked impressions only, so processes hold different counts). Each process trains on
      ℓ_t = s_t / N_t − sg(s_t / N_t) + L_t,     s_t = its rows' loss sum,  N_t = Σ_processes n_t,
  whose value is the global loss L_t on every process (strategies that look at loss values, UW, DWA,
  GLS, FAMO …, see the same numbers everywhere) and whose gradient is this process's share of ∇L_t
  (sg: stop-gradient). The shares add up to the one-process gradient of the same global batch.
* the task-gradient blocks of the shared elements, summed before a gradient-combination strategy
  combines them (`GradientCombination.reduce_blocks`); every process then computes the same
  combination, and process 0 alone adds it to `.grad` (the others add zero);
* every model parameter's `.grad`, summed once after the strategy's backward (one flat buffer).
The strategy's random draws (RLW, PCGrad's order …) come from a stream of their own, seeded alike on
every process, so every process draws the same; dropout keeps each process's own stream.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT_ENV = "MTLAB_DIST_TIMEOUT"  # seconds a collective waits for a stuck process (default 1800)


@dataclass(frozen=True)
class Cluster:
    """This process's place in the group: rank, world size; `main` writes files."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Σ over processes, in place (returned for chaining)."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_blocks(self, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sum a list of tensors over processes in one all-reduce (a flat buffer)."""
        if not self.active or not blocks:
            return blocks
        flat = self.sum(torch.cat([b.reshape(-1) for b in blocks]))
        return [part.view_as(b) for part, b in zip(flat.split([b.numel() for b in blocks]), blocks)]

    def sum_grads(self, parameters) -> None:
        """Σ over processes of every parameter's `.grad` (None counts as zeros, so every process
        takes part in the same collective whatever its batch reached)."""
        if not self.active:
            return
        params = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        for p, g in zip(params, self.sum_blocks(grads)):
            p.grad = g

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Start every process from process 0's weights (and buffers)."""
        if self.active:
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def share(self, obj):
        """Process 0's Python object, on every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every process's object, in rank order, on every process."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def local_rows(self, global_rows: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch of row indices: every world-th row from its rank."""
        return global_rows[self.rank :: self.world]


def current() -> Cluster:
    """The group this process belongs to (one process when none was started)."""
    if dist.is_available() and dist.is_initialized():
        return Cluster(dist.get_rank(), dist.get_world_size())
    return Cluster()


def launched_by_torchrun() -> bool:
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def start(device: str = "auto") -> tuple[Cluster, str]:
    """Join the process group torchrun set up: NCCL when CUDA is used, else gloo. Returns the
    cluster and the device this process trains on (cuda:LOCAL_RANK on a GPU machine)."""
    if not launched_by_torchrun():
        raise ValueError(
            "--distributed needs the processes torchrun starts, e.g. `torchrun --nproc_per_node 2 "
            "-m mtlab train … --distributed`; without torchrun, leave --distributed out"
        )
    local = int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"process {local} has no GPU of its own ({torch.cuda.device_count()} visible); start "
                "at most one process per GPU (--nproc_per_node), or pass --device cpu"
            )
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 1800)))
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
    return current(), device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def global_losses(
    cluster: Cluster, losses: list[torch.Tensor], counts: torch.Tensor, rows: int
) -> tuple[list[torch.Tensor], int]:
    """ℓ_t (module docstring): value = the global mean loss L_t, gradient = this process's share;
    and the global batch's rows. `counts` [T]: the rows each local loss averages over; one all-reduce."""
    device, dtype = losses[0].device, losses[0].dtype
    counts = counts.to(device, torch.float64)
    local_sums = torch.stack([loss.detach().double() for loss in losses]) * counts
    reduced = cluster.sum(
        torch.cat([local_sums, counts, torch.tensor([float(rows)], device=device, dtype=torch.float64)])
    )
    sums, totals, total_rows = reduced.split([len(losses), len(losses), 1])
    values = (sums / totals.clamp_min(1)).to(dtype)
    share = (counts / totals.clamp_min(1)).to(dtype)
    out = []
    for t, loss in enumerate(losses):
        part = loss * share[t]
        out.append(part - part.detach() + values[t] if loss.requires_grad else values[t])
    return out, int(total_rows.item())
