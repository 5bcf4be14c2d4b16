"""DP-SGD for TabularARGN (opacus): each subject's gradient clipped to `max_grad_norm`, Gaussian noise of
`noise_multiplier` times that added to their sum, subjects drawn by Poisson sampling, and every step counted in
the dataset's privacy ledger (opacus's RDP and PRV accountants), which stops training before ε would pass the budget.

- Ghost clipping (synth_assets.dp_sgd, opacus): each subject's gradient norm comes from each Linear and
  Embedding layer's inputs and output gradients, without holding per-subject gradients. On diamonds a step costs
  about 1.8 times a plain one, where per-sample gradients (opacus's hooks) cost 6 times.
- A subject is one sample: a flat table's row, or in a child table's model all the subject's records, as a
  (subjects, records, columns) batch padded with masked records; opacus's norms over 3-d inputs are the norms
  of the records' summed gradients, so a subject is clipped as one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_assets.plugin_api import BudgetedSteps, PrivateOptimizer

# A private model's batch: a flat table's as a plain model's, a tree's models' twice that. Larger batches shrink
# DP-SGD's noise against the signal (σ·C/B), but a budget spent in fewer steps trains less far; measured with the
# budget's steps counted by PRV and no random column orders (5 minutes at ε 4, judge's accuracy): diamonds 0.896 to
# 0.921 (mean 0.912, eight runs) at 256 rows a step, 0.906 and 0.907 at 512, 0.897 at 1,024; rwm5yr (persons and
# their years) 0.922 to 0.934 (mean 0.930, six runs) with twice the plain batch in both models, 0.919 with the
# plain batches, 0.913 and 0.936 with the plain batch for the persons only
TREE_BATCH_SCALE = 2
# a private model's learning rate, this many times a plain one's: its clipped, noisy steps are few (diamonds, 5
# minutes at ε 4: accuracy 0.927 with 1,024 rows a step at 1e-2, 0.917 with 2,048 at 4e-3, 0.891 with 512 at 2e-3,
# on 2026-12-05's code)
LEARNING_RATE_SCALE = 3.5


@dataclass
class Subjects:
    """Which rows of a model's training data belong to which subject, as contiguous runs after `order`."""

    order: np.ndarray  # row positions, grouped by subject
    starts: np.ndarray  # per subject, where its run begins in `order`
    lengths: np.ndarray
    by_subject: bool = False  # a child table's model: its rows grouped by the root row they belong to

    @classmethod
    def of(cls, subject_ids: np.ndarray | None, rows: int) -> "Subjects":
        if subject_ids is None:  # a flat table (or a root): each row is a subject
            return cls(np.arange(rows), np.arange(rows), np.ones(rows, dtype=np.int64))
        order = np.argsort(subject_ids, kind="stable")
        _, starts, lengths = np.unique(subject_ids[order], return_index=True, return_counts=True)
        return cls(order, starts, lengths, by_subject=True)

    @property
    def flat(self) -> bool:
        return bool(np.all(self.lengths == 1))

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of the chosen subjects as (subjects, longest) with a mask of the real ones."""
        lengths = self.lengths[chosen]
        longest = int(lengths.max(initial=1))
        steps = np.arange(longest)[None, :]
        mask = steps < lengths[:, None]
        positions = self.starts[chosen][:, None] + np.minimum(steps, lengths[:, None] - 1)
        return self.order[positions], mask


class PrivateSteps(BudgetedSteps):
    """The optimiser steps of DP-SGD over one model's training rows (the budget's bookkeeping: PrivateOptimizer)."""

    def __init__(self, model, optimizer, dp, ledger, *, model_name: str, subjects: Subjects, total_subjects: int,
                 batch_subjects: int, epsilon_cap: float | None, given: int, device, seconds: float, max_epochs: int):
        self.model, self.subjects, self.given = model, subjects, given
        for head in model.given_heads(given):  # never drawn, never trained: opacus would find no norm for them
            head.requires_grad_(False)
        self.private = PrivateOptimizer.wrap(model, optimizer, dp, ledger, model_name=model_name,
                                             samples=total_subjects, batch=batch_subjects, epsilon_cap=epsilon_cap,
                                             device=device, seconds=seconds, max_epochs=max_epochs)
        self.optimizer = self.private.optimizer

    def step(self, train, order) -> tuple[float, int]:
        """One DP-SGD step on a Poisson sample of subjects; returns (summed loss, rows seen)."""
        import torch

        chosen = self.private.draw(len(self.subjects))
        self.optimizer.zero_grad(set_to_none=True)
        per_subject, rows = None, 0
        if len(chosen):
            positions, mask = self.subjects.batch(chosen)
            tokens = train[torch.as_tensor(positions.reshape(-1), device=train.device)].long()
            if self.subjects.flat:
                per_subject = self.model.row_nll(tokens, order, skip=self.given)
            else:
                tokens = tokens.reshape(*positions.shape, -1)
                weight = torch.as_tensor(mask, dtype=torch.float32, device=tokens.device)
                per_subject = (self.model.row_nll(tokens, order, skip=self.given) * weight).sum(dim=1)
            rows = int(mask.sum())
        self.private.step(self.model, per_subject)
        return (float(per_subject.detach().sum()) if per_subject is not None else 0.0), rows

    def settings(self) -> dict:
        return self.private.settings("subject" if self.subjects.by_subject else "row")
