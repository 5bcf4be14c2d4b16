"""The network: each column's distribution given the columns before it.

Every column has an embedding. To predict column i, the embeddings of the columns that come before i
in the order are concatenated (the others are zeroed by a mask) and fed to column i's own small MLP,
whose softmax is that column's conditional distribution. The order is a permutation held by the
model, so training with other orders (and conditioning on any subset of columns) needs no new layers.

That per-column first layer reads every column, so its cost grows with the square of the number of
columns. Wide tables get `WideARGNNetwork` instead (see `choose_variant`): one first layer shared by all
columns, whose output for column i sums the contributions of the columns before it, so the cost grows
linearly.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from synth_assets.plugin_api import SynthError

# model_size -> (hidden layers per column head, embedding width multiplier). A narrow second layer draws
# about as fast as one layer and keeps pairwise relations a single layer loses on small tables
# (bench/RESULTS.md, "Design measurements: network sizes").
SIZES = {
    "small": ((64, 16), 0.75),
    "medium": ((128, 32), 1.0),
    "large": ((256, 64), 1.5),
}


def embedding_width(cardinality: int, scale: float) -> int:
    return int(max(2, min(64, round(scale * 1.6 * cardinality**0.56))))


# Above this many first-layer weights in the per-column heads (columns x sum of the heads' first layer
# widths), tables get the wide network. See `choose_variant`.
WIDE_THRESHOLD = 8_000_000


def per_head_first_layer_weights(cardinalities: list[int], model_size: str = "medium") -> int:
    """Weights in the per-column heads' first layers: each reads every column's embedding."""
    hidden, scale = SIZES[model_size]
    inputs = sum(embedding_width(k, scale) for k in cardinalities)
    return inputs * sum(_head_widths(hidden, k)[0] for k in cardinalities)


def choose_variant(cardinalities: list[int], model_size: str = "medium") -> str:
    """'per_head' (the tuned network) for ordinary tables, 'wide' where its first layers grow too big.

    A per-head training step grows with the square of the columns, a wide one linearly; per epoch the
    per-head network learns a given dependency faster, so it stays wherever it is affordable: diamonds
    has 0.3 M first-layer weights, 55 numeric columns 8.9 M (step times and losses: bench/RESULTS.md,
    "Design measurements: wide network")."""
    return "wide" if per_head_first_layer_weights(cardinalities, model_size) > WIDE_THRESHOLD else "per_head"


class _Network(nn.Module):
    """What both variants share: building, saving and loading."""

    variant = "per_head"

    def config(self) -> dict:
        """What it takes to build the same network again (saved beside the weights)."""
        return {"variant": self.variant, "cardinalities": self.cardinalities, "model_size": self.model_size,
                "hidden": list(self.hidden), "embedding_scale": self.embedding_scale}

    @classmethod
    def build(cls, cardinalities: list[int], model_size: str = "medium", private: bool = False) -> "_Network":
        """A new network of the variant that suits this many columns. `private` (DP-SGD) takes the per-head
        network whatever the width: opacus computes its per-sample gradient norms layer by layer (Linear,
        Embedding), which the wide network's stacked parameters and custom prefix sums do not allow."""
        variant = "per_head" if private else choose_variant(cardinalities, model_size)
        return VARIANTS[variant](cardinalities, model_size)

    @classmethod
    def from_config(cls, config: dict) -> "_Network":
        if "hidden" not in config:
            raise SynthError("this model was saved by an earlier version whose network this one cannot rebuild",
                             hint="train it again (train.model_state: reset)")
        variant = config.get("variant", "per_head")  # saved before there were two
        if variant not in VARIANTS:
            raise SynthError(f"this model's network ({variant!r}) is unknown to this version",
                             hint="train it again (train.model_state: reset)")
        return VARIANTS[variant](config["cardinalities"], config["model_size"], config["hidden"],
                                 config["embedding_scale"])

    def same_shape(self, config: dict) -> bool:
        """Whether a saved network's weights fit this one."""
        mine = self.config()
        return config.get("variant", "per_head") == self.variant and \
            all(config.get(key) == mine[key] for key in ("cardinalities", "hidden", "embedding_scale"))

    @property
    def n_columns(self) -> int:
        return len(self.cardinalities)


class ARGNNetwork(_Network):
    """One MLP head per column, whose first layer reads all columns' embeddings, masked by the order."""

    variant = "per_head"

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
        # the same as plain numbers: generation reads them at every column of every step
        self.edges = [0, *torch.tensor(widths).cumsum(0).tolist()]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([emb(tokens[..., j]) for j, emb in enumerate(self.embeddings)], dim=-1)

    def forward(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> list[torch.Tensor | None]:
        """Logits of every column given the columns before it in `order` (a permutation of columns); None for
        the first `skip` columns (given, never drawn: the context of a sequence model). `tokens` is (rows,
        columns), or (subjects, records, columns) for DP-SGD, which clips each subject's gradient as one."""
        z = self.embed(tokens)
        position = torch.empty_like(order)
        position[order] = torch.arange(len(order), device=order.device)
        dim_position = position[self.owner]
        return [head(z * (dim_position < position[i]).to(z.dtype)) if i >= skip else None
                for i, head in enumerate(self.heads)]

    def loss(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """Negative log-likelihood per row, in nats, summed over columns (but the first `skip`)."""
        logits = self.forward(tokens, order, skip)
        return sum(nn.functional.cross_entropy(l, tokens[:, i].long()) for i, l in enumerate(logits) if l is not None)

    def row_nll(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """Negative log-likelihood of each row (each record of each subject), summed over columns but the first
        `skip`: shape tokens.shape[:-1]."""
        logits = self.forward(tokens, order, skip)
        shape = tokens.shape[:-1]
        return sum(nn.functional.cross_entropy(l.reshape(-1, l.shape[-1]), tokens[..., i].reshape(-1).long(),
                                               reduction="none").reshape(shape)
                   for i, l in enumerate(logits) if l is not None)

    def given_heads(self, skip: int) -> list[nn.Module]:
        """The heads of the first `skip` columns: given, never drawn, so never trained."""
        return list(self.heads[:skip])

    @torch.no_grad()
    def log_prob(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """log p(row) under `order`: the sum over columns (but the first `skip`, given) of log p(token | tokens
        before it)."""
        logits = self.forward(tokens, order, skip)
        return sum(torch.log_softmax(l, dim=1).gather(1, tokens[:, i : i + 1].long()).squeeze(1)
                   for i, l in enumerate(logits) if l is not None)

    def conditional_logits(self, z: torch.Tensor, i: int, prefix: bool = False) -> torch.Tensor:
        """Logits of column i given the embeddings already written into `z` (zeros elsewhere).

        With `prefix`, only columns 0..i-1 have been written, so the first layer reads just their part of
        `z`: about half the work when drawing in data order."""
        head = self.heads[i]
        if not prefix:
            return head(z)
        width = self.edges[i]
        first = head[0]
        x = nn.functional.linear(z[:, :width], first.weight[:, :width], first.bias)
        for layer in list(head)[1:]:
            x = layer(x)
        return x

    @torch.no_grad()
    def shift_output_bias(self, i: int, delta: torch.Tensor) -> None:
        """Add `delta` to column i's logits, whatever it is given (calibration.py)."""
        self.heads[i][-1].bias += delta.to(self.heads[i][-1].bias)

    def write(self, z: torch.Tensor, i: int, tokens: torch.Tensor) -> None:
        """Put column i's embedding of `tokens` into `z`, so later columns condition on it."""
        z[:, self.edges[i] : self.edges[i + 1]] = self.embeddings[i](tokens)

    def empty_context(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.edges[-1], device=self.owner.device)


class WideARGNNetwork(_Network):
    """For wide tables: a first layer shared by all columns (MADE-like), so cost grows linearly with columns.

    One linear map W (embedding dims -> H) is shared; column i's first hidden layer is
    ReLU(S_i / sqrt(c_i) + b_i), S_i being the sum over the c_i columns j before i of W_j e_j (W_j: W's
    block for column j's embedding e_j) and b_i column i's own bias. Then column i's own layers: Dropout,
    Linear(H -> h2), ReLU, Dropout, Linear(h2 -> k_i). In training the contributions W_j e_j are computed
    once per row and column, and an exclusive cumulative sum in the batch's order gives every column its
    context at once. In generation the context `z` is that running sum itself (H wide) and the count of
    columns in it: `write` adds a column's contribution.

    Dividing by sqrt(c_i) keeps the first layer's scale the same for the first columns and the last (the
    plain sum learned far slower on 300 columns: bench/RESULTS.md, "Design measurements: wide network").

    Parameters are stacked, so a few batched matrix products do the work of hundreds of small layers:
    embeddings (with their block of W) by embedding width and cardinality class, heads by cardinality
    class (their last layers padded to the class's largest cardinality, padded logits masked out)."""

    variant = "wide"

    def __init__(self, cardinalities: list[int], model_size: str = "medium", hidden: list[int] | None = None,
                 embedding_scale: float | None = None):
        super().__init__()
        preset_hidden, preset_scale = SIZES[model_size]
        hidden = tuple(hidden or wide_hidden(preset_hidden))
        scale = embedding_scale or preset_scale
        self.model_size, self.hidden, self.embedding_scale = model_size, hidden, scale
        self.cardinalities = cards = list(cardinalities)
        width = hidden[0]
        widths = [embedding_width(k, scale) for k in cards]
        inputs = sum(widths)
        bound = 1 / math.sqrt(inputs)

        # embeddings and their block of the shared layer, stacked per (width, cardinality class)
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for j, (k, w) in enumerate(zip(cards, widths)):
            groups[(w, _size_class(k))].append(j)
        self.embeddings, self.shared = nn.ParameterList(), nn.ParameterList()
        self._embedding_slot: list[tuple[int, int]] = [(0, 0)] * len(cards)
        for g, ((w, _), columns) in enumerate(sorted(groups.items())):
            rows = max(cards[j] for j in columns)
            self.embeddings.append(nn.Parameter(torch.randn(len(columns), rows, w)))  # as nn.Embedding
            # each column adds the same variance at first, whatever its embedding's width, and the first
            # columns' sums are not tiny (the usual 1/sqrt(all inputs) bound learned slower on 300 columns)
            column_bound = 1 / math.sqrt(w)
            self.shared.append(nn.Parameter(torch.empty(len(columns), w, width).uniform_(-column_bound, column_bound)))
            for slot, j in enumerate(columns):
                self._embedding_slot[j] = (g, slot)
            self.register_buffer(f"_emb_columns{g}", torch.tensor(columns), persistent=False)
            self.register_buffer(f"_emb_base{g}", torch.arange(len(columns)) * rows, persistent=False)
        self.first_bias = nn.Parameter(torch.empty(len(cards), width).uniform_(-bound, bound))

        # heads, stacked per cardinality class
        classes: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(cards):
            classes[_size_class(k)].append(i)
        self.second, self.second_bias, self.last, self.last_bias = (nn.ParameterList() for _ in range(4))
        self._head_slot: list[tuple[int, int]] = [(0, 0)] * len(cards)
        self._head_groups, head_order = [], []
        for q, (_, columns) in enumerate(sorted(classes.items())):
            outputs = max(cards[i] for i in columns)
            h2 = hidden[-1]
            b2, b3 = 1 / math.sqrt(width), 1 / math.sqrt(h2)
            n = len(columns)
            self.second.append(nn.Parameter(torch.empty(n, width, h2).uniform_(-b2, b2)))
            self.second_bias.append(nn.Parameter(torch.empty(n, 1, h2).uniform_(-b2, b2)))
            self.last.append(nn.Parameter(torch.empty(n, h2, outputs).uniform_(-b3, b3)))
            self.last_bias.append(nn.Parameter(torch.empty(n, 1, outputs).uniform_(-b3, b3)))
            # the padded logits of columns with fewer tokens than the class's largest never win
            pad = torch.arange(outputs)[None, :] >= torch.tensor([cards[i] for i in columns])[:, None]
            self.register_buffer(f"_pad{q}", torch.zeros(n, 1, outputs).masked_fill_(pad[:, None, :], float("-inf")),
                                 persistent=False)
            self.register_buffer(f"_head_columns{q}", torch.tensor(columns), persistent=False)
            for slot, i in enumerate(columns):
                self._head_slot[i] = (q, slot)
            self._head_groups.append(n)
            head_order += columns
        self.register_buffer("_head_order", torch.tensor(head_order), persistent=False)
        self._head_position = [0] * len(cards)  # where each column's head sits in head-class order
        for position, i in enumerate(head_order):
            self._head_position[i] = position
        self.dropout = nn.Dropout(0.0)  # training sets its rate
        owner = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
        self.register_buffer("owner", owner, persistent=False)  # device and dims, as in the per-head network
        self.register_buffer("slices", torch.tensor([0, *torch.tensor(widths).cumsum(0).tolist()]), persistent=False)

    # training ----------------------------------------------------------------------------------------
    def contributions(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """W_j e_j for every column j and row, per embedding group: (columns in the group, rows, H)."""
        parts = []
        for g, (emb, shared) in enumerate(zip(self.embeddings, self.shared)):
            columns, base = getattr(self, f"_emb_columns{g}"), getattr(self, f"_emb_base{g}")
            index = tokens.index_select(1, columns).T.long() + base[:, None]  # (n_g, rows)
            # index_select: several times faster than indexing with a 2-d tensor
            e = emb.reshape(-1, emb.shape[-1]).index_select(0, index.reshape(-1)).reshape(*index.shape, -1)
            parts.append(torch.bmm(e, shared))
        return parts

    def _hidden(self, tokens: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Every column's first hidden layer, after ReLU and dropout: (columns, rows, H) in head-class order."""
        steps = [(*self._embedding_slot[j], self._head_position[j]) for j in order.tolist()]
        context = _PrefixSums.apply(steps, *self.contributions(tokens))
        # the sum of the c columns before a column, divided by sqrt(c)
        position = torch.empty_like(order)
        position[order] = torch.arange(len(order), device=order.device)
        scale = position[self._head_order].clamp(min=1).to(context.dtype).rsqrt()
        x = torch.addcmul(self.first_bias[self._head_order][:, None, :], context, scale[:, None, None]).relu_()
        if self.training and self.dropout.p > 0:
            # a shared unit is dropped for all columns of a row, as a MADE drops a hidden unit: a mask per
            # row and unit, not per column too (that one took more time than the rest of the layer)
            keep = torch.rand(1, x.shape[1], x.shape[2], device=x.device) >= self.dropout.p
            x = x * (keep.to(x.dtype) / (1 - self.dropout.p))
        return x

    def _class_logits(self, tokens: torch.Tensor, order: torch.Tensor) -> list[torch.Tensor]:
        """Logits per head class: (columns in the class, rows, class's largest cardinality)."""
        x = self._hidden(tokens, order)
        out = []
        for q, part in enumerate(torch.split(x, self._head_groups)):
            h = self.dropout(torch.relu(torch.baddbmm(self.second_bias[q], part, self.second[q])))
            out.append(torch.baddbmm(self.last_bias[q], h, self.last[q]) + getattr(self, f"_pad{q}"))
        return out

    def forward(self, tokens: torch.Tensor, order: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every column given the columns before it in `order` (a permutation of columns)."""
        logits = self._class_logits(tokens, order)
        return [logits[q][slot, :, : self.cardinalities[i]] for i, (q, slot) in enumerate(self._head_slot)]

    def _nll(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """Negative log-likelihood of each row, summed over columns: (rows,).

        Every column's hidden layer is held at once (columns x rows x H), so without gradients (validation,
        log_prob) rows go through in parts of at most WIDE_EVAL_ELEMENTS such values."""
        if torch.is_grad_enabled():
            return self._nll_part(tokens, order, skip)
        limit = WIDE_EVAL_ELEMENTS["cuda" if tokens.is_cuda else "cpu"]
        rows = max(1, limit // (self.n_columns * self.hidden[0]))
        return torch.cat([self._nll_part(tokens[s : s + rows], order, skip) for s in range(0, len(tokens), rows)])

    def _nll_part(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        total = 0
        for q, logits in enumerate(self._class_logits(tokens, order)):
            columns = getattr(self, f"_head_columns{q}")
            target = tokens.index_select(1, columns).T.long()  # (n_q, rows)
            nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                              reduction="none").reshape(target.shape)
            if skip:  # given columns are not drawn: they do not count
                nll = nll * (columns >= skip).to(nll.dtype)[:, None]
            total = total + nll.sum(0)
        return total

    def loss(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """Negative log-likelihood per row, in nats, summed over columns (but the first `skip`)."""
        return self._nll(tokens, order, skip).mean()

    @torch.no_grad()
    def log_prob(self, tokens: torch.Tensor, order: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """log p(row) under `order`: the sum over columns (but the first `skip`) of log p(token | tokens before it)."""
        return -self._nll(tokens, order, skip)

    # generation: `z` is the running sum of the written columns' contributions ---------------------------
    def conditional_logits(self, z: torch.Tensor, i: int, prefix: bool = False) -> torch.Tensor:
        """Logits of column i given the columns already written into `z` (`prefix` changes nothing here:
        `z` holds the written columns only, whichever they are)."""
        q, slot = self._head_slot[i]
        x = self.dropout(torch.relu(torch.addcmul(self.first_bias[i], z[:, :-1], z[:, -1:].clamp(min=1).rsqrt())))
        h = self.dropout(torch.relu(torch.addmm(self.second_bias[q][slot], x, self.second[q][slot])))
        k = self.cardinalities[i]
        return torch.addmm(self.last_bias[q][slot, :, :k], h, self.last[q][slot, :, :k])

    @torch.no_grad()
    def shift_output_bias(self, i: int, delta: torch.Tensor) -> None:
        """Add `delta` to column i's logits, whatever it is given (calibration.py)."""
        q, slot = self._head_slot[i]
        bias = self.last_bias[q]
        bias[slot, 0, : self.cardinalities[i]] += delta.to(bias)

    def write(self, z: torch.Tensor, i: int, tokens: torch.Tensor) -> None:
        """Add column i's contribution for `tokens` to `z`, so later columns condition on it. Each column is
        written at most once into a context (a second write would add to the first)."""
        g, slot = self._embedding_slot[i]
        emb, shared = self.embeddings[g][slot][: self.cardinalities[i]], self.shared[g][slot]
        total = z[:, :-1]
        if len(tokens) > len(emb):
            # more rows than tokens: project every token's embedding once, then look the rows up
            total.add_((emb @ shared).index_select(0, tokens))
        else:
            total.add_(emb.index_select(0, tokens) @ shared)
        z[:, -1] += 1

    def empty_context(self, n: int) -> torch.Tensor:
        """The sum of the written columns' contributions (H wide), then how many columns were written."""
        return torch.zeros(n, self.hidden[0] + 1, device=self.owner.device)

    # the same network written as one dense layer, for checks ---------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The concatenated embeddings, as the per-head network's first layers read them: (rows, dims)."""
        return torch.cat([self.embeddings[g][slot][tokens[:, j]] for j, (g, slot) in enumerate(self._embedding_slot)],
                         dim=1)

    def shared_weight(self) -> torch.Tensor:
        """The shared first layer as one (H, dims) matrix."""
        return torch.cat([self.shared[g][slot] for g, slot in self._embedding_slot]).T


class _PrefixSums(torch.autograd.Function):
    """Exclusive cumulative sums of the columns' contributions in a given order.

    `steps` lists the columns in the order as (group, slot, out row): the column's contribution is
    `parts[group][slot]` (rows x H), and out[out row] becomes the sum of the contributions of the columns
    before it. A loop of row additions: it also does the permutations into and out of the order for free,
    and on the CPU torch.cumsum along a leading dimension was 5-10 times slower."""

    @staticmethod
    def forward(ctx, steps, *parts):
        ctx.steps, ctx.shapes = steps, [p.shape for p in parts]
        first = parts[0]
        out = first.new_empty(len(steps), first.shape[1], first.shape[2])
        out[steps[0][2]].zero_()
        for (g, slot, before), (_, _, row) in zip(steps, steps[1:]):
            torch.add(out[before], parts[g][slot], out=out[row])
        return out

    @staticmethod
    def backward(ctx, grad):
        # a column's contribution reaches every column after it
        steps = ctx.steps
        grads = [grad.new_empty(shape) for shape in ctx.shapes]
        g, slot, _ = steps[-1]
        grads[g][slot].zero_()
        for (g, slot, _), (g_next, slot_next, row_next) in zip(reversed(steps[:-1]), reversed(steps[1:])):
            torch.add(grads[g_next][slot_next], grad[row_next], out=grads[g][slot])
        return (None, *grads)


VARIANTS = {"per_head": ARGNNetwork, "wide": WideARGNNetwork}

# the wide network's hidden layer without gradients, in values (4 bytes each), at most: 300 numeric
# columns validated as fast in parts of 31 to 510 rows (2**21 to 2**25 values) on the CPU, where all at once
# a 65,536-row log_prob would have taken 17 GB a layer; a GPU wants large parts
WIDE_EVAL_ELEMENTS = {"cpu": 2**23, "cuda": 2**27}


def wide_hidden(preset: tuple[int, ...]) -> tuple[int, int]:
    """The wide network's (shared layer, head layer) widths: the preset's widest and narrowest. Twice the
    shared units cost almost twice the time for no better loss per second."""
    return (preset[0], preset[-1])


def _size_class(k: int) -> int:
    """Cardinalities within a factor of two share a class (and a padded stack of weights)."""
    return (max(k, 1) - 1).bit_length()


def _head_widths(hidden: tuple[int, ...], outputs: int) -> list[int]:
    # a head with few tokens (a digit, a flag) needs fewer units than the preset's widest
    scale = min(1.0, max(0.25, 32 * math.log(outputs + 1) / max(hidden)))
    return [max(16, int(h * scale)) for h in hidden]


def _mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in _head_widths(hidden, outputs):
        # dropout is always there, so the weights' names do not depend on it; training sets its rate
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.0)]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def set_dropout(model: nn.Module, rate: float) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = rate


def default_dropout(rows: int) -> float:
    """Small tables overfit within a few epochs, so they get more dropout: 0.2 at 1,000 training rows, 0.09
    at 12,500, 0.05 at 30,000, none from 100,000 (measured: bench/RESULTS.md, "Design measurements")."""
    return round(float(min(0.25, max(0.0, 0.5 - 0.1 * math.log10(max(rows, 1))))), 3)


def default_learning_rate(batch_size: int) -> float:
    """2e-3, growing with the square root of batches above 512 rows (4e-3 at 2,048): large batches take
    fewer steps an epoch (measured: bench/RESULTS.md, "Design measurements")."""
    return 2e-3 * max(1.0, math.sqrt(batch_size / 512))


def default_batch_size(rows: int) -> int:
    """About 80-160 steps an epoch, within [32, 2048], a power of two."""
    return int(min(2048, max(32, 2 ** round(math.log2(max(rows, 1) / 100)))))
