"""What each asset shows in the Dagster UI: row counts, column schemas, per-column stats, the loss curve."""

from pathlib import Path

import dagster as dg
import pandas as pd

from synth_assets.stages.report import markdown_table
from synth_assets.stages.stats import TableStats


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def location_metadata(where) -> dict:
    """Where an output lives: `path` (a link in the UI for an object store's URL) and Dagster's `dagster/uri`."""
    where = str(where)
    if "://" in where:
        return {"path": dg.MetadataValue.url(where), "dagster/uri": dg.MetadataValue.text(where)}
    return {"path": dg.MetadataValue.path(where), "dagster/uri": dg.MetadataValue.text(Path(where).absolute().as_uri())}


def table_metadata(df: pd.DataFrame, path, rows: int | None = None) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(len(df) if rows is None else rows),
        "dagster/column_schema": column_schema(df),
        **location_metadata(path),
    }


def tables_metadata(frames: dict[str, pd.DataFrame], path_of, rows_label: str = "rows",
                    rows: dict[str, int] | None = None) -> dict:
    """Rows per table; a single table's row count and schema also as the asset's own, which the UI shows
    in its overview (several tables have no one schema). `rows` counts the tables when `frames` are previews."""
    metadata = {}
    for table, df in frames.items():
        count = len(df) if rows is None else rows[table]
        if len(frames) == 1:
            metadata.update(table_metadata(df, path_of(table), count))
        metadata[f"{table}/{rows_label}"] = count
    return metadata


def stats_markdown(table: TableStats) -> str:
    rows = []
    for c in table.columns.values():
        if c.categories is not None and c.kind == "categorical":
            shown = ", ".join(map(str, c.categories[:6])) + (" …" if len(c.categories) > 6 else "")
            summary = f"{len(c.categories)} kept ({shown}); rare share {c.rare_share:.3f}"
        else:
            q = c.quantiles or []
            median = f"; median {q[len(q) // 2]:.4g}" if q and c.kind == "numeric" else ""
            summary = f"[{c.min:.6g}, {c.max:.6g}]{median}" if c.min is not None else ""
        rows.append([c.name, c.dtype, c.kind, _form(c), c.null_share, c.n_unique, summary])
    return markdown_table(["column", "dtype", "type", "form", "null share", "distinct", "values"], rows)


def progress_markdown(progress: list[dict]) -> str:
    rows = [[p["epoch"], p["train_loss"], p["validation_loss"], p["seconds"]] for p in progress]
    return markdown_table(["epoch", "train loss", "validation loss", "seconds"], rows)


def preview_markdown(df: pd.DataFrame, rows: int = 10) -> str:
    head = df.head(rows)
    return markdown_table([str(c) for c in head.columns], head.values.tolist())


def _form(column) -> str:
    """What the stats found a column to be, beyond its kind: a text form, or a discrete number."""
    if column.kind == "categorical":
        return column.text_form or "category"
    if column.kind == "numeric":
        return "discrete" if column.discrete else "continuous"
    return ", ".join(column.datetime_parts or [])
