"""DP-SGD for the language model (opacus): one sample (a subject: a root row with all its records) is one
training example and one clipped unit, drawn by Poisson sampling; Gaussian noise on the sum; every step counted
in the dataset's privacy ledger, which stops training before ε would pass the budget.

- Ghost clipping (opacus's GradSampleModuleFastGradientClipping): per-sample gradient norms layer by layer,
  without per-sample gradients. transformers' GPT-2 writes its projections as `Conv1D` (a Linear with its weight
  transposed): the same norm as a Linear's, registered here.
- From scratch, GPT-2's output layer is untied from its token embeddings (opacus cannot clip a parameter two
  layers share), and the positions are passed per sample (opacus reads a batch size of 1 from HF's defaults).
- With LoRA only the adapters train (Linear layers), the base model stays frozen.
- Each sample's loss is the mean over its own output tokens: samples never weigh on each other's gradients.
- The noise and the sampling draw from the operating system's entropy, never from train.seed.
"""

from __future__ import annotations

import secrets
import warnings

import numpy as np

# DP-SGD's noise shrinks against the signal as batches grow, so a private model takes this many samples a step
# (expected, under Poisson sampling) unless train.batch_size says otherwise
PRIVATE_BATCH = 64
IGNORE = -100


def register_conv1d_norms() -> None:
    """transformers' Conv1D computes x @ W + b: a Linear whose weight is stored transposed, so its per-sample
    gradient norms are a Linear's."""
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.grad_sample.linear import compute_linear_norm_sample
    from transformers.pytorch_utils import Conv1D

    GradSampleModuleFastGradientClipping.NORM_SAMPLERS.setdefault(Conv1D, compute_linear_norm_sample)


class PrivateSteps:
    """The optimiser steps of DP-SGD over the training examples (one sample each)."""

    def __init__(self, model, optimizer, dp, ledger, *, samples: int, batch: int, epsilon_cap: float | None, device):
        import torch
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizerFastGradientClipping

        register_conv1d_norms()
        self.model, self.dp, self.ledger, self.device = model, dp, ledger, device
        self.sample_rate = min(1.0, batch / max(samples, 1))
        self.expected = max(1, round(self.sample_rate * samples))
        self.samples = samples
        self.steps_per_epoch = max(1, round(1 / self.sample_rate))
        self.steps_left = ledger.steps_within(epsilon_cap, dp.noise_multiplier, self.sample_rate)
        self.module = GradSampleModuleFastGradientClipping(model, max_grad_norm=dp.max_grad_norm,
                                                           use_ghost_clipping=True, loss_reduction="mean")
        noise = torch.Generator(device=device).manual_seed(secrets.randbits(63))
        self.optimizer = DPOptimizerFastGradientClipping(
            optimizer, noise_multiplier=dp.noise_multiplier, max_grad_norm=dp.max_grad_norm,
            expected_batch_size=self.expected, loss_reduction="mean", generator=noise)
        self.sampler = torch.Generator().manual_seed(secrets.randbits(63))

    @property
    def exhausted(self) -> bool:
        return self.steps_left <= 0

    def step(self, examples) -> float | None:
        """One DP-SGD step on a Poisson sample of the examples; the sample's mean loss (None if it was empty)."""
        import torch
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        chosen = (torch.rand(len(examples), generator=self.sampler) < self.sample_rate).nonzero().flatten().numpy()
        self.optimizer.zero_grad(set_to_none=True)
        loss = None
        if len(chosen) == 0:  # an empty Poisson batch is still a step: noise alone
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        else:
            per_sample = self.sample_losses(examples, chosen)
            with warnings.catch_warnings():  # torch notes the hooks fire on outputs: opacus's design, not a fault
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                DPTensorFastGradientClipping(self.module, self.optimizer, per_sample, "mean").backward()
            loss = float(per_sample.detach().mean())
        self.optimizer.step()
        self.ledger.record_steps("language model", self.dp.noise_multiplier, self.sample_rate)
        self.steps_left -= 1
        return loss

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
        return {"differential_privacy": {"noise_multiplier": self.dp.noise_multiplier,
                                         "max_grad_norm": self.dp.max_grad_norm, "sample_rate": round(self.sample_rate, 6),
                                         "expected_batch_samples": self.expected, "unit": "sample (subject)"}}

    def close(self) -> None:
        """Take opacus's hooks off the model, so saving and generation see the plain model."""
        self.module._close()
