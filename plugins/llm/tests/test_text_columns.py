"""Free-text columns in a TabularARGN dataset, written by this plugin's text model, and in an LLM dataset, written
as free strings of its rows' JSON: through one `dg launch` with the checks on, on a table with booleans, nulls and
a child table; a planted canary never comes out of either."""

import re

import numpy as np
import pandas as pd
import pytest

from synth_assets.files import read_json, read_parquet
from synth_assets.free_text import words
from synth_assets.testing import dg_launch, write_project

pytestmark = pytest.mark.e2e

CANARY = "Zyxwquorbl Plimbrathex Vondequist"  # one training row's title; no other row holds a word of it
FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Adler", "Berger", "Conrad", "Diehl", "Engel", "Fischer", "Graf", "Hahn"]
SUBJECTS = ["Harbour", "Mountain", "Garden", "Window", "River", "Bridge", "Forest", "Station", "Market"]
MOODS = ["Quiet", "Distant", "Morning", "Evening", "Winter", "Summer", "Broken", "Golden"]
TECHNIQUES = ["Oil", "Acrylic", "Etching", "Watercolour", "Screenprint", "Graphite"]
SUPPORTS = ["canvas", "paper", "board", "wood"]
CITIES = ["Berlin", "Paris", "Vienna", "Madrid", "Oslo", "Rome"]
EVENTS = ["a retrospective", "a group show", "the summer exhibition", "a touring show"]


def artworks(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Artworks (titles and descriptions as free text, beside a boolean, a number with nulls and a year) and their
    loans (a child table with a free-text note)."""
    r = np.random.default_rng(seed)
    technique = r.choice(TECHNIQUES, n)
    kind = r.choice(["portrait", "scene", "untitled"], n, p=[0.3, 0.55, 0.15])
    titles = [f"Portrait of {r.choice(FIRST)} {r.choice(LAST)}" if k == "portrait"
              else f"{r.choice(MOODS)} {r.choice(SUBJECTS)}" if k == "scene" else f"Untitled {r.integers(1, 4)}"
              for k in kind]
    titles[7] = CANARY
    descriptions = [None if r.random() < 0.2 else f"{t} on {r.choice(SUPPORTS)}" for t in technique]
    works = pd.DataFrame({
        "work_id": np.arange(1, n + 1), "title": titles, "technique": technique, "description": descriptions,
        "year": r.integers(1950, 2020, n), "on_display": r.random(n) < 0.3,
        "height_cm": np.where(r.random(n) < 0.1, np.nan, np.round(r.gamma(4.0, 15.0, n), 1)),
    })
    loans_per_work = r.integers(0, 3, n)
    m = int(loans_per_work.sum())
    loans = pd.DataFrame({
        "loan_id": np.arange(m), "work_id": np.repeat(works.work_id.to_numpy(), loans_per_work),
        "insured": r.random(m) < 0.7,
        "note": [f"Lent to {r.choice(CITIES)} for {r.choice(EVENTS)} in {r.integers(1960, 2020)}" for _ in range(m)],
    })
    return works, loans


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """One table pair as two datasets, one of each backend, in one launch. Both models train for a number of passes,
    not seconds: what they learn does not depend on how busy the machine is."""
    folder = tmp_path_factory.mktemp("texts")
    works, loans = artworks()
    works.to_csv(folder / "works.csv", index=False)
    loans.to_csv(folder / "loans.csv", index=False)
    write_project(folder, """
        datasets:
          art:
            backend: tabular_argn
            tables: &art_tables
              works: {source: works.csv, primary_key: work_id, columns: {description: {encoding: text}}}
              loans:
                source: loans.csv
                primary_key: loan_id
                foreign_keys: [{column: work_id, references: works}]
            train: {max_training_time: 2, max_epochs: 10, text: {model_size: tiny, time_share: 0.5, max_epochs: 5}}
            generate: {sample_size: 300, seed: 1}
          art_llm:
            backend: llm
            tables: *art_tables
            train: {max_training_time: 2, max_epochs: 30, model_size: tiny, cols_ctx: [year, title]}
            generate: {sample_size: 150, seed: 1}
        """)
    launch = dg_launch(folder, "--assets", "group:art or group:art_llm")
    return launch, folder / "store", works, loans


@pytest.mark.parametrize("dataset", ["art", "art_llm"])
def test_texts_are_written_from_kept_words_through_dg_launch(launched, dataset):
    launch, store, works, loans = launched
    launch.assert_passed(("schema_matches_source", f"{dataset}/synthetic"), ("privacy_gate", f"{dataset}/synthetic"))
    store = store / dataset
    out = read_parquet(store / "synthetic" / "CURRENT" / "works.parquet")
    out_loans = read_parquet(store / "synthetic" / "CURRENT" / "loans.parquet")
    stats = read_json(store / "stats.json")["tables"]
    for table, frame, column in (("works", out, "title"), ("works", out, "description"), ("loans", out_loans, "note")):
        assert stats[table]["columns"][column]["text_form"] == "text"
        kept = set(stats[table]["columns"][column]["words"])
        written = frame[column].dropna()
        assert len(written) and all(set(words(t)) <= kept for t in written)  # only words enough rows hold
        assert written.nunique() >= 5 and written.map(lambda t: len(t.split())).between(1, 12).mean() > 0.9
        assert "_RARE_" not in set(written)
    assert out.title.notna().all()  # the source has none empty: nor has the output
    assert 0.05 <= out.description.isna().mean() <= 0.45  # a fifth empty in the source
    assert out.on_display.dtype == bool and out.height_cm.isna().any() and out_loans.work_id.isin(out.work_id).all()


def test_the_model_says_which_model_wrote_which_column(launched):
    _, store, _, _ = launched
    report = (store / "art" / "quality" / "report.md").read_text()
    assert ("Free-text columns written by the text model `language_model` (works.title, works.description, "
            "loans.note), the other columns by the backend `tabular_argn`.") in report
    assert ("Free-text columns written by the backend `llm` itself"
            in (store / "art_llm" / "quality" / "report.md").read_text())
    info = read_json(store / "art" / "model" / "CURRENT" / "text_model" / "text_columns.json")
    assert info["model"] == "language_model"
    assert info["columns"] == {"works": ["title", "description"], "loans": ["note"]}
    # the LLM writes its rows' texts itself: no text model beside it
    assert not (store / "art_llm" / "model" / "CURRENT" / "text_model").exists()


def test_the_llm_writes_new_texts_not_a_list_of_training_texts(launched):
    """A text column of an LLM dataset is a free string of the row's JSON, not an enum of kept texts: texts no
    training row holds come out, made of kept words."""
    _, store, works, _ = launched
    out = read_parquet(store / "art_llm" / "synthetic" / "CURRENT" / "works.parquet")
    written = set(out.title.dropna())
    assert len(written - set(works.title)) >= 3


def test_the_quality_report_judges_every_text_column(launched):
    _, store, _, _ = launched
    report = (store / "art" / "quality" / "report.md").read_text()
    assert "Free-text columns" in report
    for column in ("title", "description", "note"):
        assert f"Written `" in report and f".{column}` beside real ones" in report
    row = next(line for line in report.splitlines() if line.startswith("| works | title |"))
    length, word_similarity = (float(cell.split("/")[0]) for cell in row.split("|")[3:5])
    assert 0.5 < length <= 1 and 0.5 < word_similarity <= 1


@pytest.mark.parametrize("dataset", ["art", "art_llm"])
def test_a_planted_canary_never_comes_out(launched, dataset):
    _, store, _, _ = launched
    texts = " ".join(read_parquet(store / dataset / "synthetic" / "CURRENT" / "works.parquet").title.dropna())
    assert not any(w.lower() in texts.lower() for w in CANARY.split())
    pieces = {CANARY[i:i + 8].lower() for i in range(len(CANARY) - 7)}
    assert not any(piece in texts.lower() for piece in pieces)
    assert not re.search("zyxw|plimb|vonde", texts, re.IGNORECASE)


@pytest.mark.parametrize("dataset", ["art", "art_llm"])
def test_seed_rows_keep_their_own_texts_and_get_the_rest_written(launched, monkeypatch, dataset):
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.project import load_project

    _, store, _, _ = launched
    monkeypatch.setenv("SYNTH_CONFIG", str(store.parent / "synth.yaml"))
    monkeypatch.setenv("SYNTH_HOME", str(store))
    seed = pd.DataFrame({"year": [1990, 2005, 1970], "title": ["Quiet Harbour", None, "My Own Title"]})
    out = DatasetPipeline(load_project(), dataset).generate_frames(seed_data=seed)["works"]
    assert out.year.tolist() == [1990, 2005, 1970]
    assert out.title[0] == "Quiet Harbour" and out.title[2] == "My Own Title"  # the user's, as given
    assert isinstance(out.title[1], str) and out.title[1]  # written where the seed gives none
