"""The training loop: AdamW over packed examples under a time budget, validation loss every epoch (or every tenth
of the budget, whichever comes first), early stopping, and the best weights kept.

Early stopping waits for `early_stopping_patience` validations without improvement and a tenth of the budget
since the best one: on small data an epoch takes seconds, and a language model's loss can stall for a while
before it drops again (rwm5yr at 10 minutes stopped after 75 s on a stall of three 5-second epochs).

The learning rate warms up, then follows a cosine down to a tenth over the budget: of time, or of `max_epochs`,
whichever runs out first. A budget-bound run thus ends at a low rate, where the loss settles.

`resume_dir` receives the best model after every validation, so a killed run continues from there
(`model_state: resume`); the optimizer starts afresh.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth_assets.plugin_api import (ProgressRecord, SynthError, TrainRequest, adamw, atomic_dir, budget_spent,
                                     save_ledger, write_json)
from synth_llm.assemblers import Examples
from synth_llm.private_training import PRIVATE_BATCH, PrivateSteps

WARMUP_STEPS = 20
FINAL_LR_SHARE = 0.1  # the cosine ends at this share of the learning rate
MAX_VALIDATION_EXAMPLES = 256  # enough to compare epochs; more only costs time
MIN_IMPROVEMENT = 1e-3
PATIENCE_SHARE = 0.1  # of the budget, at least, between the best validation and a stop for convergence
# on the CPU, more steps beat larger batches: diamonds at 1.5 minutes reached accuracy 0.82 with 2-4 examples a
# step, 0.75 with 16 (bench/RESULTS.md)
DEFAULT_BATCH = 4


@dataclass
class Outcome:
    epochs: int = 0
    best_epoch: int = 0
    best_loss: float = math.inf
    stopped_because: str = "max epochs"
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def validation_loss(model, examples: Examples, batch_size: int, device: str) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    n = min(len(examples), MAX_VALIDATION_EXAMPLES)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            rows = slice(start, min(n, start + batch_size))
            labels = torch.as_tensor(examples.labels[rows], device=device)
            out = model(input_ids=torch.as_tensor(examples.input_ids[rows], device=device),
                        attention_mask=torch.as_tensor(examples.attention_mask[rows], device=device), labels=labels)
            tokens = int((labels[:, 1:] != -100).sum())
            total += float(out.loss) * tokens
            count += tokens
    model.train()
    return total / max(count, 1)


def learning_rate_share(step: int, progress: float) -> float:
    """The share of the learning rate at `step`, with `progress` (0..1) of the budget spent."""
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    cosine = 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warmup * (FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * cosine)


@dataclass
class Privacy:
    """What a DP training needs beyond the options: the ledger it adds its steps to and the ε it may reach."""

    ledger: object  # plugin_api.PrivacyLedger
    epsilon_cap: float | None


def fit(model, train: Examples, valid: Examples, request: TrainRequest, save_best, device: str,
        history: list[dict] | None = None, spent: float = 0.0, privacy: Privacy | None = None) -> Outcome:
    """Train `model` in place; the best weights are loaded back at the end. `save_best(model, folder)` writes a
    checkpoint (for resuming). `spent`: seconds of the budget already taken (the tokenizer, the examples). With
    `privacy`, DP-SGD (private_training.py) over examples of one sample each, until the time, the epochs or the
    privacy budget runs out; the ledger is saved with every checkpoint."""
    import torch

    options = request.options
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = adamw(trainable, lr=options.learning_rate, weight_decay=0.01)
    batch = options.batch_size or (PRIVATE_BATCH if privacy else DEFAULT_BATCH)
    private = None
    if privacy is not None:
        private = PrivateSteps(model, optimizer, options.differential_privacy, privacy.ledger, samples=len(train),
                               batch=batch, epsilon_cap=privacy.epsilon_cap, device=device,
                               seconds=max(options.max_training_time * 60 - spent, 1.0), max_epochs=options.max_epochs)
        budget_spent(privacy.ledger, privacy.epsilon_cap, private.steps_left)
        optimizer = private.optimizer
    rng = np.random.default_rng(options.seed)
    budget = max(options.max_training_time * 60 - spent, 1.0)
    outcome = Outcome(history=list(history or []))
    first_epoch = len(outcome.history)
    best_state = None
    since_best = 0
    best_at = 0.0  # seconds into training of the best validation
    started = last_check = time.perf_counter()
    check_every = max(budget / 10, 5.0)
    train_losses: list[float] = []
    stop = None
    epoch = first_epoch  # validations so far: an epoch, or a tenth of the budget on large data
    passes = 0  # over the training data
    steps = 0
    while stop is None and not (private and private.exhausted):
        order = rng.permutation(len(train))
        in_epoch = private.steps_per_epoch if private else -(-len(order) // batch)
        for step in range(in_epoch):
            progress = max((time.perf_counter() - started) / budget, (passes + step / in_epoch) / options.max_epochs,
                           private.spent_share() if private else 0.0)  # DP-SGD ends where its budget does too
            for group in optimizer.param_groups:
                group["lr"] = options.learning_rate * learning_rate_share(steps, progress)
            if private is not None:
                loss = private.step(train)
            else:
                rows = order[step * batch : (step + 1) * batch]
                out = model(input_ids=torch.as_tensor(train.input_ids[rows], device=device),
                            attention_mask=torch.as_tensor(train.attention_mask[rows], device=device),
                            labels=torch.as_tensor(train.labels[rows], device=device))
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                loss = out.loss.item()
            steps += 1
            if loss is not None:
                train_losses.append(loss)
            now = time.perf_counter()
            end_of_epoch = step == in_epoch - 1
            passes += end_of_epoch
            out_of_budget = private is not None and private.exhausted
            if not (end_of_epoch or out_of_budget or now - last_check >= check_every or now - started >= budget):
                continue
            last_check = now
            epoch += 1
            # a private model is judged, and kept, with its weights averaged over its steps
            with private.averaged(model) if private is not None else contextlib.nullcontext():
                loss = validation_loss(model, valid, batch, device)
                outcome.history.append(ProgressRecord(
                    epoch=epoch, train_loss=float(np.mean(train_losses)), validation_loss=loss, seconds=now - started,
                    learning_rate=optimizer.param_groups[0]["lr"]).model_dump())
                train_losses = []
                if request.progress:
                    request.progress(ProgressRecord(**outcome.history[-1]))
                best = outcome.best_loss
                if loss < best - MIN_IMPROVEMENT * abs(best if math.isfinite(best) else 1):
                    outcome.best_loss, outcome.best_epoch, since_best, best_at = loss, epoch, 0, now - started
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                    if request.resume_dir is not None:
                        with atomic_dir(request.resume_dir) as tmp:
                            save_best(model, tmp)
                            write_json(outcome.history, Path(tmp) / "progress.json")
                            if privacy is not None:  # every step so far: a resumed training continues the count
                                save_ledger(privacy.ledger, Path(tmp))
                else:
                    since_best += 1
            if out_of_budget:
                stop = "privacy budget"
            elif since_best >= options.early_stopping_patience and now - started - best_at >= PATIENCE_SHARE * budget:
                stop = "converged"
            elif time.perf_counter() - started >= budget:
                stop = "time budget"
            elif passes >= options.max_epochs:
                stop = "max epochs"
            if stop:
                break
    if private is not None:
        private.close()
        if best_state is None:
            raise SynthError("the privacy budget allowed no training step", hint="raise train.differential_privacy."
                             "max_epsilon or noise_multiplier, or lower value_protection_epsilon")
    if best_state is not None:
        model.load_state_dict(best_state)
    outcome.epochs = epoch
    outcome.stopped_because = stop
    outcome.seconds = time.perf_counter() - started
    outcome.settings = {"batch_size": batch, "learning_rate": options.learning_rate,
                        "train_examples": len(train), "loss_tokens": train.loss_tokens,
                        **(private.settings() if private else {})}
    return outcome
