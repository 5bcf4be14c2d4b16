"""TabularARGN's own train and generate options, on top of the ones every backend takes.

A field added here shows up in synth.yaml's validation, the launchpad and `TabularARGN(...)`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synth_assets.plugin_api import DifferentialPrivacy, GenerateOptions, TrainOptions


class ARGNTrainOptions(TrainOptions):
    model_size: Literal["auto", "small", "medium", "large"] = Field(
        "auto", description="Hidden layers per column: small (64, 16), medium (128, 32), large (256, 64); auto: "
                            "medium, or small under differential_privacy. Wide tables (about 55+ numeric columns) "
                            "get a shared first layer, linear in columns.")
    batch_size: int | None = Field(None, ge=1, description="Rows per batch; chosen from the data size if unset.")
    learning_rate: float | None = Field(None, gt=0, description="AdamW's; chosen from the batch size if unset.")
    dropout: float | None = Field(
        None, ge=0, lt=1, description="Share of hidden units dropped while training; chosen from the data size if unset.")
    early_stopping_patience: int = Field(4, ge=1, description="Epochs without validation improvement.")
    flexible_generation: bool | None = Field(
        None, description="Train on a random column order in half the batches, so any columns can condition the "
                          "rest. Unset: on, but off under differential privacy, where those batches spend ε on "
                          "orders that unconditional generation never draws.")
    max_sequence_window: int | None = Field(
        None, ge=1, le=64, description="Child tables: how many earlier records of the same parent each record's model "
                                       "sees. Unset: chosen from the data (sequence lengths and columns).")
    differential_privacy: DifferentialPrivacy | None = Field(
        None, description="DP-SGD (opacus): each subject's gradient clipped and noised; training stops before ε "
                          "would pass max_epsilon.")


class ARGNGenerateOptions(GenerateOptions):
    sampling_temperature: float = Field(1.0, gt=0, description="Below 1: more typical rows; above 1: more diverse.")
    sampling_top_p: float = Field(1.0, gt=0, le=1, description="Sample only from the most likely values holding this share.")
    rare_category_replacement: Literal["constant", "sample"] = Field(
        "constant", description="Protected rare categories: the constant _RARE_, or a sample of common categories.")
