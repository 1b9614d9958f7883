"""Heads that carry a fitted classifier, so a probe ships as an ordinary fastai Learner: the frozen body
(model[0]) followed by `ProbeHead` (model[1]) = pooling to the embedding + the classifier, giving logits.

Each classifier is an nn.Module whose tensors live in its state dict, so the safetensors export rebuilds it
from shapes alone (`from_state`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Embedding(nn.Module):
    """Body output -> one vector per image: a CNN's feature map is averaged; a ViT's pooled output is kept;
    "cls+patch_mean" (Virchow2's card) concatenates the class token with the mean patch token."""

    def __init__(self, kind: str = "pooled", prefix_tokens: int = 1):
        super().__init__()
        self.kind, self.prefix_tokens = kind, prefix_tokens

    def forward(self, x):
        if self.kind == "cls+patch_mean" and x.ndim == 3:
            return torch.cat([x[:, 0], x[:, self.prefix_tokens :].mean(1)], dim=-1)
        if x.ndim == 4:
            return x.mean((2, 3))
        return x[:, 0] if x.ndim == 3 else x


class TokenBody(nn.Module):
    """A ViT body that returns its tokens (timm's forward_features) instead of the pooled output, for
    embeddings built from tokens ("cls+patch_mean")."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body.model.forward_features(x)


def frozen_body(backbone, fastai_body: nn.Module) -> nn.Module:
    """The body a probe runs on: fastai's body (model[0]), reading tokens when the embedding needs them."""
    body = TokenBody(fastai_body) if backbone.embedding == "cls+patch_mean" else fastai_body
    return body.eval().requires_grad_(False)


def body_for(backbone, n_classes: int, pretrained: bool = False, weights_file: str | None = None) -> nn.Module:
    """A probe's frozen body for a registry entry or a feature ensemble. Random init is seeded the same for
    every build, so all runs of one model key share one cached embedding (and an ensemble's part matches it)."""
    from lungfast.train import backbones, learner

    if backbone.parts:
        parts = []
        for name in backbone.parts:
            part = backbones.get(name)
            weights = learner.resolve_weights(part, pretrained, {}) if pretrained else (False, None)
            pool = Embedding(part.embedding, part.prefix_tokens)
            parts.append(nn.Sequential(body_for(part, n_classes, *weights), pool))
        return Ensemble(parts, backbone.stats, [backbones.get(n).stats for n in backbone.parts])
    torch.manual_seed(0)
    return frozen_body(backbone, learner.create_model(backbone, n_classes, pretrained, weights_file)[0])


class Ensemble(nn.Module):
    """A feature ensemble's body: every part (frozen body + its pooling) on the same pixels, each renormalised
    from the pipeline's statistics (the first part's) to its own, the embeddings side by side."""

    def __init__(self, parts: list[nn.Module], stats, part_stats):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        shift = [(torch.tensor(stats[0]) - torch.tensor(m)) / torch.tensor(s) for m, s in part_stats]
        scale = [torch.tensor(stats[1]) / torch.tensor(s) for _, s in part_stats]
        self.register_buffer("shift", torch.stack(shift)[:, :, None, None])  # x_part = x * scale + shift
        self.register_buffer("scale", torch.stack(scale)[:, :, None, None])

    def forward(self, x):
        return torch.cat([p(x * self.scale[i] + self.shift[i]) for i, p in enumerate(self.parts)], dim=1)

    @property
    def saliency_layer(self) -> nn.Module:
        """Grad-CAM's layer: the first part's body (an ensemble's own output is a vector, no map)."""
        return self.parts[0][0]


class Linear(nn.Linear):
    """Logistic regression (scikit-learn) with its standardisation folded into the weights."""

    @classmethod
    def from_state(cls, state: dict, n_classes: int) -> Linear:
        return cls(state["weight"].shape[1], state["weight"].shape[0])


class MLP(nn.Module):
    """eva's MLP probe: standardised embeddings, one hidden layer (GELU, dropout), class logits."""

    def __init__(self, dim: int, hidden: int, n_classes: int, dropout: float = 0.1):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.net((x.float() - self.mean) / self.scale)

    @classmethod
    def from_state(cls, state: dict, n_classes: int) -> MLP:
        return cls(state["mean"].shape[0], state["net.0.weight"].shape[0], n_classes)


class KNN(nn.Module):
    """Cosine k-nearest neighbours: the share of the k most similar training embeddings in each class
    (as log-probabilities, so fastai's softmax gives that share back)."""

    def __init__(self, bank: torch.Tensor, labels: torch.Tensor, n_classes: int, k: int):
        super().__init__()
        self.register_buffer("bank", F.normalize(bank.float(), dim=1))
        self.register_buffer("labels", labels.long())
        self.register_buffer("k", torch.tensor(k))
        self.n_classes = n_classes

    @classmethod
    def from_state(cls, state: dict, n_classes: int) -> KNN:
        return cls(state["bank"], state["labels"], n_classes, int(state["k"]))

    def forward(self, x):
        sims = F.normalize(x.float(), dim=1) @ self.bank.T
        top = sims.topk(int(self.k), dim=1)
        votes = F.one_hot(self.labels[top.indices], self.n_classes).float().mean(1)
        # votes carry no gradient; the zero-weighted similarities tie the output to the features so Grad-CAM's
        # backward pass can run (a kNN probe's maps come out flat; shares are unchanged)
        votes = votes + 0.0 * top.values.sum(1, keepdim=True)
        return torch.log(votes.clamp_min(1e-6))


class Centroids(nn.Module):
    """SimpleShot: centre by the training mean, L2-normalise, nearest class centroid (logits: -distance^2)."""

    def __init__(self, mean: torch.Tensor, centroids: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("centroids", centroids.float())

    @classmethod
    def from_state(cls, state: dict, n_classes: int) -> Centroids:
        return cls(state["mean"], state["centroids"])

    def forward(self, x):
        z = F.normalize(x.float() - self.mean, dim=1)
        return -(torch.cdist(z, self.centroids) ** 2)


class ProbeHead(nn.Sequential):
    """Embedding, then classifier, then the logits divided by the calibration temperature (1 until set)."""

    def __init__(self, embedding: Embedding, classifier: nn.Module):
        super().__init__(embedding, classifier)
        self.register_buffer("temperature", torch.tensor(1.0))

    def set_temperature(self, t: float) -> None:
        self.temperature.fill_(t)

    def forward(self, x):
        return super().forward(x) / self.temperature


def from_state(protocol: str, state: dict, n_classes: int, kind: str, prefix_tokens: int) -> ProbeHead:
    """An empty head of the right shapes for a saved head state dict (the keys of model[1]); the protocol's
    registry row names its classifier."""
    from lungfast import protocols

    mine = {k[2:]: v for k, v in state.items() if k.startswith("1.")}  # [0] is the Embedding, [1] the classifier
    classifier = protocols.get(protocol).load("head")
    return ProbeHead(Embedding(kind, prefix_tokens), classifier.from_state(mine, n_classes))
