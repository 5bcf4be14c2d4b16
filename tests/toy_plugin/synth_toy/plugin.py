import json

import numpy as np
import pandas as pd

from synth_assets.backend import FLAT, Backend, TrainResult
from synth_assets.hookspecs import hookimpl


class MarginalsBackend(Backend):
    name = "marginals"
    description = "Each column drawn independently from its training distribution."
    supports = frozenset({FLAT})

    def encode(self, split, stats, out_dir):
        (out_dir / "columns.json").write_text(json.dumps(list(next(iter(stats.tables.values())).columns)))
        return {"columns": len(stats.tables)}

    def train(self, encoded_dir, stats, options, out_dir, progress=None):
        (out_dir / "model.json").write_text(json.dumps({"trained": True}))
        if progress:
            progress({"epoch": 1, "train_loss": 0.0, "validation_loss": 0.0, "seconds": 0.0})
        return TrainResult(epochs=1, best_epoch=1, best_validation_loss=0.0, seconds=0.0,
                           stopped_because="max epochs", device="cpu", parameters=0)

    def generate(self, model_dir, stats, request):
        assert json.loads((model_dir / "model.json").read_text())["trained"]
        rng = np.random.default_rng(request.seed)
        table = next(iter(stats.tables.values()))
        n = request.sample_size or table.rows
        out = {}
        for c in table.columns.values():
            if c.categories is not None:
                p = np.asarray(c.category_shares) / sum(c.category_shares)
                out[c.name] = pd.Series(np.asarray(c.categories, dtype=object)[rng.choice(len(p), n, p=p)])
            else:
                out[c.name] = pd.Series(np.interp(rng.random(n), np.linspace(0, 1, len(c.quantiles)), c.quantiles))
                if c.decimals is not None:  # the source's grain, which the blocking schema check holds it to
                    out[c.name] = out[c.name].round(0 if c.is_integer else c.decimals)
        return {table.name: pd.DataFrame(out)}


@hookimpl
def synth_register_backends():
    return [MarginalsBackend]
