"""The privacy ledger's arithmetic: ε over DP-SGD steps (opacus's RDP and PRV accountants), steps that fit a budget, what
a continued training counts, and the stats' ρ for their ε."""

import math

import pytest

from opacus.accountants import PRVAccountant

import synth_assets.privacy_budget as budget
from synth_assets.privacy_budget import PrivacyLedger, default_delta
from synth_assets.stages.value_protection import rho_for


def ledger() -> PrivacyLedger:
    out = PrivacyLedger(delta=default_delta(10_000))
    out.record_stats("stats-1", 1.0, out.delta / 2)
    return out


def test_the_steps_that_fit_a_budget_are_the_most_that_stay_within_it():
    book = ledger()
    by_rdp = book.steps_within(4.0, 1.5, 0.05)  # counted by the RDP bound first (fast)
    assert by_rdp > 0
    assert book.value_protection_epsilon() + book._rdp_epsilon((1.5, 0.05, by_rdp)) <= 4.0
    assert book.value_protection_epsilon() + book._rdp_epsilon((1.5, 0.05, by_rdp + 1)) > 4.0
    book.record_steps("t", 1.5, 0.05, by_rdp)
    assert book.epsilon() <= 4.0
    more = book.steps_within(4.0, 1.5, 0.05)  # then the PRV bound, tighter, allows more
    assert more > 0.05 * by_rdp
    book.record_steps("t", 1.5, 0.05, more)
    assert book.epsilon() <= 4.0 and book.steps_within(4.0, 1.5, 0.05) == 0
    # the most within 1%: a hundredth more steps would pass the budget
    assert book.value_protection_epsilon() + book.training_epsilon((1.5, 0.05, 1 + (by_rdp + more) // 100)) > 4.0
    assert ledger().steps_within(None, 1.5, 0.05, most=123) == 123  # no cap
    assert ledger().steps_within(0.9, 1.5, 0.05) == 0  # the stats took more than that


def test_epsilon_is_the_lesser_of_the_rdp_and_prv_bounds_and_rdp_stands_when_prv_fails(monkeypatch):
    book = ledger()
    book.record_steps("t", 1.5, 0.05, 400)
    book.record_steps("t", 1.37, 0.05, 100)  # a recalibrated noise: floored to the PRV grid, never rounded up
    rdp = book._rdp_epsilon()
    assert book.training_epsilon() < rdp
    prv = PRVAccountant()
    prv.history = [(1.5, 0.05, 400), (1.37, 0.05, 100)]
    assert book.training_epsilon() >= prv.get_epsilon(book.training_delta) - 1e-9
    budget._prv_composed.cache_clear()

    def fails(*args, **kwargs):
        raise ValueError("Discrete mean differs")

    monkeypatch.setattr(PRVAccountant, "get_epsilon", fails)
    assert book.training_epsilon() == rdp
    budget._prv_composed.cache_clear()


def test_a_continued_training_counts_what_its_checkpoint_spent_once():
    first = ledger()
    first.record_steps("persons", 1.5, 0.05, 100)
    first.record_steps("years", 1.5, 0.02, 300)
    again = ledger()  # a resumed run: the same stats release, a new run
    again.merge(first)
    again.merge(first)  # merged twice: nothing counts twice
    assert again.epsilon() == pytest.approx(first.epsilon())
    again.record_steps("years", 1.5, 0.02, 50)
    assert again.epsilon() > first.epsilon()
    assert sum(t.steps for t in again.training) == 450
    fresh_stats = PrivacyLedger(delta=first.delta)
    fresh_stats.record_stats("stats-2", 1.0, first.delta / 2)  # reuse after the stats ran again: both count
    fresh_stats.merge(first)
    assert fresh_stats.value_protection_epsilon() == 2.0


def test_a_tight_budget_halves_the_batch_until_it_allows_passes():
    book = ledger()
    assert book.batch_within(8.0, 1.5, 10_000, 512) == 512
    tight = book.batch_within(1.5, 1.5, 10_000, 512)
    assert 16 <= tight < 512
    rate = tight / 10_000
    assert tight == 16 or book.steps_within(1.5, 1.5, rate) >= 3 / rate


def test_the_stats_rho_turns_back_into_their_epsilon():
    for epsilon, delta in ((1.0, 1e-6), (0.5, 1e-5), (4.0, 1e-8)):
        rho = rho_for(epsilon, delta)
        assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) == pytest.approx(epsilon)


def chosen_noise(epsilon_cap: float, *, seconds: float, max_epochs: int, samples: int = 10_000, batch: int = 256):
    """The noise `noise_multiplier: null` starts from, for a small model (the rule lives in PrivateOptimizer.wrap)."""
    import torch

    from synth_assets.dp_sgd import PrivateOptimizer
    from synth_assets.options import DifferentialPrivacy

    model = torch.nn.Linear(4, 2)
    book = ledger()
    private = PrivateOptimizer.wrap(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                    DifferentialPrivacy(max_epsilon=epsilon_cap, noise_multiplier=None), book,
                                    model_name="t", samples=samples, batch=batch, epsilon_cap=epsilon_cap,
                                    device="cpu", seconds=seconds, max_epochs=max_epochs)
    private.close()
    # the steps counted by RDP, then (once those are taken, as training does) the ones the PRV bound adds
    steps = private.steps_left
    book.record_steps("t", private.noise, private.sample_rate, steps)
    steps += book.steps_within(epsilon_cap, private.noise, private.sample_rate)
    return private.noise, steps * private.sample_rate  # the noise, the passes the budget allows


def test_null_noise_is_the_least_that_spends_the_budget_but_no_more_than_1_5_unless_three_passes_need_it():
    # the clock (here max_epochs) ends training first: less noise, so that the budget is spent by then
    noise, passes = chosen_noise(4.0, seconds=1e6, max_epochs=3)
    assert noise < 1.5 and 2.9 <= passes <= 4
    # the budget ends it first: 1.5, and training stops when the budget is spent
    noise, passes = chosen_noise(4.0, seconds=1e6, max_epochs=10_000)
    assert noise == 1.5 and passes < 10_000
    # a budget too tight for three passes at 1.5 (whatever the batch): more noise, three passes
    noise, passes = chosen_noise(1.2, seconds=1e6, max_epochs=10_000, samples=1_000, batch=16)
    assert noise > 1.5 and passes >= 3


def test_private_weights_are_judged_and_kept_as_their_average_and_the_steps_go_on_from_their_own():
    import torch

    from synth_assets.dp_sgd import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(1, 1, bias=False))
    model[1].requires_grad_(False)  # a weight no step changes is left as it is
    frozen = model[1].weight.detach().clone()
    average = WeightAverage(decay=0.5)
    weights = [torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 2.0]]), torch.tensor([[5.0, 4.0]])]
    for t, weight in enumerate(weights, start=1):
        with torch.no_grad():
            model[0].weight.copy_(weight)
        average.update(model)
    # the decay warms up as (1 + t) / (10 + t): 3/12 at the second step, 4/13 at the third
    expected = (weights[0] * 3 / 12 + weights[1] * 9 / 12) * 4 / 13 + weights[2] * 9 / 13
    with average.swapped_in(model):
        assert torch.allclose(model[0].weight, expected) and torch.equal(model[1].weight, frozen)
    assert torch.equal(model[0].weight, weights[-1])  # the model's own weights again after the block
