"""Train and generate options: the bases every backend extends with its own.

A backend declares `TrainOptions` and `GenerateOptions` classes (subclasses of these) as class
attributes. That one declaration is all an option needs: synth.yaml's `train:` and `generate:` are
validated against it (errors name the key), the launchpad's run config is generated from it, and a
backend's Python API takes the same fields.

The conditioning options of generation (seed data, rebalancing, imputation, fairness) live in the base
too, so that their meaning is the same for every backend; a backend that cannot honour one says so in
its `capabilities`, and asking for it then fails before any work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextOptions(Options):
    """The text model that writes a dataset's free-text columns (where its backend writes none itself)."""

    model: str | None = Field(None, description="An installed text model; default: the first installed.")
    time_share: float = Field(0.3, gt=0, lt=1, description="Share of max_training_time the text model takes.")
    # tate's texts in 40 s of a CPU: tiny reached a validation loss of 1.24, small 1.78, and wrote twice as fast
    model_size: Literal["tiny", "small", "medium"] = Field("tiny", description="The text model's size.")
    max_epochs: int = Field(100, ge=1, description="Passes over the texts, at most.")


class TrainOptions(Options):
    """Options every backend's training takes."""

    max_training_time: float = Field(10.0, gt=0, description="Minutes.")
    max_epochs: int = Field(100, ge=1, description="Passes over the training data, at most.")
    seed: int | None = Field(0, description="Same seed and data: same model.")
    model_state: Literal["reset", "reuse", "resume"] = Field(
        "reset", description="reset: train anew; reuse: fine-tune the last model; resume: continue an interrupted training.")
    text: TextOptions = Field(default_factory=TextOptions, description="Free-text columns' model "
                              "(for backends that write no text themselves).")


class DifferentialPrivacy(Options):
    """DP-SGD for training and DP value protection for the stats: a backend that trains with differential
    privacy adds `differential_privacy: DifferentialPrivacy | None = None` to its TrainOptions; synth.yaml's
    `train.differential_privacy` is refused, naming the backend, where it is missing.

    The unit of privacy is the subject: a root row with all its records. ε adds up over the stats and every
    training (a resumed or reused model continues the count), and is reported with δ on the model."""

    max_epsilon: float | None = Field(
        4.0, gt=0, description="The total budget (value protection plus training): training stops before it would "
                               "pass it, keeping only weights under budget. null: no cap (ε is still counted).")
    delta: float | None = Field(
        None, gt=0, lt=1, description="δ of the (ε, δ) guarantee; null: 1/n^1.2 for n training subjects.")
    noise_multiplier: float | None = Field(
        None, gt=0, description="Gaussian noise of DP-SGD, in units of max_grad_norm; null: chosen from the budget "
                                "and the time, the least noise that spends max_epsilon by training's end but no "
                                "more than 1.5 unless three passes over the data need more.")
    max_grad_norm: float = Field(1.0, gt=0, description="Each subject's gradient is clipped to this L2 norm.")
    value_protection_epsilon: float = Field(
        1.0, gt=0, description="ε spent by the stats stage: which categories are kept (noisy counts), numeric and "
                               "date ranges and quantiles (noisy histograms); part of max_epsilon.")

    @model_validator(mode="after")
    def _budget_left_for_training(self):
        if self.noise_multiplier is None and self.max_epsilon is None:
            raise ValueError("noise_multiplier: null chooses the noise from max_epsilon: set one of the two")
        if self.max_epsilon is not None and self.value_protection_epsilon >= self.max_epsilon:
            raise ValueError(f"value_protection_epsilon ({self.value_protection_epsilon}) leaves nothing of "
                             f"max_epsilon ({self.max_epsilon}) for training: lower it, or raise max_epsilon")
        return self


class Rebalancing(Options):
    """Target shares for the categories of one categorical column; the rest keep their relative shares."""

    column: str
    probabilities: dict[str, float] = Field(description="category -> share of generated rows (sum at most 1)")

    @field_validator("probabilities")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one category")
        if any(not 0 <= share <= 1 for share in value.values()) or sum(value.values()) > 1 + 1e-9:
            raise ValueError("shares must lie in [0, 1] and sum to at most 1")
        return value


class Imputation(Options):
    """Columns that get no nulls: nulls in the seed data are filled, generated rows have none."""

    columns: list[str] = Field(min_length=1)


class Fairness(Options):
    """Statistical parity: the target's distribution is the same for every value of the sensitive columns."""

    target_column: str
    sensitive_columns: list[str] = Field(min_length=1)


class GenerateOptions(Options):
    """Options every backend's generation takes (the conditioning ones only where its capabilities say so)."""

    sample_size: int | None = Field(None, ge=1, description="Rows of the subject table; default: training rows.")
    seed: int | None = Field(None, description="Same seed, same model: same rows.")
    seed_data: str | None = Field(
        None, description="A .csv/.parquet of column values to condition on: one generated row per seed row, "
                          "seed values kept. Relative to the project file.")
    seed_records: dict[str, str] | None = Field(
        None, description="In a tree: child table -> a .csv/.parquet of the first records of seed_data's subjects "
                          "(their foreign key holds the subject's key, a column of seed_data), which come out as "
                          "given and are continued. Relative to the project file.")
    rebalancing: Rebalancing | None = None
    imputation: Imputation | None = None
    fairness: Fairness | None = None
    text_temperature: float = Field(1.0, gt=0, description="Free-text columns: below 1 more typical texts, above 1 "
                                                           "more diverse ones.")

    @field_validator("seed_data")
    @classmethod
    def _seed_suffix(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().endswith(SOURCE_SUFFIXES):
            raise ValueError(f"'{value}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return value

    @field_validator("seed_records")
    @classmethod
    def _records_suffix(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for path in (value or {}).values():
            if not path.lower().endswith(SOURCE_SUFFIXES):
                raise ValueError(f"'{path}' must end with one of {', '.join(SOURCE_SUFFIXES)}")
        return value


# generate options that need a capability of the same name
CONDITIONING = ("seed_data", "rebalancing", "imputation", "fairness")


def describe_error(error: dict, prefix: tuple = ()) -> str:
    """One pydantic error as `key.path: what is wrong`."""
    path = ".".join(str(part) for part in (*prefix, *error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}" if path else message
