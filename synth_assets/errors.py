"""User-facing errors: each names where the problem is and what to do about it."""

from __future__ import annotations


class SynthError(Exception):
    """A problem the user can fix (bad config, bad input data). Shown without a traceback.

    `dataset`, `table` and `column` say where the problem is; `hint` says what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        table: str | None = None,
        column: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.dataset = dataset
        self.table = table
        self.column = column
        self.hint = hint
        super().__init__(self.__str__())

    @property
    def where(self) -> str:
        parts = []
        if self.dataset:
            parts.append(f"dataset '{self.dataset}'")
        if self.table:
            parts.append(f"table '{self.table}'")
        if self.column:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class ConfigError(SynthError):
    """The project file (synth.yaml) is malformed."""


class IncompatibleModel(SynthError):
    """The published model cannot be reused or resumed: the data's encoding or the model's size changed. A run
    started by automation then trains a new model instead."""
