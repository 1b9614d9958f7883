"""Data sets as people make them, through the real CLI on real tiles: class folders of links into folders with
other names, a class folder that is itself a link, patients as sub-folders (and as tile groups), a file name
that is not UTF-8."""

import json
import os
import shutil

import pandas as pd
import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow
ODD = b"tile-\xff\xfe.jpeg"  # Latin-1 bytes, not UTF-8: as a camera or an old Windows share may name a file


@pytest.fixture(scope="module")
def made_by_hand(lc_subset, tmp_path_factory):
    """lung_aca/<patient>/<link> into originals/ (other names); lung_n -> a link to the folder 'normals';
    lung_scc/<patient>/<copy>, one of them named in bytes that are not UTF-8."""
    root = tmp_path_factory.mktemp("by-hand")
    data, originals = root / "data", root / "originals"
    groups = pd.read_csv(lc_subset / "groups.csv")
    for label, g in groups.groupby("label"):
        for i, (_, tiles) in enumerate(list(g.groupby("group_id"))[:4]):
            for j, name in enumerate(tiles.filename.head(5)):
                source = lc_subset / "lung_image_sets" / label / name
                if label == "lung_aca":  # links named after the patient, into a folder of other names
                    kept = originals / f"scan{i}_{j}.jpeg"
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, kept)
                    dest = data / label / f"{label}-p{i}" / f"aca-{i}-{j}.jpeg"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(kept)
                else:
                    folder = (root / "normals" if label == "lung_n" else data / label) / f"{label}-p{i}"
                    folder.mkdir(parents=True, exist_ok=True)
                    name = ODD if (label, i, j) == ("lung_scc", 0, 0) else f"{label}-{j}.jpeg".encode()
                    shutil.copyfile(source, os.path.join(os.fsencode(folder), name))
    (data / "lung_n").symlink_to(root / "normals", target_is_directory=True)
    return root, data


def test_labels_come_from_the_named_folders_and_sub_folders_are_groups(made_by_hand):
    root, data = made_by_hand
    exp = write_experiment(
        root / "e.toml",
        name="hand",
        data_dir=str(data),
        group_pattern="^([^/]+)/",  # the patient sub-folder is the tile group
        backbones=["tiny"],
        protocols=["fine_tune", "linear"],
        img_size=32,
        batch_size=8,
        epochs=1,
        pretrained=False,
        ratios=[0.5, 0.25, 0.25],
        results_dir=str(root / "results"),
        robustness_n=0,
    )
    r = run_cli("run", exp, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    out = root / "results" / "hand"
    split = pd.read_csv(out / "split.csv", encoding_errors="surrogateescape", dtype={"group_id": str})
    assert sorted(split.label.unique()) == ["lung_aca", "lung_n", "lung_scc"] and len(split) == 60
    assert set(split.group_id) == {f"{c}-p{i}" for c in ("lung_aca", "lung_n", "lung_scc") for i in range(4)}
    assert (split.groupby(["label", "group_id"]).part.nunique() == 1).all()  # a patient lies in one part
    assert all(os.path.exists(os.fsencode(p)) for p in split.path)  # every path, the odd one too, as found
    assert any(os.fsencode(p).endswith(ODD) for p in split.path)
    for run in ("seed0", "linear-seed0"):
        assert json.loads((out / "runs" / "tiny" / run / "metrics.json").read_text())["vocab"] == [
            "lung_aca",
            "lung_n",
            "lung_scc",
        ]
    odd = [p for p in split.path if os.fsencode(p).endswith(ODD)]
    r = run_cli("predict", out / "runs" / "tiny" / "seed0" / "learner.pkl", *odd, "--out", root / "p.csv")
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_csv(root / "p.csv", encoding_errors="surrogateescape")
    assert list(got.path) == odd and got.error.isna().all()


def test_each_export_is_its_own_artefact_and_a_stray_description_is_said(made_by_hand, tmp_path):
    """A card per model describing this data set (not LC25000) and its groups; a pickle without its description,
    or beside another model's, predicts with one note and no referral column, never with someone else's."""
    import shutil

    root, _ = made_by_hand
    out = root / "results" / "hand"
    r = run_cli("export", out, "--entry", "tiny", "--out", tmp_path / "m.pkl")
    assert r.returncode == 0, r.stderr[-2000:]
    card = (tmp_path / "m.pkl.md").read_text()
    assert "Borkowski" not in card and "- LC25000" not in card and "The data set in folder `data`" in card
    assert "pattern ^([^/]+)/" in card and "tile groups never seen in training" in card
    description = json.loads((tmp_path / "m.pkl.json").read_text())
    assert description["model_sha256"] == description["sha256"]
    tile = pd.read_csv(out / "split.csv", encoding_errors="surrogateescape").path.iloc[0]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "m.pkl", alone / "m.pkl")
    shutil.copy(out / "runs" / "tiny" / "linear-seed0" / "learner.pkl", alone / "other.pkl")
    shutil.copy(tmp_path / "m.pkl.json", alone / "other.pkl.json")  # another model's description
    for name, said in (("m.pkl", "has no description beside it"), ("other.pkl", "describes another model")):
        r = run_cli("predict", alone / name, tile, "--trust")
        assert r.returncode == 0 and said in r.stderr, r.stderr[-2000:]
        assert "refer" not in r.stdout.splitlines()[0].split(",")


def test_card_claims_follow_the_scheme_and_the_groups():
    from types import SimpleNamespace as NS

    from lungfast.ship import card

    def rec(scheme, groups):
        return NS(spec=NS(scheme=scheme), groups_csv=groups, vocab=["lung_aca", "lung_n", "lung_scc"])

    assert "overstates" in card.test_claim(rec("random", "groups.csv"))
    assert "never seen" in card.test_claim(rec("grouped", "groups.csv"))
    assert "no tile groups were known" in card.test_claim(rec("grouped", None))
    assert card.is_lc25000(rec("grouped", None), {"data_dir": "x/lung_image_sets"})
    assert not card.is_lc25000(rec("grouped", None), {"data_dir": "x/my_slides"})


def test_settings_that_data_can_refute_are_checked_before_training(tmp_path):
    from lungfast.data import synthetic

    data = synthetic.make_dataset(tmp_path / "data", originals_per_class=3, copies=4)
    for f in sorted((data / "lung_n").iterdir())[3:]:  # lung_n: 3 images, too few for a valid part at 70/20/10
        f.unlink()
    base = dict(name="x", data_dir=str(data), backbones=["tiny"], img_size=32, epochs=1, pretrained=False)
    cases = [
        ({"benign_classes": ["normal"]}, "benign_classes: normal is not a class of data_dir"),
        ({"scheme": "random"}, "class lung_n: no image in the valid part"),
    ]
    for keys, said in cases:
        exp = write_experiment(tmp_path / "e.toml", **base, **keys, results_dir=str(tmp_path / "r"))
        r = run_cli("run", exp, cwd=tmp_path)
        assert r.returncode == 2 and said in r.stderr.strip().splitlines()[-1], r.stderr[-1500:]
        assert "training" not in r.stderr and not list((tmp_path / "r").glob("x/runs/*/*"))


def test_a_read_only_results_folder_is_shown_and_said(made_by_hand, tmp_path):
    """A colleague's results on a read-only mount: the leaderboard is shown with a note; the report, which has to
    be written to be read, fails in one line naming the file."""
    import subprocess

    root, _ = made_by_hand
    view = tmp_path / "ro"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(root / "results" / "hand"), str(view)], text=True)
    if mounted.returncode != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root); chmod does not stop root")
    try:
        shown = run_cli("leaderboard", view)
        assert shown.returncode == 0 and "tiny" in shown.stdout and "read-only" in shown.stderr, shown.stderr
        report = run_cli("report", view)
        line = report.stderr.strip().splitlines()[-1]
        assert report.returncode == 2 and "report.html: Read-only file system" in line, report.stderr[-1500:]
    finally:
        subprocess.run(["umount", str(view)])
