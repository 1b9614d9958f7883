"""What the shipped network costs to run, beside what it scores: GFLOPs per tile and inference throughput.

GFLOPs come from torch's own counter (`torch.utils.flop_counter.FlopCounterMode`: 2 FLOPs per multiply-add of
convolutions and matrix products; a k-NN head's distance computation is counted as the matrix product it is).
Throughput is images per second through the whole network (body and head, calibrated) at batch 1 (one tile
at a time: an app) and batch 64 (a slide's tiles: a pipeline), in the precision the run used, on random pixels
of the run's size, after one warm-up pass. It depends on the machine: the record says which (`device`,
`threads`), and figures are comparable only between runs of one machine.
"""

from __future__ import annotations

import contextlib
import time

import torch

BATCHES = (1, 64)


def _autocast(device: dict):
    precision = device.get("precision", "fp32")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.get("device", "cpu"), dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def gflops(model: torch.nn.Module, img_size: int, device: dict) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, img_size, img_size, device=device.get("device", "cpu"))
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), _autocast(device):
        model(x)
    return counter.get_total_flops() / 1e9


def throughput(model: torch.nn.Module, img_size: int, batch: int, device: dict, seconds: float = 0.5) -> float:
    """Images per second at `batch`, mean over the passes that fit in `seconds` (at least two)."""
    where = device.get("device", "cpu")
    x = torch.rand(batch, 3, img_size, img_size, device=where)
    if device.get("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
    with torch.inference_mode(), _autocast(device):
        model(x)  # warm-up: oneDNN and cuDNN pick their kernels on the first pass
        sync()
        passes, t0 = 0, time.perf_counter()
        while passes < 2 or time.perf_counter() - t0 < seconds:
            model(x)
            passes += 1
        sync()
    return batch * passes / (time.perf_counter() - t0)


def measure(model: torch.nn.Module, img_size: int, device: dict, seconds: float = 0.5) -> dict:
    """The record's cost keys for a trained network (left in eval mode, as it ships); `seconds` per batch size."""
    model.eval()
    out = {"gflops": gflops(model, img_size, device)}
    out.update({f"infer_img_per_s_b{b}": throughput(model, img_size, b, device, seconds) for b in BATCHES})
    return out
