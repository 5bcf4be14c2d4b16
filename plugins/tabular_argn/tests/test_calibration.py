"""Output biases calibrated after training: a model's mean predictions are the training rows' token shares, in both
networks, for a child model's drawn columns only; under differential privacy to the protected stats' shares."""

import numpy as np
import pandas as pd
import pytest
import torch

from synth_tabular_argn.calibration import calibrate_output_biases
from synth_tabular_argn.model import ARGNNetwork, WideARGNNetwork
from synth_tabular_argn.training import evaluate


def skewed_tokens(n: int = 3000, seed: int = 0) -> np.ndarray:
    """Three columns whose tokens an untrained network predicts about uniformly: 70/20/10, a second that follows
    the first, and a third with a token no row holds."""
    r = np.random.default_rng(seed)
    a = r.choice(3, n, p=[0.7, 0.2, 0.1])
    b = np.where(r.random(n) < 0.8, a, r.integers(0, 3, n))
    c = r.choice(4, n, p=[0.5, 0.3, 0.2, 0.0])
    return np.stack([a, b, c], axis=1)


def mean_predictions(model, tokens, given=0):
    with torch.no_grad():
        order = torch.arange(tokens.shape[1])
        part = torch.as_tensor(tokens, dtype=torch.long)
        logits = model.forward(part, order, given) if model.variant == "per_head" else model.forward(part, order)
        return [torch.softmax(logits[i], 1).mean(0).numpy() if i >= given else None for i in range(tokens.shape[1])]


@pytest.mark.parametrize("network", [ARGNNetwork, WideARGNNetwork])
def test_an_untrained_networks_mean_predictions_become_the_token_shares(network):
    torch.manual_seed(0)
    tokens = skewed_tokens()
    model = network([3, 3, 4], "small").eval()
    shares = [np.bincount(tokens[:, i], minlength=k) / len(tokens) for i, k in enumerate([3, 3, 4])]
    before = mean_predictions(model, tokens)
    assert max(np.abs(b - s).max() for b, s in zip(before, shares)) > 0.3  # uniform-ish against 0.7
    loss_before = evaluate(model, torch.as_tensor(tokens), torch.arange(3), 1024)
    shift = calibrate_output_biases(model, tokens)
    after = mean_predictions(model, tokens)
    for i in range(3):
        np.testing.assert_allclose(after[i], shares[i], atol=0.01)
    assert 0 < shift <= 5.0
    # the token no row holds all but disappears, and the rows cost fewer nats than before
    assert after[2][3] < 0.01
    assert evaluate(model, torch.as_tensor(tokens), torch.arange(3), 1024) < loss_before


def test_a_child_models_given_columns_are_left_alone():
    torch.manual_seed(1)
    tokens = skewed_tokens()
    model = ARGNNetwork([3, 3, 4], "small").eval()
    given_head = [p.clone() for p in model.heads[0].parameters()]
    calibrate_output_biases(model, tokens, given=1)
    assert all(torch.equal(a, b) for a, b in zip(given_head, model.heads[0].parameters()))
    after = mean_predictions(model, tokens, given=1)
    np.testing.assert_allclose(after[1], np.bincount(tokens[:, 1], minlength=3) / len(tokens), atol=0.01)


def test_training_reports_the_calibration_and_a_private_model_is_calibrated_to_its_protected_stats(tmp_path):
    from synth_tabular_argn import TabularARGN

    r = np.random.default_rng(2)
    df = pd.DataFrame({"plan": r.choice(["basic", "plus", "pro"], 3000, p=[0.7, 0.2, 0.1]),
                       "member": r.random(3000) < 0.3, "age": r.integers(18, 80, 3000)})
    # one epoch: the biases have not settled, and calibration moves them; the drawn plans keep the shares
    model = TabularARGN(max_training_time=1, max_epochs=1, seed=3, workspace=tmp_path / "plain").fit(df.head(800))
    assert model.training.settings["calibration_max_shift"] > 0
    drawn = model.sample(4000, seed=1)["plan"].value_counts(normalize=True)
    assert abs(drawn["basic"] - 0.7) < 0.04 and abs(drawn["pro"] - 0.1) < 0.03
    # a private model is calibrated too, to the shares its noisy stats publish (its own draws against them: no ε
    # spent); one epoch of DP-SGD alone left the plans at 0.53 / 0.28 / 0.19 and the lowest age decile 18, not 23
    private = TabularARGN(max_training_time=1, max_epochs=1, seed=3, workspace=tmp_path / "dp",
                          differential_privacy={"max_epsilon": 4.0}).fit(df)
    assert private.training.settings["calibration_max_shift"] > 0
    stats = private.stats.tables[next(iter(private.stats.tables))].columns
    drawn = private.sample(6000, seed=1)
    shares = drawn["plan"].value_counts(normalize=True)
    for plan, share in zip(stats["plan"].categories, stats["plan"].category_shares):
        assert abs(shares[plan] - share) < 0.025, (plan, shares[plan], share)
    deciles = np.quantile(drawn["age"], np.linspace(0.1, 0.9, 9))
    assert np.abs(deciles - np.asarray(stats["age"].quantiles)[10:91:10]).max() <= 3, deciles


def test_a_number_whose_noisy_quantiles_are_too_rough_is_not_calibrated_to_them():
    """On 2,000 rows at ε 4 a price's noisy quantiles may be off by a fifth of the mass (ColumnStats.quantile_noise
    says so): calibrating to them cost diamonds' prices 0.25 of their univariate score once. Its plan's noisy shares
    are fine, and are kept."""
    from synth_assets.project import parse_project
    from synth_assets.stages.stats import compute_stats
    from synth_tabular_argn.calibration import MAX_QUANTILE_NOISE, protected_shares
    from synth_tabular_argn.encoding import COLUMN_ENCODINGS, build_codes
    from synth_tabular_argn.generation import Planner

    r = np.random.default_rng(4)
    df = pd.DataFrame({"plan": r.choice(["basic", "plus", "pro"], 2000, p=[0.7, 0.2, 0.1]),
                       "price": np.round(np.exp(r.normal(8.0, 1.0, 2000)))})
    spec = parse_project({"datasets": {"d": {"tables": {"t": {"source": "t.csv"}}, "split": {"validation_share": 0.01},
                                             "train": {"differential_privacy": {"max_epsilon": 4.0}}}}}).datasets["d"]
    table = compute_stats(spec, {"t": df}, dataset="d", hints=COLUMN_ENCODINGS).tables["t"]
    assert table.columns["price"].quantile_noise > MAX_QUANTILE_NOISE
    codes = build_codes(table, "d")
    planner = Planner(codes, table, list(range(sum(len(c.sub_columns) for c in codes))), False)
    first = {name: group[0] for name, group in planner.groups.items()}
    assert set(protected_shares(codes, table, first, planner.marginal)) == {first["plan"]}
    # the same number with quantiles as close as a large table's: calibrated, its shares summing to one
    close = table.model_copy(update={"columns": {**table.columns, "price": table.columns["price"].model_copy(
        update={"quantile_noise": 0.01})}})
    shares = protected_shares(codes, close, first, planner.marginal)
    assert set(shares) == {first["plan"], first["price"]} and abs(shares[first["price"]].sum() - 1) < 1e-9
