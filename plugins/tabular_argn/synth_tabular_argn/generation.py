"""Generation: which columns are fixed, in which order columns are drawn, and how each draw is shaped.

A `Plan` turns the user's options (seed data, imputation, rebalancing, fairness, rare-category
replacement) into per-sub-column rules; `draw` runs the model column by column under those rules.
Columns that condition others are drawn first; a model trained with a random column order per batch
(flexible generation) gives a proper conditional distribution for any such order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synth_assets.plugin_api import RARE_TOKEN, GenerateRequest, SynthError, TableStats
from synth_tabular_argn.encoding import ColumnCode, encode_column, sub_column_groups


@dataclass
class Rule:
    """How one sub-column is drawn. Arrays are numpy; `draw` moves them to the model's device."""

    fixed: np.ndarray | None = None  # tokens to keep, one per row
    fixed_mask: np.ndarray | None = None  # rows where `fixed` applies; None = all rows
    banned: list[int] = field(default_factory=list)  # tokens never drawn (null, rare)
    probs: np.ndarray | None = None  # replaces the model's distribution (rebalancing, fairness)


@dataclass
class Plan:
    n: int
    order: list[int]  # sub-column indices, in drawing order
    rules: dict[int, Rule]
    stop_after: set[int] | None = None  # sub-columns after which drawing may stop (prediction)
    keep: pd.DataFrame | None = None  # seed values that go into the output as they are


class Planner:
    """Builds plans for one trained model: its column codes, stats and training order."""

    def __init__(self, codes: list[ColumnCode], table: TableStats, default_order: list[int], flexible: bool):
        self.codes = codes
        self.table = table
        self.groups = dict(zip((c.column for c in codes), sub_column_groups(codes)))
        self.by_name = {c.column: c for c in codes}
        self.default_order = default_order
        self.flexible = flexible

    # checks ---------------------------------------------------------------------------------------
    def _column(self, name: str, role: str) -> ColumnCode:
        if name in self.table.columns and name in self.by_name:
            return self.by_name[name]
        keys = {self.table.primary_key, *(fk.column for fk in self.table.foreign_keys)} - {None}
        hint = "keys are generated, not modelled" if name in keys else \
            f"modelled columns: {', '.join(self.by_name)}"
        raise SynthError(f"{role} names a column the model does not have", table=self.table.name, column=name,
                         hint=hint)

    def single_token_column(self, name: str, role: str) -> ColumnCode:
        code = self._column(name, role)
        if len(code.sub_columns) != 1 or code.values is None:
            raise SynthError(f"{role} needs a categorical column (this one is encoded as {code.encoding})",
                             table=self.table.name, column=name,
                             hint="choose a categorical column, or override its encoding to categorical")
        return code

    # plans ----------------------------------------------------------------------------------------
    def plan(self, request: GenerateRequest, *, stop_after_columns: list[str] | None = None,
             given_tokens: dict[str, np.ndarray] | None = None, given_present: dict[str, np.ndarray] | None = None
             ) -> Plan:
        """The plan of a request; `given_tokens` (column -> tokens, (n, sub-columns)) are seed columns the caller
        has encoded already (`encode`): a child table's steps encode their parents' rows once, not at every step.
        `given_present`: where an imputed one of them holds a value (default: where its token is not null's)."""
        seed, options = request.seed_data, request.options
        if given_tokens:
            n = len(next(iter(given_tokens.values())))
        else:
            n = len(seed) if seed is not None else (options.sample_size or self.table.rows)
        rules: dict[int, Rule] = {}
        first: list[str] = []  # columns drawn before the rest, in this order
        keep = None

        imputed = set(options.imputation.columns) if options.imputation else set()
        for name in imputed:
            self._column(name, "imputation")
        given = dict(given_tokens or {})
        # where an imputed given column holds a value: a seed's non-nulls, a given token other than null's
        present = {name: tokens[:, 0] != 0 for name, tokens in given.items()
                   if name in imputed and self.by_name[name].has_null}
        present.update(given_present or {})
        if seed is not None:
            seed = seed.reset_index(drop=True)
            keep = seed
            unknown = [c for c in seed.columns if c not in self.table.column_order]
            if unknown:
                raise SynthError("seed data has a column the table does not have", table=self.table.name,
                                 column=unknown[0], hint=f"table columns: {', '.join(self.table.column_order)}")
            columns = [c for c in seed.columns if c in self.by_name]
            given.update(self.encode(seed[columns]))
            present.update({name: seed[name].notna().to_numpy() for name in columns if name in imputed})
        # fully given columns first, then the ones with nulls to impute
        for name in sorted(given, key=lambda c: c in imputed):
            tokens = given[name]
            mask = present.get(name) if name in imputed else None
            for j, sub in enumerate(self.groups[name]):
                rules[sub] = Rule(fixed=tokens[:, j], fixed_mask=mask)
            first.append(name)

        for name in imputed:
            code = self.by_name[name]
            if code.has_null:
                rules.setdefault(self.groups[name][0], Rule()).banned.append(0)

        if options.rare_category_replacement == "sample":
            for code in self.codes:
                if code.has_rare:
                    rules.setdefault(self.groups[code.column][0], Rule()).banned.append(code.rare_token)

        if options.rebalancing:
            name = options.rebalancing.column
            code = self.single_token_column(name, "rebalancing")
            rules.setdefault(self.groups[name][0], Rule()).probs = self._rebalanced(code, options.rebalancing.probabilities)
            first.append(name)

        if options.fairness:
            target = options.fairness.target_column
            code = self.single_token_column(target, "fairness")
            for name in options.fairness.sensitive_columns:
                self._column(name, "fairness (sensitive column)")
                first.append(name)
            # drawn from its overall distribution, whatever the sensitive columns hold: statistical parity
            rules.setdefault(self.groups[target][0], Rule()).probs = self.marginal(code)
            first.append(target)

        order = self._order(first)
        stop_after = None
        if stop_after_columns:
            stop_after = {sub for name in stop_after_columns for sub in self.groups[name]}
        return Plan(n=n, order=order, rules=rules, stop_after=stop_after, keep=keep)

    def _order(self, first: list[str]) -> list[int]:
        head: list[int] = []
        for name in dict.fromkeys(first):  # de-duplicated, first mention wins
            head += self.groups[name]
        order = head + [i for i in self.default_order if i not in set(head)]
        if not self.flexible and order != self.default_order and self._draws_records():
            # a record's model (its parent row and earlier records given first) draws in its training order: a
            # given, rebalanced or fair column keeps its place, each value conditioned on those before it
            return self.default_order
        if not self.flexible and order != self.default_order:
            raise SynthError(
                "this model was trained with flexible_generation: false, so it can only draw columns in its "
                "training order (under differential privacy it is off unless set); conditioning on other columns "
                "needs a model trained with it on", table=self.table.name,
                hint="set train.flexible_generation: true and retrain (with differential privacy, training again "
                     "spends ε), or give only the leading columns of the table")
        return order

    def _draws_records(self) -> bool:
        """Whether this is a child table's model: its leading columns are its parent row (sequences.PARENT)."""
        return any(code.column.startswith("@parent.") for code in self.codes)

    def encode(self, frame: pd.DataFrame | dict[str, pd.Series]) -> dict[str, np.ndarray]:
        """Each column of `frame` (a frame, or columns by name) as this model's tokens, shape (n, sub-columns)."""
        return {name: encode_column(values, self.by_name[name], self.table.columns[name]).reshape(len(values), -1)
                for name, values in frame.items()}

    def marginal(self, code: ColumnCode) -> np.ndarray:
        """A single-token column's share of each token in the training data (null, infinities, rare, categories)."""
        stats = self.table.columns[code.column]
        infinite = [(stats.infinite_shares or {})[name] for name in code.infinities]
        present = 1.0 - stats.null_share - sum(infinite)
        shares = ([stats.null_share] if code.has_null else []) + infinite
        if code.has_rare:
            shares.append(present * stats.rare_share)
        shares += [present * s for s in (stats.category_shares or [])]
        probs = np.asarray(shares, dtype=float)
        return probs / probs.sum()

    def _rebalanced(self, code: ColumnCode, targets: dict[str, float]) -> np.ndarray:
        labels = [str(v) for v in code.values]
        offset = code.offset
        probs = self.marginal(code)
        fixed = np.zeros(len(probs), dtype=bool)
        wanted = np.zeros(len(probs))
        for category, share in targets.items():
            if category not in labels:
                raise SynthError(f"rebalancing names category {category!r}, which the model does not know",
                                 table=self.table.name, column=code.column,
                                 hint=f"known categories: {', '.join(labels[:20])}")
            token = offset + labels.index(category)
            fixed[token], wanted[token] = True, share
        rest = probs * ~fixed
        remaining = max(0.0, 1.0 - wanted.sum())
        if rest.sum() > 0:
            wanted += rest / rest.sum() * remaining
        return wanted / wanted.sum()


def draw(model, plan: Plan, *, temperature: float, top_p: float, generator, chunk: int | None = None) -> np.ndarray:
    """Draw `plan.n` rows of tokens, in chunks, under the plan's rules."""
    import torch

    out = np.zeros((plan.n, model.n_columns), dtype=np.int64)
    device = model.owner.device
    # on the CPU a few thousand rows keep each head's activations in cache: 8,192 rows drew a quarter
    # faster than 65,536 on diamonds; a GPU wants large batches
    chunk = chunk or (65_536 if device.type == "cuda" else 8192)
    # the step after which every sub-column a prediction needs has been drawn
    last_step = max(plan.order.index(s) for s in plan.stop_after) if plan.stop_after else len(plan.order) - 1
    for start in range(0, plan.n, chunk):
        rows = slice(start, min(plan.n, start + chunk))
        size = rows.stop - rows.start
        z = model.empty_context(size)
        tokens = torch.zeros(size, model.n_columns, dtype=torch.long, device=device)
        with torch.no_grad():
            in_data_order = True
            for step, i in enumerate(plan.order[: last_step + 1]):
                in_data_order = in_data_order and i == step  # columns 0..i-1 drawn, nothing else
                rule = plan.rules.get(i)
                fully_fixed = rule is not None and rule.fixed is not None and rule.fixed_mask is None
                if fully_fixed:
                    chosen = torch.as_tensor(rule.fixed[rows], device=device)
                else:
                    chosen = _draw_one(model, z, i, rule, temperature, top_p, generator, size, device, in_data_order)
                    if rule is not None and rule.fixed is not None:
                        keep = torch.as_tensor(rule.fixed_mask[rows], device=device)
                        chosen = torch.where(keep, torch.as_tensor(rule.fixed[rows], device=device), chosen)
                tokens[:, i] = chosen
                model.write(z, i, chosen)
        out[rows] = tokens.cpu().numpy()
    return out


def _draw_one(model, z, i, rule, temperature, top_p, generator, size, device, in_data_order):
    import torch

    if rule is not None and rule.probs is not None:
        probs = torch.as_tensor(rule.probs, dtype=torch.float32, device=device).expand(size, -1)
    else:
        logits = model.conditional_logits(z, i, prefix=in_data_order) / temperature
        if rule is not None and rule.banned:
            logits[:, rule.banned] = float("-inf")
        probs = torch.softmax(logits, dim=1)
        if top_p < 1.0:
            probs = nucleus(probs, top_p)
    return inverse_cdf(probs, generator)


def inverse_cdf(probs, generator):
    """One draw per row: the first token whose cumulative probability passes a uniform number.
    Three times faster than torch.multinomial on the CPU for the same draws' distribution."""
    import torch

    cdf = torch.cumsum(probs, dim=1)
    # 1 - rand lies in (0, 1]: a token of zero probability (banned, cut by top-p) can never be hit
    u = (1.0 - torch.rand(len(probs), 1, generator=generator, device=probs.device)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=probs.shape[1] - 1)


def nucleus(probs, top_p: float):
    """Keep the most likely tokens that together hold `top_p` of the mass (at least one), renormalized."""
    import torch

    sorted_probs, index = torch.sort(probs, dim=1, descending=True)
    before = torch.cumsum(sorted_probs, dim=1) - sorted_probs
    sorted_probs = torch.where(before < top_p, sorted_probs, torch.zeros_like(sorted_probs))
    kept = torch.zeros_like(probs).scatter(1, index, sorted_probs)
    return kept / kept.sum(dim=1, keepdim=True)


def token_labels(code: ColumnCode) -> list:
    """A readable label per token of a single-token column: None for null, ±inf, _RARE_, the category, or the bin."""
    labels: list = ([None] if code.has_null else []) + [float(name) for name in code.infinities]
    if code.has_rare:
        labels.append(RARE_TOKEN)
    if code.values is not None:
        labels += list(code.values)
    else:
        edges = code.edges
        labels += list(code.exact or []) + [f"[{edges[i]:.6g}, {edges[i + 1]:.6g})" for i in range(len(edges) - 1)]
    return labels
