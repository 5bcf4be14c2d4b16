"""Two backends that are controls for the privacy gate, not generators: one copies its training rows (the gate
must stop it), one hands out real rows it was given that no model saw (the gate must let them through). They
register through the toy plugin's entry point, as a third party's backend would."""

import numpy as np
from pydantic import Field

from synth_assets.plugin_api import (
    FLAT,
    RELATIONAL,
    SEQUENTIAL,
    Backend,
    Capabilities,
    GenerateOptions,
    ProgressRecord,
    TrainOptions,
    TrainResult,
    read_parquet,
    write_parquet,
)


class CopyTrainOptions(TrainOptions):
    pass


class UnseenTrainOptions(TrainOptions):
    rows: str = Field(description="A Parquet file per table, `{table}` in the path: real rows no model saw.")


def _trained(request, out_dir) -> TrainResult:
    if request.progress:
        request.progress(ProgressRecord(epoch=1, train_loss=0.0, validation_loss=0.0, seconds=0.0))
    return TrainResult(epochs=1, best_epoch=1, best_validation_loss=0.0, seconds=0.0, stopped_because="max epochs",
                       device="cpu", parameters=0)


class CopyingBackend(Backend):
    name = "copycat"
    description = "Hands out its training rows: a control the privacy gate must stop."
    capabilities = Capabilities(shapes=frozenset({FLAT, SEQUENTIAL, RELATIONAL}))
    TrainOptions = CopyTrainOptions
    GenerateOptions = GenerateOptions

    def encode(self, split, stats, out_dir):
        for name, df in split.train.items():
            write_parquet(df, out_dir / f"{name}.parquet")
        return {"tables": len(split.train)}

    def train(self, encoded_dir, stats, request, out_dir):
        for name in stats.tables:
            write_parquet(read_parquet(encoded_dir / f"{name}.parquet"), out_dir / f"{name}.parquet")
        return _trained(request, out_dir)

    def generate(self, model_dir, stats, request):
        return {name: read_parquet(model_dir / f"{name}.parquet") for name in stats.tables}


class UnseenRowsBackend(Backend):
    name = "unseen_rows"
    description = "Hands out real rows that no model saw: a control the privacy gate must let through."
    capabilities = Capabilities(shapes=frozenset({FLAT, SEQUENTIAL, RELATIONAL}))
    TrainOptions = UnseenTrainOptions
    GenerateOptions = GenerateOptions

    def encode(self, split, stats, out_dir):
        (out_dir / "nothing").write_text("")
        return {}

    def train(self, encoded_dir, stats, request, out_dir):
        for name in stats.tables:
            write_parquet(read_parquet(request.options.rows.format(table=name)), out_dir / f"{name}.parquet")
        return _trained(request, out_dir)

    def generate(self, model_dir, stats, request):
        rng = np.random.default_rng(request.options.seed)
        out = {name: read_parquet(model_dir / f"{name}.parquet") for name in stats.tables}
        root = next(iter(stats.tables))
        n = min(request.options.sample_size or len(out[root]), len(out[root]))
        out[root] = out[root].iloc[np.sort(rng.choice(len(out[root]), n, replace=False))].reset_index(drop=True)
        for name, table in stats.tables.items():  # children of the rows handed out
            for fk in table.foreign_keys:
                parent = stats.tables[fk.references]
                out[name] = out[name][out[name][fk.column].isin(out[fk.references][parent.primary_key])]
        return out
