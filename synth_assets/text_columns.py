"""Free-text columns, where the dataset's backend writes no text (`Backend.writes_text` False).

The backend models the other columns and never sees the text ones (`for_backend`). A text model (text_model.py,
from whichever plugin registers one) learns, for every text column, to write a row's text given the row's other
values and its parent row's, as a prompt the core writes (`prompts`). It trains in the model stage, on its share
of the time budget, into the model version's `text_model/` folder, so it is audited, published and pushed with
the backend's model. In the synthetic stage it writes the texts of the generated rows, and every text passes the
privacy filter (free_text.TextFilter): a text with a word or character too few units hold, or identical to a
training text too few units hold, is written again, and what still holds one has it cut out.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from synth_assets import files
from synth_assets.free_text import TextFilter
from synth_assets.options import GenerateOptions, TrainOptions
from synth_assets.plugins import get_text_model
from synth_assets.stages.split import Split, context_key
from synth_assets.stages.stats import DatasetStats
from synth_assets.text_model import TextExample, TextGenerateRequest, TextTrainRequest

TEXT_MODEL_DIR = "text_model"  # inside a model version's folder
INFO_FILE = "text_columns.json"
MAX_CONTEXT_COLUMNS = 30  # of a row (and as many of its parent's) in a prompt: wide tables' prompts stay short
MAX_VALUE_CHARACTERS = 40  # of one value in a prompt
RETRIES = 3  # rounds that write again the texts the privacy filter would cut


def text_columns(stats: DatasetStats) -> dict[str, list[str]]:
    """Table -> its free-text columns, for the tables that have some."""
    found = {name: [c for c, col in table.columns.items() if col.text_form == "text"]
             for name, table in stats.tables.items()}
    return {name: columns for name, columns in found.items() if columns}


def for_backend(stats: DatasetStats) -> DatasetStats:
    """The stats as a backend that writes no text sees them: without the text columns."""
    texts = text_columns(stats)
    if not texts:
        return stats
    tables = {}
    for name, table in stats.tables.items():
        drop = set(texts.get(name, ()))
        tables[name] = table.model_copy(update={
            "columns": {c: col for c, col in table.columns.items() if c not in drop},
            "column_order": [c for c in table.column_order if c not in drop]})
    return stats.model_copy(update={"tables": tables})


def with_empty_texts(raw: dict[str, pd.DataFrame], stats: DatasetStats) -> dict[str, pd.DataFrame]:
    """A backend's generated tables with their text columns added, empty, to be written after the schema's
    restored (`write_texts`)."""
    out = dict(raw)
    for table, columns in text_columns(stats).items():
        out[table] = raw[table].assign(**{c: None for c in columns if c not in raw[table].columns})
    return out


def seed_without_texts(seed_data: pd.DataFrame | None, stats: DatasetStats
                       ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Seed rows (of the root table) as the backend takes them, without text columns, and the texts they give."""
    texts = text_columns(stats).get(_root(stats), [])
    given = [c for c in texts if seed_data is not None and c in seed_data.columns]
    if not given:
        return seed_data, None
    return seed_data.drop(columns=given), seed_data[given].reset_index(drop=True)


def keep_seeded_texts(frames: dict[str, pd.DataFrame], stats: DatasetStats,
                      given: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The seed rows' own texts, where they give one, in place of the written ones (where the backend wrote one
    row per seed row; a backend that writes several per seed row, or texts itself, keeps its own)."""
    root = frames[_root(stats)]
    if given is None or len(given) != len(root):
        return frames
    for column in given.columns:
        root[column] = given[column].where(given[column].notna(), root[column].to_numpy()).to_numpy()
    return frames


def _root(stats: DatasetStats) -> str:
    return next(name for name, table in stats.tables.items() if context_key(name, table) is None)


def split_for_backend(split: Split, stats: DatasetStats) -> Split:
    texts = text_columns(stats)
    if not texts:
        return split
    return Split(**{partition: {name: df.drop(columns=texts.get(name, []), errors="ignore") for name, df in frames.items()}
                    for partition, frames in (("train", split.train), ("validation", split.validation))})


def text_time_share(stats: DatasetStats, options: TrainOptions) -> float:
    """The share of the training budget the text model takes (0 without text columns)."""
    return options.text.time_share if text_columns(stats) else 0.0


# prompts -------------------------------------------------------------------------------------------------------

def prompts(frames: dict[str, pd.DataFrame], stats: DatasetStats, table: str, column: str) -> list[str]:
    """Per row of `table`: its other values and its parent row's, as JSON, then the column to write."""
    own = _context(frames[table], stats, table)
    fk = context_key(table, stats.tables[table])
    if fk is not None and fk.references in frames:
        parent_stats = stats.tables[fk.references]
        parents = _context(frames[fk.references], stats, fk.references, prefix=f"{fk.references}.")
        keys = frames[fk.references][parent_stats.primary_key]
        positions = pd.Index(keys).get_indexer(frames[table][fk.column])
        own = [{**(parents[p] if p >= 0 else {}), **row} for row, p in zip(own, positions)]
    return [json.dumps(row, ensure_ascii=False, separators=(",", ":")) + f"\n{column}:" for row in own]


def _context(df: pd.DataFrame, stats: DatasetStats, table: str, prefix: str = "") -> list[dict]:
    """Each row's values as text, by column: the structured columns only. A text given another (tate's titles
    given the artist's name) copied more training texts than real unseen ones hold: 45% against 30%."""
    spec = stats.tables[table]
    names = [c for c in spec.column_order if c in spec.columns and spec.columns[c].text_form != "text"
             and c in df.columns][:MAX_CONTEXT_COLUMNS]
    columns = [(prefix + str(c), [_value_text(v) for v in df[c].tolist()]) for c in names]
    return [{name: values[i] for name, values in columns if values[i] is not None} for i in range(len(df))]


def _value_text(value) -> str | None:
    if _empty(value):
        return None
    text = format(value, ".6g") if isinstance(value, float) else str(value)
    return text[:MAX_VALUE_CHARACTERS]


def _empty(value) -> bool:
    """None, NaN, NaT or pandas' NA (a cell's value, never a list)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array-like value: not empty
        return False


# training ------------------------------------------------------------------------------------------------------

def text_model_for(stats: DatasetStats, options: TrainOptions):
    """The text model `train.text.model` names (or the installed one); an error naming the first text column
    where none is installed or the name is unknown."""
    table, columns = next(iter(text_columns(stats).items()))
    return get_text_model(options.text.model, dataset=stats.dataset, table=table, column=columns[0])


def train_text_model(split: Split, stats: DatasetStats, options: TrainOptions, out_dir: Path, *, device: str,
                     seconds: float, progress=None) -> dict:
    """Train the text model of every text column into `out_dir` in `seconds`; returns what the model asset
    shows."""
    texts = text_columns(stats)
    model = text_model_for(stats, options)
    examples = {partition: _examples(frames, stats, texts) for partition, frames in
                (("train", split.train), ("validation", split.validation))}
    started = time.perf_counter()
    request = TextTrainRequest(
        train=examples["train"], validation=examples["validation"] or examples["train"][:256],
        seconds=seconds, max_epochs=options.text.max_epochs,
        seed=options.seed, device=device, model_size=options.text.model_size, progress=progress,
        max_length=max(stats.tables[t].columns[c].max_length or 1 for t, cs in texts.items() for c in cs),
        words=frozenset(w for t, cs in texts.items() for c in cs for w in stats.tables[t].columns[c].words or ()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = model.train(request, out_dir)
    info = {"model": model.name, "columns": texts, "train_examples": len(request.train),
            "seconds": time.perf_counter() - started, **dataclasses.asdict(result)}
    files.write_json(info, out_dir / INFO_FILE)
    return info


def _examples(frames: dict[str, pd.DataFrame], stats: DatasetStats, texts: dict[str, list[str]]) -> list[TextExample]:
    out = []
    for table, columns in texts.items():
        for column in columns:
            longest = stats.tables[table].columns[column].max_length or 0
            values = [None if _empty(v) else str(v)[:longest] for v in frames[table][column].tolist()]
            out += [TextExample(p, v) for p, v in zip(prompts(frames, stats, table, column), values)]
    return out


def texts_written_by(stats: DatasetStats, backend, options: TrainOptions) -> str | None:
    """What writes the free-text columns, in words for the report: the backend itself, or the text model the
    dataset's options choose; None without text columns."""
    texts = text_columns(stats)
    if not texts:
        return None
    columns = ", ".join(f"{t}.{c}" for t, cs in texts.items() for c in cs)
    if backend.writes_text:
        return f"the backend `{backend.name}` itself ({columns})"
    return (f"the text model `{text_model_for(stats, options).name}` ({columns}), the other columns by the "
            f"backend `{backend.name}`")


# generation ----------------------------------------------------------------------------------------------------

def write_texts(frames: dict[str, pd.DataFrame], stats: DatasetStats, model_dir: Path, options: GenerateOptions, *,
                training: dict[str, pd.DataFrame] | None = None, device: str = "auto",
                report: dict | None = None) -> dict[str, pd.DataFrame]:
    """`frames` (restored, with empty text columns) with every text column written by the dataset's text model.
    `training`: the training tables, whose texts too few units hold no written text may copy."""
    texts = text_columns(stats)
    if not texts:
        return frames
    folder = Path(model_dir) / TEXT_MODEL_DIR
    info = files.read_json(folder / INFO_FILE)
    model = get_text_model(info["model"], dataset=stats.dataset)
    seed = options.seed if options.seed is not None else 0
    started, cut, rewritten, total, figures = time.perf_counter(), 0, 0, 0, {}
    for table, columns in texts.items():
        for column in columns:
            col = stats.tables[table].columns[column]
            text_filter = TextFilter.of(col, training[table][column].tolist() if training else None)
            writer = _ColumnWriter(model, folder, col, text_filter, device, options.text_temperature, figures)
            final, again, scrubbed = writer.write(prompts(frames, stats, table, column), seed)
            rewritten, cut, total = rewritten + again, cut + scrubbed, total + len(final)
            frames[table][column] = pd.Series(final, index=frames[table].index, dtype=object).astype(
                _text_dtype(stats.tables[table].dtypes.get(column)))
    if report is not None:
        report.update({**figures, "text_model": info["model"], "text_seconds": time.perf_counter() - started,
                       "texts_rewritten_share": rewritten / max(total, 1), "texts_cut_share": cut / max(total, 1)})
    return frames


@dataclasses.dataclass
class _ColumnWriter:
    """One text column's texts: written, written again where refused (RETRIES rounds), then scrubbed."""

    model: object  # the TextModel
    folder: Path
    column: object  # its ColumnStats
    text_filter: TextFilter
    device: str
    temperature: float
    figures: dict  # the text model's own figures (tokens/s), the last request's

    def write(self, prompts: list[str], seed: int) -> tuple[list[str | None], int, int]:
        """The texts, how many were written again, and how many were scrubbed."""
        written, rewritten = self._ask(prompts, seed), 0
        for round_ in range(RETRIES):
            again = [i for i, t in enumerate(written) if self._refused(t)]
            if not again:
                break
            rewritten += len(again)
            for i, t in zip(again, self._ask([prompts[i] for i in again], seed + round_ + 1)):
                written[i] = t
        final, scrubbed = passed_texts(written, self.column, self.text_filter)
        return final, rewritten, scrubbed

    def _ask(self, prompts: list[str], seed: int) -> list[str | None]:
        request = TextGenerateRequest(prompts, self.text_filter.max_length, self.column.null_share > 0, seed,
                                      self.device, self.temperature, words=self.text_filter.words)
        written = self.model.generate(self.folder, request)
        self.figures.update(request.report)
        return written

    def _refused(self, text: str | None) -> bool:
        return refused(text, self.column, self.text_filter)


def refused(text: str | None, column, text_filter: TextFilter) -> bool:
    """Empty where the source never is, or failing the filter."""
    return column.null_share == 0 if text is None else not text_filter.passes(text)


def passed_texts(written: list[str | None], column, text_filter: TextFilter) -> tuple[list[str | None], int]:
    """The texts as they may come out, and how many were cut: a refused text without what the filter refuses,
    or where that leaves nothing, empty (the column has empty cells) or the column's most common text."""
    fallback = None if column.null_share > 0 else _most_common_text(column)
    bad = [refused(t, column, text_filter) for t in written]
    final = [(text_filter.scrub(t) if t is not None else None) or fallback if cut else t
             for t, cut in zip(written, bad)]
    return final, sum(bad)


def text_filters(stats: DatasetStats, training: dict[str, pd.DataFrame] | None) -> dict[str, dict[str, TextFilter]]:
    """Table -> text column -> what a written text may hold, and which training texts it may not copy."""
    return {table: {column: TextFilter.of(stats.tables[table].columns[column],
                                          training[table][column].tolist() if training else None)
                    for column in columns}
            for table, columns in text_columns(stats).items()}


def filter_written_texts(frames: dict[str, pd.DataFrame], stats: DatasetStats,
                         filters: dict[str, dict[str, TextFilter]], *,
                         report: dict | None = None) -> dict[str, pd.DataFrame]:
    """`frames` (restored) with the texts a backend wrote itself (`Backend.writes_text`) through the same
    filter as a text model's (`text_filters`): the guarantee is the core's, whichever plugin wrote them."""
    cut, total = 0, 0
    for table, columns in text_columns(stats).items():
        for column in columns:
            col = stats.tables[table].columns[column]
            values = frames[table][column]
            final, scrubbed = passed_texts([None if _empty(v) else str(v) for v in values], col,
                                           filters[table][column])
            cut, total = cut + scrubbed, total + len(final)
            frames[table][column] = pd.Series(final, index=values.index, dtype=object).astype(
                _text_dtype(stats.tables[table].dtypes.get(column)))
    if report is not None and total:
        report["texts_cut_share"] = cut / total
    return frames


def _most_common_text(column) -> str:
    """What a text that may not be empty becomes when the filter leaves nothing of it: the text most units hold
    (a kept category), else the word most hold."""
    kept = [c for c in column.categories or [] if isinstance(c, str)]
    return kept[0] if kept else (column.words or [""])[0]


def _text_dtype(dtype: str | None) -> str:
    return dtype if dtype in ("string", "str") else "object"
