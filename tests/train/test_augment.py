"""Stain augmentation on real fastai batches: training batches restained, validation untouched, the
exported learner free of it."""

import pickle

import pandas as pd
import torch
from fastai.callback.core import Callback

from lungfast.data import loaders, synthetic
from lungfast.train import augment, backbones, device, learner


class Seen(Callback):
    order = 50  # after StainAugment (5): what the model gets

    def __init__(self):
        self.batches = {True: [], False: []}

    def before_batch(self):
        self.batches[self.training].append(self.learn.xb[0].clone())


def tiny_learner(tmp_path):
    data = synthetic.make_dataset(tmp_path / "data", originals_per_class=4, copies=2)
    paths = sorted(data.rglob("*.jpeg"))
    frame = pd.DataFrame({"path": list(map(str, paths)), "label": [p.parent.name for p in paths]})
    frame["part"] = ["valid" if i % 4 == 0 else "train" for i in range(len(frame))]
    b = backbones.get("tiny")
    dls = loaders.make_dls(frame, b.stats, 32, 8, 0, device.plan_for(device.describe()))
    return learner.build(dls, b, False, None, path=tmp_path), b


def test_training_batches_are_restained_and_validation_batches_are_not(tmp_path):
    learn, b = tiny_learner(tmp_path)
    seen, plain = Seen(), Seen()
    learn.fit(1, 1e-3, cbs=[augment.StainAugment(b.stats, seed=0), seen])  # runs inside the real loop
    learn.fit(1, 1e-3, cbs=[plain])  # the same learner without it: what the loader alone hands over
    assert len(seen.batches[False]) == len(plain.batches[False]) > 0
    for a, c in zip(seen.batches[False], plain.batches[False]):  # validation: identical pixels
        assert torch.equal(a, c)

    class Batch:  # the learner as the callback sees it: its batch and training flag
        training, xb = True, (plain.batches[True][0],)

    fake, x = Batch(), plain.batches[True][0]
    stain = augment.StainAugment(b.stats, seed=0)
    stain.learn = fake
    stain.before_batch()
    out = fake.xb[0]
    assert out.shape == x.shape and out.dtype == x.dtype and type(out) is type(x)  # still fastai's TensorImage
    moved = (out - x).abs().mean(dim=(1, 2, 3))
    assert (moved > 0.01).float().mean() >= 0.5  # most tiles restained (p = 0.8), colours moved
    again = augment.StainAugment(b.stats, seed=0)
    again.learn = Batch()
    again.before_batch()
    assert torch.equal(again.learn.xb[0], out)  # same seed, same restaining
    fake.training, before = False, fake.xb
    stain.before_batch()
    assert fake.xb is before  # not training: untouched


def test_the_exported_learner_carries_no_stain_augmentation(tmp_path):
    learn, b = tiny_learner(tmp_path)
    learn.fit(1, 1e-3, cbs=[augment.StainAugment(b.stats, seed=0)])
    learn.export("l.pkl")
    data = (tmp_path / "l.pkl").read_bytes()
    assert b"StainAugment" not in data and b"albumentations" not in data
    assert isinstance(pickle.loads(pickle.dumps(augment.CALLBACKS)), dict)
