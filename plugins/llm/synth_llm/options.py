"""The LLM backend's train and generate options, on top of the ones every backend takes.

The task is chosen at training, since each task trains its own prompts and outputs; generation options say how
to decode and which values never to emit (the per-column directives).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from synth_assets.plugin_api import DifferentialPrivacy, GenerateOptions, Options, TrainOptions

TASKS = ("rel_synth", "rel_semi_synth", "rel_predict", "rel_event", "rel_event_predict")
EVENT_TASKS = ("rel_event", "rel_event_predict")
AUTO_WINDOW = 512  # a model's context window unless its samples need more
AUTO_WINDOW_MAX = 2048  # ...up to this; a longer sample needs train.assembler: sequential or a window given
PLACEHOLDERS = ("schema", "ctx", "out_schema")
DEFAULT_PROMPT = "{ctx}=>"


class LLMTrainOptions(TrainOptions):
    task: Literal["rel_synth", "rel_semi_synth", "rel_predict", "rel_event", "rel_event_predict"] = Field(
        "rel_synth", description="rel_synth: whole samples; rel_semi_synth: complete samples from a kept part of "
                                 "real ones; rel_predict: the target columns from the rest; rel_event: whole samples "
                                 "whose event tables are written as one list of events in time order; "
                                 "rel_event_predict: the events that follow a root row and its first events.")
    event_tables: list[str] = Field(default_factory=list, description="rel_event, rel_event_predict: the root's child "
                                    "tables whose records are events, ordered together by their first order_by "
                                    "column (dates or numbers); empty: every child of the root with an order_by.")
    cols_ctx: list[str] = Field(default_factory=list, description="rel_synth: root-table columns given at "
                                                                   "generation (generate.seed_data) instead of generated.")
    cols_tgt: dict[str, list[str]] = Field(default_factory=dict, description="rel_predict: table -> columns to predict.")
    p_field: float = Field(0.5, ge=0, le=1, description="rel_semi_synth: chance that a root field is kept as context.")
    p_child: float = Field(0.5, ge=0, le=1, description="rel_semi_synth: chance that a child record is kept as context.")
    ctx_as_const: bool = Field(True, description="rel_semi_synth: kept values come out unchanged.")
    prompt_template: str = Field(
        DEFAULT_PROMPT, description="Text before each output; {ctx}: the given part of a sample as JSON, {schema}: the "
                                    "sample's JSON Schema, {out_schema}: the output's.")
    assembler: Literal["tabular", "grouped", "sequential"] = Field(
        "tabular", description="tabular: shuffle samples and pack them into the context window; grouped: one sample "
                               "per example; sequential: samples in data order, a long one continues in the next example.")
    order_keys: bool = Field(
        True, description="A child table whose order column has few values and never repeats under a parent (a "
                          "year): its records are written keyed by that value, so no output repeats or reverses it.")
    base_model: str | None = Field(None, description="A local Hugging Face model folder to fine-tune; default: a "
                                                     "small GPT-2 trained from scratch with a tokenizer of the data.")
    lora_rank: int | None = Field(None, ge=1, description="Fine-tune base_model with LoRA adapters of this rank (peft).")
    model_size: Literal["tiny", "small", "medium"] = Field(
        "tiny", description="From scratch: tiny (2 layers x 64), small (4 x 128), medium (6 x 256).")
    context_window: int | None = Field(
        None, ge=32, description="Tokens per training example. Left out: 512, or as many as the longest sample takes "
                                 f"(rounded up to 64) where that is more, up to {AUTO_WINDOW_MAX}; a reused or base "
                                 "model keeps its own.")
    dropout: float = Field(0.1, ge=0, lt=1, description="From scratch: dropout on embeddings and residuals; more "
                                                       "keeps a model of little data from memorising it.")
    batch_size: int | None = Field(None, ge=1, description="Examples per step; null: 4 (packed examples), or 512 "
                                                           "samples with differential privacy.")
    learning_rate: float = Field(2e-3, gt=0, description="AdamW's; fine-tuning a base model wants ~1e-4.")
    early_stopping_patience: int = Field(3, ge=1, description="Validations without improvement.")
    differential_privacy: DifferentialPrivacy | None = Field(
        None, description="DP-SGD (opacus) over samples, one subject each, clipped and noised; from scratch (with a "
                          "tokenizer of the protected stats) or LoRA fine-tuning; stops before ε passes max_epsilon.")

    @model_validator(mode="after")
    def _task_options(self):
        if self.cols_tgt and self.task != "rel_predict":
            raise ValueError("cols_tgt is for task rel_predict")
        if self.task == "rel_predict" and not any(self.cols_tgt.values()):
            raise ValueError("task rel_predict needs cols_tgt: table -> columns to predict")
        if self.cols_ctx and self.task != "rel_synth":
            raise ValueError("cols_ctx is for task rel_synth")
        if self.lora_rank and not self.base_model:
            raise ValueError("lora_rank fine-tunes a base_model: name a local model folder")
        if self.event_tables and self.task not in EVENT_TASKS:
            raise ValueError("event_tables is for tasks rel_event and rel_event_predict")
        if self.differential_privacy is not None and self.task not in ("rel_synth", "rel_event"):
            raise ValueError(f"differential_privacy covers task rel_synth: {self.task} writes real rows into its "
                             "output (semi-synthesis keeps training values, prediction copies the rows it is given)")
        import string

        unknown = [name for _, name, _, _ in string.Formatter().parse(self.prompt_template)
                   if name is not None and name not in PLACEHOLDERS]
        if unknown:
            raise ValueError(f"prompt_template: unknown placeholder {{{unknown[0]}}}; use {{ctx}}, {{schema}} or {{out_schema}}")
        return self


class ColumnDirective(Options):
    """What generation must never emit in one column."""

    impute_na: bool = Field(False, description="Never generate a null.")
    impute_protected: bool = Field(False, description="Never generate the rare-value token.")
    mask: list = Field(default_factory=list, description="Values never to generate.")


class LLMGenerateOptions(GenerateOptions):
    engine: Literal["transformers", "vllm"] = Field("transformers", description="Decoding engine; both follow the "
                                                                                "JSON schema of the output.")
    sampling_temperature: float = Field(1.0, gt=0, description="Below 1: more typical rows; above 1: more diverse.")
    sampling_top_p: float = Field(1.0, gt=0, le=1, description="Sample only from the most likely tokens holding this share.")
    directives: dict[str, dict[str, ColumnDirective]] = Field(
        default_factory=dict, description="table -> column -> {impute_na, impute_protected, mask}.")
    n_pred: int = Field(1, ge=1, description="rel_predict: draws per row, each its own row (n_pred consecutive rows "
                                             "per predicted row), or one row where aggregate_draws; "
                                             "rel_event_predict: continuations per subject, each its own root row.")
    aggregate_draws: bool = Field(False, description="rel_predict with n_pred > 1: one row per predicted row, holding "
                                                     "the draws' most frequent value (categories, dates) or mean "
                                                     "(numbers).")
    min_n_events: int = Field(0, ge=0, description="rel_event, rel_event_predict: events each subject holds at least "
                                                   "(a prediction's given events count).")
    max_n_events: int | None = Field(None, ge=0, description="rel_event, rel_event_predict: events each subject holds "
                                                             "at most; null: the longest histories enough subjects have.")
    forbidden_events: list[str] = Field(default_factory=list, description="rel_event, rel_event_predict: event "
                                        "tables never written (the schema leaves them out).")
    n_events: int | None = Field(None, ge=0, description="rel_event_predict: the first n_events of each subject's "
                                                         "events are given as its history; null: all of them.")
    n_future: int | None = Field(None, ge=0, description="rel_event_predict: events written after the history; null: "
                                                         "as many as the model chooses (none ends the history).")
    only_future: bool = Field(False, description="rel_event_predict: the event tables hold only the written events, "
                                                 "not the given history.")
    batch_size: int = Field(64, ge=1, description="Prompts decoded together.")
    max_retries: int = Field(3, ge=0, description="Rounds that regenerate invalid outputs.")
    max_invalid_share: float = Field(0.5, gt=0, le=1, description="Stop with an error when the first round's "
                                                                  "invalid share is above this.")


class LLMEngineOptions(BaseModel):
    """How the LLM backend decodes on this deployment, for every dataset that uses it (the Dagster resource
    `llm_engine`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["", "transformers", "vllm"] = Field(
        "", description="Overrides every dataset's generate.engine (say vllm on a GPU deployment); empty: each "
                        "dataset's own.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="vLLM: the share of GPU memory it may take (on the CPU: of RAM); unset: 0.9 "
                                      "on a GPU, 0.2 on the CPU.")
    max_num_seqs: int = Field(256, ge=1, description="vLLM: sequences decoded at once.")
