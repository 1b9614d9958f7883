"""`make results`: rerun the shipped experiments that run on a CPU without internet, each from a cold cache,
and write what lungfast measured into the README's and docs' blocks and the experiment files' headers.

Every number in docs/results.md's Results section, and every stated wall time, comes from here: the run records
(through `lungfast leaderboard --readme`) and this script's own clock around `lungfast run`. The shipped
experiments that need the full LC25000 and hub weights (capstone, grouped, lc25000-clean) are not run here;
their files say so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "docs" / "guide.md", REPO / "docs" / "results.md"]  # where stated times live
LUNGFAST = str(Path(sys.executable).with_name("lungfast"))

# (README block / results folder, experiment file, extra arguments, what the note adds)
SHIPPED = [
    (
        "cpu-quick",
        "experiments/cpu-quick.toml",
        [],
        "LC25000 sample (224 px copies), 400 images/class spread over tile groups, 128 px, split seed 42, seed 0, "
        "robustness sweep on 60 test tiles. One run per row: the interval is the test-tile group bootstrap.",
    ),
    (
        "cpu-quick-stain",
        "experiments/cpu-quick.toml",
        ["--set", "name=cpu-quick-stain", "--set", 'augment=["stain"]', "--set", "scheme=grouped"],
        "Same data, grouped split 42, seed 0 and settings as cpu-quick above, with stain augmentation.",
    ),
    (
        "cpu-probes",
        "experiments/cpu-probes.toml",
        [],
        "LC25000 sample (224 px copies), 224 px, ImageNet tf_efficientnet_lite0 (offline weights), parts 70/10/20.",
    ),
    (
        "cpu-full",
        "experiments/cpu-full.toml",
        [],
        "All 11,861 tiles of the LC25000 sample (224 px copies), 224 px, ImageNet tf_efficientnet_lite0 (offline "
        "weights), parts 70/10/20, 5 grouped splits, robustness sweep on 60 test tiles per run.",
    ),
    (
        "cpu-ensemble",
        "experiments/cpu-ensemble.toml",
        [],
        "All 11,861 tiles of the LC25000 sample (224 px copies), 224 px, frozen ImageNet EfficientNet-Lite0, -Lite1 "
        "and -Lite2 (offline weights) side by side, linear probe, parts 70/10/20, 5 grouped splits, robustness "
        "sweep on 60 test tiles per run.",
    ),
    (
        "cpu-ensemble-fp32",
        "experiments/cpu-ensemble.toml",
        ["--set", "name=cpu-ensemble-fp32", "--set", "precision=fp32"],
        'The cpu-ensemble recipe above with bf16 turned off (precision = "fp32"): what a CPU without bf16 units '
        "computes, here on the same cores.",
    ),
]
# (results folder, the experiment file whose header states its time, the label that header line carries)
STAMPED = {"cpu-ensemble-fp32": ("experiments/cpu-ensemble.toml", ' in fp32 only (precision = "fp32")')}


def machine() -> str:
    """The machine in words, with what decides the CPU's speed here: bf16 units or none (`train.device`)."""
    if shutil.which("nvidia-smi"):
        return "a CUDA machine"
    sys.path.insert(0, str(REPO))
    from lungfast.train import device

    units = device.describe(cpu=True)["bf16_units"]
    return f"{os.cpu_count()} CPU cores " + (f"with bf16 units ({', '.join(units)})" if units else "without bf16 units")


def run(name: str, toml: str, extra: list[str]) -> float:
    """Wall seconds of `lungfast run` from an empty cache into a fresh results folder."""
    shutil.rmtree(REPO / "results" / name, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="lungfast-cold-") as cache:
        return timed([LUNGFAST, "run", toml, *extra], REPO, {"LUNGFAST_CACHE": cache, "HF_HUB_OFFLINE": "1"})


def stamp_file(toml: str, text: str, label: str = "") -> None:
    """The experiment file's header line `# Cold-cache wall time{label} (make results): ...`, replaced or added."""
    path = REPO / toml
    body = path.read_text()
    line = f"# Cold-cache wall time{label} (make results): {text}"
    pattern = re.compile(rf"^# Cold-cache wall time{re.escape(label)} \(make results\).*$", re.M)
    path.write_text(pattern.sub(line, body) if pattern.search(body) else f"{line}\n{body}")


def timed(command: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure_install() -> float:
    """`make .venv/bin/lungfast` in a fresh clone, with pip's cache off: what a new machine waits."""
    with tempfile.TemporaryDirectory(prefix="lungfast-install-") as scratch:
        subprocess.run(["git", "clone", "-q", str(REPO), f"{scratch}/c"], check=True)
        return timed(["make", ".venv/bin/lungfast"], Path(scratch, "c"), {"PIP_NO_CACHE_DIR": "1"})


def measure_demo() -> float:
    """`lungfast demo` (what `make demo` runs once .venv exists) into an empty workdir and cache."""
    with tempfile.TemporaryDirectory(prefix="lungfast-demo-") as scratch:
        return timed([LUNGFAST, "demo", "--workdir", f"{scratch}/work"], REPO, {"LUNGFAST_CACHE": f"{scratch}/cache"})


def write_wall(tag: str, text: str) -> None:
    sys.path.insert(0, str(REPO))
    from lungfast.results.readme import replace_block

    page = next(p for p in PAGES if f"<!-- wall:{tag} -->" in p.read_text())  # the page that states it
    replace_block(page, f"wall:{tag}", text, inline=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="what to refresh: install, demo, and block names (default: all)")
    args = p.parse_args()
    wanted = lambda name: not args.only or name in args.only  # noqa: E731
    for name, measure in (("install", measure_install), ("demo", measure_demo)):
        if wanted(name):
            wall = f"{measure() / 60:.1f} min on {machine()}, measured {time.strftime('%Y-%m-%d')}"
            write_wall(name, wall)
            print(f"{name}: {wall}", flush=True)
    for name, toml, extra, about in SHIPPED:
        if not wanted(name):
            continue
        seconds = run(name, toml, extra)
        shown = " ".join(["lungfast run", toml, *(f"'{a}'" if any(c in a for c in '[]"') else a for a in extra)])
        wall = f"{seconds / 60:.1f} min on {machine()}, {time.strftime('%Y-%m-%d')}"
        note = f"Command: `{shown}`, from a cold cache: {wall}. {about}"
        subprocess.run(
            [LUNGFAST, "leaderboard", f"results/{name}", "--readme", "docs/results.md", "--note", note],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if not extra:  # the file as shipped: its header and the README's table state what it cost
            stamp_file(toml, wall)
        if name in STAMPED:
            stamp_file(STAMPED[name][0], wall, STAMPED[name][1])
        if not extra or name in STAMPED:
            write_wall(name, wall)
        print(f"{name}: {wall}", flush=True)


if __name__ == "__main__":
    main()
