from pathlib import Path

import pytest

from lungfast import config
from lungfast.errors import LungfastError
from lungfast.results.layout import ExperimentDir
from lungfast.train import backbones

from conftest import REPO, write_experiment

BASE = dict(name="x", data_dir="d", backbones=["tiny"])


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_experiments_parse_and_name_registry_backbones(path):
    exp = config.load(path)
    assert backbones.check_names(exp.backbones)
    assert abs(sum(exp.ratios) - 1) < 1e-9


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


@pytest.mark.parametrize("extra,message", [
    ({"batchsize": 8}, "unknown key(s) batchsize"),
    ({"img_size": "big"}, "'img_size' must be int"),
    ({"pretrained": "yes"}, "'pretrained' must be bool"),
    ({"ratios": [0.8, 0.2, 0.1]}, "summing to 1"),
    ({"scheme": "stratified"}, "scheme must be"),
    ({"lr": "fast"}, "lr must be a number or \"find\""),
    ({"seeds": [0, 0]}, "distinct"),
    ({"backbones": []}, "backbones is empty"),
    ({"augment": ["stian"]}, "augment must be distinct names from stain, got ['stian']"),
    ({"augment": ["stain", "stain"]}, "augment must be distinct"),
    ({"robustness_n": -1}, "robustness_n must be 0 (no sweep) or a number of test tiles"),
])
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
