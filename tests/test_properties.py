"""Property-based hunting (Hypothesis) for inputs a user controls: experiment files, --set, groups CSVs,
image folders. The one invariant: a correct result, or one clear LungfastError line; never anything else."""

import io
import string

import pandas as pd
import pytest
from conftest import run_cli, write_experiment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lungfast import config
from lungfast.data import groups, images
from lungfast.errors import LungfastError

KEYS = [
    "name",
    "data_dir",
    "backbones",
    "groups_csv",
    "scheme",
    "split",
    "ratios",
    "split_seed",
    "split_seeds",
    "seeds",
    "img_size",
    "batch_size",
    "epochs",
    "epochs_by_backbone",
    "lr",
    "pretrained",
    "weights",
    "max_per_class",
    "results_dir",
    "unknown",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["grouped", "random", "find", "tiny", "x"]),
)
values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    ),
    st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),  # ratio-shaped
    st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=3),  # seed-shaped
    st.dictionaries(st.sampled_from(["tiny", "xresnet18", "x"]), st.integers(-3, 3) | st.text(max_size=4)),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(e: LungfastError) -> bool:
    return "\n" not in str(e) and str(e).strip() != ""


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=3))
def test_any_experiment_dict_is_a_config_or_one_clear_error(raw):
    base = {"name": "x", "data_dir": "d", "backbones": ["tiny"]}
    try:
        cfg = config.from_dict({**base, **raw})
    except LungfastError as e:
        assert one_line(e), str(e)
        return
    assert 0 < cfg.lr < float("inf") if not isinstance(cfg.lr, str) else cfg.lr == "find"
    assert abs(sum(cfg.ratios) - 1) < 1e-6 and cfg.img_size >= config.MIN_IMG_SIZE and cfg.schemes
    assert all(0 <= s < 2**32 for s in [*cfg.seeds, *cfg.split_seed_list])  # what numpy's seeding accepts
    assert all(n >= 1 for n in cfg.epochs_by_backbone.values())


@FAST
@given(st.lists(st.text(alphabet=string.printable, max_size=30), max_size=3))
def test_any_set_override_is_applied_or_one_clear_error(tmp_path_factory, overrides):
    f = write_experiment(tmp_path_factory.mktemp("set") / "e.toml", name="x", data_dir="d", backbones=["tiny"])
    try:
        config.load(f, overrides)
    except LungfastError as e:
        assert one_line(e), str(e)


NAMES = [f"lung{c}{i}.jpeg" for c in ("aca", "n") for i in range(1, 5)]
rows = st.tuples(
    st.sampled_from(NAMES + ["other.jpeg", ""]),
    st.sampled_from(["lung_aca", "lung_n", "x", ""]),
    st.text(alphabet='ab01,-" ', max_size=4),
)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    for name in NAMES:
        label = "lung_aca" if "aca" in name else "lung_n"
        (root / label).mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / label / name)
    df, _ = images.scan(root)
    return root, df


@FAST
@given(st.lists(rows, max_size=14), st.binary(max_size=40), st.booleans())
def test_any_groups_csv_gives_consistent_groups_or_one_clear_error(small_set, tmp_path_factory, lines, noise, header):
    _, df = small_set
    text = ("filename,label,group_id\n" if header else "") + "".join(f"{a},{b},{c}\n" for a, b, c in lines)
    csv = tmp_path_factory.mktemp("g") / "groups.csv"
    csv.write_bytes(text.encode() + noise)
    try:
        out = groups.attach_groups(df, csv)
    except LungfastError as e:
        assert one_line(e), str(e)
        return
    assert sorted(out.path) == sorted(df.path) and out.group_id.notna().all()
    assert out.groupby("group_id").label.nunique().max() == 1  # no group in two classes


image_files = st.one_of(
    st.binary(max_size=64).map(lambda b: ("raw", b)),
    st.tuples(
        st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "I;16", "1"]),
        st.integers(1, 40),
        st.integers(1, 40),
        st.sampled_from(["PNG", "JPEG", "TIFF", "BMP"]),
        st.integers(0, 100),
    ).map(lambda t: ("image", t)),
)


def encode(kind, spec) -> bytes:
    if kind == "raw":
        return spec
    mode, w, h, fmt, cut = spec
    buf = io.BytesIO()
    try:
        Image.new(mode, (w, h)).save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # PIL cannot write every mode in every format
        Image.new("RGB", (w, h)).save(buf, format=fmt)
    data = buf.getvalue()
    return data[: max(1, len(data) * cut // 100)] if cut < 100 else data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["lung_aca", "lung_n", "lung_scc"]), st.sampled_from([".jpeg", ".png", ".tif"]), image_files
        ),
        max_size=8,
    )
)
def test_any_image_folder_is_scanned_with_every_file_accounted_for_or_one_clear_error(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("imgs")
    written = []
    for i, (label, suffix, (kind, spec)) in enumerate(files):
        (root / label).mkdir(exist_ok=True)
        path = root / label / f"f{i}{suffix}"
        path.write_bytes(encode(kind, spec))
        written.append(path)
    try:
        df, skipped = images.scan(root)
    except LungfastError as e:
        assert one_line(e), str(e)
        return
    seen = {p.split("/")[-1] for p in df.path} | {p.split("/")[-1] for p, _ in skipped}
    assert seen == {p.name for p in written} and len(df) + len(skipped) == len(written)
    for path in df.path:  # what the scan keeps, fastai can open as RGB
        with Image.open(path) as im:
            assert im.convert("RGB").size[0] >= 1


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [
                "img_size=31",
                "img_size=32",
                "batch_size=1000",
                "batch_size=4",
                "lr=nan",
                "lr=inf",
                "lr=-1",
                "epochs=0",
                "seeds=[-1]",
                'scheme="grouped"',
                "ratios=[0.5,0.25,0.25]",
                "max_per_class=2",
                "split_seed=7",
                "weights.xresnet18=x.pth",
                'name="a/b"',
                'groups_csv="nope.csv"',
            ]
        ),
        max_size=3,
    )
)
def test_the_real_cli_exits_0_with_a_record_or_2_with_one_line(tmp_path_factory, sets):
    from lungfast.data import synthetic

    work = tmp_path_factory.mktemp("cli")
    data = synthetic.make_dataset(work / "data", originals_per_class=4, copies=3)
    exp = write_experiment(
        work / "e.toml",
        name="p",
        data_dir=str(data),
        backbones=["tiny"],
        img_size=32,
        batch_size=8,
        epochs=1,
        pretrained=False,
        results_dir=str(work / "r"),
    )
    r = run_cli("run", exp, *[a for s in sets for a in ("--set", s)], cwd=work)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if r.returncode == 0:
        lb = pd.read_csv(work / "r" / "p" / "leaderboard.csv")
        assert lb.backbone.tolist() == ["tiny"] and 0 <= lb.test_accuracy[0] <= 1
    else:
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("lungfast: error: ")
        assert not list((work / "r").glob("*/runs/*/seed*")) and not list((work / "r").glob("**/*.tmp"))


def test_a_run_key_read_back_from_json_is_the_same_key():
    import json

    from lungfast.runspec import RunSpec

    spec = RunSpec(
        experiment="e",
        backbone="b",
        seed=0,
        scheme="grouped",
        split_seed=1,
        img_size=32,
        batch_size=4,
        epochs=1,
        lr=1e-3,
        pretrained=False,
        weights_file=None,
        n_images=9,
        augment=("stain",),
    )
    assert json.loads(json.dumps(spec.key())) == spec.key()  # a killed run resumes into the same key
    assert RunSpec.from_dict(spec.key()) == spec
