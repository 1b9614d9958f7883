"""Load a model for inference: a fastai pickle (if vouched for, or trusted) or weights-only safetensors.

The safetensors format holds tensors only, so loading it runs no code: the model is rebuilt from the
registry entry named in its JSON sidecar, and the inference pipeline from the same DataBlock as training.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import fastai
import timm
import torch

from lungfast import files, protocols
from lungfast.data import split
from lungfast.errors import LungfastError
from lungfast.probe import heads
from lungfast.results.layout import RunDir
from lungfast.ship import description, trust
from lungfast.ship.description import described, precision_note, refer_below, sidecar  # noqa: F401
from lungfast.train import backbones, device, learner, views

log = logging.getLogger("lungfast")


def export_safetensors(learn, rec, run: RunDir, out: Path) -> dict:
    """Weights as safetensors; returns what its description `<out>.json` needs to rebuild the model: backbone,
    vocab, img_size, stats, versions."""
    from safetensors.torch import save_file

    b = backbones.get(rec.spec.backbone)
    meta = {
        "format": "lungfast-safetensors-1",
        "backbone": b.name,
        "vocab": list(learn.dls.vocab),
        "protocol": rec.spec.protocol,
        "head": rec.spec.head,
        "img_size": rec.spec.img_size,
        "tta": rec.spec.tta,
        "stats": [list(s) for s in b.stats],
        "source_run": str(run.path.resolve()),
        "versions": {"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    with files.atomic_path(out) as tmp:
        save_file(state, str(tmp))
    return meta  # the export writes it as the file's description, beside the rest of the bundle


def write_pickle(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    """`export --format pickle`: the run's learner, copied, with its sha256 remembered (lungfast vouches for it)."""
    import shutil

    if not (trusted or trust.vouched(run.learner)):
        raise refusal(run.learner)
    with files.atomic_path(out) as tmp:
        shutil.copyfile(run.learner, tmp)
    return {"format": "fastai-pickle", "sha256": trust.remember(out)}


def write_safetensors(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    return export_safetensors(load_pickle(run.learner, trusted), rec, run, out)


def read_safetensors(path: Path, trusted: bool = False):
    return load_safetensors(path)


def refusal(path: Path) -> LungfastError:
    return LungfastError(
        f"{path}: refusing to load this pickle: lungfast did not write it here, or it changed since. Loading a "
        f"pickle runs any code inside it. If you trust its source, pass --trust; or ask for a weights-only "
        f"file (lungfast export DIR --format safetensors)"
    )


def load_pickle(path: Path, trusted: bool = False):
    if not (trusted or trust.vouched(path)):
        raise refusal(path)
    from fastai.learner import load_learner

    with warnings.catch_warnings():  # the warning is the reason for the check above; it was heeded
        warnings.filterwarnings("ignore", message="load_learner. uses Python's insecure pickle")
        try:
            return load_learner(path)
        except Exception as e:  # a pickle that is not a fastai learner, or needs modules not installed
            raise LungfastError(f"{path}: not a loadable fastai learner ({type(e).__name__}: {e})") from None


def load_safetensors(path: Path):
    from safetensors.torch import load_file

    meta_file = sidecar(path)
    if not meta_file.is_file():
        raise LungfastError(
            f"{path}: its description {meta_file.name} is missing; export again with "
            f"lungfast export DIR --format safetensors"
        )
    again = "export it again with lungfast export DIR --format safetensors"
    try:
        meta = json.loads(meta_file.read_text())
        backbone, vocab, img_size, stats = meta["backbone"], list(meta["vocab"]), int(meta["img_size"]), meta["stats"]
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise LungfastError(f"{meta_file}: damaged description ({type(e).__name__}: {str(e)[:80]}); {again}") from None
    if not description.described(path):  # it names another file's sha256: its classes and backbone are not these
        raise LungfastError(f"{path}: {meta_file.name} describes another model, so it cannot be rebuilt; {again}")
    b, protocol = backbones.get(backbone), protocols.get(meta.get("protocol", protocols.DEFAULT))
    try:
        state = load_file(str(path))
        if protocol.frozen:  # a probe: the frozen body, then the head carrying its fitted classifier
            head = heads.from_state(
                protocol.name,
                {k[2:]: v for k, v in state.items() if k.startswith("1.")},
                len(vocab),
                b.embedding,
                b.prefix_tokens,
            )
            model = torch.nn.Sequential(heads.body_for(b, len(vocab)), head)
        else:
            model = learner.create_model(b, n_out=len(vocab), pretrained=False, head=meta.get("head", learner.LEGACY))
        model = views.wrap(model, meta.get("tta", "none"), protocol.frozen)  # its test-time views, as it was run
        model.load_state_dict(state)
    except Exception as e:  # SafetensorError (damaged file), RuntimeError (tensors of another architecture)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise LungfastError(
            f"{path}: its weights do not load into {backbone} as {meta_file.name} describes it ({first}); {again}"
        ) from None
    return learner.for_inference(model, vocab, img_size, stats)


def load(path: str | Path, trusted: bool = False, precision: str | None = None):
    """A fastai Learner ready for `dls.test_dl`, `get_preds` and `tta`, from either format, on the CPU (as
    fastai loads it), in the precision the model was evaluated, calibrated and thresholded in (recorded at
    export), on any machine; `precision` (auto, fp32, bf16) asks for another, and a gap is said in one line."""
    from lungfast.ship import formats

    path = Path(path)
    fmt = formats.of(path)
    learn = fmt.read(path, trusted)
    learn.model.eval()
    found = described(path)
    if not found and not fmt.folder:
        description.note_once(
            f"note: {path.name} has no description beside it ({sidecar(path).name}) and no run record: its "
            f"predictions carry no refer column (the referral threshold) and its precision is unknown; copy "
            f"{sidecar(path).name} with the model"
        )
    if fmt.runs_in:  # its runtime has one precision
        used, why = fmt.runs_in, f"{fmt.name}: its runtime runs the exported graph as it is"
    else:
        plan = device.plan_for(device.describe(cpu=True), precision or found.get("precision") or "auto")
        device.apply(learn, plan)
        used, why = plan.precision, plan.why
    note = precision_note(path, used, why, found)
    if note:
        log.warning("%s", note)
    return learn


def examples(path: str | Path, per_class: int = 1) -> list[str]:
    """Test-part images of the run a model came from (one per class), for the app's examples."""
    path = Path(path)
    try:
        meta = json.loads(sidecar(path).read_text()) if sidecar(path).is_file() else {}
    except ValueError:  # a damaged description only costs the examples
        return []
    run = RunDir(meta["source_run"] if "source_run" in meta else path.parent)
    split_csv = run.split_dir.split_csv
    if not split_csv.is_file():
        return []
    s = split.read_csv(split_csv)
    test = s[(s.part == "test") & s.path.map(lambda p: Path(p).is_file())]
    return test.groupby("label").head(per_class).path.tolist()
