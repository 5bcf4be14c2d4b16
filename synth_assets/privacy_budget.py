"""Differential privacy's bookkeeping: what the stats and each training spent, and how many DP-SGD steps fit in
what is left of the budget.

A model's guarantee is (ε, δ) for one subject (a root row with all its records), and it adds up over:
- value protection: the stats stage's noisy counts and histograms, pure ε (plus the δ of its thresholds);
- training: every DP-SGD step of every model of the dataset (a tree trains one per table, on the same
  subjects), composed by opacus's accountants and turned into ε at the δ left for training: the lesser of the
  RDP accountant's bound and the PRV accountant's upper bound. Both bound the same steps, so the lesser holds;
  PRV's is about 7% tighter (19% more steps at ε 3), but it costs up to seconds a call and can fail, so the
  searches run on RDP and PRV only adds the steps RDP no longer allows.
The two are added (basic composition). A model reused or resumed carries its ledger on, so ε only grows.

opacus is imported lazily: only a backend that trains with DP needs it.
"""

from __future__ import annotations

import functools
import math
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
# PRV's cost grows with the distinct (noise, rate) pairs it composes: noises are floored to this grid for it (less
# noise: a larger ε, so the bound still holds), which keeps recalibrated noises to a few pairs
PRV_NOISE_GRID = 0.02
# its upper bound is the estimate plus at most this: twice opacus's default, at half the time a call
PRV_EPSILON_ERROR = 0.02


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
        """ε of every DP-SGD step taken (and of `extra` = (noise, rate, steps) more), at the training's δ: the lesser
        of the RDP and the PRV accountants' bounds."""
        return min(self._rdp_epsilon(extra), _prv_epsilon(self._steps(extra), self.training_delta))

    def _rdp_epsilon(self, extra: tuple[float, float, int] | None = None) -> float:
        """The RDP accountant's bound alone: fast, so the searches run on it."""
        rdp = self._rdp(extra)
        if rdp is None:
            return 0.0
        import warnings

        from opacus.accountants.analysis import rdp as analysis

        with warnings.catch_warnings():  # "optimal order is the largest alpha": searches probe far-off settings
            warnings.filterwarnings("ignore", message="Optimal order")
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
        """How many more steps at this noise and rate keep the total ε at most `epsilon` (None: no cap). Counted by
        the RDP bound while it allows any; then by the PRV bound, which allows some more (a training that has used
        up RDP's count asks again, and goes on with PRV's)."""
        steps = self.rdp_steps_within(epsilon, noise_multiplier, sample_rate, most)
        if steps > 0 or epsilon is None:
            return steps
        room = epsilon - self.value_protection_epsilon()
        if room <= 0:
            return 0
        # PRV's steps beyond RDP's are about a fifth of those taken: the search starts at a tenth of them and ends
        # within 5% of its count (each PRV call can take a second)
        taken = sum(t.steps for t in self.training)
        return _last_within(lambda n: self.training_epsilon((noise_multiplier, sample_rate, n)) <= room, 0, most,
                            within=0.05, start=max(1, taken // 10))

    def rdp_steps_within(self, epsilon: float | None, noise_multiplier: float, sample_rate: float,
                         most: int = 10**9) -> int:
        """`steps_within` by the RDP bound alone (fast): 0 once a training has taken the steps RDP allows."""
        if epsilon is None:
            return most
        room = epsilon - self.value_protection_epsilon()
        if room <= 0:
            return 0
        return _last_within(lambda n: self._rdp_epsilon((noise_multiplier, sample_rate, n)) <= room, 0, most)

    def noise_for_steps(self, epsilon: float | None, sample_rate: float, steps: int,
                        bounds: tuple[float, float], tightness: float | None = None) -> tuple[float, float | None]:
        """The least noise multiplier within `bounds` at which `steps` more steps keep the total ε at most about
        `epsilon` (the most noise when even that does not; the least without a cap), and the ratio it searched by.
        A choice, not the guarantee: `steps_within` counts the steps that keep within the budget at whatever noise
        is chosen. The search runs on the RDP bound scaled by `tightness`, the lesser bound's ratio to it; None:
        measured here at the noise RDP alone would choose (one PRV call), and returned (None where not even the most
        noise fits: PRV's cost grows with the steps, and it is not asked)."""
        low, high = bounds
        if epsilon is None:
            return low, tightness
        room = epsilon - self.value_protection_epsilon()

        def least(scale: float) -> float:
            fits = lambda noise: self._rdp_epsilon((noise, sample_rate, steps)) * scale <= room  # noqa: E731
            lo, hi = low, high
            if not fits(hi):
                return hi
            if fits(lo):
                return lo
            for _ in range(20):  # ε falls as the noise grows: bisect to within 2%
                if hi / lo < 1.02:
                    break
                middle = (lo * hi) ** 0.5
                lo, hi = (lo, middle) if fits(middle) else (middle, hi)
            return hi

        if tightness is None:
            by_rdp = least(1.0)
            if by_rdp >= high:  # not even the most noise fits these steps
                return by_rdp, None
            tightness = self.tightness(by_rdp, sample_rate, steps)
        return least(tightness), tightness

    def tightness(self, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """The lesser bound's ratio to the RDP bound with `steps` more steps (one PRV call): about the same at the
        noises and counts nearby, so searches scale the fast RDP bound by it."""
        rdp = self._rdp_epsilon((noise_multiplier, sample_rate, steps))
        return self.training_epsilon((noise_multiplier, sample_rate, steps)) / rdp if rdp > 0 else 1.0

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

    def _steps(self, extra) -> list[tuple[float, float, int]]:
        """(noise, rate, steps) of every step taken, and of `extra`."""
        entries = [(t.noise_multiplier, t.sample_rate, t.steps) for t in self.training]
        if extra is not None and extra[2] > 0:
            entries.append(extra)
        return entries

    def _rdp(self, extra):
        entries = self._steps(extra)
        if not entries:
            return None
        return sum(steps * _step_rdp(q, sigma) for sigma, q, steps in entries)


def _last_within(fits, low: int, most: int, within: float = 0.0, start: int = 1) -> int:
    """The largest count in [low, most] that `fits` (which holds up to some count and fails beyond it), or one
    short of it by at most the share `within`: a count that fits, never one that does not; `low` when none above
    it does. Doubling, then bisection."""
    high = min(max(low, start, 1), most)
    while high < most and fits(high):
        low, high = high, high * 2
    high = min(high, most)
    if high > low and high == most and fits(high):
        return most
    while high - low > max(1, int(low * within)):
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _prv_epsilon(entries: list[tuple[float, float, int]], delta: float) -> float:
    """opacus's PRV accountant's upper bound on ε of these steps, or infinity where it fails (it can, at some
    settings: "Discrete mean differs"), so the RDP bound stands alone."""
    if not entries:
        return 0.0
    merged: dict[tuple[float, float], int] = {}
    for sigma, q, steps in entries:
        key = (math.floor(sigma / PRV_NOISE_GRID) * PRV_NOISE_GRID, q)
        merged[key] = merged.get(key, 0) + steps
    if any(sigma <= 0 for sigma, _ in merged):
        return math.inf
    return _prv_composed(tuple(sorted((sigma, q, steps) for (sigma, q), steps in merged.items())), delta)


@functools.lru_cache(maxsize=512)
def _prv_composed(history: tuple[tuple[float, float, int], ...], delta: float) -> float:
    import warnings

    from opacus.accountants import PRVAccountant

    accountant = PRVAccountant()
    accountant.history = list(history)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(accountant.get_epsilon(delta, eps_error=PRV_EPSILON_ERROR))
    except Exception:  # noqa: BLE001 - any failure of the numerical composition leaves the RDP bound
        return math.inf


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
