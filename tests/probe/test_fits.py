"""The frozen-embedding protocols and the heads that carry them, on synthetic embeddings."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch.nn import functional as F

from lungfast import protocols as registry
from lungfast.probe import fits, heads


def blobs(n_per_class=30, dim=8, spread=1.0):
    """Three parts drawn around the same three class centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, dim))
    out = {}
    for part in ("train", "valid", "test"):
        x = np.concatenate([c + rng.normal(0, spread, (n_per_class, dim)) for c in centres]).astype(np.float32)
        out[part] = (x, np.repeat(np.arange(3), n_per_class))
    return out


@pytest.fixture
def parts():
    return blobs()


def test_linear_probe_equals_scikit_learn_and_chooses_c_on_valid(parts):
    fit = fits.linear(parts, 3, seed=0)
    assert [r["setting"] for r in fit.history] == [f"C={c:g}" for c in fits.C_GRID]
    best = max(fit.history, key=lambda r: (r["accuracy"], -r["valid_loss"]))
    assert fit.chosen == best["setting"] and fit.extra["C"] == float(fit.chosen[2:])
    xt, yt = parts["train"]
    scaler = StandardScaler().fit(xt)
    reference = LogisticRegression(C=fit.extra["C"], max_iter=300, random_state=0).fit(scaler.transform(xt), yt)
    xs = parts["test"][0]
    ours = F.softmax(fits.logits(fit.classifier, xs), 1).numpy()
    assert np.abs(ours - reference.predict_proba(scaler.transform(xs))).max() < 1e-4  # standardisation folded in
    assert fits.scores(fit.classifier, *parts["test"])[1] > 0.9


def test_knn_shares_and_one_nn_accuracy(parts):
    fit = fits.knn(parts, 3, seed=0)
    xs, ys = parts["test"]
    probs = F.softmax(fits.logits(fit.classifier, xs), 1).numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4) and np.allclose(probs * 20, np.round(probs * 20), atol=1e-3)
    xt, yt = parts["train"]
    sims = (xs / np.linalg.norm(xs, axis=1, keepdims=True)) @ (xt / np.linalg.norm(xt, axis=1, keepdims=True)).T
    one_nn = yt[sims.argmax(1)]
    assert fit.extra["knn1_test_accuracy"] == pytest.approx(float((one_nn == ys).mean()))
    assert [r["setting"] for r in fit.history] == ["k=1", "k=20"] and fit.chosen == "k=20"


def test_fewshot_episodes_and_centroid_classifier(parts):
    fit = fits.fewshot(parts, 3, seed=0)
    shots = fit.extra["shots"]
    assert set(shots) == {"1", "4", "16"} and all(len(s["values"]) == fits.EPISODES for s in shots.values())
    assert shots["16"]["mean"] >= shots["1"]["mean"] - 0.05  # more shots, no worse (well-separated blobs)
    assert all(s["ci95_low"] <= s["mean"] <= s["ci95_high"] for s in shots.values())
    assert fits.scores(fit.classifier, *parts["test"])[1] > 0.9
    again = fits.fewshot(parts, 3, seed=0)
    assert again.extra == fit.extra  # same seed, same episodes


def test_mlp_probe_chooses_its_epochs_on_the_valid_loss_and_a_refit_repeats_them(parts):
    fit = fits.mlp(parts, 3, seed=0)
    assert [r["setting"] for r in fit.history] == [f"epochs={e}" for e in range(10, fits.MLP_EPOCHS + 1, 10)]
    best = min(fit.history, key=lambda r: r["valid_loss"])
    assert fit.chosen == best["setting"] and fit.extra["epochs"] == int(fit.chosen.split("=")[1])
    _, acc = fits.scores(fit.classifier, *parts["valid"])
    assert acc == best["accuracy"]  # the classifier kept is the chosen epoch's, not the last one's
    assert fits.scores(fit.classifier, *parts["test"])[1] > 0.9
    refit = fits.mlp(parts, 3, seed=0, only=fit.chosen)  # cross-fitting: the chosen epochs, no search
    assert refit.chosen == fit.chosen and len(refit.history) == 1
    assert torch.equal(fits.logits(refit.classifier, parts["test"][0]), fits.logits(fit.classifier, parts["test"][0]))


def test_too_few_images_for_16_shots_are_skipped_not_faked():
    small = blobs(n_per_class=5)
    assert set(fits.fewshot(small, 3, seed=0).extra["shots"]) == {"1", "4"}


FROZEN = [p.name for p in registry.REGISTRY.values() if p.frozen]


@pytest.mark.parametrize("protocol", FROZEN)
def test_heads_rebuild_from_their_state_dict(parts, protocol):
    fit = registry.get(protocol).load("fit")(parts, 3, seed=0)
    head = heads.ProbeHead(heads.Embedding(), fit.classifier).eval()  # as inference runs it (dropout off)
    rebuilt = heads.from_state(protocol, head.state_dict(), 3, "pooled", 1).eval()  # the learner's model[1]
    rebuilt.load_state_dict(head.state_dict())
    x = torch.as_tensor(parts["test"][0])
    assert torch.allclose(rebuilt(x), head(x))


def test_embedding_pools_feature_maps_and_tokens():
    assert heads.Embedding()(torch.ones(2, 5, 3, 3)).shape == (2, 5)
    tokens = torch.arange(2 * 7 * 4, dtype=torch.float32).reshape(2, 7, 4)
    v = heads.Embedding("cls+patch_mean", prefix_tokens=3)(tokens)
    assert v.shape == (2, 8) and torch.equal(v[:, :4], tokens[:, 0]) and torch.allclose(v[:, 4:], tokens[:, 3:].mean(1))
