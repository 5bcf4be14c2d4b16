"""DP-SGD's machinery, the same for every backend that trains with differential privacy (through plugin_api):
opacus's ghost clipping around the model and the optimiser, Poisson sampling, and one private step.

- Ghost clipping (opacus's GradSampleModuleFastGradientClipping): each sample's gradient norm comes from each
  layer's inputs and output gradients, without holding per-sample gradients; a second backward pass applies the
  clipping factors. A layer it has no norm for falls back to per-sample gradients; a parameter two layers share
  cannot be clipped (opacus refuses it), so backends untie such weights.
- A sample is what the backend hands in as one row of `per_sample` losses: a subject.
- The noise and the sampling draw from the operating system's entropy, never from a configured seed: knowing
  either would undo the guarantee.

opacus and torch are imported when a private training starts, never when the code location loads.
"""

from __future__ import annotations

import math
import secrets
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from synth_assets.privacy_budget import MIN_PRIVATE_EPOCHS


GRAM_EMBEDDING_MAX_TOKENS = 256  # longer inputs fall back to opacus's own embedding norms
# `noise_multiplier: null` chooses between these: the least noise that spends the budget in the time training has,
# but no more than PREFERRED_NOISE unless MIN_PRIVATE_EPOCHS passes need more. Where the budget, not the clock, ends
# training, more noise over more steps gained nothing beyond the runs' noise (5 minutes at ε 4, judge's accuracy:
# diamonds 0.897 against 0.899 at 1.5, rwm5yr 0.875 against 0.865); where the clock ends it, 1.5 leaves budget
# unspent (diamonds at ε 8 spent 4.3, 0.902 against 0.921 chosen). bench/RESULTS.md, "Differential privacy"
AUTO_NOISE = (0.3, 20.0)
PREFERRED_NOISE = 1.5
FIRST_CALIBRATION = 10  # steps before the auto noise first looks at the seconds per step
RECALIBRATE_EVERY = 100
# private weights are averaged over about the last 1 / (1 - decay) steps (5 minutes at ε 4, judge's accuracy:
# diamonds 0.888 against 0.882 without, rwm5yr 0.875 against 0.871; one run each, side by side)
WEIGHT_AVERAGE_DECAY = 0.99


def embedding_norms(layer, activations, backprops):
    """Each sample's gradient norm of an nn.Embedding, from its token ids and their output gradients: a sample's
    gradient row for token v sums the gradients of the positions holding v, so its squared norm is the sum of
    g_t·g_s over the pairs of positions holding the same token. A Gram matrix per sample: on the CPU about 50
    times faster than opacus's torch.unique over (sample, token) pairs, which took 70% of a TabularARGN child
    model's private step."""
    import torch
    from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample

    ids = activations[0].reshape(activations[0].shape[0], -1)
    if ids.shape[1] > GRAM_EMBEDDING_MAX_TOKENS:
        return compute_embedding_norm_sample(layer, activations, backprops)
    grads = backprops.reshape(ids.shape[0], ids.shape[1], -1)
    if layer.padding_idx is not None:  # the padding row gets no gradient
        grads = grads * (ids != layer.padding_idx).unsqueeze(-1).to(grads.dtype)
    if ids.shape[1] == 1:
        return {layer.weight: grads[:, 0].norm(dim=-1)}
    gram = torch.bmm(grads, grads.transpose(1, 2))
    same = (ids[:, :, None] == ids[:, None, :]).to(gram.dtype)
    return {layer.weight: (gram * same).sum(dim=(1, 2)).clamp(min=0).sqrt()}


class WeightAverage:
    """An exponential moving average of a model's trainable weights over its private steps. Averaging the noisy
    iterates is post-processing (it reads only weights DP-SGD already released), so it costs no privacy, and it
    averages out much of the noise each step adds. The decay warms up as (1 + t) / (10 + t), so that the first
    steps' random weights soon fade. A resumed training starts a new average from the weights it resumes.
    Validation and the kept checkpoint use the average; the steps go on from the model's own weights."""

    def __init__(self, decay: float = WEIGHT_AVERAGE_DECAY):
        self.decay, self.steps, self.weights = decay, 0, None

    def update(self, model) -> None:
        import torch

        self.steps += 1
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
        with torch.no_grad():
            if self.weights is None:
                self.weights = {n: p.detach().clone() for n, p in trained.items()}
                return
            decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
            for name, p in trained.items():
                self.weights[name].lerp_(p.detach(), 1 - decay)

    @contextmanager
    def swapped_in(self, model):
        """The model holds the averaged weights inside the block, its own again after it."""
        import torch

        if self.weights is None:
            yield
            return
        params = dict(model.named_parameters())
        own = {n: params[n].detach().clone() for n in self.weights}
        with torch.no_grad():
            for n, w in self.weights.items():
                params[n].copy_(w)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, w in own.items():
                    params[n].copy_(w)


@dataclass
class PrivateOptimizer:
    """A model and its optimiser wrapped for DP-SGD: Poisson sampling of its batches, every step counted in the
    dataset's privacy ledger, and the steps that fit its ε budget.

    With `noise_multiplier: null` the noise is chosen from the budget: the least noise that lets the steps this
    training has time for (and max_epochs allows) spend the budget by its end, but no more than PREFERRED_NOISE
    unless a budget that tight needs more for MIN_PRIVATE_EPOCHS passes. It starts from the noise that would spend
    the budget over max_epochs, and is recalibrated from the measured seconds per step after the first steps and
    every RECALIBRATE_EVERY steps; each step is counted at the noise it took."""

    module: object  # opacus's GradSampleModuleFastGradientClipping around the model
    optimizer: object  # opacus's DPOptimizerFastGradientClipping around the plain optimiser
    sampler: object  # a torch.Generator seeded from entropy
    sample_rate: float
    expected: int  # samples a step, on average
    ledger: object  # privacy_budget.PrivacyLedger
    model_name: str
    epsilon_cap: float | None
    noise: float
    auto: bool  # the noise is the budget's choice
    ceiling: float  # the most noise it may choose (the noise given, where it is fixed)
    seconds: float  # the time this training may take
    most_steps: int  # what max_epochs allows
    steps_left: int = 0
    steps_taken: int = 0
    started: float = 0.0
    tightness: float = 1.0  # the lesser ε bound's ratio to RDP's (privacy_budget.PrivacyLedger.tightness)
    prv_steps: bool = False  # RDP's steps are taken: the steps left are those the PRV bound adds
    average: WeightAverage = field(default_factory=WeightAverage)

    @classmethod
    def wrap(cls, model, optimizer, dp, ledger, *, model_name: str, samples: int, batch: int,
             epsilon_cap: float | None, device, seconds: float, max_epochs: int) -> "PrivateOptimizer":
        """`samples`: how many subjects there are (the sampling rate is batch / samples); `dp`: the dataset's
        DifferentialPrivacy section; `epsilon_cap`: the total ε this training may bring the ledger to."""
        import time

        import torch
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizerFastGradientClipping
        from torch import nn

        GradSampleModuleFastGradientClipping.NORM_SAMPLERS[nn.Embedding] = embedding_norms
        auto = dp.noise_multiplier is None
        # a budget too tight for the batch halves it (at the noise given, or the preferred one)
        batch = ledger.batch_within(epsilon_cap, dp.noise_multiplier or PREFERRED_NOISE, samples, batch)
        rate = min(1.0, batch / max(samples, 1))
        most_steps = max(1, round(max_epochs / rate))
        ceiling, noise = dp.noise_multiplier, dp.noise_multiplier
        passes = math.ceil(MIN_PRIVATE_EPOCHS / rate)
        if auto:
            ceiling, _ = ledger.noise_for_steps(epsilon_cap, rate, passes, (PREFERRED_NOISE, AUTO_NOISE[1]))
            noise, _ = ledger.noise_for_steps(epsilon_cap, rate, most_steps, (AUTO_NOISE[0], ceiling))
        # how much tighter the lesser bound is than RDP's there, measured once: recalibrations scale RDP by it, and
        # the share of the budget spent counts the steps PRV will add
        tightness = ledger.tightness(noise, rate, passes) if epsilon_cap is not None else 1.0
        expected = max(1, round(rate * samples))
        module = GradSampleModuleFastGradientClipping(model, max_grad_norm=dp.max_grad_norm, use_ghost_clipping=True,
                                                      loss_reduction="mean")
        generator = torch.Generator(device=device).manual_seed(secrets.randbits(63))
        wrapped = DPOptimizerFastGradientClipping(optimizer, noise_multiplier=noise, max_grad_norm=dp.max_grad_norm,
                                                  expected_batch_size=expected, loss_reduction="mean",
                                                  generator=generator)
        out = cls(module, wrapped, torch.Generator().manual_seed(secrets.randbits(63)), rate, expected, ledger,
                  model_name, epsilon_cap, noise, auto, ceiling, seconds, most_steps, started=time.perf_counter(),
                  tightness=tightness)
        out.steps_left = ledger.steps_within(epsilon_cap, noise, rate)
        return out

    @property
    def steps_per_epoch(self) -> int:
        return max(1, round(1 / self.sample_rate))

    @property
    def exhausted(self) -> bool:
        return self.steps_left <= 0

    def spent_share(self) -> float:
        """The share of the steps the budget allows that this training has taken (0 without a cap). While RDP's
        steps last, PRV's are reckoned: ε grows about with the square root of the steps, so a bound tighter by a
        factor t allows about 1/t² times the steps (the learning rate's schedule follows this share, and would
        otherwise sit at its floor for PRV's steps)."""
        planned = self.steps_taken + self.steps_left
        if not self.prv_steps:
            planned = planned / self.tightness ** 2
        return min(1.0, self.steps_taken / planned) if self.epsilon_cap is not None and planned > 0 else 0.0

    def draw(self, samples: int) -> np.ndarray:
        """A Poisson sample: each of `samples` subjects in this step's batch with the sampling rate."""
        import torch

        return (torch.rand(samples, generator=self.sampler) < self.sample_rate).nonzero().flatten().numpy()

    def step(self, model, per_sample) -> None:
        """One private step: `per_sample` holds each sampled subject's loss (None for an empty Poisson batch,
        which is still a step: noise alone). It is counted in the ledger at the noise it took."""
        import torch
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        if per_sample is None:
            for p in model.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        else:
            with warnings.catch_warnings():  # torch notes the hooks fire on outputs: opacus's design, not a fault
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                DPTensorFastGradientClipping(self.module, self.optimizer, per_sample, "mean").backward()
        self.optimizer.step()
        self.average.update(model)
        self.ledger.record_steps(self.model_name, self.noise, self.sample_rate)
        self.steps_left -= 1
        self.steps_taken += 1
        if self.steps_left <= 0:  # counted by the RDP bound: the PRV bound may allow some more
            self.steps_left = self.ledger.steps_within(self.epsilon_cap, self.noise, self.sample_rate)
            self.prv_steps = True
        if self.auto and (self.steps_taken == FIRST_CALIBRATION or self.steps_taken % RECALIBRATE_EVERY == 0):
            self.recalibrate()

    def recalibrate(self) -> None:
        """The least noise that lets the steps still to come spend what is left of the budget: as many steps as
        the time left holds at the seconds per step so far, and no more than max_epochs allows."""
        import time

        elapsed = time.perf_counter() - self.started
        per_step = elapsed / max(self.steps_taken, 1)
        coming = int(min(self.most_steps - self.steps_taken, max(self.seconds - elapsed, 0.0) / max(per_step, 1e-6)))
        if coming < 1:
            return
        # at the first calibration the ratio is measured again where training is headed, the steps the time holds
        # (PRV is tighter on more steps at less noise: measured at three passes it chose too little noise, and
        # diamonds' budget ended 70 of 300 seconds early)
        given = None if self.steps_taken == FIRST_CALIBRATION else self.tightness
        noise, measured = self.ledger.noise_for_steps(self.epsilon_cap, self.sample_rate, coming,
                                                      (AUTO_NOISE[0], self.ceiling), given)
        self.tightness = measured or self.tightness
        if noise == self.noise:  # the steps counted for it still hold
            return
        if self.ledger.rdp_steps_within(self.epsilon_cap, noise, self.sample_rate) == 0:
            # the steps RDP allows are taken: the rest are PRV's at the noise they were counted at (another noise
            # would mean another PRV search, seconds every hundred steps)
            return
        self.noise = self.optimizer.noise_multiplier = noise
        self.steps_left = self.ledger.steps_within(self.epsilon_cap, self.noise, self.sample_rate)
        self.prv_steps = False  # RDP still allowed steps at this noise: they are what steps_within counted

    def settings(self, unit: str) -> dict:
        used = sorted({round(t.noise_multiplier, 3) for t in self.ledger.training if t.model == self.model_name})
        return {"differential_privacy": {
            "noise_multiplier": ("auto: " if self.auto else "") + ", ".join(str(n) for n in used) if used else self.noise,
            "max_grad_norm": self.optimizer.max_grad_norm, "sample_rate": round(self.sample_rate, 6),
            "expected_batch": self.expected, "unit": unit}}

    def close(self) -> None:
        """Take opacus's hooks off the model, so the checkpoint and generation see the plain model."""
        self.module._close()


class BudgetedSteps:
    """A backend's DP-SGD steps around its PrivateOptimizer (`self.private`): what its training loop asks of the
    budget. A backend adds its own `step` (how a batch of samples becomes per-sample losses) and `settings`."""

    private: PrivateOptimizer

    @property
    def steps_per_epoch(self) -> int:
        return self.private.steps_per_epoch

    @property
    def steps_left(self) -> int:
        return self.private.steps_left

    @property
    def exhausted(self) -> bool:
        return self.private.exhausted

    def spent_share(self) -> float:
        return self.private.spent_share()

    def averaged(self, model):
        """A block in which `model` holds its weights averaged over the private steps (for validation and the
        checkpoint)."""
        return self.private.average.swapped_in(model)

    def close(self) -> None:
        self.private.close()
