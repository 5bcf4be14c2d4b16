"""The `llm` flow block: a prompt template over each row's values, answered by a language model under a JSON schema
or a list of choices, written as one or more columns.

    - block_type: llm
      block_config:
        model: {path: /models/qwen2.5-0.5b-instruct}  # or {dataset: panel_llm}, or {url: ..., name: qwen}
        prompt: "Is a {{ carat }} carat {{ cut }} diamond at {{ price }} dollars cheap or dear? Answer:"
        output: {column: verdict, choices: [cheap, fair, dear]}   # or {schema: {type: object, properties: {...}}}

A local model (a folder, or a dataset's published LLM-backend model) decodes through the LLM backend's engines,
transformers or vLLM, with the grammar held by xgrammar, so every answer parses; a server is asked through the
OpenAI-compatible chat API with a `json_schema` response format (vLLM's `vllm serve` honours it). Each answer is
validated against the schema; invalid ones are asked again up to `max_retries`, and those that stay invalid are
dropped or left null and counted (the flow's `flow_valid_outputs` check fails when they exceed
`max_invalid_share`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synth_assets.plugin_api import Block, BlockConfig, SynthError

LOCAL_BATCH_ROWS = 256  # rows a flow with an llm block processes between checkpoints, by default
SCHEMA_TOKENS = 256  # an object's answer budget unless the block sets one
PROGRESS_SECONDS = 5.0  # a batch that takes longer than this gets a line in the run's log


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSource(_Strict):
    dataset: str | None = Field(None, description="A dataset whose backend is llm: its published model.")
    path: str | None = Field(None, description="A local Hugging Face model folder (nothing is downloaded).")
    url: str | None = Field(None, description="An OpenAI-compatible server's base URL, e.g. http://localhost:8000/v1.")
    name: str | None = Field(None, description="With url: the model's name on the server.")
    api_key: str | None = Field(None, description="With url: sent as a bearer token (default: none).")

    @model_validator(mode="after")
    def _one(self) -> "ModelSource":
        if sum(v is not None for v in (self.dataset, self.path, self.url)) != 1:
            raise ValueError("give exactly one of dataset, path or url")
        if (self.name is not None or self.api_key is not None) and self.url is None:
            raise ValueError("name and api_key go with url")
        if self.url is not None and self.name is None:
            raise ValueError("a server needs the model's name (name: ...)")
        return self


class Output(_Strict):
    column: str | None = Field(None, description="With choices: the column written.")
    choices: list[str] | None = Field(None, min_length=1, description="The answers allowed, written as they are.")
    json_schema: dict[str, Any] | None = Field(None, alias="schema", description="A JSON schema of an object: each "
                                               "of its properties becomes a column.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> "Output":
        if (self.choices is None) == (self.json_schema is None):
            raise ValueError("give either choices (with column) or schema")
        if self.choices is not None and not self.column:
            raise ValueError("choices need the column they are written to (column: ...)")
        if self.json_schema is not None:
            if self.column is not None:
                raise ValueError("with schema, the columns are the schema's properties; leave out column")
            if self.json_schema.get("type") != "object" or not self.json_schema.get("properties"):
                raise ValueError("schema must be an object schema with properties (one column each)")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.column] if self.choices is not None else list(self.json_schema["properties"])

    @property
    def schema(self) -> dict:
        """What every answer must match: a choice is a JSON string among the choices."""
        if self.choices is not None:
            return {"type": "string", "enum": list(self.choices)}
        return {**self.json_schema, "required": list(self.json_schema["properties"]), "additionalProperties": False}


class LLMBlockConfig(BlockConfig):
    model: ModelSource
    prompt: str = Field(description="A Jinja template over the row's columns: {{ price }}, {% if ... %}.")
    system: str | None = Field(None, description="A system message, for a model with a chat template.")
    output: Output
    chat: bool | None = Field(None, description="Wrap the prompt in the tokenizer's chat template (default: where "
                                                "it has one). A server is always asked through its chat API.")
    engine: Literal["transformers", "vllm"] = Field("transformers", description="A local model's engine.")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int | None = Field(None, ge=1, description="The answer's token budget; an answer cut off by it "
                                       "is invalid (default: what the longest choice takes, or 256 for a schema).")
    max_retries: int = Field(3, ge=0, description="Invalid answers asked again this many times.")
    on_invalid: Literal["drop", "null"] = Field("drop", description="A row whose answer stays invalid: dropped, or "
                                                                    "kept with null outputs.")
    max_invalid_share: float = Field(0.0, ge=0, le=1, description="The share of rows allowed to stay invalid before "
                                                                  "the flow's check fails.")
    concurrency: int = Field(8, ge=1, description="A server's requests in flight at once.")
    timeout: float = Field(120.0, gt=0, description="Seconds a server may take for one answer.")


class LLMBlock(Block):
    block_type = "llm"
    Config = LLMBlockConfig
    description = "A prompt over each row, answered by a language model under a schema or choices."
    preferred_batch_rows = LOCAL_BATCH_ROWS

    def __init__(self, config, context):
        super().__init__(config, context)
        self.template = None
        self.engine = None
        self.tokenizer = None
        self.figures.extra.update({"answers": 0, "valid_first_try": 0, "retried": 0, "invalid_rows": 0,
                                   "tokens": 0, "decode_seconds": 0.0})

    def output_columns(self, columns):
        import jinja2
        from jinja2 import meta

        environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
        try:
            names = meta.find_undeclared_variables(environment.parse(self.config.prompt))
        except jinja2.TemplateSyntaxError as exc:
            raise self.error(f"prompt is not a valid template: {exc.message} (line {exc.lineno})") from None
        self.need(columns, *sorted(names))
        self.template = environment.from_string(self.config.prompt)
        return [*columns, *(c for c in self.config.output.columns if c not in columns)]

    # the model ------------------------------------------------------------------------------------------------
    def open(self):
        source = self.config.model
        if source.url is not None:
            return
        folder = self._local_folder()
        from transformers import AutoTokenizer

        from synth_llm.engines import make_engine
        from synth_llm.model import quiet

        quiet()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.engine = make_engine(self.config.engine, folder, self.context.device)

    def _budget(self) -> int:
        if self.config.max_new_tokens is not None:
            return self.config.max_new_tokens
        choices = self.config.output.choices
        if choices is None or self.tokenizer is None:
            return SCHEMA_TOKENS
        # a choice is written as a JSON string; tokens may split it anywhere, so count its characters at worst
        return max(len(json.dumps(c)) for c in choices) + 2

    def _local_folder(self) -> Path:
        source = self.config.model
        if source.path is not None:
            folder = Path(source.path).expanduser()
        else:
            if self.context.dataset_paths is None:
                raise self.error("model.dataset needs a project's storage", hint="run the flow from a project")
            folder = self.context.dataset_paths(source.dataset).model
            if not folder.is_dir():
                raise self.error(f"dataset '{source.dataset}' has no published model",
                                 hint=f"materialize {source.dataset}/model first")
        if not (folder / "config.json").is_file():
            raise self.error(f"{folder} is no Hugging Face model folder (no config.json)",
                             hint="name a local folder written by save_pretrained; nothing is downloaded")
        return folder

    def close(self):
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    # the rows -------------------------------------------------------------------------------------------------
    def process(self, batch, index):
        if batch.empty:
            return batch.assign(**{c: pd.Series(dtype="object") for c in self.config.output.columns})
        texts = [self.template.render(**_plain(row)) for row in batch.to_dict("records")]
        answers: list[Any] = [None] * len(texts)
        pending = list(range(len(texts)))
        started = time.perf_counter()
        for attempt in range(self.config.max_retries + 1):
            raw = self._ask([texts[i] for i in pending], seed=_seed(self.context.seed, index, attempt))
            still = []
            for i, text in zip(pending, raw):
                value = self._parse(text)
                if value is None:
                    still.append(i)
                else:
                    answers[i] = value
            if attempt == 0:
                self.figures.extra["valid_first_try"] += len(texts) - len(still)
            else:
                self.figures.extra["retried"] += len(pending)
            pending = still
            if not pending:
                break
        extra = self.figures.extra
        extra["answers"] += len(texts)
        extra["decode_seconds"] = round(extra["decode_seconds"] + time.perf_counter() - started, 3)
        extra["invalid_rows"] += len(pending)
        extra["valid_share_first_try"] = round(extra["valid_first_try"] / max(extra["answers"], 1), 4)
        extra["tokens_per_second"] = round(extra["tokens"] / max(extra["decode_seconds"], 1e-9), 1)
        if extra["invalid_rows"] > self.config.max_invalid_share * extra["answers"]:
            self.figures.invalid = extra["invalid_rows"]
        seconds = time.perf_counter() - started
        if seconds >= PROGRESS_SECONDS:  # a model's batch can take minutes: say what it did
            self.context.log(f"flow {self.context.flow}, block {self.context.name}: batch {index}: {len(texts):,} "
                             f"answers in {seconds:.0f} s, {len(texts) - len(pending):,} valid, "
                             f"{extra['tokens_per_second']:,} tokens/s so far")
        out = batch.copy()
        for column in self.config.output.columns:
            out[column] = [None if a is None else (a if self.config.output.choices is not None else a[column])
                           for a in answers]
        if self.config.on_invalid == "drop" and pending:
            out = out.drop(index=out.index[pending])
        return out

    def _parse(self, text: str):
        """The answer as a value (a choice, or the object), or None where it is not valid."""
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            return None
        output = self.config.output
        if output.choices is not None:
            return value if value in output.choices else None
        import jsonschema

        try:
            jsonschema.validate(value, output.schema)
        except jsonschema.ValidationError:
            return None
        return value

    def _ask(self, texts: list[str], seed: int) -> list[str]:
        if self.config.model.url is not None:
            return self._ask_server(texts, seed)
        from synth_llm.engines import DecodeRequest

        prompts = [self._tokens(t) for t in texts]
        decoded = self.engine.decode(DecodeRequest(
            prompts=prompts, schema=self.config.output.schema, temperature=self.config.temperature,
            top_p=self.config.top_p, max_new_tokens=self._budget(), seed=seed))
        self.figures.extra["tokens"] += decoded.tokens
        return decoded.texts

    def _tokens(self, text: str) -> list[int]:
        tokenizer = self.tokenizer
        chat = self.config.chat if self.config.chat is not None else bool(getattr(tokenizer, "chat_template", None))
        if chat:
            if not getattr(tokenizer, "chat_template", None):
                raise self.error("chat: true, but the model's tokenizer has no chat template", hint="set chat: false")
            ids = tokenizer.apply_chat_template(self._messages(text), add_generation_prompt=True, tokenize=True)
            return list(ids["input_ids"] if isinstance(ids, dict) else ids)
        text = f"{self.config.system}\n{text}" if self.config.system else text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return [tokenizer.bos_token_id, *ids] if tokenizer.bos_token_id is not None else ids

    def _messages(self, text: str) -> list[dict]:
        system = [{"role": "system", "content": self.config.system}] if self.config.system else []
        return [*system, {"role": "user", "content": text}]

    def _ask_server(self, texts: list[str], seed: int) -> list[str]:
        source = self.config.model
        url = source.url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if source.api_key:
            headers["Authorization"] = f"Bearer {source.api_key}"

        def one(i_text) -> str:
            i, text = i_text
            body = {"model": source.name, "messages": self._messages(text), "temperature": self.config.temperature,
                    "top_p": self.config.top_p, "max_tokens": self._budget(), "seed": seed + i,
                    "response_format": {"type": "json_schema", "json_schema": {
                        "name": "output", "schema": self.config.output.schema, "strict": True}}}
            request = urllib.request.Request(url, json.dumps(body).encode(), headers)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    reply = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                answer = exc.read()[:300].decode(errors="replace")
                raise self.error(f"the server at {url} answered {exc.code}: {answer}",
                                 hint="check model.name and that the server takes structured outputs") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                raise self.error(f"cannot reach the server at {url}: {getattr(exc, 'reason', exc)}",
                                 hint="start it (e.g. vllm serve <model>), or fix model.url") from None
            self.figures.extra["tokens"] += int((reply.get("usage") or {}).get("completion_tokens", 0))
            return reply["choices"][0]["message"]["content"] or ""

        with ThreadPoolExecutor(self.config.concurrency) as pool:
            return list(pool.map(one, enumerate(texts)))


def _plain(row: dict) -> dict:
    """A row's values as a template shows them: missing values as empty, numpy scalars as Python's."""
    out = {}
    for key, value in row.items():
        if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
            out[key] = ""
        else:
            out[key] = value.item() if hasattr(value, "item") else value
    return out


def _seed(seed: int, index: int, attempt: int) -> int:
    return (seed * 1_000_003 + index * 7919 + attempt * 104_729) % (2**31)
