"""The uint8 tile store and its DataLoaders: same pixels as predict, built once, rebuilt on change; the
readability scan cached the same way."""

import os

import numpy as np
import pandas as pd
import torch
from conftest import write_tiles
from PIL import Image

from lungfast.data import images, loaders, store
from lungfast.train import backbones, device


def real_frame(lc25000, n=4):
    groups = pd.read_csv(lc25000 / "groups.csv").groupby("label").head(n)
    return pd.DataFrame(
        {
            "path": [str(lc25000 / "lung_image_sets" / r.label / r.filename) for r in groups.itertuples()],
            "label": groups.label.to_numpy(),
            "group_id": groups.group_id.to_numpy(),
        }
    )


def test_store_pixels_are_the_inference_pipelines(lc25000, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    frame = real_frame(lc25000)
    s = store.ensure(frame, 48)
    assert s.images.shape == (len(frame), 48, 48, 3) and s.images.dtype == np.uint8
    dls = loaders.inference_dls(sorted(frame.label.unique()), 48, backbones.IMAGENET_STATS)
    dl = dls.test_dl(frame.path.tolist())
    dl.after_batch = type(dl.after_batch)([])  # the items before IntToFloatTensor and Normalize: uint8 pixels
    (x,) = next(iter(dl))
    assert torch.equal(x.as_subclass(torch.Tensor), torch.from_numpy(s.images[s.rows(frame.path)]).permute(0, 3, 1, 2))


def test_store_is_built_once_and_again_when_a_source_changes(lc25000, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    frame = real_frame(lc25000, 2)
    local = tmp_path / "tiles"
    paths = []
    for p, label in zip(frame.path, frame.label):
        (local / label).mkdir(parents=True, exist_ok=True)
        paths.append(str(local / label / os.path.basename(p)))
        Image.open(p).save(paths[-1])
    frame = frame.assign(path=paths)
    first = store.ensure(frame, 32)
    monkeypatch.setattr(store, "decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    assert store.ensure(frame.iloc[::-1], 32).path == first.path  # same tiles in any order: the same store
    monkeypatch.undo()
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    Image.new("RGB", (224, 224), (0, 0, 0)).save(paths[0])
    os.utime(paths[0], ns=(1, 10**18))
    second = store.ensure(frame, 32)
    assert second.path != first.path and second.images[second.rows([paths[0]])[0]].max() == 0


def test_store_dataloaders_train_from_the_store_and_predict_from_files(lc25000, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    frame = real_frame(lc25000, 8)
    frame["part"] = ["valid" if i % 4 == 0 else "test" if i % 4 == 1 else "train" for i in range(len(frame))]
    plan = device.plan_for(device.describe())
    dls = loaders.make_dls(frame, backbones.IMAGENET_STATS, 32, 4, 0, plan)
    x, y = dls.train.one_batch()
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and len(dls.train) == 3  # 12 train, drop_last
    valid = [torch.cat([b[0] for b in dls.valid]) for _ in range(2)]
    assert torch.equal(*valid) and valid[0].shape[0] == 6  # no augmentation, no shuffling: the same every time
    assert dls.vocab == sorted(frame.label.unique()) and dls.c == 3
    test = loaders.rows_dl(dls, frame[frame.part == "test"])
    assert test.dataset is not None and len(test.dataset) == 6  # the file pipeline, what predict uses
    assert type(dls.new_empty()).__name__ == "DataLoaders"  # what learn.export keeps: no store inside


def test_an_unchanged_folder_is_not_decoded_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    write_tiles(tmp_path / "d", ("a", "b"), 3)
    (tmp_path / "d" / "a" / "bad.png").write_text("not an image")
    df, skipped = images.scan(tmp_path / "d")
    assert len(df) == 6 and len(skipped) == 1
    calls = []
    real = images.unreadable_reason
    monkeypatch.setattr(images, "unreadable_reason", lambda p: calls.append(p) or real(p))
    again, skipped_again = images.scan(tmp_path / "d")
    assert calls == [] and again.equals(df) and skipped_again == skipped  # every verdict from the cache
    Image.new("RGB", (40, 40)).save(tmp_path / "d" / "b" / "b0.png")
    os.utime(tmp_path / "d" / "b" / "b0.png", ns=(1, 10**18))
    images.scan(tmp_path / "d")
    assert [p.name for p in calls] == ["b0.png"]  # only the changed file is decoded again


def test_on_a_cpu_training_tiles_are_augmented_while_gathered_and_valid_tiles_never(lc25000, tmp_path, monkeypatch):
    from fastai.vision.augment import AffineCoordTfm

    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    frame = real_frame(lc25000, 8).assign(part="train")
    frame.loc[frame.index[::4], "part"] = "valid"
    dls = loaders.make_dls(frame, backbones.IMAGENET_STATS, 32, 8, 0, device.plan_for(device.describe()))
    train, valid = dls.train, dls.valid
    assert train.augment is not None and valid.augment is None
    assert not any(isinstance(t, AffineCoordTfm) for t in train.after_batch.fs)  # not augmented twice
    assert any(type(t).__name__ == "Normalize" for t in train.after_batch.fs)
    s = store.ensure(frame, 32)
    tiles = s.images[train.rows]
    x, _ = next(iter(train.new(shuffle=False, drop_last=False)))
    raw = (
        torch.from_numpy(tiles[:8]).permute(0, 3, 1, 2).float() / 255
        - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    ) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    changed = (x.as_subclass(torch.Tensor) - raw).abs().mean(dim=(1, 2, 3)) > 1e-3
    assert 0 < changed.sum() <= 8  # some tiles flipped or rotated (p 0.5 and 0.75), each one drawn afresh
    first = torch.cat([b[0] for b in valid])
    assert torch.equal(first, torch.cat([b[0] for b in valid]))


def test_same_seed_same_augmented_batches_with_two_gather_threads(lc25000, tmp_path, monkeypatch):
    from fastai.torch_core import set_seed

    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    frame = real_frame(lc25000, 12).assign(part="train")
    frame.loc[frame.index[::6], "part"] = "valid"
    epochs = []
    for _ in range(2):
        set_seed(3, reproducible=True)
        dls = loaders.make_dls(frame, backbones.IMAGENET_STATS, 32, 4, 3, device.plan_for(device.describe()))
        assert len(dls.train.augment) == 2
        epochs.append([torch.cat([x for x, _ in dls.train]) for _ in range(2)])  # two epochs each
    assert all(torch.equal(a, b) for a, b in zip(*epochs))
    assert not torch.equal(*epochs[0])  # a new epoch: another shuffle and other draws
