"""torchrun-style process groups: NCCL on GPUs, gloo on CPUs; a plain process is rank 0 of 1."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def pick_device() -> torch.device:
    env_from_slurm()
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def env_from_slurm(env=os.environ) -> None:
    """Under a plain srun (tools/slurm_*.sh: one task per GPU, MASTER_ADDR/PORT set by the
    script) give torchrun's rank variables their Slurm values. The suite runner's Slurm
    tasks have them already, from submitit's ``TorchDistributedEnvironment`` (suite/slurm.py)."""
    if "SLURM_PROCID" in env and "RANK" not in env:
        env["RANK"] = env["SLURM_PROCID"]
        env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
        env["WORLD_SIZE"] = env.get("SLURM_NTASKS", "1")
        env.setdefault("MASTER_PORT", "29500")


def init_distributed(device: torch.device) -> None:
    """Join the process group when launched by torchrun or srun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
