"""Training: AdamW with a plateau schedule, early stopping on validation loss keeping the best
weights, a time budget, and three checkpoint strategies.

- reset: start from fresh weights;
- reuse: start from the last finished model's weights (fine-tuning), with a fresh optimizer;
- resume: continue an interrupted training where it stopped: weights, optimizer, schedule, epoch and
  early-stopping counters. Every epoch writes that state to `resume_dir`, so a killed run loses at
  most one epoch; a finished run leaves it in the model folder, so training can also be extended.

Weights are written with safetensors; optimizer state with torch.save and read back with
`weights_only=True`, so no checkpoint can run code when loaded.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synth_assets.plugin_api import (IncompatibleModel, ProgressRecord, SynthError, TrainRequest, adamw, atomic_dir,
                                     budget_spent, continue_ledger, recover_dir, save_ledger)
from synth_tabular_argn.private_training import LEARNING_RATE_SCALE, TREE_BATCH_SCALE, PrivateSteps, Subjects

# With flexible generation, this share of batches sees a random column order (so any columns can
# condition the rest); the others see the data order, which unconditional generation uses (pure random
# order learned the data order clearly worse: bench/RESULTS.md, "Design measurements").
RANDOM_ORDER_SHARE = 0.5
STATE_FILE = "training_state.pt"
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "weights.safetensors"


@dataclass
class Progress:
    epoch: int = 0
    best_epoch: int = 0
    best_loss: float = float("inf")
    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # batch size, learning rate and dropout, given or chosen


@dataclass
class Privacy:
    """What a DP training needs beyond the options: the ledger it adds its steps to, the ε it may bring the total
    to, and which subject each training row belongs to (None: each row is one)."""

    ledger: object  # plugin_api.PrivacyLedger, shared by the models of a tree
    model_name: str
    max_epsilon: float | None
    epsilon_cap: float | None
    subject_ids: np.ndarray | None
    total_subjects: int
    in_tree: bool = False  # one of a tree's models (they take larger batches)


def fit(model, train_tokens: np.ndarray, valid_tokens: np.ndarray, groups: list[list[int]], request: TrainRequest,
        out_dir: Path, config: dict, privacy: Privacy | None = None) -> tuple[Progress, str, float]:
    """Train `model` in place and write its checkpoint to `out_dir`. Returns (progress, why it stopped, seconds).

    `config` (the network's and the backend's settings) is written beside every checkpoint, the resumable
    ones included. With `privacy`, DP-SGD (private_training.py): Poisson-sampled subjects, clipped and noised,
    until the time, the epochs or the privacy budget runs out; the ledger is saved with every checkpoint.

    The caller seeds torch before building `model`, so that its initial weights are reproducible too."""
    import torch
    from safetensors.torch import load_file

    from synth_tabular_argn.model import default_batch_size, default_dropout, default_learning_rate, set_dropout

    options = request.options
    given = int(config.get("given", 0))  # leading sub-columns that are always given (a sequence's context)
    started = time.perf_counter()
    budget = options.max_training_time * 60.0
    device = model.owner.device
    # narrow integer tensors; a batch is widened to int64 only when it is used
    train = torch.as_tensor(train_tokens, device=device)
    valid = torch.as_tensor(valid_tokens, device=device)
    scale = TREE_BATCH_SCALE if privacy is not None and privacy.in_tree else 1
    batch = options.batch_size or default_batch_size(len(train)) * scale
    # DP-SGD's noise regularizes as it is: dropout on top only hides more of the signal (rwm5yr's years at ε 4,
    # 5 minutes: accuracy 0.913 and coherence 0.884 without it, 0.871 and 0.710 with the sequences' 0.5)
    dropout = options.dropout if options.dropout is not None else 0.0 if privacy else default_dropout(len(train))
    set_dropout(model, dropout)
    learning_rate = options.learning_rate or default_learning_rate(batch) * (LEARNING_RATE_SCALE if privacy else 1)
    optimizer = adamw(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    shuffler = torch.Generator(device="cpu").manual_seed(options.seed or 0)
    state = Progress()
    best_weights = None

    source = _checkpoint_source(request, model)
    if options.model_state == "reuse" and source is not None:
        model.load_state_dict(load_file(str(source / BEST_WEIGHTS)))
    elif options.model_state == "resume" and source is not None:
        model.load_state_dict(load_file(str(source / LAST_WEIGHTS)))
        best_weights = load_file(str(source / BEST_WEIGHTS))
        saved = torch.load(source / STATE_FILE, weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        shuffler.set_state(saved["shuffler"])
        state = Progress(**json.loads((source / "progress_state.json").read_text()))
    state.settings = {"batch_size": batch, "learning_rate": learning_rate, "dropout": dropout}
    private = None
    if privacy is not None:
        if source is not None:  # what the weights trained on before counts too
            continue_ledger(privacy.ledger, source)
        budget_spent(privacy.ledger, privacy.max_epsilon)
        # a subject's records come as one sample: a batch of `batch` rows holds about this many subjects
        subjects = Subjects.of(privacy.subject_ids, len(train))
        per_subject = len(train) / max(len(subjects), 1)
        private = PrivateSteps(model, optimizer, options.differential_privacy, privacy.ledger,
                               model_name=privacy.model_name, subjects=subjects,
                               total_subjects=privacy.total_subjects, batch_subjects=max(1, round(batch / per_subject)),
                               epsilon_cap=privacy.epsilon_cap, given=given, device=device,
                               seconds=budget - (time.perf_counter() - started),
                               max_epochs=options.max_epochs - state.epoch)
        budget_spent(privacy.ledger, privacy.epsilon_cap, private.steps_left)
        optimizer = private.optimizer
        state.settings.update(private.settings())
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    if options.model_state == "resume" and source is not None:
        plateau.load_state_dict(saved["plateau"])

    data_order = torch.arange(model.n_columns, device=device)
    group_tensors = [torch.tensor(g, device=device) for g in groups]
    stopped = "max epochs"
    out_of_budget = private is not None and private.exhausted
    for epoch in range(state.epoch + 1, options.max_epochs + 1):
        if out_of_budget:
            break
        model.train()
        epoch_started = time.perf_counter()
        permutation = torch.randperm(len(train), generator=shuffler).to(device)
        total, seen, out_of_time = 0.0, 0, False
        steps = private.steps_per_epoch if private else -(-len(train) // batch)
        for step in range(steps):
            flexible = options.flexible_generation and torch.rand(1, generator=shuffler).item() < RANDOM_ORDER_SHARE
            order = _random_order(group_tensors, shuffler) if flexible else data_order
            if private is not None:
                # DP-SGD knows its end, the time or the privacy budget: its rate follows a cosine down to a tenth,
                # averaging out the noise of its last steps (diamonds, 5 minutes at ε 4: accuracy 0.939 against
                # 0.927 at a constant rate)
                done = max((time.perf_counter() - started) / budget, private.spent_share())
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))
                loss_sum, rows = private.step(train, order)
            else:
                batch_rows = train[permutation[step * batch : (step + 1) * batch]].long()
                loss = model.loss(batch_rows, order, skip=given)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum, rows = float(loss.detach()) * len(batch_rows), len(batch_rows)
            total += loss_sum
            seen += rows
            if private is not None and private.exhausted:
                out_of_budget = True
                break
            if time.perf_counter() - started > budget:
                out_of_time = True
                break
        # validated in the data order: the order unconditional generation draws in
        checked = valid
        if out_of_time:
            # past the budget, validate on as many rows as take about a tenth of it (reckoning a third of
            # a training step's time per row), so that a slow network does not overshoot by a whole pass;
            # a network whose full validation fits in that time is validated as always
            per_row = (time.perf_counter() - epoch_started) / max(seen, 1) / 3
            checked = valid[: max(batch * 8, int(0.1 * budget / max(per_row, 1e-9)))]
        # a private model is judged, and kept, with its weights averaged over its steps
        with private.averaged(model) if private is not None else nullcontext():
            val_loss = evaluate(model, checked, data_order, batch * 8, given) if len(checked) else total / max(seen, 1)
            better = val_loss < state.best_loss - 1e-4
            if better:
                best_weights = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        plateau.step(val_loss)
        record = {"epoch": epoch, "train_loss": total / max(seen, 1), "validation_loss": val_loss,
                  "seconds": round(time.perf_counter() - started, 2), "learning_rate": optimizer.param_groups[0]["lr"]}
        state.history.append(record)
        state.epoch = epoch
        if better:
            state.best_loss, state.best_epoch = val_loss, epoch
        if request.progress:
            request.progress(ProgressRecord(**record))
        if out_of_budget:
            stopped = "privacy budget"
            break
        if out_of_time:
            stopped = "time budget"
            break
        if epoch - state.best_epoch >= options.early_stopping_patience:
            stopped = "converged"
            break
        if request.resume_dir is not None:
            with atomic_dir(request.resume_dir) as tmp:
                _save_state(tmp, config, model, best_weights, optimizer, plateau, shuffler, state, privacy)

    if private is not None:
        state.settings.update(private.settings())  # the noise the steps took
        private.close()
    if best_weights is None:
        if privacy is not None and out_of_budget:
            raise SynthError("the privacy budget allowed no training step",
                             hint="raise train.differential_privacy.max_epsilon or noise_multiplier, or lower "
                                  "value_protection_epsilon")
        raise SynthError("training ended before one epoch finished",
                         hint="raise train.max_training_time or train.max_epochs")
    _save_state(out_dir, config, model, best_weights, optimizer, plateau, shuffler, state, privacy)
    if request.resume_dir is not None:
        shutil.rmtree(request.resume_dir, ignore_errors=True)  # finished: nothing left to resume
    return state, stopped, time.perf_counter() - started


def _random_order(groups, generator):
    """A random order of columns, each column's sub-columns kept together and in their own order."""
    import torch

    return torch.cat([groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()])


def evaluate(model, rows, order, batch: int, skip: int = 0) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch].long()
            total += float(model.loss(part, order, skip=skip)) * len(part)
    return total / len(rows)


def continued_config(request: TrainRequest) -> tuple[Path, dict] | None:
    """The checkpoint to reuse or resume from, with its network's config; None when starting anew."""
    options = request.options
    if options.model_state == "reset":
        return None
    if options.model_state == "resume" and request.resume_dir is not None:
        # a run killed while replacing its state has left it aside as `.<resume_dir>.old`: put it back
        recover_dir(request.resume_dir)
    candidates = [request.resume_dir] if options.model_state == "resume" else []
    candidates.append(request.previous_model)
    needed = STATE_FILE if options.model_state == "resume" else BEST_WEIGHTS
    for folder in candidates:
        if folder is not None and (Path(folder) / needed).is_file():
            return Path(folder), json.loads((Path(folder) / "config.json").read_text())
    return None


def _checkpoint_source(request: TrainRequest, model) -> Path | None:
    """The folder to reuse or resume from, checked against the model's shape; None when starting anew."""
    continued = continued_config(request)
    if continued is None:
        return None  # nothing to reuse or resume yet: a fresh start
    folder, config = continued
    if not model.same_shape(config):
        raise IncompatibleModel(
            f"cannot {request.options.model_state} the last model: the data's encoding or the model size changed",
            hint="set train.model_state: reset to train a new model")
    return folder


def _save_state(folder: Path, config: dict, model, best_weights, optimizer, plateau, shuffler, state: Progress,
                privacy: Privacy | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    if privacy is not None:  # every step taken so far, so a resumed training continues the count
        save_ledger(privacy.ledger, folder)
    optimizer = getattr(optimizer, "original_optimizer", optimizer)  # opacus's wraps the plain one
    save_file(best_weights, str(folder / BEST_WEIGHTS))
    save_file({k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}, str(folder / LAST_WEIGHTS))
    torch.save({"optimizer": optimizer.state_dict(), "plateau": plateau.state_dict(),
                "shuffler": shuffler.get_state()}, folder / STATE_FILE)
    (folder / "progress_state.json").write_text(json.dumps(state.__dict__))
    (folder / "config.json").write_text(json.dumps(config))
