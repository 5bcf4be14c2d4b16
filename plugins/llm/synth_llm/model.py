"""The language model: a small GPT-2 with a tokenizer of the data, trained from scratch, or a local Hugging Face
model fine-tuned (fully, or with LoRA adapters through peft). Either way the checkpoint is a Hugging Face folder
(config, safetensors weights, tokenizer) that both engines load as it is.
"""

from __future__ import annotations

from pathlib import Path

from synth_assets.plugin_api import SynthError

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
# layers, width, heads; on diamonds at 2 CPU minutes tiny reached accuracy 0.71, small 0.67, medium 0.66: on the
# CPU the larger ones get too few steps (bench/RESULTS.md)
SIZES = {"tiny": (2, 64, 2), "small": (4, 128, 4), "medium": (6, 256, 8)}
VOCAB_SIZE = 2000
MIN_MERGE_SAMPLES = 5  # as the stats' rare-value threshold
MERGE_SHARE_DIVISOR = 50  # ...and at least one sample in this many
MAX_MERGE_SAMPLES = 50  # ...but no more: on diamonds 15 tokens a row with 690, 9.4 with 50 (fewer is faster)  # byte-level BPE merges learned on the samples; JSON keys and common values become one token


def quiet() -> None:
    """No progress bars or advice from transformers in the run logs."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer of the training texts. Merges may cross punctuation, so `"cut":"Ideal"` can be
    one token: fewer tokens per sample is faster training and generation. A merge needs a pair that many samples
    hold: tokens for pieces of single rows would let the model recite them."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS, PAD], show_progress=False,
                                  min_frequency=max(MIN_MERGE_SAMPLES, min(len(texts) // MERGE_SHARE_DIVISOR,
                                                                           MAX_MERGE_SAMPLES)),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def new_model(tokenizer, size: str, window: int, dropout: float = 0.1, tie: bool = True):
    """A GPT-2 of `size` with `dropout` on embeddings and residuals. Attention weights get none: on the CPU,
    dropout on the window x window scores took 28% of a step and kept attention off the fused kernel; without it
    a step takes about half as long, and diamonds at 2 minutes reached a validation loss of 3.14 nats/token
    against 3.46. Without `tie` the output layer has weights of its own (DP-SGD clips layer by layer, and a
    parameter two layers share cannot be clipped that way)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, heads = SIZES[size]
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=window, n_embd=width, n_layer=layers, n_head=heads,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, resid_pdrop=dropout, embd_pdrop=dropout,
                        attn_pdrop=0.0, tie_word_embeddings=tie)
    return GPT2LMHeadModel(config)


def load_model(folder: Path, *, dataset: str | None = None):
    """(model, tokenizer) from a local Hugging Face folder; the tokenizer gets BOS/EOS/PAD if it lacks them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder).expanduser()
    if not (folder / "config.json").is_file():
        raise SynthError(f"{folder} is no Hugging Face model folder (no config.json)", dataset=dataset,
                         hint="name a local folder written by save_pretrained; nothing is downloaded")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    added = {name: token for name, token in (("bos_token", BOS), ("eos_token", EOS), ("pad_token", PAD))
             if getattr(tokenizer, name) is None}
    if added:
        tokenizer.add_special_tokens(added)
        model.resize_token_embeddings(len(tokenizer))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, name, getattr(tokenizer, name))
    return model, tokenizer


def with_lora(model, rank: int):
    """The model with LoRA adapters on its attention and MLP projections; only they train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules="all-linear",
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def context_window(model) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0) or 2048)


def save(model, tokenizer, folder: Path) -> None:
    """A plain Hugging Face folder: LoRA adapters merged into the weights, so any engine loads it."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
