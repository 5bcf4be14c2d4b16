"""Outputs for a list of contexts, every one valid: decode in batches, validate each output with the pydantic
model (and the task's own rule), decode the invalid ones again, and stop with a clear error when too many stay
invalid. A valid output whose text the core would refuse (a copy of a rare training text) is decoded again too,
but kept after the last round: the core cuts the text. The figures (valid share on the first try, retries,
tokens/s, rows/s) go to the synthetic asset."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from pydantic import ValidationError

from synth_assets.plugin_api import SynthError
from synth_llm.engines import DecodeRequest, Engine
from synth_llm.tasks import Task


@dataclass
class GenerationReport:
    outputs: int = 0
    valid_first_try: int = 0
    retried: int = 0  # outputs decoded again
    rounds: int = 0
    tokens: int = 0
    seconds: float = 0.0
    problems: dict[str, int] = field(default_factory=dict)  # why outputs were invalid -> how often
    texts_refused: int = 0  # valid outputs decoded again for a text the core would refuse

    @classmethod
    def merged(cls, reports: list["GenerationReport"]) -> "GenerationReport":
        """One report of several generations (groups of prompts decoded one after another)."""
        out = cls()
        for part in reports:
            for name in ("outputs", "valid_first_try", "retried", "tokens", "seconds", "texts_refused"):
                setattr(out, name, getattr(out, name) + getattr(part, name))
            out.rounds = max(out.rounds, part.rounds)
            for problem, count in part.problems.items():
                out.problems[problem] = out.problems.get(problem, 0) + count
        return out

    def as_metadata(self, rows: int) -> dict:
        return {
            "engine_outputs": self.outputs,
            "valid_share_first_try": round(self.valid_first_try / max(self.outputs, 1), 4),
            "retried_outputs": self.retried,
            **({"outputs_written_again_for_a_text": self.texts_refused} if self.texts_refused else {}),
            "tokens_per_second": round(self.tokens / max(self.seconds, 1e-9), 1),
            "decode_rows_per_second": round(rows / max(self.seconds, 1e-9), 1),
            "decode_seconds": round(self.seconds, 2),
        }


def validate(text: str, model, task: Task, context: dict | None) -> tuple[dict | None, str | None]:
    """(the output as data, None), or (None, why it is invalid)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None, "not complete JSON (the token budget ran out)"
    try:
        model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
        return None, f"{where}: {error['msg'].removeprefix('Value error, ')}"
    problem = task.problem(context, data)
    return (None, problem) if problem else (data, None)


def generate_outputs(engine: Engine, prompts: list[list[int]], contexts: list, *, task: Task, model, schema: dict,
                     temperature: float, top_p: float, max_new_tokens: int, seed: int, batch_size: int,
                     max_retries: int, max_invalid_share: float, dataset: str | None = None,
                     refused_text: Callable[[dict], bool] | None = None) -> tuple[list[dict], GenerationReport]:
    """`refused_text(output)`: whether a valid output holds a text the core would refuse."""
    report = GenerationReport(outputs=len(prompts))
    results: list[dict | None] = [None] * len(prompts)
    pending = list(range(len(prompts)))
    started = time.perf_counter()
    for attempt in range(max_retries + 1):
        report.rounds = attempt + 1
        invalid, why, again = [], {}, []
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            decoded = engine.decode(DecodeRequest(
                prompts=[prompts[i] for i in batch], schema=schema, temperature=temperature, top_p=top_p,
                max_new_tokens=max_new_tokens, seed=seed + 7919 * attempt + start))
            report.tokens += decoded.tokens
            for i, text in zip(batch, decoded.texts):
                data, problem = validate(text, model, task, contexts[i])
                if data is None and results[i] is None:
                    invalid.append(i)
                    why[problem] = why.get(problem, 0) + 1
                elif data is not None:
                    results[i] = data
                    if attempt < max_retries and refused_text is not None and refused_text(data):
                        again.append(i)  # kept, unless a later round writes a valid one the core takes
        report.texts_refused += len(again)
        for problem, count in why.items():
            report.problems[problem] = report.problems.get(problem, 0) + count
        if attempt == 0:
            report.valid_first_try = len(prompts) - len(invalid)
        else:
            report.retried += len(pending)
        # the share is judged on the first round, over every output; retries then go on to the last round
        share = len(invalid) / max(len(pending), 1)
        if invalid and ((attempt == 0 and share > max_invalid_share) or attempt == max_retries):
            common = max(why, key=why.get)
            raise SynthError(
                f"{len(invalid)} of {len(pending)} outputs were invalid"
                + (f" after {attempt} retries" if attempt else "") + f"; most often: {common}", dataset=dataset,
                hint="train longer (train.max_training_time), or raise generate.max_retries / max_invalid_share")
        pending = sorted(invalid + again)
        if not pending:
            break
    report.seconds = time.perf_counter() - started
    return results, report
