"""lungfast benchmarks: every figure is measured side by side, in one run, on this machine.

    python benchmarks/bench.py [--quick]        (make bench / make bench-quick)

Prints key=value lines. Targets: store_img_per_s_per_core >= 2000, loader_speedup_768 >= 10,
overhead_ratio <= 1.05, peak_rss_gb <= 4, embed_over_forward >= 0.9, predict_over_forward >= 0.9, and the
CPU bf16 plan's speedups (`TARGETS`); gpu_feed_cores per registry backbone. The GPU check is gpu_check.py.
Needs the LC25000 sample beside the repository (or LUNGFAST_SAMPLE=DIR) and its 768 px tile
(../shared/lc25000-lung-768/, or LUNGFAST_TILE_768=FILE).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ.get("LUNGFAST_SAMPLE", REPO.parent / "shared" / "lc25000-lung"))
TILE_768 = Path(os.environ.get("LUNGFAST_TILE_768", REPO.parent / "shared" / "lc25000-lung-768" / "lungaca1.jpeg"))
TARGETS = {
    "store_img_per_s_per_core": (">=", 2000),
    "loader_speedup_768": (">=", 10),
    "overhead_ratio": ("<=", 1.05),
    "peak_rss_gb": ("<=", 4),
    "embed_over_forward": (">=", 0.9),
    "predict_over_forward": (">=", 0.9),
    # the CPU bf16 plan (train.device); met only on CPUs with bf16 matrix units (amx_bf16, avx512_bf16)
    "cpu_infer_speedup.resnet50": (">=", 2.0),
    "cpu_infer_speedup.tf_efficientnet_lite0": (">=", 1.5),
    "cpu_train_speedup.resnet50": (">=", 1.5),
}
# Published single-GPU AMP training throughput, img/s at 224 px: resnet50 on an H100 SXM ~2,700 (lambdal
# deeplearning-benchmark); the others scaled by their speed relative to resnet50 in timm's RTX 3090 NHWC
# train benchmark CSV (mobilenetv2_100 1.9x, resnet34d 1.5x, efficientnetv2_rw_t 0.9x, regnetz_b16 0.7x).
H100_TRAIN_IMG_PER_S = {
    "resnet50": 2700,
    "resnet50d": 2700 * 0.9,
    "mobilenetv2_100": 2700 * 1.9,
    "efficientnetv2_rw_t": 2700 * 0.9,
    "regnetz_b16": 2700 * 0.7,
}


LINES: list[str] = []


def say(key, value, note=""):
    line = (f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}") + (f"  # {note}" if note else "")
    if key in TARGETS:
        op, target = TARGETS[key]
        ok = value >= target if op == ">=" else value <= target
        line += f"  [target {op} {target}: {'met' if ok else 'MISSED'}]"
    LINES.append(line)
    print(line, flush=True)


def update_readme(readme: Path, command: str, seconds: float) -> None:
    """Refresh the README's <!-- bench --> block with this run's lines: figures are never typed by hand."""
    from lungfast.results.readme import replace_block

    replace_block(
        readme,
        "bench",
        f"`{command}` ({seconds / 60:.1f} min, {os.cpu_count()} CPU cores, no GPU):\n\n"
        "```\n" + "\n".join(LINES) + "\n```",
    )


from loading import as_split, copies_of_768, img_per_s, naive_dls, store_img_per_s_per_core, tiles  # noqa: E402
from precision import SPEEDUP_BACKBONES, cpu_speedups, predict_rates  # noqa: E402
from training import embed_over_forward, overhead_ratio, peak_rss_gb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (<= 5 minutes on 2 cores)")
    ap.add_argument("--readme", help="also write the figures into this README's <!-- bench --> block")
    args = ap.parse_args()
    quick, started = args.quick, time.perf_counter()
    if not (SAMPLE / "groups.csv").is_file() or not TILE_768.is_file():
        raise SystemExit(
            f"benchmarks need the LC25000 sample at {SAMPLE} and its 768 px tile at {TILE_768} "
            f"(or LUNGFAST_SAMPLE=DIR, LUNGFAST_TILE_768=FILE)"
        )
    from lungfast.data import loaders
    from lungfast.data import store as tile_store
    from lungfast.train import backbones, device

    n, size, bs = (192, 224, 32) if quick else (384, 224, 32)
    plan = device.plan_for(device.describe())
    say(
        "machine",
        f"{os.cpu_count()}cpu",
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}",
    )
    stats = backbones.IMAGENET_STATS
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LUNGFAST_CACHE"] = str(Path(tmp, "cache"))  # a cold cache, built below and timed
        big = copies_of_768(TILE_768, n, Path(tmp, "768"))
        naive = img_per_s(naive_dls(big.path.tolist(), stats, size, bs).train)  # same images, same batches
        t0 = time.perf_counter()
        tile_store.ensure(big, size)
        say(
            "store_build_img_per_s",
            n / (time.perf_counter() - t0),
            f"one-time, 768 px JPEG -> {size} px uint8, {os.cpu_count()} threads",
        )
        split = as_split(big.path.tolist(), bs)
        ours = img_per_s(loaders.make_dls(split, stats, size, bs, 0, plan).train)
        say(
            "naive_loader_img_per_s",
            naive,
            f"fastai ImageDataLoaders on real 768 px LC25000 JPEGs, bs {bs}, flips + rotation + normalise",
        )
        say("store_loader_img_per_s", ours, "lungfast's training loader: the same batches from the tile store")
        say("loader_speedup_768", ours / naive)
        shared = tiles(SAMPLE, n)
        per_core = store_img_per_s_per_core(tile_store.ensure(shared, size), bs, 2.0 if quick else 5.0)
        say("store_img_per_s_per_core", per_core, f"{size} px uint8 gathered by index -> float, one thread")
        for name, rate in H100_TRAIN_IMG_PER_S.items():
            say(f"gpu_feed_cores.{name}", rate / per_core, f"cores to feed an H100 at ~{rate:.0f} img/s (published)")
        from lungfast.data import shifts

        sweep = shared.head(24 if quick else 96)
        t0 = time.perf_counter()
        shifts.make_all(sweep)
        say(
            "shifted_tiles_per_s",
            len(sweep) * len(shifts.SHIFTS) * len(shifts.SEVERITIES) / (time.perf_counter() - t0),
            "the robustness sweep's shifted copies (5 shifts x 3 severities), real tiles, cold cache, one decode "
            "and one stain estimate per tile",
        )
        embed, forward = embed_over_forward(shared.path.tolist(), size, 64, 2 if quick else 3)
        say("embed_img_per_s", embed, f"tf_efficientnet_lite0 frozen embeddings, {size} px, bs 64, into the cache")
        say("forward_img_per_s", forward, "the same model's bare forward on the same batches, already in memory")
        say("embed_over_forward", embed / forward)
        rates = predict_rates(shared.path.tolist(), size, 1 if quick else 2)
        say(
            "predict_img_per_s",
            rates["predict_img_per_s"],
            f"lungfast predict's path (exported pickle, this "
            f"CPU's plan), tf_efficientnet_lite0, {len(shared)} real tiles at {size} px, files decoded",
        )
        say("predict_over_forward", rates["predict_img_per_s"] / rates["forward_img_per_s"])
        say(
            "predict_over_learn_predict",
            rates["predict_img_per_s"] / rates["learn_predict_img_per_s"],
            "over a loop of fastai's learn.predict on the same files (fastai#2614)",
        )
        say(
            "onnx_predict_img_per_s",
            rates["onnx_predict_img_per_s"],
            "lungfast predict lung.onnx: ONNX Runtime (CPU provider, fp32) on the same model and files",
        )
        say(
            "onnx_over_torch_predict",
            rates["onnx_predict_img_per_s"] / rates["predict_img_per_s"],
            "above 1: predict through ONNX Runtime is faster here",
        )
    cpu = device.plan_for(device.describe(cpu=True))
    say("cpu_plan", cpu.precision, cpu.why)
    for name in SPEEDUP_BACKBONES:
        infer, train = cpu_speedups(name, size, 8 if quick else 16, 1 if quick else 3)
        say(f"cpu_infer_speedup.{name}", infer, f"bf16 autocast + channels_last over fp32 eager, {size} px")
        say(f"cpu_train_speedup.{name}", train, "one SGD step, the same batch")
    say(
        "overhead_ratio",
        overhead_ratio(64, 32, 40 if quick else 60, 5),
        "lungfast fit loop / plain PyTorch loop, resnet18 64 px, torch Adam in both, data in memory",
    )
    # quick: the test-only tiny net (the pipeline's memory, not a big model's); full: mobilenetv2_100
    backbone = "tiny" if quick else "mobilenetv2_100"
    gb, seconds, n_tiles = peak_rss_gb(SAMPLE, 64, backbone)
    say("peak_rss_run_seconds", seconds, f"one epoch of {backbone}, all {n_tiles} tiles, 64 px, cold caches")
    say("peak_rss_gb", gb)
    if args.readme:
        update_readme(Path(args.readme), "make bench-quick" if quick else "make bench", time.perf_counter() - started)


if __name__ == "__main__":
    main()
