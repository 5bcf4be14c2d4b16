"""The vLLM engine decodes token prompts into JSON matching the schema, reproducibly, in-process."""

import json
import random

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.distributed.reduce_op` is deprecated:FutureWarning")  # vLLM's

import jsonschema  # noqa: E402  (a dependency of vllm)

from synth_llm.engines.base import DecodeRequest  # noqa: E402
from synth_llm.engines.vllm_engine import VLLMEngine  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {"a": {"enum": ["x", "y"]}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["a", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained GPT-2 with a byte-level BPE tokenizer learnt on small JSON records."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    rng = random.Random(0)
    texts = [json.dumps({"a": rng.choice("xy"), "n": rng.randint(0, 9)}, separators=(",", ":")) for _ in range(300)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>")
    config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=64, n_layer=2, n_head=2,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("model")
    tok.save_pretrained(path)
    GPT2LMHeadModel(config).save_pretrained(path, safe_serialization=True)
    return path, tok.bos_token_id


def test_decodes_valid_reproducible_json(model_dir):
    path, bos = model_dir
    request = DecodeRequest(prompts=[[bos]] * 16, schema=SCHEMA, max_new_tokens=64, seed=3)
    with VLLMEngine(path, device="cpu") as engine:
        first = engine.decode(request)
        again = engine.decode(request)
        other = engine.decode(DecodeRequest(prompts=[[bos]] * 16, schema=SCHEMA, max_new_tokens=64, seed=4))
    # Random weights, yet the grammar (no free whitespace) makes every output a complete record.
    assert len(first.texts) == 16
    for text in first.texts + other.texts:
        jsonschema.validate(json.loads(text), SCHEMA)
    assert first.tokens > 16
    assert again.texts == first.texts  # same seed, same rows
    assert other.texts != first.texts
    assert len(set(first.texts)) > 1  # each prompt samples on its own, even when prompts are equal

    # The engine freed itself: another one starts in the same process and gives the same rows.
    with VLLMEngine(path, device="cpu") as engine:
        assert engine.decode(request).texts == first.texts
