"""Many processes, one training run: torchrun's environment, the process group (gloo on CPU,
NCCL on CUDA), batch norm over the global batch, and the few collectives the loop needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that logs, checkpoints and exports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """torchrun's WORLD_SIZE / RANK / LOCAL_RANK; a plain run is a world of one."""
    return World(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)))


def init_world(device: str) -> tuple[World, str]:
    """Join the process group torchrun set up (no-op for one process); returns the world and
    this process's device (cuda → cuda:LOCAL_RANK)."""
    world = world_from_env()
    if not world.distributed:
        return world, device
    if device.startswith("cuda"):
        torch.cuda.set_device(world.local_rank)
        device = f"cuda:{world.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return world, device


def close_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_over_world(stats: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each logged figure averaged over the processes (each measured its own share)."""
    if not dist.is_initialized() or not stats:
        return stats
    values = torch.tensor(list(stats.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    values /= dist.get_world_size()
    return dict(zip(stats, values.tolist()))


class _SumOverWorld(torch.autograd.Function):
    """All-reduce (sum) with its gradient: every process's loss reads the sum, so each input's
    gradient is the sum of the processes' output gradients."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[no-untyped-def, override]
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[no-untyped-def, override]
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def sum_over_world(x: Tensor) -> Tensor:
    return _SumOverWorld.apply(x)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics are those of the whole global batch, through a
    differentiable all-reduce; torch's SyncBatchNorm does this on CUDA only, this on any
    backend. With one process it is plain batch norm."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        c = x.shape[1]
        # Two passes (mean, then centred squares), as one process's batch norm computes them:
        # E[x²] − E[x]² loses digits to cancellation.
        count = torch.tensor([xf.numel() / c], device=x.device)
        sums = sum_over_world(torch.cat([xf.sum(dim=(0, 2, 3)), count]))
        n = sums[-1]
        mean = sums[:c] / n
        centred = xf - mean[None, :, None, None]
        var = sum_over_world(centred.square().sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_((var * n / (n - 1)).to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d of `module` → GlobalBatchNorm2d, parameters and statistics kept."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement.to(child.running_mean.device if child.running_mean is not None else "cpu"))
        else:
            global_batch_norm(child)
    return module

