"""The GPU check: the capstone's backbones under lungfast's CUDA plan, in at most 5 minutes on one GPU.

    python benchmarks/gpu_check.py [--seconds 20] [--batch 128]     (make gpu-check)

Imports: torch (>= 2.11) and timm, numpy; fastai only for xresnet34 (skipped with a line when absent);
lungfast only for its published figures and its tile store when `--data DIR` is given. So it runs where
torch and timm are installed and lungfast's other packages come as wheels.

Per backbone: training img/s at 224 px from a uint8 tile store (`--data DIR`: lungfast's own store of that
folder; else a random uint8 array in the store's layout, N x 224 x 224 x 3), gathered by index into pinned
memory, copied non-blocking, under bf16 autocast with channels_last (the CUDA plan of `train.device`); the
peak GPU memory; the ratio to the published H100 figure cited in `benchmarks/bench.py`. With two or more
GPUs visible, one 2-process DDP step (NCCL). Output: key=value lines. Without CUDA: one line, exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

BACKBONES = ["resnet50", "resnet50d", "efficientnetv2_rw_t", "regnetz_b16", "xresnet34", "mobilenetv2_100"]
REPO = Path(__file__).resolve().parents[1]


def say(key, value, note=""):
    print(
        (f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}") + (f"  # {note}" if note else ""),
        flush=True,
    )


def published() -> dict:
    try:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench import H100_TRAIN_IMG_PER_S

        return H100_TRAIN_IMG_PER_S
    except Exception:  # lungfast's benchmark module needs its packages; the check does not
        return {}


def model_for(name: str):
    if name == "xresnet34":
        from fastai.vision.models.xresnet import xresnet34  # fastai: only for this one

        return xresnet34(n_out=3)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=3)


def tiles(data: str | None, n: int) -> np.ndarray:
    if data:
        from lungfast.data import images, store

        frame, _ = images.scan(data)
        return store.ensure(frame, 224).images
    return np.random.default_rng(0).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def train_rate(name: str, images: np.ndarray, batch: int, seconds: float) -> tuple[float, float]:
    """(img/s, peak GB) of training steps: gather -> pinned -> GPU -> normalise -> bf16 forward/backward -> step."""
    model = model_for(name).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    mean = torch.tensor([0.485, 0.456, 0.406], device="cuda").view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device="cuda").view(1, 3, 1, 1) * 255
    rng, host = np.random.default_rng(0), torch.empty((batch, 224, 224, 3), dtype=torch.uint8).pin_memory()
    torch.cuda.reset_peak_memory_stats()

    def step():
        host.copy_(torch.from_numpy(images[np.sort(rng.choice(len(images), batch))]))
        x = host.cuda(non_blocking=True).permute(0, 3, 1, 2).float().sub_(mean).div_(std)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 3, (batch,), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: cuDNN autotuning, allocator
        step()
    torch.cuda.synchronize()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        done += batch
    torch.cuda.synchronize()
    return done / (time.perf_counter() - t0), torch.cuda.max_memory_allocated() / 1e9


def ddp_step() -> None:
    """One data-parallel step on two GPUs (torch.multiprocessing, NCCL)."""
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, nprocs=2, join=True)
    say("ddp_2gpu_step", "ok", "one resnet50 step, 2 processes, NCCL all-reduce")


def _ddp_worker(rank: int) -> None:
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29512")
    dist.init_process_group("nccl", rank=rank, world_size=2)
    torch.cuda.set_device(rank)
    model = torch.nn.parallel.DistributedDataParallel(model_for("resnet50").cuda(), device_ids=[rank])
    loss = model(torch.randn(8, 3, 224, 224, device="cuda")).sum()
    loss.backward()
    dist.destroy_process_group()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per backbone (6 backbones)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", help="a class-folder data set: train from lungfast's tile store of it")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; nothing to check on this machine (exit 0)")
        return 0
    say("gpu", torch.cuda.get_device_name(), f"{torch.cuda.device_count()} visible, torch {torch.__version__}")
    images, reference = tiles(args.data, 4 * args.batch), published()
    for name in BACKBONES:
        try:
            rate, peak = train_rate(name, images, args.batch, args.seconds)
        except ImportError as e:
            say(f"train_img_per_s.{name}", "skipped", f"{e.name} is not installed")
            continue
        say(f"train_img_per_s.{name}", rate, f"224 px, batch {args.batch}, bf16 autocast + channels_last")
        say(f"peak_gpu_gb.{name}", peak)
        if name in reference:
            say(f"over_published.{name}", rate / reference[name], f"published H100 ~{reference[name]:.0f} img/s")
        torch.cuda.empty_cache()
    if torch.cuda.device_count() >= 2:
        ddp_step()
    return 0


if __name__ == "__main__":
    sys.exit(main())
