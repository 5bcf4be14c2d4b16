"""TabularARGN as a Python object, for use outside Dagster, in the style of scikit-learn:

    model = TabularARGN(max_training_time=1).fit(df)
    synthetic = model.sample(n_samples=1000)
    model.predict(X, target="cut"); model.predict_proba(X, target="cut"); model.log_prob(df); model.impute(df)

It runs the same stage code as the asset graph: the core's split and stats (so the same privacy rules
apply), then this backend's encode, train and generate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from synth_assets.plugin_api import (
    ColumnSpec,
    DatasetPipeline,
    ForeignKey,
    DatasetSpec,
    DatasetStats,
    GenerateRequest,
    SplitSpec,
    SynthError,
    TableSpec,
    link_records,
    open_workspace,
    parse_options,
    read_json,
    run_on_frames,
)
from synth_tabular_argn.backend import TabularARGNBackend, TrainedModel
from synth_tabular_argn.encoding import decode_column, encode_table
from synth_tabular_argn.sequences import SUBJECT, longest, model_frames, model_tables
from synth_tabular_argn.options import ARGNGenerateOptions, ARGNTrainOptions

TABLE = "data"
CONTEXT = "context"


class TabularARGN:
    """An autoregressive generative model of one flat table, or of subjects (`ctx_data`) and their records.

    Training options are those of synth.yaml's `train` section (the fields of `ARGNTrainOptions`:
    `max_training_time` in minutes, `max_epochs`, `model_size`, `seed`, ...). `columns` overrides
    encodings, e.g. {"zip": "character"}. `time_steps=False` keeps the times of `order_by` values instead of steps
    from the previous record. The fitted model lives in `workspace` (a temporary folder unless given);
    `TabularARGN.load(workspace)` opens it again.
    """

    def __init__(
        self,
        *,
        validation_share: float = 0.2,
        columns: dict[str, str] | None = None,
        primary_key: str | None = None,
        tgt_context_key: str | None = None,
        ctx_primary_key: str | None = None,
        ctx_data: pd.DataFrame | None = None,
        order_by: str | list[str] | None = None,
        time_steps: bool = True,
        device: str = "auto",
        workspace: str | Path | None = None,
        **train_options,
    ):
        self.train_options = parse_options(ARGNTrainOptions, train_options, "TabularARGN options")
        self.validation_share = validation_share
        self.columns = dict(columns or {})
        self.primary_key = primary_key
        # two tables: `ctx_data` (one row per subject, keyed by `ctx_primary_key`) and the records fit() gets,
        # which name their subject in `tgt_context_key` and are ordered by `order_by`
        if (ctx_data is None) != (tgt_context_key is None):
            raise SynthError("give both ctx_data and tgt_context_key, or neither",
                             hint="ctx_data holds one row per subject; tgt_context_key names it in the records")
        self.tgt_context_key = tgt_context_key
        self.ctx_primary_key = ctx_primary_key or tgt_context_key
        self.ctx_data = ctx_data
        self.order_by = [order_by] if isinstance(order_by, str) else list(order_by or [])
        self.time_steps = time_steps  # records' times as steps from the previous record, where they fit
        if not time_steps and not self.order_by:
            raise SynthError("time_steps=False is about the times in order_by, and no order_by is given", table=TABLE,
                             hint="give order_by, or leave time_steps out")
        self.device = device
        self.workspace = Path(workspace) if workspace else Path(tempfile.mkdtemp(prefix="tabular-argn-"))
        self.backend = TabularARGNBackend()
        self.pipeline: DatasetPipeline | None = None
        self.stats: DatasetStats | None = None
        self.training = None
        self._trained: TrainedModel | None = None

    # fitting --------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, progress=None) -> "TabularARGN":
        """Train on `X` with the core's stages (split, stats with its privacy rules, encode, train)."""
        if not isinstance(X, pd.DataFrame) or X.empty:
            raise SynthError("fit needs a non-empty pandas DataFrame", table=TABLE)
        tables = {TABLE: TableSpec(source=f"{TABLE}.parquet", primary_key=self.primary_key,
                                   columns={c: ColumnSpec(encoding=e) for c, e in self.columns.items()})}
        frames = {TABLE: X.reset_index(drop=True)}
        if self.ctx_data is not None:  # the records under their subjects
            tables = {CONTEXT: TableSpec(source=f"{CONTEXT}.parquet", primary_key=self.ctx_primary_key),
                      TABLE: tables[TABLE].model_copy(update={
                          "order_by": self.order_by, "time_steps": self.time_steps,
                          "foreign_keys": [ForeignKey(column=self.tgt_context_key, references=CONTEXT)]})}
            frames[CONTEXT] = self.ctx_data.reset_index(drop=True)
        spec = DatasetSpec(
            backend=self.backend.name, tables=tables,
            split=SplitSpec(validation_share=self.validation_share, seed=self.train_options.seed or 0),
            train=self.train_options,
        )
        self.pipeline, self.training = run_on_frames(frames, spec, self.workspace, device=self.device,
                                                     progress=progress)
        self.stats = self.pipeline.load_stats()
        self._trained = None
        return self

    @classmethod
    def load(cls, workspace: str | Path, device: str = "auto") -> "TabularARGN":
        """Open a model fitted earlier in `workspace`."""
        pipeline = open_workspace(Path(workspace))
        model = cls(workspace=workspace, device=device, **pipeline.spec.train.model_dump())
        model.pipeline, model.stats = pipeline, pipeline.load_stats()
        return model

    @property
    def trained(self) -> TrainedModel:
        if self.pipeline is None:
            raise SynthError("the model is not fitted yet", hint="call fit(df) first")
        if self._trained is None:
            self._trained = TrainedModel.load(self.pipeline.paths.model, self.table, self.device)
        return self._trained

    @property
    def table(self):
        return self.stats.tables[TABLE]

    # generation -----------------------------------------------------------------------------------
    def sample(self, n_samples: int | None = None, *, seed_data: pd.DataFrame | None = None,
               ctx_data: pd.DataFrame | None = None, **generate_options) -> pd.DataFrame:
        """Synthetic rows: `n_samples` of them, or one per row of `seed_data`, whose values are kept. A two-table
        model gives records: those of `n_samples` new subjects, or of the subjects in `ctx_data`
        (`sample_records` gives the subjects too); with `seed_data` there, the first records of some of those
        subjects, which come out as given, followed by the records drawn after them.

        Other options are those of synth.yaml's `generate` section (the fields of `ARGNGenerateOptions`):
        seed, sampling_temperature, sampling_top_p, rare_category_replacement,
        rebalancing={"column": c, "probabilities": {category: share}}, imputation={"columns": [...]},
        fairness={"target_column": t, "sensitive_columns": [...]}."""
        if self.pipeline is not None and CONTEXT in self.pipeline.spec.tables:
            return self.sample_records(n_samples, ctx_data=ctx_data, seed_data=seed_data, **generate_options)[1]
        options = parse_options(ARGNGenerateOptions, {"sample_size": n_samples, **generate_options}, "sample options")
        if self.pipeline is None:
            raise SynthError("the model is not fitted yet", hint="call fit(df) first")
        return self.pipeline.generate_frames(options, device=self.device, seed_data=seed_data)[TABLE]

    def sample_records(self, n_samples: int | None = None, *, ctx_data: pd.DataFrame | None = None,
                       seed_data: pd.DataFrame | None = None, **generate_options) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Two-table models: (subjects, their records). `n_samples` new subjects, or the subjects of `ctx_data`
        (kept as given, keys included), each with records drawn for it. `seed_data`: the first records of some of
        the `ctx_data` subjects (their foreign key names the subject), in order: they come out exactly as given,
        and the records after them are drawn following them."""
        if self.pipeline is None or CONTEXT not in self.pipeline.spec.tables:
            raise SynthError("sample_records needs a model fitted with ctx_data and tgt_context_key",
                             hint="use sample() for one table")
        key = self.pipeline.spec.tables[CONTEXT].primary_key
        spec = self.pipeline.spec.tables[TABLE]
        fk = spec.foreign_keys[0].column
        given = None if ctx_data is None else ctx_data.drop(columns=[key], errors="ignore").reset_index(drop=True)
        seed_records = None
        if seed_data is not None:
            if ctx_data is None:
                raise SynthError("seed_data on a two-table model holds the first records of given subjects: give "
                                 "the subjects as ctx_data too", table=TABLE)
            seed_data = seed_data.sort_values([fk, *spec.order_by], kind="stable").reset_index(drop=True) \
                if fk in seed_data.columns else seed_data  # in the order link_records gives them
            given, seed_records = link_records(self.pipeline.spec, ctx_data, {TABLE: seed_data})
        options = parse_options(ARGNGenerateOptions, {"sample_size": n_samples, **generate_options}, "sample options")
        out = self.pipeline.generate_frames(options, device=self.device, seed_data=given, seed_records=seed_records)
        subjects, records = out[CONTEXT], out[TABLE]
        if ctx_data is not None:  # the given subjects keep their keys; their records point at them
            fresh_to_given = dict(zip(subjects[key], ctx_data[key]))
            records[fk] = records[fk].map(fresh_to_given).astype(ctx_data[key].dtype)
            subjects = ctx_data.reset_index(drop=True).copy()
        if seed_data is not None:  # the given records as they were given: their subject's first records
            first = records.groupby(fk, sort=False).cumcount().to_numpy()
            place = pd.Series(range(len(records)), index=pd.MultiIndex.from_arrays([records[fk].to_numpy(), first]))
            at = place.loc[list(zip(seed_data[fk], seed_data.groupby(fk, sort=False).cumcount()))].to_numpy()
            imputed = set(options.imputation.columns) if options.imputation else set()
            for column in seed_data.columns:
                values = seed_data[column].to_numpy(dtype=object)
                keep = seed_data[column].notna().to_numpy() if column in imputed else np.ones(len(values), bool)
                dtype = records[column].dtype if column in imputed else seed_data[column].dtype
                records[column] = records[column].astype(object)
                records.iloc[at[keep], records.columns.get_loc(column)] = values[keep]  # an imputed null stays filled
                records[column] = records[column].astype(dtype)
        return subjects, records

    def impute(self, X: pd.DataFrame, columns: list[str] | None = None, seed: int | None = None, *,
               ctx_data: pd.DataFrame | None = None) -> pd.DataFrame:
        """`X` with the nulls of `columns` (default: every modelled column that has nulls) filled in. A two-table
        model takes records as `X` and their subjects as `ctx_data`: each record is filled given its subject and
        the records before it, which keep their given values."""
        if self.pipeline is not None and CONTEXT in self.pipeline.spec.tables:
            return self._impute_records(X, ctx_data, columns, seed)
        columns = columns or [c for c in X.columns if c in self.table.columns and X[c].isna().any()]
        if not columns:
            return X.copy()
        out = self.sample(seed_data=X, imputation={"columns": columns}, seed=seed)
        out.index = X.index
        return out[list(X.columns)]

    def _predict_records(self, X: pd.DataFrame, target: str, n_draws: int, agg_fn: str, seed: int | None,
                         ctx_data: pd.DataFrame | None) -> pd.Series:
        """A record column predicted as `n_draws` imputations of it, aggregated (imputation: `_impute_records`)."""
        if target not in self.stats.tables[TABLE].columns:
            raise SynthError("predict's target is no modelled column of the records", table=TABLE, column=target)
        unknown = X.assign(**{target: pd.Series([None] * len(X), index=X.index, dtype=object)})
        base = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        draws = pd.concat([self._impute_records(unknown, ctx_data, [target], base + i)[target]
                           for i in range(n_draws)])
        return _aggregated(draws, agg_fn).reindex(X.index).rename(target)

    def _model_rows(self, what: str, X: pd.DataFrame, ctx_data: pd.DataFrame | None):
        """(model tables, the rows each table's model sees, the model folder) for given subjects and their
        records, checked: scoring or predicting a two-table model's records needs both, in full."""
        if ctx_data is None:
            raise SynthError(f"{what} on a two-table model reads records with their subjects: give the subjects as "
                             "ctx_data", table=TABLE, hint=f"{what}(records, ctx_data=subjects)")
        key = self.pipeline.spec.tables[CONTEXT].primary_key
        fk = self.pipeline.spec.tables[TABLE].foreign_keys[0].column
        stats = self.stats
        missing = [c for name, frame in ((CONTEXT, ctx_data), (TABLE, X)) for c in stats.tables[name].columns
                   if c not in frame.columns]
        if missing or key not in ctx_data.columns or fk not in X.columns:
            raise SynthError(f"{what} needs every modelled column, and the keys that link records to subjects",
                             table=TABLE, column=(missing or [key if key not in ctx_data.columns else fk])[0])
        strangers = sorted(set(X[fk]) - set(ctx_data[key]))[:3]
        if strangers:
            raise SynthError(f"records name subjects that ctx_data does not hold ({strangers})", table=TABLE,
                             column=fk, hint="give each record's subject in ctx_data")
        model_dir = self.pipeline.paths.model
        window = read_json(model_dir / "tree.json")["window"]
        frames = model_frames({CONTEXT: ctx_data.reset_index(drop=True), TABLE: X.reset_index(drop=True)}, stats,
                              window, subjects=True)
        return model_tables(stats, window), frames, model_dir

    def _predict_proba_records(self, X: pd.DataFrame, target, ctx_data: pd.DataFrame | None) -> pd.DataFrame:
        if not isinstance(target, str):
            raise SynthError("predict_proba on a two-table model takes one target column", table=TABLE)
        tables, frames, model_dir = self._model_rows("predict_proba", X, ctx_data)
        trained = TrainedModel.load(model_dir / TABLE, tables[TABLE], self.device)
        order = [code.column for code in trained.codes]
        if target not in self.stats.tables[TABLE].columns or target not in order:
            raise SynthError("predict_proba's target is no column the records' model draws", table=TABLE,
                             column=target)
        rows = frames[TABLE]
        # the context and the record's columns before the target: the order its model learnt to draw in
        probs, labels = trained.conditional_probabilities(rows[order[: order.index(target)]], [target])
        # the model's rows are X's records by subject and order, up to the longest history kept
        spec = self.pipeline.spec.tables[TABLE]
        fk = spec.foreign_keys[0].column
        ordered = X[X[fk].notna()].sort_values([fk, *spec.order_by], kind="stable")
        within = (ordered.groupby(fk, sort=False).cumcount() < longest(self.stats.tables[TABLE])).to_numpy()
        out = pd.DataFrame(probs.reshape(len(rows), -1), index=ordered.index[within], columns=labels[0])
        return out.reindex(X.index)

    def _log_prob_subjects(self, X: pd.DataFrame, ctx_data: pd.DataFrame | None) -> np.ndarray:
        tables, frames, model_dir = self._model_rows("log_prob", X, ctx_data)
        total = np.zeros(len(ctx_data))
        for name in (CONTEXT, TABLE):
            trained = TrainedModel.load(model_dir / name, tables[name], self.device)
            rows = frames[name]
            subject = rows.pop(SUBJECT).to_numpy(dtype=np.int64)
            scores = trained.log_prob(encode_table(rows, trained.codes, tables[name]).to_numpy())
            np.add.at(total, subject, scores)  # a subject's records add up
        return total

    def _impute_records(self, X: pd.DataFrame, ctx_data: pd.DataFrame | None, columns: list[str] | None,
                        seed: int | None) -> pd.DataFrame:
        """Records' nulls filled: the records are given to generation as their subjects' first records (seed
        records) with the columns imputed, and only they are taken back, in X's order and index."""
        if ctx_data is None:
            raise SynthError("impute on a two-table model fills records of given subjects: give the subjects as "
                             "ctx_data", table=TABLE, hint="impute(records, ctx_data=subjects)")
        records = self.stats.tables[TABLE]
        columns = columns or [c for c in X.columns if c in records.columns and X[c].isna().any()]
        if not columns:
            return X.copy()
        spec = self.pipeline.spec.tables[TABLE]
        fk = spec.foreign_keys[0].column
        ordered = X.sort_values([fk, *spec.order_by], kind="stable")
        key = self.pipeline.spec.tables[CONTEXT].primary_key
        subjects = ctx_data[ctx_data[key].isin(ordered[fk])].reset_index(drop=True)
        _, drawn = self.sample_records(ctx_data=subjects, seed_data=ordered.reset_index(drop=True),
                                       imputation={"columns": list(columns)}, seed=seed)
        # the given records are their subjects' first ones, in the given order; what was drawn after them is not
        # asked for
        first = drawn.groupby(fk, sort=False).cumcount()
        wanted = ordered.groupby(fk, sort=False).cumcount()
        placed = pd.Series(range(len(drawn)), index=pd.MultiIndex.from_arrays([drawn[fk].to_numpy(), first.to_numpy()]))
        rows = placed.loc[list(zip(ordered[fk], wanted))].to_numpy()
        out = drawn.iloc[rows][list(X.columns)]
        out.index = ordered.index
        return out.loc[X.index]

    # prediction -----------------------------------------------------------------------------------
    def predict(self, X: pd.DataFrame, target: str, n_draws: int = 10,
                agg_fn: Literal["mode", "mean"] = "mode", seed: int | None = None, *,
                ctx_data: pd.DataFrame | None = None) -> pd.Series:
        """Predict `target` for each row of `X` from `n_draws` conditional draws: their mode or mean. A two-table
        model predicts a record column from the record's subject (`ctx_data`), the records before it and the
        record's columns that come before the target (the order its model draws them in)."""
        if agg_fn not in ("mode", "mean"):
            raise SynthError(f"agg_fn must be 'mode' or 'mean', not {agg_fn!r}", column=target)
        if self.pipeline is not None and CONTEXT in self.pipeline.spec.tables:
            return self._predict_records(X, target, n_draws, agg_fn, seed, ctx_data)
        features = X.drop(columns=[target], errors="ignore").reset_index(drop=True)
        repeated = features.loc[features.index.repeat(n_draws)].reset_index(drop=True)
        request = GenerateRequest(options=ARGNGenerateOptions(seed=seed), seed_data=repeated, device=self.device)
        plan, tokens, rng = self.trained.tokens(request, stop_after_columns=[target])
        code = self.trained.planner.by_name[target]
        group = self.trained.planner.groups[target]
        part = tokens[:, group]
        draws = decode_column(part[:, 0] if len(group) == 1 else part, code, self.table.columns[target], rng)
        draws = pd.Series(draws.to_numpy(), index=np.repeat(X.index.to_numpy(), n_draws))
        return _aggregated(draws, agg_fn).reindex(X.index).rename(target)

    def predict_proba(self, X: pd.DataFrame, target: str | list[str], *,
                      ctx_data: pd.DataFrame | None = None) -> pd.DataFrame:
        """P(target | the columns of X) per row: one column per category (per pair of categories for two
        targets, as a column MultiIndex). Targets must be single-token columns (categorical, discrete or binned).
        A two-table model takes records as `X` (every modelled column) and their subjects as `ctx_data`, and gives
        P(target | the subject, the records before, the record's columns before the target) for one target."""
        if self.pipeline is not None and CONTEXT in self.pipeline.spec.tables:
            return self._predict_proba_records(X, target, ctx_data)
        targets = [target] if isinstance(target, str) else list(target)
        if not 1 <= len(targets) <= 2:
            raise SynthError("predict_proba takes one or two target columns")
        features = X.drop(columns=targets, errors="ignore").reset_index(drop=True)
        probs, labels = self.trained.conditional_probabilities(features, targets)
        columns = labels[0] if len(targets) == 1 else pd.MultiIndex.from_product(labels, names=targets)
        return pd.DataFrame(probs.reshape(len(X), -1), index=X.index, columns=columns)

    def log_prob(self, X: pd.DataFrame, *, ctx_data: pd.DataFrame | None = None) -> np.ndarray:
        """Log-probability of each row under the model (nats; numbers count by their bin or digits). A two-table
        model scores subjects: `ctx_data`'s rows with their records in `X`, one figure per subject, in
        `ctx_data`'s order (its row with its number of records, then each record given those before it)."""
        if self.pipeline is not None and CONTEXT in self.pipeline.spec.tables:
            return self._log_prob_subjects(X, ctx_data)
        missing = [c for c in self.table.columns if c not in X.columns]
        if missing:
            raise SynthError("log_prob needs every modelled column", table=TABLE, column=missing[0])
        tokens = encode_table(X.reset_index(drop=True), self.trained.codes, self.table).to_numpy()
        return self.trained.log_prob(tokens)


def _aggregated(draws: pd.Series, agg_fn: str) -> pd.Series:
    """Draws indexed by their row, one value a row: their mean, or their most frequent value."""
    if agg_fn == "mean":
        return pd.to_numeric(draws).groupby(level=0, sort=False).mean()
    return draws.groupby(level=0, sort=False).agg(lambda v: v.value_counts(dropna=False).index[0])
