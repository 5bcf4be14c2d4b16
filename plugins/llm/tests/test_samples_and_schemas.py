"""Samples, schemas and directives, the assemblers, and the invalid-output loop: the LLM backend's parts that need
no trained model."""

import json

import numpy as np
import pandas as pd
import pytest

from synth_assets.plugin_api import RARE_TOKEN, SynthError, parse_dataset, workspace_pipeline
from synth_assets.testing import contract_table, contract_tree
from synth_llm.assemblers import IGNORE, Segment, assemble
from synth_llm.columns import json_values
from synth_llm.engines import Decoded, Engine
from synth_llm.generation import generate_outputs
from synth_llm.options import ColumnDirective, LLMTrainOptions
from synth_llm.samples import Tree, from_samples, to_samples
from synth_llm.schema import full_shape, output_model
from synth_llm.tasks import Task, dumps


def stats_of(tmp_path, frames: dict[str, pd.DataFrame], tables: dict[str, dict]):
    spec = parse_dataset({"backend": "llm", "tables": {
        name: {"source": f"{name}.parquet", **tables.get(name, {})} for name in frames}}, origin="test")
    pipeline = workspace_pipeline(tmp_path, spec)
    split = pipeline.split(frames)
    return pipeline.stats(), split


@pytest.fixture
def flat(tmp_path):
    df = contract_table(600)
    df["plan"] = df["plan"].astype(object)
    df.loc[:2, "plan"] = "enterprise"  # held by 3 rows: rare, so protected
    stats, split = stats_of(tmp_path, {"customers": df}, {})
    return stats, split


@pytest.fixture
def tree(tmp_path):
    persons, visits = contract_tree(200)
    tables = {"persons": {"primary_key": "person_id"},
              "visits": {"primary_key": "visit_id", "order_by": "day",
                         "foreign_keys": [{"column": "person_id", "references": "persons"}]}}
    return stats_of(tmp_path, {"persons": persons, "visits": visits.sample(frac=1, random_state=0)}, tables)


# samples -------------------------------------------------------------------------------------------
def test_a_sample_holds_a_root_row_with_its_children_ordered_and_no_keys(tree):
    stats, split = tree
    t = Tree.of(stats)
    samples, keys = to_samples(split.train, t)
    persons, visits = split.train["persons"], split.train["visits"]
    assert len(samples) == len(persons) and keys == persons.person_id.tolist()
    first = samples[0]
    assert set(first) == {"female", "region", "born", "visits"}  # keys are left out: the core writes fresh ones
    for sample, key in zip(samples, keys):  # in date order (dates clipped to the protected range)
        own = visits[visits.person_id == key].sort_values("day")
        cost = stats.tables["visits"].columns["cost"]
        assert [v["cost"] for v in sample["visits"]] == own.cost.clip(cost.min, cost.max).tolist()
        days = [v["day"] for v in sample["visits"]]
        assert days == sorted(days)
    assert all(set(v) == {"day", "cost", "emergency"} for s in samples for v in s["visits"])
    json.dumps(samples)  # plain JSON


def test_rare_values_never_appear_in_samples_or_schemas(flat):
    stats, split = flat
    t = Tree.of(stats)
    samples, _ = to_samples(split.train, t)
    plans = {s["plan"] for s in samples}
    assert "enterprise" not in plans and RARE_TOKEN in plans
    _, schema = output_model(t, full_shape(t))
    assert "enterprise" not in json.dumps(schema)
    assert RARE_TOKEN in schema["properties"]["plan"]["enum"]


def test_samples_turn_back_into_tables_with_links_and_source_dtypes(tree):
    from synth_assets.stages.schema import restore_tables

    stats, split = tree
    t = Tree.of(stats)
    samples, _ = to_samples(split.train, t)
    frames = from_samples(samples, t)
    assert len(frames["persons"]) == len(samples)
    assert len(frames["visits"]) == sum(len(s["visits"]) for s in samples)
    restored = restore_tables(frames, stats, dataset="d")
    for name in ("persons", "visits"):
        assert restored[name].dtypes.astype(str).to_dict() == split.train[name].dtypes.astype(str).to_dict()
    assert restored["visits"].person_id.isin(restored["persons"].person_id).all()
    # the values survive the round trip (up to the source's grain)
    cost = stats.tables["visits"].columns["cost"]
    clipped = split.train["visits"].cost.clip(cost.min, cost.max)  # the protected range
    assert restored["visits"].cost.sum() == pytest.approx(clipped.sum(), rel=1e-9)
    assert restored["persons"].female.sum() == split.train["persons"].female.sum()


# schemas and directives ----------------------------------------------------------------------------
def test_the_schema_lists_categories_bounds_date_formats_and_record_counts(tree, flat):
    stats, _ = tree
    t = Tree.of(stats)
    model, schema = output_model(t, full_shape(t))
    props = schema["properties"]
    assert sorted(props["region"]["enum"]) == ["east", "north", "south"]
    assert props["born"]["type"] == "integer" and props["born"]["minimum"] >= 1940 and props["born"]["maximum"] <= 2004
    visits = props["visits"]
    assert visits["maxItems"] == 4 and visits["items"]["additionalProperties"] is False
    assert visits["items"]["properties"]["day"]["pattern"].startswith("^(?:2023-")
    good = {"female": True, "region": "east", "born": 1970, "visits": [{"day": "2023-03-01", "cost": 12.5, "emergency": False}]}
    model.model_validate(good)
    for bad in ({**good, "region": "mars"}, {**good, "born": 1800}, {**good, "extra": 1},
                {**good, "visits": [{**good["visits"][0], "day": "2023-02-30"}]},
                {**good, "visits": [{**good["visits"][0], "day": "2031-01-01"}]},
                {**good, "visits": good["visits"] * 5}):
        with pytest.raises(Exception):
            model.model_validate(bad)
    # nulls: allowed where training had them
    stats, _ = flat
    flat_schema = output_model(Tree.of(stats), full_shape(Tree.of(stats)))[1]["properties"]
    assert {"type": "null"} in flat_schema["score"]["anyOf"] and None in flat_schema["plan"]["enum"]
    assert "anyOf" not in flat_schema["spend"] and sorted(flat_schema["member"]["enum"]) == [False, True]


def test_directives_forbid_nulls_the_rare_token_and_masked_values(flat):
    stats, _ = flat
    t = Tree.of(stats)
    directives = {"customers": {"plan": ColumnDirective(impute_na=True, impute_protected=True, mask=["basic"]),
                                "score": ColumnDirective(impute_na=True)}}
    model, schema = output_model(t, full_shape(t), directives)
    assert sorted(schema["properties"]["plan"]["enum"]) == ["plus", "pro"]
    assert schema["properties"]["score"]["type"] == "number"
    row = {c: None for c in schema["properties"]}
    for value in (None, RARE_TOKEN, "basic"):
        with pytest.raises(Exception):
            model.model_validate({**row, "plan": value})
    with pytest.raises(SynthError, match="no modelled column"):
        output_model(t, full_shape(t), {"customers": {"nope": ColumnDirective(impute_na=True)}})
    with pytest.raises(SynthError, match="no value to generate"):
        output_model(t, full_shape(t), {"customers": {"region": ColumnDirective(
            mask=["north", "south", "east", "west"])}})


def test_a_task_option_naming_an_unknown_column_is_refused(tree):
    stats, _ = tree
    with pytest.raises(SynthError, match="cols_tgt names no modelled column"):
        Task(LLMTrainOptions(task="rel_predict", cols_tgt={"visits": ["price"]}), Tree.of(stats))
    with pytest.raises(SynthError, match="cols_ctx names no modelled column"):
        Task(LLMTrainOptions(cols_ctx=["person_id"]), Tree.of(stats))
    with pytest.raises(ValueError, match="unknown placeholder"):
        LLMTrainOptions(prompt_template="{context}")


def test_prediction_contexts_hide_the_targets_and_outputs_hold_only_them(tree):
    stats, split = tree
    t = Tree.of(stats)
    task = Task(LLMTrainOptions(task="rel_predict", cols_tgt={"visits": ["cost"]}), t)
    sample = next(s for s in to_samples(split.train, t)[0] if s["visits"])
    context = task.context(sample, np.random.default_rng(0))
    assert all("cost" not in v for v in context["visits"]) and context["born"] == sample["born"]
    output = task.output(sample, context)
    assert output == {"visits": [{"cost": v["cost"]} for v in sample["visits"]]}
    assert task.combine(context, output) == sample
    assert task.problem(context, {"visits": output["visits"][:-1]}) is not None


def test_semi_synthetic_contexts_keep_a_part_and_constants_come_out_unchanged(tree):
    stats, split = tree
    t = Tree.of(stats)
    task = Task(LLMTrainOptions(task="rel_semi_synth", p_field=0.5, p_child=0.5), t)
    samples = to_samples(split.train, t)[0]
    rng = np.random.default_rng(0)
    contexts = [task.context(s, rng) for s in samples]
    kept = np.mean([len([k for k in c if k != "visits"]) for c in contexts]) / 3
    assert 0.35 < kept < 0.65
    context = next(c for c in contexts if c["visits"] and "region" in c)
    made_up = {"female": False, "region": "north" if context["region"] != "north" else "east", "born": 1999,
               "visits": []}
    combined = task.combine(context, made_up)
    assert combined["region"] == context["region"] and combined["visits"] == context["visits"]


# assemblers ----------------------------------------------------------------------------------------
SEGMENTS = [Segment(prompt=[10] * (i % 3), output=[20 + i] * (3 + i % 5), key=i) for i in range(40)]


def test_prompt_tokens_carry_no_loss():
    examples = assemble(SEGMENTS[:1], "grouped", 16, bos=1, eos=2, pad=0)
    ids, labels, mask = examples.input_ids[0], examples.labels[0], examples.attention_mask[0]
    assert ids[:5].tolist() == [1, 20, 20, 20, 2] and labels[:5].tolist() == [IGNORE, 20, 20, 20, 2]
    assert (labels[5:] == IGNORE).all() and mask.sum() == 5
    prompted = assemble([SEGMENTS[2]], "grouped", 16, bos=1, eos=2, pad=0)
    assert prompted.labels[0][:3].tolist() == [IGNORE, IGNORE, IGNORE]  # BOS and two prompt tokens


@pytest.mark.parametrize("how", ["tabular", "grouped"])
def test_packing_respects_the_window_and_keeps_every_sample_whole(how):
    examples = assemble(SEGMENTS, how, 24, bos=1, eos=2, pad=0, rng=np.random.default_rng(0))
    assert examples.input_ids.shape[1] == 24
    assert (examples.input_ids == 1).sum() == len(SEGMENTS) == (examples.labels == 2).sum()
    for row, mask in zip(examples.input_ids, examples.attention_mask):
        used = row[mask == 1].tolist()
        assert used[0] == 1 and used[-1] == 2  # every example starts and ends on a sample boundary
    if how == "grouped":
        assert len(examples) == len(SEGMENTS)
    else:
        assert len(examples) < len(SEGMENTS) / 2  # several samples per example


def test_the_samples_that_open_packed_examples_are_no_longer_than_the_rest():
    """Generation starts where an example starts: what opens examples is what the model learns to write first."""
    rng = np.random.default_rng(1)
    lengths = rng.choice([4, 20], size=2000, p=[0.5, 0.5])  # short and long samples, half each
    segments = [Segment([], [7 if n == 4 else 8] * n) for n in lengths]
    examples = assemble(segments, "tabular", 64, bos=1, eos=2, pad=0, rng=np.random.default_rng(0))
    opening_long = (examples.input_ids[:, 1] == 8).mean()
    # first fit alone opened 87% of examples with a long sample (the one that overflowed the example before)
    assert 0.35 < opening_long < 0.65, opening_long


def test_sequential_assembly_keeps_order_and_continues_long_samples():
    long = [Segment([], [5] * 30, key="k"), Segment([], [6] * 4, key="m")]
    examples = assemble(long, "sequential", 16, bos=1, eos=2, pad=0)
    stream = examples.input_ids[examples.attention_mask == 1].tolist()
    assert stream == [1] + [5] * 30 + [2] + [1] + [6] * 4 + [2]
    with pytest.raises(SynthError, match=r"root key 'k' takes 32 tokens, more than the context window of 16"):
        assemble(long, "tabular", 16, bos=1, eos=2, pad=0)


# the invalid-output loop ---------------------------------------------------------------------------
class ScriptedEngine(Engine):
    """Answers each decode with the next list of texts: invalid ones first, as an undertrained model would."""

    name = "scripted"

    def __init__(self, rounds):
        super().__init__(".")
        self.rounds = list(rounds)
        self.asked = []

    def decode(self, request):
        self.asked.append(len(request.prompts))
        texts = self.rounds.pop(0)
        return Decoded(texts=texts[: len(request.prompts)], tokens=10 * len(request.prompts))


def loop(tree, engine, **options):
    stats, _ = tree
    t = Tree.of(stats)
    task = Task(LLMTrainOptions(), t)
    model, schema = output_model(t, full_shape(t))
    settings = dict(task=task, model=model, schema=schema, temperature=1.0, top_p=1.0, max_new_tokens=50, seed=0,
                    batch_size=10, max_retries=2, max_invalid_share=0.5) | options
    return generate_outputs(engine, [[1]] * 4, [None] * 4, **settings)


GOOD = dumps({"female": True, "region": "east", "born": 1970, "visits": []})


def test_invalid_outputs_are_generated_again_until_valid(tree):
    engine = ScriptedEngine([[GOOD, '{"female":tr', GOOD, GOOD.replace("east", "mars")], [GOOD, GOOD]])
    outputs, report = loop(tree, engine)
    assert engine.asked == [4, 2] and all(o == json.loads(GOOD) for o in outputs)
    assert report.valid_first_try == 2 and report.retried == 2 and report.rounds == 2
    assert report.as_metadata(rows=4)["valid_share_first_try"] == 0.5
    assert set(report.problems) == {"not complete JSON (the token budget ran out)",
                                    "region: 'mars' is not one of the allowed values"}


def test_generation_stops_with_a_clear_error_when_outputs_stay_invalid(tree):
    bad = GOOD.replace("1970", "1800")
    with pytest.raises(SynthError, match=r"3 of 4 outputs were invalid; most often: born: 1800 lies outside"):
        loop(tree, ScriptedEngine([[bad, bad, bad, GOOD]]))
    with pytest.raises(SynthError, match="1 of 1 outputs were invalid after 2 retries"):
        loop(tree, ScriptedEngine([[GOOD, GOOD, GOOD, bad], [bad], [bad]]))


def test_any_column_name_works_in_samples_and_schemas(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame({"class": r.choice(["a", "b"], 300), "_id code": r.integers(0, 5, 300),
                       "model_config": r.random(300).round(2), "unit price (€)": r.integers(1, 9, 300) * 1.5})
    stats, split = stats_of(tmp_path, {"t": df}, {})
    t = Tree.of(stats)
    model, schema = output_model(t, full_shape(t))
    assert list(schema["properties"]) == list(df.columns)
    samples, _ = to_samples(split.train, t)
    for sample in samples[:20]:
        model.model_validate(sample)
    with pytest.raises(Exception, match="class"):
        model.model_validate({**samples[0], "class": "zzz"})


def test_whole_numbers_are_spelled_as_the_grammar_spells_them(tmp_path):
    """A float column holding whole numbers (years read as 1984.0) appears as 1984 in samples and schema."""
    import xgrammar as xgr

    r = np.random.default_rng(0)
    df = pd.DataFrame({"year": r.choice([1984.0, 1985.0, 1986.0], 300), "hospvis": r.choice([0.0, 1.0, 2.0], 300)})
    stats, split = stats_of(tmp_path, {"t": df}, {})
    t = Tree.of(stats)
    samples, _ = to_samples(split.train, t)
    text = dumps(samples[0])
    assert ".0" not in text
    _, schema = output_model(t, full_shape(t))
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    assert all(xgr.testing._is_grammar_accept_string(grammar, dumps(s)) for s in samples[:50])


def test_a_number_kept_as_values_comes_back_as_those_values_however_many_decimals_they_have(tmp_path):
    """Years of schooling in halves, with imputed means of float32 precision among them (rwm5yr's 11.8182401657104):
    written as the enum spells them and read back unrounded, every value is one the stats keep."""
    from synth_llm.columns import from_json

    r = np.random.default_rng(0)
    kept = [9.0, 10.5, 11.5, 11.8182401657104, 10.8054895401001]
    df = pd.DataFrame({"educ": r.choice(kept, 600), "n": r.integers(0, 3, 600)})
    stats, split = stats_of(tmp_path, {"t": df}, {})
    col = stats.tables["t"].columns["educ"]
    assert col.discrete and col.decimals == 8
    t = Tree.of(stats)
    samples, _ = to_samples(split.train, t)
    written = [json.loads(dumps(s))["educ"] for s in samples]
    back = from_json(written, col)
    assert set(back) <= set(col.categories) and 11.8182401657104 in set(back)


def test_free_text_is_a_string_of_kept_words_that_the_grammar_cannot_spell_a_rare_name_in(tmp_path):
    """A text column is a free string of the words enough rows hold, in the casings the grammar writes, with the
    kept characters between them: a rare surname is in no sample, and the grammar cannot write it."""
    import xgrammar as xgr

    r = np.random.default_rng(0)
    titles = [f"{r.choice(['Quiet', 'Golden', 'Red'])} {r.choice(['River', 'Bridge'])} (no. {r.integers(1, 3)})"
              for _ in range(300)]
    titles[:2] = ["Quiet Vondequist River", "Red \"River\"\tBridge"]  # a surname; quotes and a tab
    df = pd.DataFrame({"title": titles, "n": r.integers(0, 5, 300)})
    stats, split = stats_of(tmp_path, {"t": df}, {"t": {"columns": {"title": {"encoding": "text"}}}})
    t = Tree.of(stats)
    samples, _ = to_samples(split.train, t)
    assert not any("vondequist" in s["title"].lower() for s in samples)
    # the quotes and the tab are no plain characters of a JSON string
    assert json_values(pd.Series(titles[:2]), stats.tables["t"].columns["title"]) == ["Quiet River",
                                                                                    "Red River Bridge"]
    model, schema = output_model(t, full_shape(t))
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    assert all(xgr.testing._is_grammar_accept_string(grammar, dumps(s)) for s in samples)
    for text, allowed in (("GOLDEN bridge (no. 2)", True), ("Quiet Vondequist", False), ("Quietriver", False),
                          ("QuIeT River", False), ("Red River!", False), ("", False), ("( )", False)):
        sample = dumps({"title": text, "n": 1})
        assert xgr.testing._is_grammar_accept_string(grammar, sample) == allowed, text
    model.model_validate({"title": "GOLDEN bridge (no. 2)", "n": 1})
    with pytest.raises(Exception, match="kept words"):
        model.model_validate({"title": "Quiet Vondequist", "n": 1})


def test_outputs_whose_text_the_core_refuses_are_written_again_then_kept(tree):
    refuse = lambda output: output["region"] == "north"  # noqa: E731  # stands for a copied rare training text
    north = GOOD.replace("east", "north")
    engine = ScriptedEngine([[GOOD, north, north, GOOD], [GOOD, north], [north]])
    outputs, report = loop(tree, engine, refused_text=refuse)
    assert engine.asked == [4, 2, 1]  # the last round's refused text is kept: the core cuts it
    assert [o["region"] for o in outputs] == ["east", "east", "north", "east"]
    assert report.valid_first_try == 4 and report.texts_refused == 3


# records keyed by their order value ------------------------------------------------------------------------------
def panel(n: int = 300, repeat: bool = False, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons and their yearly records (1 to 5 of the years 1984-1988, each at most once, unless `repeat`)."""
    r = np.random.default_rng(seed)
    persons = pd.DataFrame({"id": np.arange(n), "female": r.random(n) < 0.5})
    years = [sorted(r.choice(np.arange(1984, 1989), r.integers(1, 6), replace=False)) for _ in range(n)]
    if repeat:  # every tenth person, so some land in the training split
        years[::10] = [[1984, 1984]] * len(years[::10])
    records = pd.DataFrame({"id": np.repeat(persons.id, [len(y) for y in years]),
                            "year": np.concatenate(years).astype("int64")})
    records["visits"] = r.poisson(2, len(records))
    return persons, records


PANEL = {"persons": {"primary_key": "id"},
         "records": {"order_by": "year", "foreign_keys": [{"column": "id", "references": "persons"}]}}


def test_a_rising_year_keys_the_records_so_none_can_repeat_or_fall(tmp_path):
    import xgrammar as xgr

    from synth_llm.order_keys import keyed_tables

    persons, records = panel()
    stats, split = stats_of(tmp_path, {"persons": persons, "records": records.sample(frac=1, random_state=0)}, PANEL)
    assert stats.tables["records"].order_increases
    t = Tree.of(stats)
    keyed = keyed_tables(t)
    assert set(keyed) == {"records"} and keyed["records"].values == (1984, 1985, 1986, 1987, 1988)
    task = Task(LLMTrainOptions(), t, keyed=keyed)
    samples, _ = to_samples(split.train, t)
    model, schema = output_model(t, full_shape(t), keyed=keyed)
    records = schema["properties"]["records"]
    assert list(records["properties"]) == ["1984", "1985", "1986", "1987", "1988"] and "required" not in records
    assert records["maxProperties"] == 5 and list(records["properties"]["1984"]["properties"]) == ["visits"]
    for sample in samples:
        output = task.output(sample, None)
        assert list(output["records"]) == [str(r["year"]) for r in sample["records"]]
        model.model_validate(output)
        assert task.problem(None, output) is None and task.combine(None, output) == sample
    # the grammar keeps the years in order, each at most once
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    assert all(xgr.testing._is_grammar_accept_string(grammar, dumps(task.output(s, None))) for s in samples[:50])

    def accepted(text):
        return xgr.testing._is_grammar_accept_string(grammar, text)

    one = '{"visits":1}'
    assert accepted(f'{{"female":true,"records":{{"1984":{one},"1986":{one}}}}}')
    assert not accepted(f'{{"female":true,"records":{{"1986":{one},"1984":{one}}}}}')
    assert not accepted(f'{{"female":true,"records":{{"1984":{one},"1984":{one}}}}}')
    assert not accepted(f'{{"female":true,"records":{{"1989":{one}}}}}')
    # pydantic checks the same for outputs from elsewhere
    with pytest.raises(Exception):
        model.model_validate({"female": True, "records": {"1989": {"visits": 1}}})
    # a masked year is not listed
    masked, masked_schema = output_model(t, full_shape(t), {"records": {"year": ColumnDirective(mask=[1986])}}, keyed)
    assert list(masked_schema["properties"]["records"]["properties"]) == ["1984", "1985", "1987", "1988"]


def test_records_whose_order_repeats_or_is_a_date_stay_a_list(tmp_path):
    from synth_llm.order_keys import keyed_tables

    persons, records = panel(repeat=True)
    stats, _ = stats_of(tmp_path / "repeat", {"persons": persons, "records": records}, PANEL)
    assert not stats.tables["records"].order_increases and keyed_tables(Tree.of(stats)) == {}
    persons, visits = contract_tree(200)  # ordered by date
    tables = {"persons": {"primary_key": "person_id"},
              "visits": {"primary_key": "visit_id", "order_by": "day",
                         "foreign_keys": [{"column": "person_id", "references": "persons"}]}}
    stats, _ = stats_of(tmp_path / "dates", {"persons": persons, "visits": visits}, tables)
    assert keyed_tables(Tree.of(stats)) == {}


def test_keyed_records_serve_prediction_and_semi_synthesis(tmp_path):
    from synth_llm.order_keys import keyed_tables

    persons, records = panel()
    stats, split = stats_of(tmp_path, {"persons": persons, "records": records}, PANEL)
    t = Tree.of(stats)
    keyed = keyed_tables(t)
    sample = next(s for s in to_samples(split.train, t)[0] if len(s["records"]) >= 3)
    # predicting visits: the output holds no years, so its records stay a list matched to the given ones
    predict = Task(LLMTrainOptions(task="rel_predict", cols_tgt={"records": ["visits"]}), t, keyed=keyed)
    _, schema = output_model(t, predict.output_shape(True), keyed=keyed)
    assert schema["properties"]["records"]["type"] == "array"
    context = predict.context(sample, np.random.default_rng(0))
    output = predict.output(sample, context)
    assert predict.problem(context, output) is None and predict.combine(context, output) == sample
    assert predict.output({"female": True, "records": []}, {"female": True, "records": []})["records"] == []
    # semi-synthetic: the whole sample is written keyed, and the kept records come out as given
    semi = Task(LLMTrainOptions(task="rel_semi_synth", p_child=1.0, p_field=1.0), t, keyed=keyed)
    context = semi.context(sample, np.random.default_rng(0))
    output = semi.output(sample, context)
    assert isinstance(output["records"], dict) and semi.combine(context, output) == sample
    assert semi.output({"female": True, "records": []}, None)["records"] == {}  # a person without records
    # a kept record takes its own year's place, not the first place, so no year repeats
    given = {"female": True, "records": [{"year": 1985, "visits": 9}]}
    written = semi.output({"female": False, "records": [{"year": 1984, "visits": 1}, {"year": 1985, "visits": 2}]},
                          given)
    assert semi.combine(given, written) == {"female": True, "records": [{"year": 1984, "visits": 1},
                                                                        {"year": 1985, "visits": 9}]}
