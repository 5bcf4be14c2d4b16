"""The audits of write-audit-publish, on pandas and without Dagster: what a candidate version must pass before it
is published. The synthetic schema must match the source, the synthetic data must not reveal its training
subjects beyond what real unseen data does (the privacy gate: DCR share against its floor, a membership attack,
exact copies), a model checkpoint must be sound, and with differential privacy its ε within the budget.

Each audit returns plain `Check`s; the Dagster assets turn them into blocking asset check results (checks.py),
the command line and the Python API read them as they are (pipeline.release)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from synth_assets import files
from synth_assets.privacy_budget import LEDGER_FILE
from synth_assets.stages.privacy import gate_problems
from synth_assets.stages.stats import (MAX_DECIMALS, RARE_TOKEN, ColumnStats, DatasetStats, TableStats,
                                       written_with)

SCHEMA_CHECK, PRIVACY_CHECK, MODEL_CHECK = "schema_matches_source", "privacy_gate", "checkpoint_is_sound"
BUDGET_CHECK = "privacy_budget_respected"
# the finest datetime part a column keeps, as a pandas frequency
RESOLUTION = {"day": "D", "hour": "h", "minute": "min", "second": "s"}
SHOWN_ROWS = 5  # offending rows a problem quotes


class Check(BaseModel):
    """One audit's outcome: `metadata` holds plain values (numbers, text, lists) to show beside it."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = Field(default_factory=dict)


def failures(checks: list[Check]) -> list[str]:
    return [f"{check.name}: {check.description}" for check in checks if not check.passed]


# the schema -----------------------------------------------------------------------------------------------

Rule = tuple[str, Callable[[pd.Series], Any]]  # what a column's non-null values must be, and a test of them


def value_rules(stats: ColumnStats) -> list[Rule]:
    """The values a user would find in the source: kept categories, the protected range, the source's grain
    (whole numbers, decimals, the values of few-valued numbers, the datetime resolution)."""
    if stats.kind == "categorical" and stats.text_form == "category":
        allowed = [*stats.categories, RARE_TOKEN]
        return [(f"values among the {len(stats.categories)} kept categories", lambda v: v.isin(allowed))]
    if stats.kind == "numeric":
        infinities = [float(k) for k in stats.infinite_shares or {}]

        def finite(v):
            return pd.to_numeric(v).astype(float).to_numpy()

        rules = [(f"values within the protected range [{stats.min:.6g}, {stats.max:.6g}]",
                  lambda v: ((finite(v) >= stats.min) & (finite(v) <= stats.max)) | np.isin(finite(v), infinities))]
        if stats.discrete:
            kept = np.asarray(stats.categories, dtype=float)
            rules.append((f"values among the {len(kept)} kept values",
                          lambda v: np.isin(finite(v), kept) | np.isin(finite(v), infinities)))
        elif stats.decimals is not None and (stats.is_integer or stats.decimals < MAX_DECIMALS):
            digits = 0 if stats.is_integer else stats.decimals
            rules.append(("whole numbers" if stats.is_integer else f"at most {stats.decimals} decimals",
                          lambda v: written_with(finite(v), digits) | np.isin(finite(v), infinities)))
        return rules
    if stats.kind == "datetime" and stats.min is not None:
        low, high = (pd.Timestamp(int(round(x))) for x in (stats.min, stats.max))
        unit = RESOLUTION[(stats.datetime_parts or ["day"])[-1]]

        def stamps(v):
            parsed = pd.to_datetime(v, format="ISO8601") if stats.datetime_format else v
            return parsed.dt.tz_convert("UTC").dt.tz_localize(None) if parsed.dt.tz is not None else parsed

        return [(f"dates within the protected range [{low}, {high}]",
                 lambda v: stamps(v).between(low.floor(unit), high.ceil(unit))),
                (f"no finer than the source's resolution ({unit})", lambda v: stamps(v) == stamps(v).dt.floor(unit))]
    return []


def schema_problems(df: pd.DataFrame, table: TableStats, given: frozenset[str] = frozenset()) -> list[str]:
    """How `df` differs from the source's schema: its columns and their order, each column's dtype, no nulls
    where the source had none, and the values of `value_rules`. Columns whose values the user gave as seed data
    are held to their dtype only: they hold the user's values, as given."""
    if list(df.columns) != list(table.column_order):
        return [f"columns {list(df.columns)} are not the source's {list(table.column_order)}, in that order"]
    problems = []
    for name in table.column_order:
        values = df[name]
        if str(values.dtype) != table.dtypes[name]:
            problems.append(f"{name}: dtype {values.dtype}, where the source's is {table.dtypes[name]}")
            continue
        stats = table.columns.get(name)
        if stats is None or name in given:
            continue
        present = values.notna()
        if stats.null_share == 0 and not present.all():
            problems.append(f"{name}: {int((~present).sum())} nulls where the source has none")
        for description, valid in value_rules(stats):
            bad = present & ~pd.Series(np.asarray(valid(values), dtype=bool), index=values.index)
            if bad.any():
                shown = ", ".join(f"row {i}: {v!r}" for i, v in values[bad].head(SHOWN_ROWS).items())
                problems.append(f"{name}: {int(bad.sum())} values break the rule '{description}' ({shown})")
                break
    return problems


def key_problems(tables: dict[str, pd.DataFrame], stats: DatasetStats) -> dict[str, list[str]]:
    """Primary keys unique and present; every foreign key value a key of the table it refers to."""
    problems: dict[str, list[str]] = {name: [] for name in stats.tables}
    for name, table in stats.tables.items():
        df, pk = tables[name], table.primary_key
        if pk in df.columns and (df[pk].isna().any() or df[pk].duplicated().any()):  # a missing one: schema check
            problems[name].append(f"{pk}: primary key values are empty or repeat")
        for fk in table.foreign_keys:
            parent_pk = stats.tables[fk.references].primary_key
            if fk.column not in df.columns or parent_pk not in tables[fk.references].columns:
                continue
            parent = tables[fk.references][parent_pk]
            dangling = int((df[fk.column].notna() & ~df[fk.column].isin(parent)).sum())
            if dangling:
                problems[name].append(f"{fk.column}: {dangling} rows refer to no row of '{fk.references}'")
    return problems


def stored_table_problems(folder, stats: DatasetStats, given: dict[str, frozenset[str]],
                          batch_rows: int = 250_000) -> dict[str, list[str]]:
    """`schema_problems` and `key_problems` of the tables stored in `folder`, read `batch_rows` at a time (the
    keys alone are read whole). A column's problem is told once, from the first batch that shows it."""
    keys = {}
    for name, table in stats.tables.items():
        stored = files.parquet_columns(folder / f"{name}.parquet")  # a missing key column: the schema check's
        wanted = [table.primary_key, *(fk.column for fk in table.foreign_keys)]
        keys[name] = files.read_parquet(folder / f"{name}.parquet", columns=[c for c in wanted if c in stored])
    problems = key_problems(keys, stats)
    for name, table in stats.tables.items():
        told = {p.split(":", 1)[0] for p in problems[name]}
        for frame in files.iter_parquet(folder / f"{name}.parquet", batch_rows):
            for problem in schema_problems(frame, table, given.get(name, frozenset())):
                subject = problem.split(":", 1)[0]  # the column, or the table's columns as a whole
                if subject not in told:
                    told.add(subject)
                    problems[name].append(problem)
    return problems


# the audits -----------------------------------------------------------------------------------------------

def audit_synthetic(pipeline, version: str) -> list[Check]:
    """The synthetic checks on candidate `version` (a `DatasetPipeline`'s, not yet published). They read the
    tables in batches and the DCR share's sample alone, so a sample of any size is audited in bounded memory."""
    stats = pipeline.load_stats()
    folder = pipeline.paths.synthetic_folder(version)
    problems = stored_table_problems(folder, stats, pipeline.seeded_columns(version))
    failed = {t: p for t, p in problems.items() if p}
    gate = pipeline.privacy_gate()
    judged = pipeline.privacy_figures(version)
    found = {t: gate_problems(figures, gate, share) for t, (figures, share) in judged.items()}
    privacy = {}
    for t, (figures, share) in judged.items():
        privacy.update({f"{t}/privacy/{k}": v for k, v in figures.summary().items()})
        privacy[f"{t}/dcr_share"] = round(share, 4)  # the quality report's DCR share
    return [
        Check(name=SCHEMA_CHECK, passed=not failed,
              description="; ".join(f"table '{t}': {' | '.join(p)}" for t, p in failed.items()) or "schema matches",
              metadata={"version": version, **{f"{t}/problems": p for t, p in problems.items()}}),
        Check(name=PRIVACY_CHECK, passed=not any(found.values()),
              description="; ".join(f"table '{t}': {' | '.join(p)}" for t, p in found.items() if p)
              or "no table reveals its training subjects beyond what real unseen data does",
              metadata={"version": version, **{f"threshold/{k}": v for k, v in gate.model_dump().items()
                                               if v is not None}, **privacy}),
    ]


def audit_model(folder, result, dp=None) -> list[Check]:
    """The model checks on a candidate checkpoint `folder` and its `TrainResult`; with `dp` (the dataset's
    DifferentialPrivacy section) the budget check too."""
    problems = []
    if result.epochs < 1:
        problems.append("no epoch finished")
    if not np.isfinite(result.best_validation_loss):
        problems.append(f"the validation loss is {result.best_validation_loss} (diverged: lower the learning rate)")
    if not any(folder.iterdir()):
        problems.append("the checkpoint folder is empty")
    checks = [Check(name=MODEL_CHECK, passed=not problems, description="; ".join(problems) or "checkpoint is sound",
                    metadata={"version": folder.name})]
    if dp is not None:
        checks.append(audit_budget(folder, result, dp))
    return checks


def budget_problems(folder, result, dp) -> list[str]:
    """Why a DP model may not be published: no ledger, or an ε above the budget."""
    if result.privacy is None or not (folder / LEDGER_FILE).is_file():
        return ["the checkpoint has no privacy ledger: it was not trained with differential privacy"]
    spent = result.privacy["epsilon"]
    if dp.max_epsilon is not None and spent > dp.max_epsilon + 1e-9:
        return [f"ε {spent:.3f} exceeds train.differential_privacy.max_epsilon {dp.max_epsilon}: nothing is published"]
    return []


def audit_budget(folder, result, dp) -> Check:
    problems = budget_problems(folder, result, dp)
    spent = (result.privacy or {}).get("epsilon")
    return Check(name=BUDGET_CHECK, passed=not problems,
                 description="; ".join(problems) or f"ε {spent:.3f} within the budget {dp.max_epsilon}",
                 metadata={"version": folder.name, **(result.privacy or {}),
                           "max_epsilon": dp.max_epsilon if dp.max_epsilon is not None else "none"})
