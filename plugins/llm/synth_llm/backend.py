"""The LLM backend: a tree of tables as JSON samples (encode), a causal LM trained or fine-tuned on them (train),
and samples decoded under their JSON schema, validated and turned back into tables (generate)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synth_assets.plugin_api import (
    FLAT,
    PARTITIONS,
    RELATIONAL,
    SEQUENTIAL,
    Backend,
    DRAW_SECONDS,
    SEED_PARENT,
    Capabilities,
    DatasetStats,
    GenerateRequest,
    ProgressRecord,
    Split,
    SynthError,
    TrainRequest,
    TrainResult,
    budget_spent,
    continue_ledger,
    read_json,
    save_ledger,
    start_ledger,
    tree_problem,
    write_json,
    resolve_device,
    cut_at_word,
    text_columns,
)
from synth_llm.columns import json_values
from synth_llm.events import EventTask
from synth_llm.options import (AUTO_WINDOW, AUTO_WINDOW_MAX, EVENT_TASKS, LLMEngineOptions, LLMGenerateOptions,
                               LLMTrainOptions)
from synth_llm.samples import Tree, from_samples, to_samples
from synth_llm.schema import full_shape, output_model
from synth_llm.order_keys import keyed_tables
from synth_llm.stats_samples import stats_frames
from synth_llm.tasks import Task, dumps

TASK_FILE = "task.json"  # the train options the model was trained with, its context window, its keyed tables
KEYED = "order_keys"  # the child tables whose records the model writes keyed by their order value (none before)
REAL_SAMPLES = "samples.jsonl"  # where models trained before 2026-12-06 kept a copy of the samples a task starts from


class LLMBackend(Backend):
    name = "llm"
    description = ("A causal language model over tables as JSON (transformers; CPU or CUDA): a small GPT-2 trained "
                   "from scratch, or a local model fine-tuned (LoRA); decoding under the JSON schema with "
                   "transformers or vLLM. Tasks: rel_synth, rel_semi_synth, rel_predict, rel_event, "
                   "rel_event_predict.")
    # seed records: the child records of given samples, which rel_predict and rel_semi_synth start from
    capabilities = Capabilities(shapes=frozenset({FLAT, SEQUENTIAL, RELATIONAL}), seed_data=True, seed_records=True,
                                devices=frozenset({"cpu", "cuda"}))
    TrainOptions = LLMTrainOptions
    GenerateOptions = LLMGenerateOptions
    EngineOptions = LLMEngineOptions
    kinds = frozenset({"pytorch", "transformers"})
    column_encodings = {"categorical": "categorical", "code": "code", "numeric": "numeric", "discrete": "discrete",
                        "continuous": "continuous", "datetime": "datetime"}
    # a free-text column is a free string of the row's JSON (synth_llm.columns), written with the rest of the row
    writes_text = True

    def unsupported_shape(self, foreign_keys) -> str | None:
        return super().unsupported_shape(foreign_keys) or tree_problem(self.name, foreign_keys)

    def option_problems(self, train: LLMTrainOptions, generate: LLMGenerateOptions) -> list[str]:
        return task_option_problems(train.task, generate)

    # encode: the samples ---------------------------------------------------------------------------
    def encode(self, split: Split, stats: DatasetStats, out_dir: Path) -> dict[str, Any]:
        tree = Tree.of(stats)
        sizes = {}
        for partition in PARTITIONS:
            samples, keys = to_samples(split.partition(partition), tree)
            lines = [dumps({"key": _plain(k), "sample": s}) for k, s in zip(keys, samples)]
            (out_dir / f"{partition}.jsonl").write_text("\n".join(lines) + "\n" if lines else "", encoding="utf-8")
            sizes[partition] = [len(line) for line in lines]
        _, schema = output_model(tree, full_shape(tree))
        write_json(schema, out_dir / "schema.json")
        train_sizes = sizes["train"] or [0]
        return {"samples": {p: len(s) for p, s in sizes.items()}, "characters_per_sample_mean": int(np.mean(train_sizes)),
                "characters_per_sample_max": int(max(train_sizes)), "tables": list(tree.children)}

    # train -----------------------------------------------------------------------------------------
    def train(self, encoded_dir: Path, stats: DatasetStats, request: TrainRequest, out_dir: Path) -> TrainResult:
        import torch

        from synth_llm import model as lm
        from synth_llm.assemblers import Segment, assemble
        from synth_llm.training import Privacy, fit

        started = time.perf_counter()  # the budget covers the tokenizer and the examples too
        lm.quiet()
        options: LLMTrainOptions = request.options
        tree = Tree.of(stats)
        keyed = keyed_tables(tree) if options.order_keys else {}
        task = make_task(options, tree, stats.dataset, keyed)
        rng = np.random.default_rng(options.seed)
        full_schema = task.full_schema()
        out_schemas = {given: task.prompt_schema(given) for given in (False, True)}
        texts = {}
        for partition in PARTITIONS:
            keys, samples = _read_samples(encoded_dir / f"{partition}.jsonl")
            texts[partition] = (keys, *_prompts(task, samples, full_schema, out_schemas, rng))
        if not texts["train"][0]:
            raise SynthError("no training samples", dataset=stats.dataset, hint="give the dataset more rows")

        if options.seed is not None:
            torch.manual_seed(options.seed)
        dp = options.differential_privacy
        ledger = start_ledger(stats, dataset=stats.dataset) if dp is not None else None
        source = _checkpoint_source(request)
        history: list[dict] = []
        if source is not None:
            model, tokenizer = lm.load_model(source, dataset=stats.dataset)
            if (source / "progress.json").is_file() and options.model_state == "resume":
                history = read_json(source / "progress.json")
            if ledger is not None:  # what the weights were trained on before counts too
                continue_ledger(ledger, source, dataset=stats.dataset)
                budget_spent(ledger, dp.max_epsilon, dataset=stats.dataset)
        elif options.base_model:
            model, tokenizer = lm.load_model(Path(options.base_model), dataset=stats.dataset)
        else:
            if dp is not None:  # merges of the real samples would be an unprotected statistic: the stats' draws
                prompts, outputs = _prompts(task, stats_samples(stats, tree, rng), full_schema, out_schemas, rng)
            else:
                _, prompts, outputs = texts["train"]
            tokenizer = lm.train_tokenizer([p + o for p, o in zip(prompts, outputs)])
            model = None  # made once the samples' lengths choose its window
        segments = {}
        for partition, (keys, prompts, outputs) in texts.items():
            prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
            output_ids = tokenizer(outputs, add_special_tokens=False)["input_ids"] if outputs else []
            segments[partition] = [Segment(p, o, k) for p, o, k in zip(prompt_ids, output_ids, keys)]
        window = options.context_window or auto_window(segments)
        if model is None:
            model = lm.new_model(tokenizer, options.model_size, window, options.dropout, tie=dp is None)
        device = resolve_device(request.device)
        if options.lora_rank:  # a reused model was saved with its adapters merged: new ones go on top
            model = lm.with_lora(model.to(device), options.lora_rank)  # on its device first: peft and opacus
        window = min(window, lm.context_window(model))
        # with DP a sample is a subject, clipped as one: one sample per example, never packed with others
        assembler = "grouped" if dp is not None else options.assembler

        examples = {}
        for partition, parts in segments.items():
            examples[partition] = assemble(parts, assembler, window, bos=tokenizer.bos_token_id,
                                           eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id, rng=rng,
                                           table=tree.root)
        if len(examples["validation"]) == 0:
            examples["validation"] = examples["train"]  # tiny data: early stopping watches the training loss

        privacy = Privacy(ledger, dp.max_epsilon) if dp is not None else None
        outcome = fit(model, examples["train"], examples["validation"], request,
                      lambda m, folder: lm.save(_merged_copy(m), tokenizer, folder), device, history,
                      spent=time.perf_counter() - started, privacy=privacy)
        lm.save(model, tokenizer, out_dir)
        if ledger is not None:
            save_ledger(ledger, out_dir)
        write_json({"options": options.model_dump(mode="json"), "window": window, KEYED: sorted(keyed)},
                   out_dir / TASK_FILE)
        write_json(outcome.history, out_dir / "progress.json")
        parameters = sum(p.numel() for p in model.parameters())
        return TrainResult(
            epochs=outcome.epochs, best_epoch=outcome.best_epoch, best_validation_loss=outcome.best_loss,
            seconds=outcome.seconds, stopped_because=outcome.stopped_because, device=device, parameters=parameters,
            progress=[ProgressRecord(**r) for r in outcome.history],
            settings={"task": task.name, "model": options.base_model or f"gpt2 {options.model_size} (from scratch)",
                      "lora_rank": options.lora_rank, "vocabulary": len(tokenizer), "context_window": window,
                      "dropout": None if source is not None or options.base_model else options.dropout,
                      "assembler": assembler, **_text_columns(stats), **outcome.settings},
            privacy=ledger.summary() if ledger is not None else None,
        )

    # generate ------------------------------------------------------------------------------------
    def generate(self, model_dir: Path, stats: DatasetStats, request: GenerateRequest) -> dict[str, pd.DataFrame]:
        from transformers import AutoTokenizer

        from synth_llm.engines import make_engine
        from synth_llm.generation import GenerationReport, generate_outputs

        options: LLMGenerateOptions = request.options
        saved = read_json(model_dir / TASK_FILE)
        train_options = LLMTrainOptions.model_validate(saved["options"])
        tree = Tree.of(stats)
        keyed = {t: rule for t, rule in keyed_tables(tree).items() if t in saved.get(KEYED, [])}
        task = make_task(train_options, tree, stats.dataset, keyed)
        problems = task_option_problems(task.name, options)
        if problems:
            raise SynthError(problems[0], dataset=stats.dataset, hint="leave it out, or train with the task it is for")
        if isinstance(task, EventTask):
            task.with_generation(options)
        seed = options.seed if options.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        rng = np.random.default_rng(seed)
        contexts = self._contexts(task, tree, stats, options, request, model_dir, rng)
        given = any(c is not None for c in contexts)
        full_schema = task.full_schema()
        out_schema = task.prompt_schema(given)
        draws = options.n_pred if task.name in ("rel_predict", "rel_event_predict") else 1
        if draws > 1 and options.aggregate_draws and task.name != "rel_predict":
            raise SynthError("generate.aggregate_draws is for task rel_predict: event continuations stay draws",
                             dataset=stats.dataset, hint="leave aggregate_draws out")
        contexts = [c for c in contexts for _ in range(draws)]

        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        texts = [task.prompt(c, full_schema, out_schema) for c in contexts]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        prompts = [[tokenizer.bos_token_id, *p] for p in ids]
        longest = max((len(p) for p in prompts), default=0)
        if longest >= saved["window"]:
            raise SynthError(f"a prompt takes {longest} tokens, the model's whole context window of {saved['window']}",
                             dataset=stats.dataset, hint="train with a larger train.context_window")
        settings = request.engine or LLMEngineOptions()
        engine_name = settings.engine or options.engine  # the deployment's choice wins over the dataset's
        outputs: list = [None] * len(prompts)
        reports = []
        with make_engine(engine_name, model_dir, request.device, settings) as engine:
            # a prediction writes as many records as its context gives: its schema says so, per count
            for group, members in task.groups(contexts).items():
                output, schema = task.generation_schema(group, given, options.directives)
                written, part = generate_outputs(
                    engine, [prompts[i] for i in members], [contexts[i] for i in members], task=task, model=output,
                    schema=schema, temperature=options.sampling_temperature,
                    top_p=options.sampling_top_p,
                    max_new_tokens=saved["window"] - min((len(p) for p in prompts), default=0), seed=seed,
                    batch_size=options.batch_size, max_retries=options.max_retries,
                    max_invalid_share=options.max_invalid_share, dataset=stats.dataset,
                    refused_text=_text_refusal(tree, request.text_filters))
                for i, one in zip(members, written):
                    outputs[i] = one
                reports.append(part)
        report = GenerationReport.merged(reports)
        samples = [task.combine(c, o) for c, o in zip(contexts, outputs)]
        if draws > 1 and options.aggregate_draws:
            samples = [_aggregate(samples[i : i + draws], tree.root, tree) for i in range(0, len(samples), draws)]
            draws = 1
        frames = from_samples(samples, tree)
        if request.seed_data is not None:  # seed values come out as given, rare ones included; not the targets
            root = frames[tree.root]
            targets = set(train_options.cols_tgt.get(tree.root, []))
            for column in request.seed_data.columns:
                if column in root.columns and column not in targets:  # each draw of a row keeps the row's values
                    given = pd.Series(np.repeat(request.seed_data[column].to_numpy(), draws), index=root.index)
                    # semi-synthesis writes what is left null; prediction keeps the given row as it is
                    root[column] = given.where(given.notna(), root[column]) if task.name == "rel_semi_synth" \
                        else given
        request.report.update(report.as_metadata(rows=sum(len(df) for df in frames.values())))
        request.report["engine"] = engine_name
        if isinstance(task, EventTask):
            request.report["events_past_the_time_range"] = task.outside
        request.report[DRAW_SECONDS] = report.seconds  # decoding, without loading the model and starting the engine
        if report.problems:
            request.report["invalid_outputs_by_reason"] = dict(Counter(report.problems).most_common(5))
        return frames

    def _contexts(self, task: Task, tree: Tree, stats: DatasetStats, options: LLMGenerateOptions,
                  request: GenerateRequest, model_dir: Path, rng: np.random.Generator) -> list:
        seed_data = request.seed_data
        root = tree.table(tree.root)
        if task.name in ("rel_synth", "rel_event") and seed_data is None:
            return [None] * (options.sample_size or root.rows)
        if task.name == "rel_event":
            raise SynthError("rel_event writes whole samples: it is given no seed data", dataset=stats.dataset,
                             hint="train task rel_event_predict to continue given subjects and their first events")
        if task.name == "rel_synth" and request.seed_records:
            raise SynthError("rel_synth is given root columns (train.cols_ctx), not child records",
                             dataset=stats.dataset, hint="give child records to a rel_predict or rel_semi_synth model")
        if task.name == "rel_synth":
            if not task.options.cols_ctx:
                raise SynthError("generate.seed_data needs a model trained with train.cols_ctx (the seed columns)",
                                 dataset=stats.dataset, table=tree.root,
                                 hint="set train.cols_ctx to the seed data's columns and train again")
            missing = [c for c in task.options.cols_ctx if c not in seed_data.columns]
            if missing:
                raise SynthError("the seed data lacks a column the model was trained to be given", dataset=stats.dataset,
                                 table=tree.root, column=missing[0], hint="add it to generate.seed_data")
            extra = [str(c) for c in seed_data.columns if c not in task.options.cols_ctx]
            if extra:
                raise SynthError("the seed data holds a column the model was not trained to be given",
                                 dataset=stats.dataset, table=tree.root, column=extra[0],
                                 hint=f"add it to train.cols_ctx and train again, or drop it from the seed data")
            values = {c: json_values(seed_data[c].reset_index(drop=True), root.columns[c]) for c in task.options.cols_ctx}
            return [{c: values[c][i] for c in task.options.cols_ctx} for i in range(len(seed_data))]
        if seed_data is not None:  # the user's own samples: root rows, and their child records where given
            samples = _given_samples(seed_data, request.seed_records or {}, tree, stats.dataset)
            if task.name == "rel_semi_synth":  # what is given is kept, what is null is written
                return [_present(sample, tree.root, tree) for sample in samples]
            return [task.generation_context(sample, rng) for sample in samples]
        else:  # the dataset's own samples (never a copy in the model): training rows to keep parts of, or the holdout
            real = _read_samples(self._real_samples(task, request, model_dir, stats.dataset))[1]
        if not real:
            raise SynthError(f"task {task.name} has no samples to start from", dataset=stats.dataset,
                             hint="give the dataset more rows")
        if task.name == "rel_semi_synth":
            n = options.sample_size or len(real)
            real = [real[i] for i in rng.choice(len(real), n, replace=n > len(real))]
        elif options.sample_size:
            real = real[: options.sample_size]
        return [task.generation_context(sample, rng) for sample in real]

    @staticmethod
    def _real_samples(task: Task, request: GenerateRequest, model_dir: Path, dataset: str) -> Path:
        """Where the samples a task starts from are: semi-synthesis keeps parts of training samples, prediction
        predicts the holdout's. A model trained before they were read from the encoded stage kept a copy."""
        partition = "train" if task.name == "rel_semi_synth" else "validation"
        if request.encoded is not None:
            return request.encoded() / f"{partition}.jsonl"
        if (model_dir / REAL_SAMPLES).is_file():
            return model_dir / REAL_SAMPLES
        raise SynthError(f"task {task.name} starts from the dataset's samples, and none were handed to generation",
                         dataset=dataset, hint="generate through the dataset's pipeline (synth.yaml, or the task's "
                                               "Python API), which hands them over")


def make_task(options: LLMTrainOptions, tree: Tree, dataset: str, keyed) -> Task:
    return (EventTask if options.task in EVENT_TASKS else Task)(options, tree, dataset, keyed)


EVENT_OPTIONS = ("min_n_events", "max_n_events", "forbidden_events")  # the event tasks' generate options
PREDICTION_OPTIONS = ("n_events", "n_future", "only_future")  # ...and rel_event_predict's own


def task_option_problems(task: str, options: LLMGenerateOptions) -> list[str]:
    """Generate options given to a model of a task they are not for: errors, never ignored."""
    defaults = LLMGenerateOptions()
    given = [name for name in (*EVENT_OPTIONS, *PREDICTION_OPTIONS) if getattr(options, name) != getattr(defaults, name)]
    if task not in EVENT_TASKS:
        return [f"generate.{name}: is for the tasks rel_event and rel_event_predict, and train.task is {task}"
                for name in given]
    if task == "rel_event":
        return [f"generate.{name}: is for the task rel_event_predict (continuing given events), and train.task is "
                f"rel_event" for name in given if name in PREDICTION_OPTIONS]
    return []


def _given_samples(seed_data: pd.DataFrame, seed_records: dict[str, pd.DataFrame], tree: Tree,
                   dataset: str) -> list[dict]:
    """The user's samples: each seed row with the seed records of the root's child tables that name it
    (SEED_PARENT), in order; a column left out is null. Deeper tables get no given records."""
    root = tree.table(tree.root)
    frames = {tree.root: _with_columns(seed_data.reset_index(drop=True), tree.columns(tree.root))}
    if root.primary_key:
        frames[tree.root][root.primary_key] = np.arange(len(seed_data))
    for name in tree.children:
        if name == tree.root:
            continue
        table = tree.table(name)
        given = seed_records.get(name)
        if given is not None and name not in tree.children[tree.root]:
            raise SynthError("seed records are given for the root's child tables only", dataset=dataset, table=name)
        frame = given.rename(columns={SEED_PARENT: tree.link[name]}) if given is not None else \
            pd.DataFrame({tree.link[name]: pd.Series(dtype="int64")})
        frame = frame.drop(columns=[table.primary_key], errors="ignore") if table.primary_key else frame  # fresh keys
        unknown = [c for c in frame.columns if c not in tree.columns(name) and c != tree.link[name]]
        if unknown:
            raise SynthError("the seed records hold a column the table does not model", dataset=dataset, table=name,
                             column=unknown[0])
        frame = _with_columns(frame.reset_index(drop=True), tree.columns(name))
        if table.primary_key:
            frame[table.primary_key] = np.arange(len(frame))
        frames[name] = frame
    unknown = sorted(set(seed_records) - set(frames))
    if unknown:
        raise SynthError("seed records name a table this dataset does not have", dataset=dataset, table=unknown[0])
    return to_samples(frames, tree)[0]


def _with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame


def _present(record: dict, name: str, tree: Tree) -> dict:
    """A given sample as a semi-synthetic context: its non-null fields, and its records, each likewise."""
    out = {k: v for k, v in record.items() if k not in tree.children[name] and v is not None}
    for child in tree.children[name]:
        out[child] = [_present(r, child, tree) for r in record.get(child, [])]
    return out


def auto_window(segments: dict[str, list]) -> int:
    """The context window a model gets where train.context_window is left out: 512 tokens, or what the longest sample
    takes with its BOS and EOS (rounded up to 64), up to 2,048; a longer sample then fails in the assembler, naming
    its key (unless the sequential assembler splits it). On a panel of 1,000 persons with 15-31 records of 21 columns,
    the fixed 512 stopped training with "the sample ... takes 516 tokens"."""
    longest = max((2 + len(s.prompt) + len(s.output) for parts in segments.values() for s in parts), default=0)
    return min(max(AUTO_WINDOW, -(-longest // 64) * 64), AUTO_WINDOW_MAX)


def _text_refusal(tree: Tree, filters: dict):
    """Whether an output holds a text the core's filters refuse (read as `from_samples` will read it), or None
    without free-text columns."""
    if not filters:
        return None

    def refused(name: str, record) -> bool:
        if not isinstance(record, dict):
            return False
        for column, text_filter in filters.get(name, {}).items():
            text = record.get(column)
            if isinstance(text, str) and not text_filter.passes(cut_at_word(text, text_filter.max_length)):
                return True
        for child in tree.children.get(name, []):
            records = record.get(child)
            records = records.values() if isinstance(records, dict) else records or []
            if any(refused(child, r) for r in records):
                return True
        return False

    return lambda output: refused(tree.root, output)


def _text_columns(stats: DatasetStats) -> dict:
    """Which free-text columns this model writes (as free strings of its rows), for the model's metadata."""
    texts = text_columns(stats)
    return {"text_columns": {"model": "llm (free strings of the rows' JSON)", "columns": texts}} if texts else {}


def _prompts(task: Task, samples: list[dict], full_schema: dict, out_schemas: dict, rng) -> tuple[list[str], list[str]]:
    """Each sample's prompt (its context, if the task gives one) and output, as text."""
    prompts, outputs = [], []
    for sample in samples:
        context = task.context(sample, rng)
        prompts.append(task.prompt(context, full_schema, out_schemas[context is not None]))
        outputs.append(dumps(task.output(sample, context)))
    return prompts, outputs


def stats_samples(stats: DatasetStats, tree: Tree, rng) -> list[dict]:
    """Samples of tables drawn from the protected stats alone (stats_samples.py)."""
    return to_samples(stats_frames(stats, rng), tree)[0]


def _checkpoint_source(request: TrainRequest) -> Path | None:
    options = request.options
    if options.model_state == "reset":
        return None
    for folder in ([request.resume_dir] if options.model_state == "resume" else []) + [request.previous_model]:
        if folder is not None and (Path(folder) / "config.json").is_file():
            return Path(folder)
    return None


def _merged_copy(model):
    """A LoRA model's adapters merged into a copy, leaving the training model as it is."""
    if not hasattr(model, "merge_and_unload"):
        return model
    import copy

    return copy.deepcopy(model).merge_and_unload()


def _read_samples(path: Path) -> tuple[list, list[dict]]:
    if not path.is_file():
        return [], []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r["key"] for r in rows], [r["sample"] for r in rows]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _aggregate(draws: list[dict], name: str, tree: Tree) -> dict:
    """One prediction from several draws of the same sample: the mean of numbers, the most frequent otherwise."""
    out = dict(draws[0])
    table = tree.table(name)
    for key in draws[0]:
        if key in tree.children[name]:
            out[key] = [_aggregate(list(items), key, tree) for items in zip(*(d[key] for d in draws))]
            continue
        values = [d[key] for d in draws]
        column = table.columns[key]
        present = [v for v in values if v is not None]
        if column.kind == "numeric" and not column.discrete and present:
            mean = float(np.mean(present))
            out[key] = int(round(mean)) if column.is_integer else mean
        else:
            out[key] = Counter(map(dumps, values)).most_common(1)[0][0]
            out[key] = json.loads(out[key])
    return out
