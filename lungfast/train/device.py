"""What the hardware allows, chosen by device and never assumed: precision, memory format, loader workers.

`plan_for` is a pure function of a device description so the CUDA choices can be tested on a CPU box.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" (with loss scaling) or "fp32"
    channels_last: bool  # NHWC tensors: faster convolutions on tensor cores, no gain on CPU
    pin_memory: bool  # page-locked host batches for asynchronous copies to the GPU
    num_workers: int  # loader processes; 0 on CPU, where decoding competes with the model for cores

    def as_dict(self) -> dict:
        return asdict(self)


def describe() -> dict:
    """The current machine as `plan_for` wants it."""
    import torch

    if torch.cuda.is_available():
        return {"type": "cuda", "bf16": bool(torch.cuda.is_bf16_supported()), "cpus": os.cpu_count() or 1}
    return {"type": "cpu", "bf16": False, "cpus": os.cpu_count() or 1}


def plan_for(desc: dict) -> DevicePlan:
    if desc["type"] == "cuda":
        return DevicePlan("cuda", "bf16" if desc["bf16"] else "fp16", True, True, min(8, desc["cpus"]))
    return DevicePlan("cpu", "fp32", False, False, 0)


def apply(learn, plan: DevicePlan) -> None:
    """Switch a fastai Learner to the plan's precision and memory format (nothing to do on CPU)."""
    from fastai.callback.fp16 import AMPMode, MixedPrecision

    amp = plan.precision != "fp32"
    mode = AMPMode.BF16 if plan.precision == "bf16" else AMPMode.FP16
    if plan.channels_last:
        learn.to_channelslast(use_amp=amp, amp_mode=mode)
    elif amp:
        learn.add_cb(MixedPrecision(amp_mode=mode))
