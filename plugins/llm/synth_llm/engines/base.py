"""What a generation engine does: continue token prompts under a JSON schema.

An engine loads a model folder (a Hugging Face causal LM saved with safetensors, its tokenizer beside it) and
decodes a batch of prompts, each constrained to one JSON document matching the schema and ended by the
tokenizer's EOS token. Validation, retries and turning JSON back into tables happen elsewhere
(generation.py), so every engine gets them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DecodeRequest:
    prompts: list[list[int]]  # token ids of each prompt, BOS first
    schema: dict | None  # JSON Schema every output must match; None: free decoding up to EOS
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    suppressed_token_ids: tuple[int, ...] = ()  # tokens never to write


@dataclass
class Decoded:
    texts: list[str]  # one output per prompt, the JSON text without special tokens
    tokens: int  # tokens generated in all


class Engine(ABC):
    name: str

    def __init__(self, model_dir: Path, device: str = "auto"):
        self.model_dir = Path(model_dir)
        self.device = device

    @abstractmethod
    def decode(self, request: DecodeRequest) -> Decoded:
        """One output per prompt, in prompt order."""

    def close(self) -> None:
        """Free the model (and any worker processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
