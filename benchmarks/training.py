"""Benchmarks of the loop and the embedding cache: lungfast's fit loop against a plain PyTorch loop, the
embedding throughput against the bare forward, and the peak memory of a real one-epoch run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch


def overhead_ratio(size: int, bs: int, n_batches: int, repeats: int) -> float:
    """lungfast's fit loop (fastai + its callbacks) over a plain PyTorch loop: same timm model, batches, Adam."""
    from functools import partial

    import timm
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper
    from fastcore.basics import noop

    from lungfast.train.callbacks import EpochHistory, EpochLog

    torch.manual_seed(0)
    xs = [torch.randn(bs, 3, size, size) for _ in range(n_batches)]
    ys = [torch.randint(0, 3, (bs,)) for _ in range(n_batches)]
    data_in_memory = list(zip(xs, ys))
    make = lambda: timm.create_model("resnet18", num_classes=3)  # noqa: E731

    def plain():
        model = make().train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        for x, y in data_in_memory:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
        return time.perf_counter() - t0

    def fastai_epoch(tmp):
        dls = DataLoaders(data_in_memory, [], device="cpu")
        # the plain loop's optimizer (torch Adam, via fastai's OptimWrapper): the ratio measures the loop alone
        learn = Learner(
            dls,
            make(),
            loss_func=torch.nn.CrossEntropyLoss(),
            path=tmp,
            opt_func=partial(OptimWrapper, opt=torch.optim.Adam),
        )
        learn.remove_cb(ProgressCallback)
        learn.logger = noop
        history = EpochHistory(Path(tmp, "history.csv"))  # the loop's own per-epoch callbacks
        learn.fit(1, 1e-3, cbs=[history, EpochLog("bench")])
        return history.rows[-1]["seconds"]

    with tempfile.TemporaryDirectory() as tmp:
        ours, base = [], []
        for _ in range(repeats):  # interleaved, best of each: both see the same machine state
            base.append(plain())
            ours.append(fastai_epoch(tmp))
    return min(ours) / min(base)


def embed_over_forward(paths: list[str], size: int, bs: int, repeats: int) -> tuple[float, float]:
    """lungfast's embedding throughput (loader + frozen body + pooling, into a cold cache) over the bare
    model's forward throughput on the same images already in memory, same batch size, in this run."""
    from lungfast.data import loaders
    from lungfast.probe import embeddings, heads
    from lungfast.train import backbones, learner

    b = backbones.get("tf_efficientnet_lite0")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        heads.frozen_body(b, learner.create_model(b, 3, pretrained=False)[0]), heads.Embedding()
    ).eval()
    frame = pd.DataFrame({"path": paths, "label": [Path(p).parent.name for p in paths]})
    vocab = ["lung_aca", "lung_n", "lung_scc"]
    batches = [
        x.as_subclass(torch.Tensor).clone() for (x,) in loaders.inference_dls(vocab, size, b.stats, bs).test_dl(paths)
    ]

    def bare():
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                model(x)
        return len(paths) / (time.perf_counter() - t0)

    def ours(i):
        key = f"bench-{os.getpid()}-{i}"  # a fresh key: nothing cached, everything computed
        _, speed = embeddings.embed(frame, model, key, vocab, size, b.stats)
        return speed

    pairs = [(bare(), ours(i)) for i in range(repeats)]  # interleaved, best of each
    return max(o for _, o in pairs), max(f for f, _ in pairs)


def peak_rss_gb(sample: Path, size: int, backbone: str) -> tuple[float, float, int]:
    """Peak RSS (GB) of `lungfast run` for one epoch over the whole sample, measured on the child process;
    the run's wall seconds and its number of tiles."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LUNGFAST_CACHE": str(Path(tmp, "cache"))}
        exp = Path(tmp, "e.toml")
        exp.write_text(
            f'name = "rss"\ndata_dir = "{sample / "lung_image_sets"}"\nbackbones = ["{backbone}"]\n'
            f"img_size = {size}\nbatch_size = 64\nepochs = 1\npretrained = false\n"
            f'robustness_n = 0\nresults_dir = "{tmp}/r"\n'
        )
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "lungfast.cli", "-q", "run", str(exp)], capture_output=True, text=True, env=env
        )
        if r.returncode:
            raise SystemExit(f"peak_rss run failed: {r.stderr[-2000:]}")
        n = sum(1 for _ in sample.glob("lung_image_sets/*/*"))
        seconds = time.perf_counter() - t0
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, seconds, n  # KiB on Linux
