"""Free text: which string columns the stats take for text, what they keep of it, and the filter every written text
passes (the text model itself: plugins/llm/tests/test_text_columns.py)."""

import numpy as np
import pandas as pd
import pytest

from synth_assets.errors import SynthError
from synth_assets.free_text import TextFilter, words
from synth_assets.stages.stats import column_stats
from synth_assets.stages.value_protection import Protection
from synth_assets.text_columns import for_backend, prompts, split_for_backend, text_columns

WHERE = ("d", "t", "c")


def titles(n: int = 400, seed: int = 0) -> pd.Series:
    """Titles of artworks: common words in combinations few rows share, one surname held by a single row."""
    r = np.random.default_rng(seed)
    out = [f"{r.choice(['Quiet', 'Distant', 'Golden', 'Broken'])} {r.choice(['River', 'Garden', 'Bridge'])} "
           f"{r.integers(1, 60)}" for _ in range(n)]
    out[3] = "Portrait of Vondequist"
    return pd.Series(out)


def test_titles_are_text_and_keep_only_words_enough_rows_hold():
    stats = column_stats(titles(), None, where=WHERE)
    assert stats.kind == "categorical" and stats.text_form == "text"
    assert {"quiet", "river", "garden"} <= set(stats.words)
    assert "vondequist" not in stats.words and "portrait" not in stats.words  # held by one row
    assert "V" not in stats.text_characters and "Q" in stats.text_characters
    assert stats.max_length >= 15 and stats.text_lengths[0] <= stats.text_lengths[-1]


def test_words_count_subjects_not_rows():
    texts = pd.Series(["Dear Mr Oakenshield, thanks"] * 10 + [f"Hello there {i}" for i in range(40)])
    person = pd.Series([7] * 10 + list(range(40)))  # one person wrote the first ten
    stats = column_stats(texts, person, requested="text", hint="text", where=WHERE,
                         protection=Protection().column())
    assert "oakenshield" not in stats.words and "hello" in stats.words


@pytest.mark.parametrize("values", [
    [f"AB{i % 9} {i % 7}CD" for i in range(300)],  # postcodes: several pieces, not words
    [f"{i:032x}" for i in range(300)],  # unique IDs: no white space
    [["red", "green", "blue"][i % 3] + " car" for i in range(300)],  # two words, but few values: a category
])
def test_codes_ids_and_categories_stay_what_they_are(values):
    assert column_stats(pd.Series(values), None, where=WHERE).text_form != "text"


def test_the_encoding_forces_text_or_a_category():
    few = pd.Series(["Oil on canvas", "Ink on paper"] * 100)
    assert column_stats(few, None, requested="text", hint="text", where=WHERE).text_form == "text"
    assert column_stats(titles(), None, requested="categorical", hint="categorical",
                        where=WHERE).text_form == "category"
    with pytest.raises(SynthError, match="numbers cannot be encoded as text") as caught:
        column_stats(pd.Series(range(100)), None, requested="text", hint="text", where=WHERE)
    assert caught.value.column == "c"


def test_differential_privacy_keeps_the_words_many_subjects_hold_and_finds_no_text_by_itself():
    """With DP a text column is one the project file names: its words and other characters are kept by noisy
    counts of the subjects holding them (each adds a bounded number), its letters are the kept words', and its
    length comes from noisy counts too."""
    dp = Protection(epsilon=1.0, delta=1e-6)
    texts = pd.concat([titles(4000, seed=1), pd.Series(["Quiet River #Vondequist"])], ignore_index=True)
    assert column_stats(texts, None, where=WHERE, protection=dp.column()).text_form != "text"
    stats = column_stats(texts, None, requested="text", hint="text", where=WHERE, protection=dp.column())
    assert stats.text_form == "text"
    assert {"quiet", "distant", "golden", "broken", "river", "garden", "bridge"} <= set(stats.words)
    assert "vondequist" not in stats.words and "#" not in stats.text_characters  # held by one subject
    assert set("QuietRiver ") <= set(stats.text_characters) and "V" in stats.text_characters  # "river"'s letters
    assert 15 <= stats.max_length <= 20 and len(stats.text_lengths) == 21
    assert stats.text_lengths[0] <= stats.text_lengths[10] <= stats.text_lengths[-1] <= stats.max_length


def test_the_filter_passes_kept_words_and_cuts_the_rest():
    stats = column_stats(titles(), None, where=WHERE)
    text_filter = TextFilter.of(stats)
    assert text_filter.passes("Quiet River 12")
    assert not text_filter.passes("Quiet Vondequist") and text_filter.unknown_words("Quiet Vondequist") == ["vondequist"]
    assert text_filter.scrub("Quiet  Vondequist River") == "Quiet River"
    long = text_filter.scrub("Quiet River " * 20)  # cut to the length at a word: no piece of one is left
    assert len(long) <= text_filter.max_length and set(long.split()) == {"Quiet", "River"}
    assert len(long) > text_filter.max_length - len("River ") and long == ("Quiet River " * 20)[: len(long)]
    assert words("Mr. O'Neil's 2nd") == ["mr", "o", "neil", "s", "2nd"]


def test_a_backend_never_sees_text_and_prompts_carry_the_row_and_its_parent():
    from synth_assets.stages.split import Split
    from synth_assets.stages.stats import DatasetStats, TableStats

    works = pd.DataFrame({"id": [1, 2], "title": ["Quiet River", "Golden Bridge"], "year": [1990, 2001]})
    loans = pd.DataFrame({"loan": [10, 11, 12], "id": [1, 1, 2], "note": ["a b", "c d", None],
                          "insured": [True, False, True]})
    stats = DatasetStats.model_validate({"dataset": "d", "tables": {
        "works": TableStats.model_validate({
            "name": "works", "rows": 2, "primary_key": "id", "foreign_keys": [], "column_order": ["id", "title", "year"],
            "dtypes": {"id": "int64", "title": "object", "year": "int64"},
            "columns": {"title": column_stats(titles(), None, where=WHERE).model_copy(update={"name": "title"}),
                        "year": column_stats(pd.Series([1990, 2001] * 50), None, where=WHERE).model_copy(update={"name": "year"})}}),
        "loans": TableStats.model_validate({
            "name": "loans", "rows": 3, "primary_key": "loan", "foreign_keys": [{"column": "id", "references": "works"}],
            "column_order": ["loan", "id", "note", "insured"],
            "dtypes": {"loan": "int64", "id": "int64", "note": "object", "insured": "bool"},
            "columns": {"note": column_stats(titles(), None, where=WHERE).model_copy(update={"name": "note"}),
                        "insured": column_stats(pd.Series([True, False] * 50), None, where=WHERE).model_copy(update={"name": "insured"})}}),
    }})
    assert text_columns(stats) == {"works": ["title"], "loans": ["note"]}
    seen = for_backend(stats)
    assert list(seen.tables["works"].columns) == ["year"] and "note" not in seen.tables["loans"].column_order
    split = split_for_backend(Split(train={"works": works, "loans": loans}, validation={"works": works, "loans": loans}),
                              stats)
    assert list(split.train["loans"].columns) == ["loan", "id", "insured"]
    asked = prompts({"works": works, "loans": loans}, stats, "loans", "note")
    assert asked[0] == '{"works.year":"1990","insured":"True"}\nnote:' and '"works.year":"2001"' in asked[2]
    assert all("Quiet" not in p for p in asked)  # another text column is no context


def test_text_quality_tells_copies_and_word_salad_from_real_texts():
    from synth_assets.stages.text_quality import text_quality

    train, holdout = titles(400, seed=1), titles(400, seed=2)
    copies = text_quality("t", train, holdout, train.sample(frac=1, random_state=0))
    assert copies.exact_copy_share == 1.0 and copies.holdout_exact_copy_share < 0.6
    real = text_quality("t", train, holdout, titles(400, seed=3))
    rng = np.random.default_rng(0)
    salad = pd.Series([" ".join(rng.choice(["river", "of", "x", "golden"], rng.integers(1, 8))) for _ in range(400)])
    bad = text_quality("t", train, holdout, salad)
    assert real.word_similarity > 0.8 and bad.word_similarity < 0.4  # 60 numbers over 400 rows: noise near 0.1
    assert real.length_similarity > 0.85 and bad.length_similarity < 0.5
    assert real.mean_words == pytest.approx(real.training_mean_words, abs=0.2)
    assert len(real.samples) == len(real.real_samples) == 5


def test_the_discriminator_sees_what_texts_say():
    from synth_assets.stages.quality import discriminator_auc

    column = column_stats(titles(), None, where=WHERE).model_copy(update={"name": "title"})
    real = pd.DataFrame({"title": titles(600, seed=1)})
    same = pd.DataFrame({"title": titles(600, seed=2)})
    rng = np.random.default_rng(0)
    salad = pd.DataFrame({"title": [" ".join(rng.choice(["River", "Quiet", "Garden", "7"], rng.integers(1, 6)))
                                    for _ in range(600)]})
    assert discriminator_auc([column], real, same) < 0.6
    assert discriminator_auc([column], real, salad) > 0.8


def test_the_privacy_gate_fails_written_texts_that_copy_training_texts_and_passes_unseen_ones():
    from synth_assets.stages.privacy import PrivacyGate, evaluate_privacy, gate_problems
    from synth_assets.stages.stats import DatasetStats, TableStats

    def table(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"title": [f"{t} {rng.integers(1000)}" for t in titles(600, seed=seed)],
                             "year": rng.integers(1950, 2020, 600)})

    train, holdout, unseen = table(1), table(2), table(3)
    stats = DatasetStats.model_validate({"dataset": "d", "tables": {"works": TableStats.model_validate({
        "name": "works", "rows": 600, "primary_key": None, "foreign_keys": [], "column_order": ["title", "year"],
        "dtypes": {"title": "object", "year": "int64"},
        "columns": {"title": column_stats(train.title, None, requested="text", hint="text", where=WHERE
                                          ).model_copy(update={"name": "title"}),
                    "year": column_stats(train.year, None, where=WHERE).model_copy(update={"name": "year"})}})}})
    gate = PrivacyGate(max_text_copy_excess=0.02)
    copying = unseen.assign(title=train.title.sample(frac=1, random_state=0).to_numpy())  # other years: no row copied
    figures = evaluate_privacy(stats, "works", {"works": train}, {"works": holdout}, {"works": copying}, draws=1)
    assert figures.text_copies[0].exact_copy_share == 1.0 and figures.exact_copy_share < 0.05
    assert figures.text_copies[0].rare_copy_share > 0.9  # the titles are numbered: nearly all rare
    problems = gate_problems(figures, gate)
    assert len(problems) == 1 and "column 'title'" in problems[0] and "max_text_copy_excess" in problems[0]
    honest = evaluate_privacy(stats, "works", {"works": train}, {"works": holdout}, {"works": unseen}, draws=1)
    assert honest.text_copies[0].exact_copy_share < 0.1 and gate_problems(honest, gate) == []
    assert "text_copies/title" in honest.summary()


def test_a_rare_training_text_of_common_words_never_comes_out_whole():
    texts = pd.Series(["Quiet River"] * 6 + ["Golden Garden"] * 6 + ["Quiet Garden", "Golden River"] +
                      [f"Quiet {i}" for i in range(100)])
    column = column_stats(texts, None, requested="text", hint="text", where=WHERE)
    text_filter = TextFilter.of(column, texts.tolist())
    assert {"quiet", "garden", "river", "golden"} <= set(column.words)
    assert text_filter.passes("Quiet River")  # six rows hold it: a common text
    assert not text_filter.passes("Quiet Garden")  # one row's own text, though its words are common
    assert text_filter.passes("Garden Quiet") and text_filter.scrub("Quiet Garden") == ""
