"""The TabularARGN backend: encode → train → generate for one flat table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synth_assets import storage
from synth_assets.backend import FLAT, Backend, GenerateRequest, ProgressCallback, TrainOptions, TrainResult
from synth_assets.stages.split import Split
from synth_assets.stages.stats import DatasetStats, TableStats
from synth_tabular_argn.encoding import ColumnCode, build_codes, cardinalities, decode_table, encode_table

GENERATION_CHUNK = 65_536


class TabularARGNBackend(Backend):
    name = "tabular_argn"
    description = "Autoregressive network over encoded columns of one flat table (PyTorch; CPU or CUDA)."
    supports = frozenset({FLAT})
    kinds = frozenset({"pytorch"})

    # encode --------------------------------------------------------------------------------------
    def encode(self, split: Split, stats: DatasetStats, out_dir: Path) -> dict[str, Any]:
        table = _only_table(stats)
        codes = build_codes(table)
        for partition in ("train", "validation"):
            storage.write_parquet(encode_table(split.partition(partition)[table.name], codes, table),
                                  out_dir / f"{partition}.parquet")
        storage.write_json([c.model_dump() for c in codes], out_dir / "codes.json")
        return {
            "table": table.name,
            "rows": {p: len(split.partition(p)[table.name]) for p in ("train", "validation")},
            "sub_columns": {name: k for c in codes for name, k in c.sub_columns},
        }

    # train ---------------------------------------------------------------------------------------
    def train(self, encoded_dir: Path, stats: DatasetStats, options: TrainOptions, out_dir: Path,
              progress: ProgressCallback | None = None) -> TrainResult:
        import torch
        from safetensors.torch import save_file

        from synth_tabular_argn.model import TabularARGN, default_batch_size, resolve_device

        started = time.perf_counter()
        budget = options.max_training_time * 60.0
        device = resolve_device(options.device)
        if options.seed is not None:
            torch.manual_seed(options.seed)
        codes = _load_codes(encoded_dir)
        train = torch.as_tensor(storage.read_parquet(encoded_dir / "train.parquet").to_numpy(np.int64), device=device)
        valid = torch.as_tensor(
            storage.read_parquet(encoded_dir / "validation.parquet").to_numpy(np.int64), device=device)
        model = TabularARGN(cardinalities(codes), options.model_size).to(device)
        order = torch.arange(model.n_columns, device=device)
        batch = options.batch_size or default_batch_size(len(train))
        optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate or 2e-3, weight_decay=1e-4)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
        shuffler = torch.Generator(device="cpu").manual_seed(options.seed or 0)

        best_loss, best_epoch, best_state, history = float("inf"), 0, None, []
        stopped, epoch = "max epochs", 0
        for epoch in range(1, options.max_epochs + 1):
            model.train()
            permutation = torch.randperm(len(train), generator=shuffler).to(device)
            total, seen, out_of_time = 0.0, 0, False
            for start in range(0, len(train), batch):
                rows = train[permutation[start : start + batch]]
                loss = model.loss(rows, order)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
                seen += len(rows)
                if time.perf_counter() - started > budget:
                    out_of_time = True
                    break
            val_loss = _evaluate(model, valid, order, batch * 4) if len(valid) else total / max(seen, 1)
            plateau.step(val_loss)
            record = {"epoch": epoch, "train_loss": total / max(seen, 1), "validation_loss": val_loss,
                      "seconds": round(time.perf_counter() - started, 2), "learning_rate": optimizer.param_groups[0]["lr"]}
            history.append(record)
            if progress:
                progress(record)
            if val_loss < best_loss - 1e-4:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
            if out_of_time:
                stopped = "time budget"
                break
            if epoch - best_epoch >= options.early_stopping_patience:
                stopped = "converged"
                break

        save_file(best_state, str(out_dir / "weights.safetensors"))
        config = {"backend": self.name, "table": _only_table(stats).name, "cardinalities": model.cardinalities,
                  "model_size": options.model_size, "order": order.tolist()}
        storage.write_json(config, out_dir / "config.json")
        storage.write_json([c.model_dump() for c in codes], out_dir / "codes.json")
        storage.write_json(history, out_dir / "progress.json")
        return TrainResult(
            epochs=epoch, best_epoch=best_epoch, best_validation_loss=best_loss,
            seconds=time.perf_counter() - started, stopped_because=stopped, device=str(device),
            parameters=sum(p.numel() for p in model.parameters()), progress=history,
        )

    # generate ------------------------------------------------------------------------------------
    def generate(self, model_dir: Path, stats: DatasetStats, request: GenerateRequest) -> dict[str, pd.DataFrame]:
        import torch

        model, order, codes = load_model(model_dir, request.device)
        table = _only_table(stats)
        n = request.sample_size or table.rows
        seed = request.seed if request.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        generator = torch.Generator(device=model.owner.device).manual_seed(seed)
        rng = np.random.default_rng(seed)
        chunks = []
        for start in range(0, n, GENERATION_CHUNK):
            tokens = model.sample(min(GENERATION_CHUNK, n - start), order,
                                  temperature=request.sampling_temperature, generator=generator)
            chunks.append(decode_table(tokens.cpu().numpy(), codes, table, rng))
        return {table.name: pd.concat(chunks, ignore_index=True)}


def load_model(model_dir: Path, device: str = "auto"):
    import torch
    from safetensors.torch import load_file

    from synth_tabular_argn.model import TabularARGN, resolve_device

    config = json.loads((Path(model_dir) / "config.json").read_text())
    target = resolve_device(device)
    model = TabularARGN(config["cardinalities"], config["model_size"])
    model.load_state_dict(load_file(str(Path(model_dir) / "weights.safetensors")))
    model.to(target).eval()
    return model, torch.tensor(config["order"], device=target), _load_codes(model_dir)


def _load_codes(folder: Path) -> list[ColumnCode]:
    return [ColumnCode.model_validate(c) for c in json.loads((Path(folder) / "codes.json").read_text())]


def _evaluate(model, rows, order, batch: int) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            total += float(model.loss(part, order)) * len(part)
    return total / len(rows)


def _only_table(stats: DatasetStats) -> TableStats:
    return next(iter(stats.tables.values()))
