"""Asset checks that can block a bad release: the synthetic schema must match the source, and the
synthetic rows must not sit closer to the training data than the configured DCR share allows."""

import warnings

import dagster as dg
import pandas as pd
from dagster_pandas import PandasColumn
from dagster_pandas.constraints import (
    CategoricalColumnConstraint,
    ColumnDTypeInSetConstraint,
    ConstraintViolationException,
    InRangeColumnConstraint,
    NonNullableColumnConstraint,
    StrictColumnsConstraint,
)
from dagster_pandas.validation import validate_constraints

from synth_assets import storage
from synth_assets.assets import stage_key
from synth_assets.config import DatasetSpec
from synth_assets.resources import SynthProject
from synth_assets.stages.stats import RARE_TOKEN, TableStats


def expected_columns(table: TableStats) -> list[PandasColumn]:
    """The source's schema as dagster-pandas columns: dtype, null-free where the source was, and values
    within the kept categories or the protected numeric range."""
    columns = []
    for name in table.column_order:
        constraints = [ColumnDTypeInSetConstraint({table.dtypes[name]})]
        stats = table.columns.get(name)
        if stats is not None:
            if stats.null_share == 0:
                constraints.append(NonNullableColumnConstraint())
            if stats.encoding == "categorical" and stats.kind == "categorical":
                constraints.append(CategoricalColumnConstraint({*stats.categories, RARE_TOKEN}, ignore_missing_vals=True))
            elif stats.kind == "numeric":
                constraints.append(InRangeColumnConstraint(stats.min, stats.max, ignore_missing_vals=True))
        columns.append(PandasColumn(name, constraints=constraints))
    return columns


def schema_problems(df: pd.DataFrame, table: TableStats) -> list[str]:
    with warnings.catch_warnings():  # dagster-pandas marks these classes beta; the check is ours to keep working
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _schema_problems(df, table)


def _schema_problems(df: pd.DataFrame, table: TableStats) -> list[str]:
    problems = []
    try:
        validate_constraints(df, dataframe_constraints=[StrictColumnsConstraint(table.column_order, enforce_ordering=True)])
    except ConstraintViolationException as exc:
        problems.append(str(exc))
        return problems
    for column in expected_columns(table):
        try:
            validate_constraints(df, pandas_columns=[column])
        except ConstraintViolationException as exc:
            problems.append(f"{column.name}: {exc}")
    return problems


def build_dataset_checks(name: str, spec: DatasetSpec) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=stage_key(name, "synthetic"), name="schema_matches_source", blocking=True,
                    description="Columns, order, dtypes, null-free columns, categories and value ranges "
                                "match the source's stats.")
    def schema_matches_source(project: SynthProject) -> dg.AssetCheckResult:
        pipeline = project.pipeline(name)
        stats, synthetic = pipeline.load_stats(), pipeline.load_synthetic()
        problems = {t: schema_problems(synthetic[t], stats.tables[t]) for t in stats.tables}
        failed = {t: p for t, p in problems.items() if p}
        return dg.AssetCheckResult(
            passed=not failed,
            description="; ".join(f"table '{t}': {' | '.join(p)}" for t, p in failed.items()) or "schema matches",
            metadata={f"{t}/problems": dg.MetadataValue.json(p) for t, p in problems.items()},
        )

    @dg.asset_check(asset=stage_key(name, "quality"), name="dcr_share_below_threshold", blocking=True,
                    description=f"Fails when the DCR share exceeds {spec.quality.max_dcr_share} "
                                "(quality.max_dcr_share): synthetic rows too close to training rows.")
    def dcr_share_below_threshold(project: SynthProject) -> dg.AssetCheckResult:
        pipeline = project.pipeline(name)
        scores = storage.read_json(pipeline.paths.quality / "scores.json")
        threshold = pipeline.spec.quality.max_dcr_share
        shares = {t: s["dcr_share"] for t, s in scores.items()}
        return dg.AssetCheckResult(
            passed=all(share <= threshold for share in shares.values()),
            metadata={"threshold": threshold, **{f"{t}/dcr_share": float(v) for t, v in shares.items()}},
        )

    return [schema_matches_source, dcr_share_below_threshold]
