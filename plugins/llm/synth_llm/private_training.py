"""DP-SGD for the language model (opacus): one sample (a subject: a root row with all its records) is one
training example and one clipped unit, drawn by Poisson sampling; Gaussian noise on the sum; every step counted
in the dataset's privacy ledger, which stops training before ε would pass the budget.

- Ghost clipping (synth_assets.dp_sgd, opacus): per-sample gradient norms layer by layer, without per-sample
  gradients. transformers' GPT-2 writes its projections as `Conv1D` (a Linear with its weight transposed): the
  same norm as a Linear's, registered here.
- From scratch, GPT-2's output layer is untied from its token embeddings (opacus cannot clip a parameter two
  layers share), and the positions are passed per sample (opacus reads a batch size of 1 from HF's defaults).
- With LoRA only the adapters train (Linear layers), the base model stays frozen.
- Each sample's loss is the mean over its own output tokens: samples never weigh on each other's gradients.
"""

from __future__ import annotations

import numpy as np

from synth_assets.plugin_api import BudgetedSteps, PrivateOptimizer

# DP-SGD's noise shrinks against the signal as batches grow, so a private model takes this many samples a step
# (expected, under Poisson sampling) unless train.batch_size says otherwise
PRIVATE_BATCH = 512
IGNORE = -100


def register_conv1d_norms() -> None:
    """transformers' Conv1D computes x @ W + b: a Linear whose weight is stored transposed, so its per-sample
    gradient norms are a Linear's."""
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.grad_sample.linear import compute_linear_norm_sample
    from transformers.pytorch_utils import Conv1D

    GradSampleModuleFastGradientClipping.NORM_SAMPLERS.setdefault(Conv1D, compute_linear_norm_sample)


class PrivateSteps(BudgetedSteps):
    """The optimiser steps of DP-SGD over the training examples, one sample each (the budget's bookkeeping:
    PrivateOptimizer)."""

    def __init__(self, model, optimizer, dp, ledger, *, samples: int, batch: int, epsilon_cap: float | None, device,
                 seconds: float, max_epochs: int):
        register_conv1d_norms()
        self.model, self.device = model, device
        self.private = PrivateOptimizer.wrap(model, optimizer, dp, ledger, model_name="language model",
                                             samples=samples, batch=batch, epsilon_cap=epsilon_cap, device=device,
                                             seconds=seconds, max_epochs=max_epochs)
        self.optimizer = self.private.optimizer

    def step(self, examples) -> float | None:
        """One DP-SGD step on a Poisson sample of the examples; the sample's mean loss (None if it was empty)."""
        chosen = self.private.draw(len(examples))
        self.optimizer.zero_grad(set_to_none=True)
        per_sample = self.sample_losses(examples, chosen) if len(chosen) else None
        self.private.step(self.model, per_sample)
        return float(per_sample.detach().mean()) if per_sample is not None else None

    def sample_losses(self, examples, chosen: np.ndarray):
        """Each chosen example's mean loss over its own output tokens, cut to the longest one's length."""
        import torch

        mask = examples.attention_mask[chosen]
        length = int(mask.sum(axis=1).max())
        # contiguous: opacus's embedding norms view the indices flat
        ids = torch.as_tensor(np.ascontiguousarray(examples.input_ids[chosen, :length]), device=self.device)
        labels = torch.as_tensor(np.ascontiguousarray(examples.labels[chosen, :length]), device=self.device)
        attention = torch.as_tensor(np.ascontiguousarray(mask[:, :length]), device=self.device)
        positions = torch.arange(length, device=self.device).repeat(len(chosen), 1)
        logits = self.model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
        targets = labels[:, 1:]
        tokens = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                   ignore_index=IGNORE, reduction="none").reshape(targets.shape)
        counted = (targets != IGNORE).sum(dim=1).clamp(min=1)
        return tokens.sum(dim=1) / counted

    def settings(self) -> dict:
        return self.private.settings("sample (subject)")
