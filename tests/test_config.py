from pathlib import Path

import pytest
from conftest import REPO, write_experiment

from lungfast import config
from lungfast.errors import LungfastError
from lungfast.results.layout import ExperimentDir
from lungfast.train import backbones

BASE = dict(name="x", data_dir="d", backbones=["tiny"])


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_experiments_parse_and_name_registry_backbones(path):
    exp = config.load(path)
    assert backbones.check_names(exp.backbones)
    assert abs(sum(exp.ratios) - 1) < 1e-9


def test_shipped_experiments_find_their_data_and_results_from_any_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the repository root
    for name in ("cpu-quick", "cpu-probes"):
        exp = config.load(REPO / "experiments" / f"{name}.toml")
        assert Path(exp.data_dir).resolve() == (REPO.parent / "shared" / "lc25000-lung" / "lung_image_sets").resolve()
        assert Path(exp.results_dir).resolve() == (REPO / "results").resolve()


def test_paths_in_a_file_are_taken_from_its_folder_and_tilde_is_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "exps").mkdir()
    f = write_experiment(
        tmp_path / "exps" / "e.toml",
        name="x",
        data_dir="../data",
        backbones=["tiny"],
        groups_csv="~/groups.csv",
        results_dir="out",
        weights={"resnet50": "w/r50.pth"},
    )
    exp = config.load(f)
    assert Path(exp.data_dir) == tmp_path / "data" and Path(exp.results_dir) == tmp_path / "exps" / "out"
    assert exp.groups_csv == str(tmp_path / "home" / "groups.csv") and "~" not in exp.groups_csv
    assert Path(exp.weights["resnet50"]) == tmp_path / "exps" / "w" / "r50.pth"
    # --set values are typed at a shell: taken from the working directory, with ~ expanded too
    exp = config.load(f, ["data_dir=mine", "results_dir=~/r"])
    assert exp.data_dir == "mine" and exp.results_dir == str(tmp_path / "home" / "r")


def test_a_bad_set_value_is_blamed_on_set_not_on_the_file(tmp_path):
    f = write_experiment(tmp_path / "e.toml", **BASE)
    with pytest.raises(LungfastError, match=r"^--set img_size=abc: key 'img_size' must be int"):
        config.load(f, ["img_size=abc"])
    with pytest.raises(LungfastError, match=r"^--set lr=-1: lr must be a positive"):
        config.load(f, ["lr=-1"])
    bad = write_experiment(tmp_path / "bad.toml", **BASE, img_size=8)
    with pytest.raises(LungfastError, match=r"bad\.toml: img_size must be from 32"):
        config.load(bad)


def test_defaults_and_overrides(tmp_path):
    f = write_experiment(tmp_path / "e.toml", **BASE)
    exp = config.load(f, ["img_size=96", "seeds=[1, 2]", "lr=find", "weights.resnet50=/w.pth", "scheme=random"])
    assert (exp.img_size, exp.seeds, exp.lr, exp.scheme) == (96, [1, 2], "find", "random")
    assert exp.weights == {"resnet50": "/w.pth"} and exp.ratios == [0.7, 0.2, 0.1] and exp.pretrained
    assert ExperimentDir.of(exp).path == Path("results/x")


def test_old_key_split_still_loads_with_a_note(tmp_path, caplog):
    f = write_experiment(tmp_path / "e.toml", **BASE, split=["grouped", "random"])
    with caplog.at_level("WARNING", logger="lungfast"):
        exp = config.load(f, ["split_seed=3"])
    assert exp.schemes == ["grouped", "random"]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "'split' is now called 'scheme'" in notes[0]
    with pytest.raises(LungfastError, match="both 'split' and 'scheme'"):
        config.load(f, ["scheme=random"])


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"batchsize": 8}, "unknown key(s) batchsize"),
        ({"img_size": "big"}, "'img_size' must be int"),
        ({"pretrained": "yes"}, "'pretrained' must be bool"),
        ({"ratios": [0.8, 0.2, 0.1]}, "summing to 1"),
        ({"scheme": "stratified"}, "scheme must be"),
        ({"lr": "fast"}, 'lr must be a number or "find"'),
        ({"seeds": [0, 0]}, "distinct"),
        ({"backbones": []}, "backbones is empty"),
        ({"augment": ["stian"]}, "augment must be distinct names from stain, got ['stian']"),
        ({"augment": ["stain", "stain"]}, "augment must be distinct"),
        ({"robustness_n": -1}, "robustness_n must be 0 (no sweep) or a number of test tiles"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, extra, message):
    f = write_experiment(tmp_path / "e.toml", **{**BASE, **extra})
    with pytest.raises(LungfastError, match=None) as e:
        config.load(f)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_required_key_and_bad_toml(tmp_path):
    with pytest.raises(LungfastError, match="missing required key"):
        config.load(write_experiment(tmp_path / "e.toml", name="x", data_dir="d"))
    (tmp_path / "b.toml").write_text("name = [unclosed")
    with pytest.raises(LungfastError, match="not valid TOML"):
        config.load(tmp_path / "b.toml")
