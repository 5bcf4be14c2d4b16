"""TabularARGN's Python API and its generation options, each checked by its effect."""

import numpy as np
import pandas as pd
import pytest

from synth_assets.errors import SynthError
from synth_assets.stages.stats import RARE_TOKEN
from synth_tabular_argn import TabularARGN

FAST = dict(max_training_time=5, max_epochs=12, seed=3)


@pytest.fixture(scope="module")
def gems(diamonds):
    return diamonds.sample(6000, random_state=4).reset_index(drop=True)


@pytest.fixture(scope="module")
def model(gems, tmp_path_factory):
    return TabularARGN(**FAST, workspace=tmp_path_factory.mktemp("api")).fit(gems.iloc[:5000])


@pytest.mark.slow
def test_sample_has_the_source_schema(model, gems):
    out = model.sample(n_samples=700, seed=1)
    assert len(out) == 700 and list(out.columns) == list(gems.columns)
    assert out.dtypes.tolist() == gems.dtypes.tolist()


def test_same_seed_same_model_same_rows(gems, tmp_path):
    first = TabularARGN(max_training_time=5, max_epochs=2, seed=9, workspace=tmp_path / "a").fit(gems.iloc[:2000])
    second = TabularARGN(max_training_time=5, max_epochs=2, seed=9, workspace=tmp_path / "b").fit(gems.iloc[:2000])
    pd.testing.assert_frame_equal(first.sample(300, seed=5), second.sample(300, seed=5))


@pytest.mark.slow
def test_dropout_regularizes_training_and_shrinks_with_the_data(gems, tmp_path):
    from synth_tabular_argn.model import default_dropout

    def fitted(dropout, folder):
        model = TabularARGN(max_training_time=5, max_epochs=3, seed=9, dropout=dropout, workspace=tmp_path / folder)
        return model.fit(gems.iloc[:2000]).training.progress[-1]

    plain, dropped = fitted(0.0, "plain"), fitted(0.5, "dropped")
    # half the hidden units dropped: a noisier fit of the training rows, a smaller gap to validation
    assert dropped.train_loss > plain.train_loss + 0.5
    assert dropped.train_loss - dropped.validation_loss > plain.train_loss - plain.validation_loss
    rates = [default_dropout(rows) for rows in (500, 5_000, 50_000, 1_000_000)]
    assert rates == sorted(rates, reverse=True) and rates[0] > 0.15 and rates[-1] == 0.0


def test_learning_rate_given_or_scaled_with_the_batch(gems, tmp_path):
    from synth_tabular_argn.model import default_learning_rate

    given = TabularARGN(max_training_time=5, max_epochs=1, learning_rate=5e-4, workspace=tmp_path).fit(gems.iloc[:1000])
    assert given.training.progress[0].learning_rate == 5e-4
    rates = [default_learning_rate(batch) for batch in (32, 512, 1024, 2048)]
    assert rates[0] == rates[1] < rates[2] < rates[3] <= 4e-3 + 1e-12


def test_seed_rows_are_kept_and_condition_the_rest(model):
    seed = pd.DataFrame({"cut": ["Fair"] * 200 + ["Ideal"] * 200, "carat": [2.0] * 200 + [0.3] * 200})
    out = model.sample(seed_data=seed, seed=2)
    assert len(out) == 400
    assert out.cut.tolist() == seed.cut.tolist() and out.carat.tolist() == seed.carat.tolist()
    # heavy stones cost more: the rest of each row follows its seed values
    assert out.price[:200].median() > 5 * out.price[200:].median()


def test_rebalancing_moves_the_share(model, gems):
    assert abs((gems.cut == "Fair").mean() - 0.5) > 0.4
    out = model.sample(4000, rebalancing={"column": "cut", "probabilities": {"Fair": 0.5}}, seed=3)
    assert (out.cut == "Fair").mean() == pytest.approx(0.5, abs=0.03)


def test_rebalancing_an_unknown_category_names_it(model):
    with pytest.raises(SynthError, match="column 'cut'.*'Perfect'"):
        model.sample(10, rebalancing={"column": "cut", "probabilities": {"Perfect": 0.5}})


def test_imputation_fills_named_columns_and_keeps_the_others(model, gems):
    holed = gems.iloc[5000:5600].copy()
    holed.loc[holed.index[::3], "depth"] = np.nan
    holed.loc[holed.index[1::4], "color"] = None
    out = model.impute(holed, columns=["depth"], seed=4)
    assert out.depth.notna().all()
    pd.testing.assert_frame_equal(out.drop(columns="depth"), holed.drop(columns="depth"))
    kept = holed.depth.notna()
    assert (out.depth[kept] == holed.depth[kept]).all()
    protected = model.table.columns["depth"]
    assert out.depth[~kept].between(protected.min, protected.max).all()


def test_temperature_and_top_p_narrow_the_draws(model):
    def entropy(values):
        p = values.value_counts(normalize=True).to_numpy()
        return -(p * np.log(p)).sum()

    categorical = ["cut", "color", "clarity"]
    normal = model.sample(3000, seed=6)
    cold = model.sample(3000, sampling_temperature=0.5, seed=6)
    assert sum(map(entropy, (cold[c] for c in categorical))) < sum(map(entropy, (normal[c] for c in categorical))) - 0.2
    narrow = model.sample(3000, sampling_top_p=0.3, seed=6)
    assert narrow.clarity.nunique() < normal.clarity.nunique()


def test_predict_beats_the_majority_class(model, gems):
    test = gems.iloc[5000:]
    predicted = model.predict(test, target="cut", n_draws=10, seed=7)
    assert predicted.index.equals(test.index)
    majority = (test.cut == gems.iloc[:5000].cut.mode()[0]).mean()
    assert (predicted == test.cut).mean() > majority + 0.1
    price = model.predict(test, target="price", agg_fn="mean", seed=7)
    assert np.corrcoef(price, test.price)[0, 1] > 0.8


def test_predict_proba_for_one_and_two_targets(model, gems):
    X = gems.iloc[5000:5050]
    one = model.predict_proba(X, target="cut")
    assert one.shape[0] == 50 and set(one.columns) >= {"Ideal", "Premium", "Fair"}
    np.testing.assert_allclose(one.sum(axis=1), 1.0, atol=1e-4)
    two = model.predict_proba(X, target=["cut", "color"])
    assert two.columns.names == ["cut", "color"] and two.shape[1] == one.shape[1] * gems.color.nunique()
    np.testing.assert_allclose(two.sum(axis=1), 1.0, atol=1e-4)
    # the joint's margin over colour is P(cut | X without colour)
    without_color = model.predict_proba(X.drop(columns="color"), target="cut")
    np.testing.assert_allclose(two.T.groupby(level="cut").sum().T[without_color.columns], without_color, atol=1e-4)


def test_log_prob_prefers_real_rows(model, gems):
    real = gems.iloc[5000:5500].reset_index(drop=True)
    broken = real.assign(carat=real.carat.sample(frac=1, random_state=1).to_numpy())
    assert model.log_prob(real).mean() > model.log_prob(broken).mean() + 1.0


def test_fairness_gives_statistical_parity(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    group = rng.choice(["a", "b"], n)
    approved = np.where(rng.random(n) < np.where(group == "a", 0.8, 0.2), "yes", "no")
    income = np.where(approved == "yes", rng.normal(60, 5, n), rng.normal(40, 5, n)).round(1)
    df = pd.DataFrame({"group": group, "approved": approved, "income": income})
    model = TabularARGN(**FAST, workspace=tmp_path).fit(df)

    def gap(out):
        shares = out.groupby("group").approved.apply(lambda v: (v == "yes").mean())
        return abs(shares["a"] - shares["b"])

    assert gap(model.sample(4000, seed=1)) > 0.4
    fair = model.sample(4000, fairness={"target_column": "approved", "sensitive_columns": ["group"]}, seed=1)
    assert gap(fair) < 0.05
    assert (fair.approved == "yes").mean() == pytest.approx(0.5, abs=0.05)
    # what follows the target still follows it
    assert fair[fair.approved == "yes"].income.mean() > fair[fair.approved == "no"].income.mean() + 10


def test_rare_categories_constant_or_sampled(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    city = np.where(rng.random(n) < 0.15, [f"village{i}" for i in range(n)], rng.choice(["Oslo", "Bergen"], n))
    df = pd.DataFrame({"city": city, "x": rng.normal(size=n).round(2)})
    model = TabularARGN(**FAST, workspace=tmp_path).fit(df)
    constant = model.sample(3000, seed=2)
    assert 0.08 < (constant.city == RARE_TOKEN).mean() < 0.25
    assert not constant.city.str.startswith("village").any()
    sampled = model.sample(3000, rare_category_replacement="sample", seed=2)
    assert set(sampled.city) <= {"Oslo", "Bergen"}


@pytest.mark.slow
def test_checkpoint_strategies(gems, tmp_path):
    data = gems.iloc[:3000]
    first = TabularARGN(max_training_time=5, max_epochs=3, early_stopping_patience=10, workspace=tmp_path).fit(data)
    assert [p.epoch for p in first.training.progress] == [1, 2, 3]
    # resume continues the epoch count where the last training stopped
    resumed = TabularARGN(max_training_time=5, max_epochs=5, early_stopping_patience=10, model_state="resume",
                          workspace=tmp_path).fit(data)
    assert [p.epoch for p in resumed.training.progress] == [1, 2, 3, 4, 5]
    # reuse fine-tunes from the last weights: its first epoch starts below a fresh model's
    reused = TabularARGN(max_training_time=5, max_epochs=1, model_state="reuse", workspace=tmp_path).fit(data)
    fresh = TabularARGN(max_training_time=5, max_epochs=1, workspace=tmp_path / "fresh").fit(data)
    assert reused.training.progress[0].validation_loss < fresh.training.progress[0].validation_loss - 0.5


def test_time_budget_stops_training(gems, tmp_path):
    fitted = TabularARGN(max_training_time=0.02, max_epochs=10_000, workspace=tmp_path).fit(gems)
    assert fitted.training.stopped_because == "time budget"
    assert fitted.training.seconds < 30


def test_tabular_argn_python_api_takes_the_same_fields_as_synth_yaml():
    from synth_tabular_argn.options import ARGNTrainOptions

    every = {name: field.get_default() for name, field in ARGNTrainOptions.model_fields.items()}
    assert TabularARGN(**every).train_options == ARGNTrainOptions()
    with pytest.raises(SynthError, match="no_such_option"):
        TabularARGN(no_such_option=1)
