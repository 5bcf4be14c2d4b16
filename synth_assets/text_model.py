"""The seam for text models: what a plugin implements to write a dataset's free-text columns.

A backend that writes no free text itself (`Backend.writes_text` False, as TabularARGN) models a dataset's other
columns; a text model, from any plugin, then writes each text column row by row, given that row's values (and
its parent's). The core composes the two (text_columns.py), so neither plugin imports the other. A plugin
registers its text models with the `synth_register_text_models` hook; the LLM plugin's language model is one.

The core writes every prompt and checks every text that comes back (free_text.TextFilter): a text model only
learns to continue a prompt with a text, and need not know about privacy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from pydantic import BaseModel


@dataclass(frozen=True)
class TextExample:
    prompt: str  # the row's other values, as the core writes them, and the column to write
    text: str | None  # the text to learn; None: the column is empty in this row


@dataclass(frozen=True)
class TextTrainRequest:
    train: list[TextExample]
    validation: list[TextExample]
    seconds: float  # the text model's share of the training budget
    max_epochs: int
    seed: int | None
    device: str  # auto | cpu | cuda
    model_size: str  # tiny | small | medium
    max_length: int  # characters a text may take, at most
    # the words (lower case) a text may hold: those enough units hold. A text model that writes only these (and
    # punctuation) has its texts kept as they are; any other word the core writes again or cuts out
    words: frozenset[str] = frozenset()
    progress: Callable[[Any], None] | None = None  # called with a backend.ProgressRecord per validation


@dataclass
class TextTrainResult:
    epochs: int
    seconds: float
    stopped_because: str
    parameters: int
    validation_loss: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextGenerateRequest:
    prompts: list[str]
    max_length: int  # characters
    nullable: bool  # whether a text may be None (the source column has empty cells)
    seed: int
    device: str = "auto"
    temperature: float = 1.0
    engine: BaseModel | None = None  # the settings of the generating machine, if the plugin has them
    # the words (lower case) this column's texts may hold: a text model that keeps to them has none of its
    # texts written again (empty: any word; the core's filter still judges every text)
    words: frozenset[str] = frozenset()
    report: dict[str, Any] = field(default_factory=dict)  # figures for the synthetic asset (tokens/s, ...)


class TextModel(ABC):
    """Learns to continue a prompt with a text; writes one text (or None) per prompt."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def train(self, request: TextTrainRequest, out_dir: Path) -> TextTrainResult:
        """Train from scratch and write the model to `out_dir` (no pickles)."""

    @abstractmethod
    def generate(self, model_dir: Path, request: TextGenerateRequest) -> list[str | None]:
        """One text, or None for an empty cell, per prompt, in prompt order."""
