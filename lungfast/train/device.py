"""What the hardware allows, chosen by device and never assumed: precision, memory format, loader workers.

`plan_for` is a pure function of a device description, so the CUDA and CPU choices are tested on any box.

- CUDA: bf16 autocast (fp16 with loss scaling where bf16 is missing), channels_last, pinned memory, workers.
- CPU with bf16 matrix units (`amx_bf16` or `avx512_bf16` in its flags: Xeons since Sapphire Rapids, AMD
  Zen 4+): bf16 autocast with channels_last, for training (fp32 master weights) and for inference; oneDNN
  runs the convolutions and matmuls on those units.
- Any other CPU: fp32 and NCHW. bf16 there is emulated and slower (measured 0.25x of fp32 for resnet18 on a
  CPU without those units), so "auto" never picks it; `precision = "bf16"` still forces it (parity tests).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

BF16_UNITS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with bf16 matrix instructions


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" or "cpu"
    precision: str  # "bf16", "fp16" (with loss scaling) or "fp32"
    channels_last: bool  # NHWC tensors: faster convolutions on tensor cores and on CPU bf16 units
    pin_memory: bool  # page-locked host batches for asynchronous copies to the GPU
    num_workers: int  # loader processes; 0 on CPU, where decoding competes with the model for cores
    why: str = ""  # the reason for this precision, as the run record states it

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:  # not Linux: no flags known, so no bf16 claimed
        return set()


def describe(cpu: bool = False) -> dict:
    """The current machine as `plan_for` wants it (its CPU alone with `cpu`: where loaded models predict)."""
    import torch

    if torch.cuda.is_available() and not cpu:
        return {
            "type": "cuda",
            "bf16": bool(torch.cuda.is_bf16_supported()),
            "cpus": os.cpu_count() or 1,
            "name": torch.cuda.get_device_name(),
        }
    units = sorted(set(BF16_UNITS) & cpu_flags())
    return {"type": "cpu", "bf16": bool(units), "cpus": os.cpu_count() or 1, "bf16_units": units}


def plan_for(desc: dict, precision: str = "auto") -> DevicePlan:
    """The plan for a described device; `precision` is the experiment's ask (auto, fp32, bf16)."""
    if desc["type"] == "cuda":
        if precision == "fp32":
            return DevicePlan("cuda", "fp32", True, True, min(8, desc["cpus"]), "precision = fp32 asked")
        amp = "bf16" if desc["bf16"] else "fp16"
        return DevicePlan(
            "cuda",
            amp,
            True,
            True,
            min(8, desc["cpus"]),
            "CUDA with bf16" if desc["bf16"] else "CUDA without bf16: fp16 with loss scaling",
        )
    units = ", ".join(desc.get("bf16_units", [])) or "none"
    if precision == "bf16" or (precision == "auto" and desc["bf16"]):
        why = f"CPU bf16 matrix units: {units}" if desc["bf16"] else f"precision = bf16 asked (bf16 units: {units})"
        return DevicePlan("cpu", "bf16", True, False, 0, why)
    why = (
        "precision = fp32 asked" if precision == "fp32" else f"CPU without bf16 matrix units ({', '.join(BF16_UNITS)})"
    )
    return DevicePlan("cpu", "fp32", False, False, 0, why)


def autocast(plan: DevicePlan):
    """The forward-pass context of the plan: torch autocast in its precision, or nothing in fp32."""
    import torch

    if plan.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(plan.device, dtype=torch.bfloat16 if plan.precision == "bf16" else torch.float16)


def in_format(module_or_batch, plan: DevicePlan):
    """A model or a 4-d batch in the plan's memory format. Convert a model outside `torch.inference_mode`:
    parameters converted inside it become inference tensors, which Grad-CAM's backward pass refuses."""
    import torch

    if plan.channels_last and (isinstance(module_or_batch, torch.nn.Module) or module_or_batch.ndim == 4):
        return module_or_batch.to(memory_format=torch.channels_last)
    return module_or_batch


def apply(learn, plan: DevicePlan) -> None:
    """Switch a fastai Learner to the plan's precision and memory format, for training and inference."""
    from fastai.callback.fp16 import AMPMode, MixedPrecision

    from lungfast.train.callbacks import CpuAutocast

    if plan.device == "cpu":
        if plan.precision == "bf16":
            in_format(learn.model, plan)
            learn.add_cb(CpuAutocast(channels_last=plan.channels_last))
        return
    amp = plan.precision != "fp32"
    mode = AMPMode.BF16 if plan.precision == "bf16" else AMPMode.FP16
    if plan.channels_last:
        learn.to_channelslast(use_amp=amp, amp_mode=mode)
    elif amp:
        learn.add_cb(MixedPrecision(amp_mode=mode))
