"""Benchmarks of the CPU precision plan and of `predict`: bf16 autocast + channels_last over fp32 eager, for
inference and training (same model, same batches, side by side), and `lungfast predict`'s path over the bare
forward and over a loop of fastai's `learn.predict` on the same files (fastai#2614)."""

from __future__ import annotations

import json
import time

import torch

SPEEDUP_BACKBONES = ["resnet50", "tf_efficientnet_lite0", "xresnet18"]


def _rate(step, n_images: int, repeats: int) -> float:
    step()  # warm-up: oneDNN picks its kernels on the first call
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return n_images * repeats / (time.perf_counter() - t0)


def cpu_speedups(name: str, size: int, bs: int, repeats: int) -> tuple[float, float]:
    """(inference, training) img/s ratio of the CPU bf16 plan over fp32 eager, same model and batches."""
    from lungfast.train import backbones, learner

    torch.manual_seed(0)
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, 3, (bs,))
    rates = {}
    for precision in ("fp32", "bf16"):
        model = learner.create_model(backbones.get(name), n_out=3, pretrained=False)
        xb = x
        if precision == "bf16":
            model, xb = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else torch.no_grad
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)

        def infer(model=model, xb=xb, ctx=ctx):
            with torch.inference_mode(), ctx():
                model.eval()(xb)

        def train(model=model, xb=xb, opt=opt, precision=precision):
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(model(xb).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        rates[precision] = (_rate(infer, bs, repeats), _rate(train, bs, repeats))
    return rates["bf16"][0] / rates["fp32"][0], rates["bf16"][1] / rates["fp32"][1]


def predict_rates(paths: list[str], size: int, repeats: int) -> dict:
    """img/s of lungfast's predict path (model_io + predict, the exported pickle), of the bare forward of the same
    model on the same pixels already in memory, and of a loop of `learn.predict` over the same files."""
    import tempfile
    from pathlib import Path

    from fastai.learner import Learner, load_learner

    from lungfast.data import loaders
    from lungfast.ship import predict, trust
    from lungfast.ship.model_io import load
    from lungfast.train import backbones, learner

    b = backbones.get("tf_efficientnet_lite0")
    dls = loaders.inference_dls(["lung_aca", "lung_n", "lung_scc"], size, b.stats, 64)
    with tempfile.TemporaryDirectory() as tmp:
        pkl = Path(tmp, "m.pkl")
        Learner(dls, learner.create_model(b, 3, pretrained=False)).export(pkl)
        trust.remember(pkl)
        learn = load(pkl)
        ours = _rate(lambda: predict.predict(learn, [Path(p) for p in paths], progress=False), len(paths), repeats)
        batches = [x for (x,) in learn.dls.test_dl(paths, bs=64)]
        model = learn.model.eval()

        def bare():
            with torch.inference_mode():
                for x in batches:
                    model(x.as_subclass(torch.Tensor))

        forward = _rate(bare, len(paths), repeats)
        plain = load_learner(pkl)
        few = paths[: max(8, len(paths) // 8)]  # learn.predict is slow: a share of the files is enough

        def one_by_one():
            with plain.no_bar():
                for p in few:
                    plain.predict(p)

        one = _rate(one_by_one, len(few), 1)
        from lungfast.ship import onnx_model  # the same model through ONNX Runtime, files decoded the same way

        onnx_file = Path(tmp, "m.onnx")
        onnx_model.export(load(pkl, precision="fp32"), b.stats, size, onnx_file)
        Path(tmp, "m.onnx.json").write_text(json.dumps({"vocab": list(dls.vocab), "img_size": size}))
        onnx = _rate(lambda: onnx_model.predict(onnx_file, [Path(p) for p in paths]), len(paths), repeats)
    return {
        "predict_img_per_s": ours,
        "forward_img_per_s": forward,
        "learn_predict_img_per_s": one,
        "onnx_predict_img_per_s": onnx,
    }
