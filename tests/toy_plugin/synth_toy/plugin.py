"""A third-party backend as small as one can be: each column drawn on its own from its training
distribution (the stats' kept categories or quantiles), and in a tree of tables, each parent's number
of children drawn from the stats' sequence lengths. It imports only `synth_assets.plugin_api`."""

import json

import numpy as np
import pandas as pd

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
    hookimpl,
    read_json,
    write_json,
)


class MarginalsTrainOptions(TrainOptions):
    pass  # nothing to tune: the base options (time budget, epochs, seed, model_state) only


class MarginalsGenerateOptions(GenerateOptions):
    pass


class MarginalsBackend(Backend):
    name = "marginals"
    description = "Each column drawn independently from its training distribution."
    capabilities = Capabilities(shapes=frozenset({FLAT, SEQUENTIAL, RELATIONAL}))
    TrainOptions = MarginalsTrainOptions
    GenerateOptions = MarginalsGenerateOptions

    def encode(self, split, stats, out_dir):
        write_json({"tables": list(stats.tables)}, out_dir / "tables.json")  # nothing to encode: stats suffice
        return {"tables": len(stats.tables)}

    def train(self, encoded_dir, stats, request, out_dir):
        write_json({"trained": read_json(encoded_dir / "tables.json")}, out_dir / "model.json")
        if request.progress:
            request.progress(ProgressRecord(epoch=1, train_loss=0.0, validation_loss=0.0, seconds=0.0))
        return TrainResult(epochs=1, best_epoch=1, best_validation_loss=0.0, seconds=0.0,
                           stopped_because="max epochs", device="cpu", parameters=0)

    def generate(self, model_dir, stats, request):
        assert json.loads((model_dir / "model.json").read_text())["trained"]
        rng = np.random.default_rng(request.options.seed)
        out, keys = {}, {}
        for name, table in stats.tables.items():  # parents come before their children
            if table.foreign_keys:
                fk = table.foreign_keys[0]
                lengths, shares = zip(*table.sequence_lengths.items())
                family = rng.choice(lengths, size=len(keys[fk.references]), p=np.asarray(shares) / sum(shares))
                df = _columns(table, int(family.sum()), rng)
                df[fk.column] = np.repeat(keys[fk.references], family)
            else:
                df = _columns(table, request.options.sample_size or table.rows, rng)
            if table.primary_key:  # keys of our own choosing; the core writes fresh ones
                keys[name] = np.arange(len(df))
                df[table.primary_key] = keys[name]
            out[name] = df
        return out


def _columns(table, n, rng) -> pd.DataFrame:
    out = {}
    for c in table.columns.values():
        if c.kind == "categorical" or c.discrete:
            p = np.asarray(c.category_shares) / sum(c.category_shares)
            out[c.name] = pd.Series(np.asarray(c.categories, dtype=object)[rng.choice(len(p), n, p=p)])
        else:
            out[c.name] = pd.Series(np.interp(rng.random(n), np.linspace(0, 1, len(c.quantiles)), c.quantiles))
            if c.kind == "datetime":
                finest = {3: "D", 4: "h", 5: "min", 6: "s"}[len(c.datetime_parts)]
                out[c.name] = pd.to_datetime(out[c.name].round(), unit="ns").dt.floor(finest)
            elif c.decimals is not None:  # the source's grain, which the blocking schema check holds it to
                out[c.name] = out[c.name].round(0 if c.is_integer else c.decimals)
        if c.null_share:
            out[c.name] = out[c.name].where(rng.random(n) >= c.null_share, None)
    return pd.DataFrame(out, index=range(n))


@hookimpl
def synth_register_backends():
    from synth_toy.controls import CopyingBackend, UnseenRowsBackend  # controls of the privacy gate

    return [MarginalsBackend, CopyingBackend, UnseenRowsBackend]


@hookimpl
def synth_register_text_models():
    from synth_toy.text_model import PhrasebookTextModel

    return [PhrasebookTextModel]


@hookimpl
def synth_register_blocks():
    from synth_toy.blocks import Throttle

    return [Throttle]
