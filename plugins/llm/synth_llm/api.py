"""The LLM tasks from Python, on DataFrames: `RelSynth`, `RelSemiSynth`, `RelPredict`, `RelEvent`,
`RelEventPredict`.

Each runs the core's stages (split, stats with the privacy rules, samples, training) in a workspace folder, as a
dataset of synth.yaml would, so the same rules and checks apply:

    model = RelSynth(max_training_time=2).fit(df)
    synthetic = model.generate(sample_size=1000)

    tables = {"persons": persons, "visits": visits}
    links = {"persons": {"primary_key": "id"},
             "visits": {"foreign_keys": [{"column": "id", "references": "persons"}], "order_by": "year"}}
    model = RelPredict(tables=links, cols_tgt={"visits": ["cost"]}).fit(tables)
    predicted = model.predict()  # the holdout's costs, predicted
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from synth_assets.plugin_api import (
    DatasetPipeline,
    DatasetSpec,
    SplitSpec,
    SynthError,
    TableSpec,
    link_records,
    open_workspace,
    parse_options,
    root_table,
    run_on_frames,
)
from synth_llm.options import LLMGenerateOptions, LLMTrainOptions

TABLE = "data"


class _Task:
    task = "rel_synth"

    def __init__(self, *, tables: dict[str, dict] | None = None, validation_share: float = 0.2,
                 device: str = "auto", workspace: str | Path | None = None, **train_options):
        """`tables`: per table name, its keys and order as in synth.yaml (primary_key, foreign_keys, order_by);
        the other keywords are the `train` options of synth.yaml (`LLMTrainOptions`)."""
        self.train_options = parse_options(LLMTrainOptions, {"task": self.task, **train_options}, f"{type(self).__name__} options")
        self.tables = dict(tables or {})
        self.validation_share = validation_share
        self.device = device
        self.workspace = Path(workspace) if workspace else Path(tempfile.mkdtemp(prefix="synth-llm-"))
        self.pipeline: DatasetPipeline | None = None
        self.training = None

    def fit(self, data: pd.DataFrame | dict[str, pd.DataFrame], progress=None):
        frames = {TABLE: data} if isinstance(data, pd.DataFrame) else dict(data)
        if not frames or any(not isinstance(df, pd.DataFrame) or df.empty for df in frames.values()):
            raise SynthError("fit needs non-empty pandas DataFrames: one, or a dict of table name -> DataFrame")
        unknown = sorted(set(self.tables) - set(frames))
        if unknown:
            raise SynthError("`tables` describes a table fit() was not given", table=unknown[0],
                             hint=f"give DataFrames for {sorted(self.tables)}")
        specs = {}
        for name in frames:
            try:
                specs[name] = TableSpec(source=f"{name}.parquet", **self.tables.get(name, {}))
            except ValidationError as exc:
                raise SynthError(f"tables.{name}: {exc.errors()[0]['msg']}", table=name) from None
        spec = DatasetSpec(backend="llm", tables=specs, train=self.train_options,
                           split=SplitSpec(validation_share=self.validation_share, seed=self.train_options.seed or 0))
        self.pipeline, self.training = run_on_frames({n: df.reset_index(drop=True) for n, df in frames.items()},
                                                     spec, self.workspace, device=self.device, progress=progress)
        return self

    @classmethod
    def load(cls, workspace: str | Path, device: str = "auto"):
        """Open a model fitted earlier in `workspace`."""
        pipeline = open_workspace(Path(workspace))
        options = pipeline.spec.train.model_dump()
        if options.get("task") != cls.task:
            raise SynthError(f"{workspace} holds a {options.get('task')} model", hint=f"open it with that task's class")
        options.pop("task")
        model = cls(workspace=workspace, device=device, **options)
        model.pipeline = pipeline
        return model

    def _generate(self, seed_data: pd.DataFrame | dict[str, pd.DataFrame] | None = None, **generate_options):
        if self.pipeline is None:
            raise SynthError("the model is not fitted yet", hint="call fit(...) first")
        options = parse_options(LLMGenerateOptions, generate_options, "generate options")
        seed_records = None
        if isinstance(seed_data, dict):
            seed_data, seed_records = self._given_tables(seed_data)
        tables = self.pipeline.generate_frames(options, device=self.device, seed_data=seed_data,
                                               seed_records=seed_records)
        return tables[TABLE] if list(tables) == [TABLE] else tables

    def _given_tables(self, frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
        """Given samples as tables (the root's rows with their key, and child records naming them): the root rows
        and the records as a request takes them (link_records)."""
        root = root_table(self.pipeline.spec)
        if root not in frames:
            raise SynthError("the given tables lack the root table", table=root, hint=f"give '{root}' too")
        return link_records(self.pipeline.spec, frames[root], {n: f for n, f in frames.items() if n != root})


class RelSynth(_Task):
    """Fully synthetic tables; with `cols_ctx`, root rows completed from the given columns."""

    task = "rel_synth"

    def generate(self, sample_size: int | None = None, *, ctx: pd.DataFrame | None = None, **generate_options):
        """`sample_size` new root rows (with their children), or one per row of `ctx` (the `cols_ctx` columns)."""
        return self._generate(seed_data=ctx, sample_size=sample_size, **generate_options)


class RelSemiSynth(_Task):
    """Real samples with a random part kept (`p_field`, `p_child`) and the rest generated."""

    task = "rel_semi_synth"

    def generate(self, sample_size: int | None = None, *, ctx: pd.DataFrame | dict[str, pd.DataFrame] | None = None,
                 **generate_options):
        """`sample_size` samples from real ones, or one per given root row of `ctx` (a table, or tables with their
        child records): what it gives is kept, what is null or left out is written."""
        return self._generate(seed_data=ctx, sample_size=None if ctx is not None else sample_size, **generate_options)


class RelPredict(_Task):
    """The `cols_tgt` columns predicted from the rest."""

    task = "rel_predict"

    def predict(self, data: pd.DataFrame | dict[str, pd.DataFrame] | None = None, n_pred: int = 1,
                aggregate: bool = False, **generate_options):
        """Predictions for the rows of `data` (a table, or tables: root rows and their child records), or for the
        holdout the model kept aside. With `n_pred`
        draws: every draw, indexed by (row, draw), or with `aggregate` one row per row (the draws' most frequent value,
        or the mean of numbers)."""
        out = self._generate(seed_data=data, n_pred=n_pred, aggregate_draws=aggregate, **generate_options)
        if n_pred > 1 and not aggregate and isinstance(out, pd.DataFrame):
            rows = len(out) // n_pred
            out.index = pd.MultiIndex.from_product([data.index if isinstance(data, pd.DataFrame) else range(rows),
                                                    range(n_pred)],
                                                   names=["row", "draw"])
        return out


class RelEvent(_Task):
    """Fully synthetic subjects whose event tables (`event_tables`: child tables of the root ordered by a date or a
    number) are written as one history in time order."""

    task = "rel_event"

    def generate(self, sample_size: int | None = None, *, min_n_events: int = 0, max_n_events: int | None = None,
                 forbidden_events: list[str] | tuple[str, ...] = (), **generate_options):
        """`sample_size` new subjects with their events: each holds min_n_events to max_n_events events, and none
        of the `forbidden_events` tables."""
        return self._generate(sample_size=sample_size, min_n_events=min_n_events, max_n_events=max_n_events,
                              forbidden_events=list(forbidden_events), **generate_options)


class RelEventPredict(_Task):
    """The events that follow a subject's first events."""

    task = "rel_event_predict"

    def predict(self, data: dict[str, pd.DataFrame] | None = None, *, n_events: int | None = None,
                n_future: int | None = None, n_pred: int = 1, only_future: bool = False,
                forbidden_events: list[str] | tuple[str, ...] = (), **generate_options) -> dict[str, pd.DataFrame]:
        """Continuations of the subjects of `data` (the root's rows with their key, and their event records naming
        them), or of the holdout the model kept aside: each subject's first `n_events` events (all, where None) are
        its history, and `n_future` events follow (as many as the model chooses, where None). `n_pred`
        continuations per subject, each its own root row; with `only_future` the event tables hold only the
        written events."""
        return self._generate(seed_data=data, n_events=n_events, n_future=n_future, n_pred=n_pred,
                              only_future=only_future, forbidden_events=list(forbidden_events), **generate_options)
