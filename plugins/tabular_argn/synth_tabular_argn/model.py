"""The network: each column's distribution given the columns before it.

Every column has an embedding. To predict column i, the embeddings of the columns that come before i
in the order are concatenated (the others are zeroed by a mask) and fed to column i's own small MLP,
whose softmax is that column's conditional distribution. The order is a permutation held by the
model, so training with other orders (and conditioning on any subset of columns) needs no new layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synth_assets.errors import SynthError

SIZES = {  # model_size -> (hidden layers per column head, embedding width multiplier)
    # a second layer of 16 units draws as fast as (64,) alone, and on 6,000 diamonds (3 seeds) kept the
    # carat-price rank correlation at 0.91 instead of 0.83
    "small": ((64, 16), 0.75),
    # a narrow second layer: on diamonds as accurate as (128, 128) (qa 0.965 vs 0.958) and draws 25% faster;
    # a single layer was as fast and as accurate on the full table, but lost the carat-price rank correlation
    # on 6,000 rows (0.79 vs 0.89)
    "medium": ((128, 32), 1.0),
    # the same narrow second layer: on diamonds (2.4 min) qa 0.966 and 116k rows/s, against (256, 256)'s
    # 0.962 and 75k rows/s
    "large": ((256, 64), 1.5),
}


def embedding_width(cardinality: int, scale: float) -> int:
    return int(max(2, min(64, round(scale * 1.6 * cardinality**0.56))))


class ARGNNetwork(nn.Module):
    def __init__(self, cardinalities: list[int], model_size: str = "medium", hidden: list[int] | None = None,
                 embedding_scale: float | None = None):
        super().__init__()
        preset_hidden, preset_scale = SIZES[model_size]
        # a checkpoint keeps its own layer sizes, so it loads after a preset changes
        hidden = tuple(hidden or preset_hidden)
        scale = embedding_scale or preset_scale
        self.model_size, self.hidden, self.embedding_scale = model_size, hidden, scale
        self.cardinalities = list(cardinalities)
        widths = [embedding_width(k, scale) for k in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(k, w) for k, w in zip(cardinalities, widths))
        total = sum(widths)
        self.heads = nn.ModuleList(_mlp(total, hidden, k) for k in cardinalities)
        # column of each embedding dimension, to expand a column mask to dimensions
        owner = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
        self.register_buffer("owner", owner, persistent=False)
        self.register_buffer("slices", torch.tensor([0, *torch.tensor(widths).cumsum(0).tolist()]), persistent=False)

    def config(self) -> dict:
        """What it takes to build the same network again (saved beside the weights)."""
        return {"cardinalities": self.cardinalities, "model_size": self.model_size, "hidden": list(self.hidden),
                "embedding_scale": self.embedding_scale}

    @classmethod
    def from_config(cls, config: dict) -> "ARGNNetwork":
        if "hidden" not in config:
            raise SynthError("this model was saved by an earlier version whose network this one cannot rebuild",
                             hint="train it again (train.model_state: reset)")
        return cls(config["cardinalities"], config["model_size"], config["hidden"], config["embedding_scale"])

    def same_shape(self, config: dict) -> bool:
        """Whether a saved network's weights fit this one."""
        mine = self.config()
        return all(config.get(key) == mine[key] for key in ("cardinalities", "hidden", "embedding_scale"))

    @property
    def n_columns(self) -> int:
        return len(self.cardinalities)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb(tokens[:, j]) for j, emb in enumerate(self.embeddings)], dim=1)

    def forward(self, tokens: torch.Tensor, order: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every column given the columns before it in `order` (a permutation of columns)."""
        z = self.embed(tokens)
        position = torch.empty_like(order)
        position[order] = torch.arange(len(order), device=order.device)
        dim_position = position[self.owner]
        return [head(z * (dim_position < position[i]).to(z.dtype)) for i, head in enumerate(self.heads)]

    def loss(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per row, in nats, summed over columns."""
        logits = self.forward(tokens, order)
        return sum(nn.functional.cross_entropy(l, tokens[:, i].long()) for i, l in enumerate(logits))

    def conditional_logits(self, z: torch.Tensor, i: int, prefix: bool = False) -> torch.Tensor:
        """Logits of column i given the embeddings already written into `z` (zeros elsewhere).

        With `prefix`, only columns 0..i-1 have been written, so the first layer reads just their part of
        `z`: about half the work when drawing in data order."""
        head = self.heads[i]
        if not prefix:
            return head(z)
        width = int(self.slices[i])
        first = head[0]
        x = nn.functional.linear(z[:, :width], first.weight[:, :width], first.bias)
        for layer in list(head)[1:]:
            x = layer(x)
        return x

    def write(self, z: torch.Tensor, i: int, tokens: torch.Tensor) -> None:
        """Put column i's embedding of `tokens` into `z`, so later columns condition on it."""
        z[:, int(self.slices[i]) : int(self.slices[i + 1])] = self.embeddings[i](tokens)

    def empty_context(self, n: int) -> torch.Tensor:
        return torch.zeros(n, int(self.slices[-1]), device=self.owner.device)

    @torch.no_grad()
    def log_prob(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """log p(row) under `order`: the sum over columns of log p(token | tokens before it)."""
        logits = self.forward(tokens, order)
        return sum(torch.log_softmax(l, dim=1).gather(1, tokens[:, i : i + 1].long()).squeeze(1)
                   for i, l in enumerate(logits))


def _mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    # a head with few tokens (a digit, a flag) needs fewer units than the preset's widest
    scale = min(1.0, max(0.25, 32 * math.log(outputs + 1) / max(hidden)))
    for h in hidden:
        h = max(16, int(h * scale))
        # dropout is always there, so the weights' names do not depend on it; training sets its rate
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.0)]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no GPU; use device 'auto' or 'cpu'")
    return torch.device(device)


def set_dropout(model: nn.Module, rate: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = rate


def default_dropout(rows: int) -> float:
    """Small tables overfit within a few epochs, so they get more dropout: 0.2 at 1,000 training rows, 0.09
    at 12,500, 0.05 at 30,000, none from 100,000. On rwm5yr (12,500 rows) 0.1 raised accuracy from 0.977 to
    0.984 (three seeds); on diamonds (34,500) it only slowed convergence."""
    return round(float(min(0.25, max(0.0, 0.5 - 0.1 * math.log10(max(rows, 1))))), 3)


def default_learning_rate(batch_size: int) -> float:
    """2e-3, growing with the square root of batches above 512 rows (4e-3 at 2,048). On 200,000 rows
    (batch 2,048) 4e-3 reached a lower validation loss in the first epoch and at the best (89.32 vs 89.34);
    on 12,500 rows (batch 128) a lower rate only trained longer for the same accuracy."""
    return 2e-3 * max(1.0, math.sqrt(batch_size / 512))


def default_batch_size(rows: int) -> int:
    """About 80-160 steps an epoch, within [32, 2048], a power of two."""
    return int(min(2048, max(32, 2 ** round(math.log2(max(rows, 1) / 100)))))
