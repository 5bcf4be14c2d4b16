"""The LLM plugin's text model: writes the free-text columns of any dataset whose backend writes no text (the
core's seam: synth_assets.text_model).

A small GPT-2 trained from scratch with the backend's own training loop (training.fit: AdamW under the time
budget, early stopping, the best weights kept). Each example is the core's prompt (the row's other values and the
column's name), then the text (or a token of its own for an empty cell), then EOS. Generation takes vLLM on CUDA
where it is installed, else transformers, with no grammar: the tokens themselves keep a text to kept words
(below), and a text ends at EOS.

Its tokenizer has a token per word, not per piece of a word: the words the stats kept (held by enough units,
in every casing seen), the prompts' frequent words, and single non-word characters (space, punctuation). A word
too few units hold is the unknown token in training, and the engines never write the unknown token (nor any
word token the column's stats did not keep), so the model cannot spell a rare name or number: what it writes is
made of kept words by construction, and it learns faster than from bytes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np

from synth_assets.plugin_api import (TextGenerateRequest, TextModel, TextTrainRequest, TextTrainResult, TrainRequest,
                                     read_json, resolve_device, write_json)
from synth_llm import model as lm
from synth_llm.assemblers import Segment, assemble
from synth_llm.options import LLMTrainOptions
from synth_llm.training import fit

SETTINGS_FILE = "text_model_settings.json"
PIECE = r"\w+|[^\w]"  # a word, or one other character
# special tokens with a line break, which no text piece holds (the engines suppress them but EOS when writing)
BOS, EOS, PAD, UNK = "<|bos|>\n", "<|eos|>\n", "<|pad|>\n", "<|unk|>\n"
EMPTY = "<|empty|>\n"  # the text of an empty cell
MIN_PIECE_EXAMPLES = 5  # a prompt's word or a character is a token where this many examples hold it
JSON_PIECES = ('"', "{", "}", ":", ",", "\n")  # what a prompt needs, always tokens
MAX_WINDOW = 512  # tokens of one training example
# an example holds the longest text with its prompt, or MIN_WINDOW tokens: short rows pack several to an
# example. Longer windows learned slower (20 s of the tests' artworks: validation loss 0.64–0.88 at four longest
# rows an example, 0.49–0.53 at one, learning rates 2e-3 to 1e-2)
PACKED = 1
MIN_WINDOW = 128
LEARNING_RATE = 3e-3
TEXT_TOKENS_CUT = 0.01  # the share of a column's longest texts written shorter than they were (_column_tokens)
GENERATE_BATCH = 256  # prompts decoded together (tate, 2,048 rows x 3 text columns: 14.5 s at 128 or 256, 17.9 s at 512)
PROMPT_SHARE = 0.75  # of the window at most for a prompt: the rest is the text's


class LanguageTextModel(TextModel):
    name = "language_model"
    description = "a small GPT-2 trained from scratch on the dataset's texts, given each row's other values"

    def train(self, request: TextTrainRequest, out_dir: Path) -> TextTrainResult:
        lm.quiet()
        started = time.perf_counter()
        outputs = {part: [EMPTY if e.text is None else e.text for e in examples]
                   for part, examples in (("train", request.train), ("validation", request.validation))}
        tokenizer = word_tokenizer([e.prompt for e in request.train], outputs["train"], request.words)
        encoded = {}
        for part, examples in (("train", request.train), ("validation", request.validation)):
            prompts = tokenizer([e.prompt for e in examples], add_special_tokens=False)["input_ids"] if examples else []
            texts = tokenizer(outputs[part], add_special_tokens=False)["input_ids"] if examples else []
            encoded[part] = (prompts, texts)
        longest_text = max((len(t) for t in encoded["train"][1]), default=1) + 1
        room = max((len(p) for p in encoded["train"][0]), default=1)  # prompt tokens, cut from the left beyond
        if room + longest_text + 2 <= MAX_WINDOW:  # several examples packed into each
            window = min(MAX_WINDOW, max(PACKED * (room + longest_text + 2), MIN_WINDOW))
        else:
            window = MAX_WINDOW
            room = max(window - longest_text - 2, int(window * (1 - PROMPT_SHARE)))
        rng = np.random.default_rng(request.seed)
        examples = {}
        for part, (prompts, texts) in encoded.items():
            segments = [Segment(p[-room:], t[: window - 2 - min(len(p), room)]) for p, t in zip(prompts, texts)]
            examples[part] = assemble(segments, "tabular", window, bos=tokenizer.bos_token_id,
                                      eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id, rng=rng)
        if len(examples["validation"]) == 0:
            examples["validation"] = examples["train"]
        model = lm.new_model(tokenizer, request.model_size, window)
        device = resolve_device(request.device)
        options = LLMTrainOptions(max_training_time=max(request.seconds, 1.0) / 60, max_epochs=request.max_epochs,
                                  learning_rate=LEARNING_RATE,
                                  seed=request.seed, model_size=request.model_size, context_window=max(window, 32))
        outcome = fit(model, examples["train"], examples["validation"],
                      TrainRequest(options=options, device=device, progress=request.progress), lambda m, folder: None,
                      device, spent=time.perf_counter() - started)
        lm.save(model, tokenizer, out_dir)
        write_json({"window": window, "prompt_tokens": room, "max_new_tokens": longest_text + 1,
                    "column_tokens": _column_tokens(request.train, encoded["train"][1]),
                    "model_size": request.model_size}, Path(out_dir) / SETTINGS_FILE)
        return TextTrainResult(epochs=outcome.epochs, seconds=time.perf_counter() - started,
                               stopped_because=outcome.stopped_because or "max epochs",
                               parameters=sum(p.numel() for p in model.parameters()),
                               validation_loss=outcome.best_loss,
                               settings={"model": f"gpt2 {request.model_size} (from scratch)", "window": window,
                                         "vocabulary": len(tokenizer), **outcome.settings})

    def generate(self, model_dir: Path, request: TextGenerateRequest) -> list[str | None]:
        from transformers import AutoTokenizer

        from synth_llm.engines import DecodeRequest, make_engine

        if not request.prompts:
            return []
        lm.quiet()
        settings = read_json(Path(model_dir) / SETTINGS_FILE)
        device = resolve_device(request.device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        prompts = tokenizer(request.prompts, add_special_tokens=False)["input_ids"]
        prompts = [[tokenizer.bos_token_id, *p[-settings["prompt_tokens"]:]] for p in prompts]
        # no grammar: every token is a kept word or one character, so a grammar would add only a length, and on
        # long texts it cost more than the model (the tests' 2,000-character essays: 23 ms a row and step). The
        # special tokens (but EOS), and the empty cell's where the column has none, are never written
        never = [tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id]
        if not request.nullable:
            never.append(tokenizer.convert_tokens_to_ids(EMPTY))
        suppressed = tuple(sorted({*_other_words(tokenizer, request.words), *never}))
        column = request.prompts[0].rsplit("\n", 1)[-1]  # the core asks for one column at a time
        tokens_for = min(settings.get("column_tokens", {}).get(column, settings["max_new_tokens"]),
                         settings["max_new_tokens"])
        texts: list[str | None] = []
        tokens, started = 0, time.perf_counter()
        with make_engine(_engine_for(device), Path(model_dir), device, request.engine) as engine:
            for start in range(0, len(prompts), GENERATE_BATCH):
                decoded = engine.decode(DecodeRequest(
                    prompts=prompts[start:start + GENERATE_BATCH], schema=None, temperature=request.temperature,
                    max_new_tokens=tokens_for, seed=request.seed + start,
                    suppressed_token_ids=suppressed))
                texts += [_parse(text, request.max_length) for text in decoded.texts]
                tokens += decoded.tokens
        seconds = time.perf_counter() - started
        request.report.update({"text_tokens_per_second": tokens / max(seconds, 1e-9)})
        return texts


def word_tokenizer(prompts: list[str], outputs: list[str], words: frozenset[str]):
    """A tokenizer with one token per kept word (see the module's docstring), saved and loaded as any Hugging
    Face tokenizer (tokenizer.json), so both engines take it as it is."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    piece = re.compile(PIECE)
    in_prompts: Counter = Counter()
    for prompt in prompts:
        in_prompts.update(set(piece.findall(prompt)))
    in_outputs: Counter = Counter()
    for output in outputs:
        in_outputs.update(set(piece.findall(output)))
    held = in_prompts + in_outputs
    kept = {p for p, n in in_prompts.items() if n >= MIN_PIECE_EXAMPLES}
    kept |= {p for p in in_outputs if re.fullmatch(r"\w+", p) and p.lower() in words}
    kept |= {p for p, n in held.items() if not re.fullmatch(r"\w+", p) and n >= MIN_PIECE_EXAMPLES}
    kept |= set(JSON_PIECES)
    vocab = {token: i for i, token in enumerate([BOS, EOS, PAD, UNK, EMPTY, *sorted(kept)])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([BOS, EOS, PAD, UNK, EMPTY])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK)


def _column_tokens(examples, outputs: list[list[int]]) -> dict[str, int]:
    """Per column (its prompt's last line), the tokens a text may take when written: as many as all but the
    longest TEXT_TOKENS_CUT of its training texts take. A batch is written until its longest text ends, and the
    longest of tate's titles took 134 tokens where 99% took at most 45: the rare long one is cut short instead."""
    by_column: dict[str, list[int]] = {}
    for example, output in zip(examples, outputs):
        by_column.setdefault(example.prompt.rsplit("\n", 1)[-1], []).append(len(output) + 1)
    return {column: int(np.ceil(np.quantile(lengths, 1 - TEXT_TOKENS_CUT))) + 1 for column, lengths in by_column.items()}


def _other_words(tokenizer, words: frozenset[str]) -> tuple[int, ...]:
    """The word tokens this column may not hold (prompts' words, other columns' words): none if `words` is empty."""
    if not words:
        return ()
    return tuple(sorted(i for token, i in tokenizer.get_vocab().items()
                        if re.fullmatch(r"\w+", token) and token.lower() not in words))


def _engine_for(device: str) -> str:
    """vLLM on CUDA where it is installed; transformers otherwise (on the CPU it is the faster for a small model)."""
    if device != "cuda":
        return "transformers"
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "transformers"
    return "vllm"


def _parse(text: str, max_length: int) -> str | None:
    """A written text (the empty cell's token is skipped when decoding, so it reads as no text), cut to
    `max_length` characters; an empty text is None."""
    return text.strip()[:max_length].strip() or None
