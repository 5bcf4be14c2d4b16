"""Differential privacy's bookkeeping: what the stats and each training spent, and how many DP-SGD steps fit in
what is left of the budget.

A model's guarantee is (ε, δ) for one subject (a root row with all its records), and it adds up over:
- value protection: the stats stage's noisy counts and histograms, pure ε (plus the δ of its thresholds);
- training: every DP-SGD step of every model of the dataset (a tree trains one per table, on the same
  subjects), composed with opacus's RDP accountant and turned into ε at the δ left for training.
The two are added (basic composition). A model reused or resumed carries its ledger on, so ε only grows.

opacus is imported lazily: only a backend that trains with DP needs it.
"""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

from pydantic import BaseModel, Field

from synth_assets.errors import SynthError

# δ's share for the stats' thresholds; training gets the rest, so the total is the configured δ
VALUE_PROTECTION_DELTA_SHARE = 0.5
# a DP training's batch shrinks until its budget allows this many passes over the data, but not below this many
# subjects a step (a tree's small root model at ε 1 could take no step of its default batch)
MIN_PRIVATE_EPOCHS = 3
MIN_PRIVATE_BATCH = 16
LEDGER_FILE = "privacy.json"  # beside a checkpoint


def default_delta(subjects: int) -> float:
    """1/n^1.2: well below 1/n, so that no one subject is likely to be an exception to the guarantee."""
    return 1.0 / max(subjects, 2) ** 1.2


def new_release() -> str:
    """An id for one run of the stats: a model counts each release's ε once, however often it is reused."""
    return uuid.uuid4().hex[:12]


class TrainingSteps(BaseModel):
    """A run of DP-SGD steps with the same noise and sampling rate (opacus's accountant history entry)."""

    run: str = ""  # the training run that took them: ledgers of two runs merge without counting a step twice
    model: str  # which model of the dataset (a table's, or the language model)
    noise_multiplier: float
    sample_rate: float
    steps: int


class PrivacyLedger(BaseModel):
    """Everything a model's ε is made of; saved beside its checkpoint as `privacy.json`."""

    delta: float = Field(description="δ of the whole guarantee")
    value_protection: dict[str, float] = Field(
        default_factory=dict, description="stats release -> ε its value protection spent")
    value_protection_delta: float = 0.0
    training: list[TrainingSteps] = Field(default_factory=list)
    run: str = Field(default_factory=new_release, description="the training run now adding steps")

    @property
    def training_delta(self) -> float:
        return self.delta - self.value_protection_delta

    def value_protection_epsilon(self) -> float:
        return float(sum(self.value_protection.values()))

    def training_epsilon(self, extra: tuple[float, float, int] | None = None) -> float:
        """ε of every DP-SGD step taken (and of `extra` = (noise, rate, steps) more), at the training's δ."""
        rdp = self._rdp(extra)
        if rdp is None:
            return 0.0
        from opacus.accountants.analysis import rdp as analysis

        epsilon, _ = analysis.get_privacy_spent(orders=_orders(), rdp=rdp, delta=self.training_delta)
        return float(epsilon)

    def epsilon(self) -> float:
        return self.value_protection_epsilon() + self.training_epsilon()

    def record_stats(self, release: str, epsilon: float, delta: float) -> None:
        """Count a stats release's ε once (a resumed or reused model may see the same release again)."""
        if release not in self.value_protection:
            self.value_protection[release] = epsilon
            self.value_protection_delta += delta

    def record_steps(self, model: str, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        last = self.training[-1] if self.training else None
        key = (self.run, model, noise_multiplier, sample_rate)
        if last is not None and (last.run, last.model, last.noise_multiplier, last.sample_rate) == key:
            last.steps += steps
        elif steps:
            self.training.append(TrainingSteps(run=self.run, model=model, noise_multiplier=noise_multiplier,
                                               sample_rate=sample_rate, steps=steps))

    def merge(self, other: "PrivacyLedger") -> None:
        """Take in what `other` (the ledger of a checkpoint this training continues from) spent: its stats
        releases, and its steps, the most a run and model took where both hold them."""
        for release, epsilon in other.value_protection.items():
            self.value_protection.setdefault(release, epsilon)
        self.value_protection_delta = max(self.value_protection_delta, other.value_protection_delta)
        self.delta = max(self.delta, other.delta)
        mine = {(t.run, t.model, t.noise_multiplier, t.sample_rate): t for t in self.training}
        for steps in other.training:
            key = (steps.run, steps.model, steps.noise_multiplier, steps.sample_rate)
            if key in mine:
                mine[key].steps = max(mine[key].steps, steps.steps)
            else:
                self.training.insert(0, steps.model_copy())

    def steps_within(self, epsilon: float | None, noise_multiplier: float, sample_rate: float,
                     most: int = 10**9) -> int:
        """How many more steps at this noise and rate keep the total ε at most `epsilon` (None: no cap)."""
        if epsilon is None:
            return most
        room = epsilon - self.value_protection_epsilon()
        if room <= 0 or self.training_epsilon() > room:
            return 0
        low, high = 0, 1
        while high < most and self.training_epsilon((noise_multiplier, sample_rate, high)) <= room:
            low, high = high, high * 2
        high = min(high, most)
        while high - low > 1:  # ε grows with every step: the last count still within the budget
            middle = (low + high) // 2
            if self.training_epsilon((noise_multiplier, sample_rate, middle)) <= room:
                low = middle
            else:
                high = middle
        if high == most and self.training_epsilon((noise_multiplier, sample_rate, high)) <= room:
            return most
        return low

    def noise_for_steps(self, epsilon: float | None, sample_rate: float, steps: int,
                        bounds: tuple[float, float]) -> float:
        """The least noise multiplier within `bounds` at which `steps` more steps keep the total ε at most `epsilon`
        (the most noise when even that does not; the least without a cap)."""
        low, high = bounds
        if epsilon is None:
            return low
        room = epsilon - self.value_protection_epsilon()
        fits = lambda noise: self.training_epsilon((noise, sample_rate, steps)) <= room  # noqa: E731
        if not fits(high):
            return high
        if fits(low):
            return low
        for _ in range(20):  # ε falls as the noise grows: bisect to within 2%
            if high / low < 1.02:
                break
            middle = (low * high) ** 0.5
            low, high = (low, middle) if fits(middle) else (middle, high)
        return high

    def batch_within(self, epsilon: float | None, noise_multiplier: float, samples: int, batch: int,
                     epochs: float = MIN_PRIVATE_EPOCHS, least: int = MIN_PRIVATE_BATCH) -> int:
        """`batch` halved until the budget allows `epochs` passes over the `samples` (or the batch reaches `least`).
        A step's privacy cost grows about with the square of its sampling rate, so smaller batches buy passes on a
        tight budget (each step noisier, more of them: the same signal to first order)."""
        while batch > least:
            rate = min(1.0, batch / max(samples, 1))
            if self.steps_within(epsilon, noise_multiplier, rate, most=int(epochs / rate) + 1) >= epochs / rate:
                break
            batch = max(least, batch // 2)
        return batch

    def summary(self) -> dict:
        """What the model asset, the report and `show` print."""
        return {"epsilon": round(self.epsilon(), 4), "delta": float(f"{self.delta:.3g}"),
                "epsilon_training": round(self.training_epsilon(), 4),
                "epsilon_value_protection": round(self.value_protection_epsilon(), 4),
                "steps": sum(t.steps for t in self.training)}

    def _rdp(self, extra):
        entries = [(t.noise_multiplier, t.sample_rate, t.steps) for t in self.training]
        if extra is not None and extra[2] > 0:
            entries.append(extra)
        if not entries:
            return None
        return sum(steps * _step_rdp(q, sigma) for sigma, q, steps in entries)


def _orders() -> list[float]:
    from opacus.accountants import RDPAccountant

    return RDPAccountant.DEFAULT_ALPHAS


@functools.lru_cache(maxsize=256)
def _step_rdp(q: float, sigma: float):
    """One step's RDP at every order (opacus's analysis); steps add linearly, so the searches reuse it."""
    from opacus.accountants.analysis import rdp as analysis

    return analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=_orders())


def budget_share(total: float | None, spent_before: float, share: float) -> float | None:
    """ε a model of a tree may bring the total to: what was spent before it, plus its share of what is left
    (the last model's share is 1: the whole budget)."""
    if total is None:
        return None
    return spent_before + max(total - spent_before, 0.0) * min(max(share, 0.0), 1.0)


def start_ledger(stats, *, dataset: str | None = None) -> PrivacyLedger:
    """A training run's ledger, starting from the stats' value protection. Refuses stats that were not made with
    differential privacy: their unprotected values would reach the model, and no ε would hold."""
    protection = stats.privacy
    if protection.mode != "differential_privacy":
        raise SynthError("train.differential_privacy is set, but the stats were computed without it", dataset=dataset,
                         hint="materialize the stats again (they then spend value_protection_epsilon)")
    ledger = PrivacyLedger(delta=protection.delta_total)
    ledger.record_stats(protection.release, protection.epsilon, protection.delta)
    return ledger


def continue_ledger(ledger: PrivacyLedger, source: Path, *, dataset: str | None = None) -> None:
    """Add to `ledger` what the checkpoint a training continues from (model_state reuse or resume) spent. Refuses
    weights trained without differential privacy: they are not private, and no ε would hold."""
    path = Path(source) / LEDGER_FILE
    if not path.is_file():
        raise SynthError("the model to continue from was trained without differential privacy, so its weights are "
                         "not private", dataset=dataset, hint="set train.model_state: reset")
    ledger.merge(PrivacyLedger.model_validate_json(path.read_text()))


def save_ledger(ledger: PrivacyLedger, folder: Path) -> None:
    (Path(folder) / LEDGER_FILE).write_text(ledger.model_dump_json(indent=1))


def budget_spent(ledger: PrivacyLedger, max_epsilon: float | None, steps_left: int | None = None, *,
                 dataset: str | None = None) -> None:
    """Refuse to train when nothing of the budget is left (a model reused until ε reached max_epsilon), or when
    not one more step fits in it (`steps_left`)."""
    if max_epsilon is None:
        return
    spent = ledger.epsilon()
    if spent >= max_epsilon or steps_left == 0:
        before = "the model to continue from has used" if ledger.training else "the stats have used"
        raise SynthError(f"the privacy budget is spent: {before} ε {spent:.3f} of train.differential_privacy."
                         f"max_epsilon {max_epsilon}, and not one more training step fits in it", dataset=dataset,
                         hint="set train.model_state: reset to train a new model, raise max_epsilon or "
                              "noise_multiplier, or lower value_protection_epsilon")
