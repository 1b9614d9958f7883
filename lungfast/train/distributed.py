"""Data-parallel runs: `lungfast run EXP --nproc N` starts N local processes (torchrun) around fastai's
`distrib_ctx` (HF accelerate over torch.distributed: NCCL on CUDA, gloo on CPU).

Only rank 0 writes run records, plots, exports and tracking; the split and the tile store are made
once, by rank 0 first (fastai's `rank0_first`). Multi-node: see the README (`torchrun` / `accelerate launch`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys

import torch

log = logging.getLogger("lungfast")


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


@contextlib.contextmanager
def alone():
    """Rank 0 evaluates and writes the record by itself after a DDP fit. fastai gathers metrics across
    ranks whenever WORLD_SIZE > 1 (`maybe_gather`), which would wait for ranks that have moved on."""
    saved = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = saved


def once(fn, *args):
    """fn(*args), computed by rank 0 first when distributed (fastai's rank0_first), so files it writes
    (split, tile store) are made once and then only read by the other ranks."""
    if world()[1] == 1:
        return fn(*args)
    from fastai.distributed import rank0_first

    return rank0_first(fn, *args)


def launch(nproc: int, argv: list[str]) -> int:
    """Re-run this command line under torchrun with `nproc` local processes; return their exit code."""
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"  # else accelerate never wraps the model without CUDA
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "lungfast.cli",
        *argv,
    ]
    return subprocess.call(cmd, env=env)


def patch_gloo_broadcast() -> None:
    """fastai's DistributedDL._broadcast moves the index tensor to CUDA ("nccl only works with cuda
    tensors"), which fails on CPU with gloo (fastai/distributed.py, `LongTensor(t).cuda()`). On a non-NCCL
    backend, broadcast the CPU tensor instead. NCCL keeps fastai's own code path. Also keeps the
    broadcast index list on the loader, so each rank can report which items it trained on."""
    from fastai.distributed import DistributedDL

    if getattr(DistributedDL, "_lungfast_patched", False):
        return
    original = DistributedDL._broadcast

    def _broadcast(self, t, rank):
        if torch.distributed.get_backend() == "nccl":
            out = original(self, t, rank)
        else:
            tensor = torch.LongTensor(t)
            torch.distributed.broadcast(tensor, rank)
            out = tensor.tolist()
        self.all_idxs = out
        return out

    DistributedDL._broadcast, DistributedDL._lungfast_patched = _broadcast, True


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
