"""Decoding with transformers: under a JSON schema, `generate` with an xgrammar logits processor; free text (no
schema), a sampling loop that drops each row from the batch as soon as it ends."""

from __future__ import annotations

from functools import lru_cache

from synth_llm.engines.base import Decoded, DecodeRequest, Engine


class TransformersEngine(Engine):
    name = "transformers"

    def __init__(self, model_dir, device: str = "auto"):
        super().__init__(model_dir, device)
        import torch
        import xgrammar as xgr
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from synth_llm.model import quiet

        quiet()

        self.torch_device = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True)
        self.model.to(self.torch_device).eval()
        vocab = self.model.get_output_embeddings().weight.shape[0]
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab,
                                                  stop_token_ids=[self.tokenizer.eos_token_id])
        self.compiler = xgr.GrammarCompiler(info)
        self._compiled = lru_cache(maxsize=8)(self._compile)

    def _compile(self, schema_text: str):
        # no free whitespace: an untrained model would fill its token budget with it
        return self.compiler.compile_json_schema(schema_text, any_whitespace=False, separators=(",", ":"))

    def decode(self, request: DecodeRequest) -> Decoded:
        import json

        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        processors = [] if request.schema is None else [
            LogitsProcessor(self._compiled(json.dumps(request.schema, sort_keys=False)))]
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in request.prompts)
        # left padding: every prompt ends where generation starts
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in request.prompts], device=self.torch_device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in request.prompts], device=self.torch_device)
        limit = getattr(self.model.config, "n_positions", None) or getattr(self.model.config, "max_position_embeddings", None)
        new_tokens = min(request.max_new_tokens, limit - width) if limit else request.max_new_tokens
        if request.schema is None:
            written = self._free(request, ids, mask, max(new_tokens, 1))
            texts = self.tokenizer.batch_decode(written, skip_special_tokens=True)
            return Decoded(texts=texts, tokens=sum(len(w) for w in written) + len(written))
        torch.manual_seed(request.seed)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max(new_tokens, 1), do_sample=True,
                temperature=request.temperature, top_p=request.top_p, top_k=0,
                logits_processor=processors,
                suppress_tokens=list(request.suppressed_token_ids) or None,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=pad)
        generated = out[:, width:]
        lengths = [int(((row != pad) & (row != self.tokenizer.eos_token_id)).sum()) for row in generated]
        texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
        return Decoded(texts=texts, tokens=sum(lengths) + len(lengths))

    def _free(self, request: DecodeRequest, ids, mask, new_tokens: int) -> list[list[int]]:
        """Sampled tokens of each prompt up to its EOS (left out). A row leaves the batch, its cache with it, when
        it ends: `generate` runs a batch until its longest output ends, and free texts vary (tate's titles: 1 to
        45 tokens), so most of its steps were spent on rows already done."""
        import torch
        from transformers import DynamicCache

        eos = self.tokenizer.eos_token_id
        written: list[list[int]] = [[] for _ in range(len(ids))]
        rows = torch.arange(len(ids), device=self.torch_device)  # the batch's rows, as indices into `written`
        banned = torch.tensor(sorted(set(request.suppressed_token_ids)), dtype=torch.long, device=self.torch_device)
        generator = torch.Generator(device=self.torch_device).manual_seed(request.seed)
        cache = DynamicCache()
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        inputs, attention = ids, mask
        with torch.no_grad():
            for step in range(new_tokens):
                logits = self.model(input_ids=inputs, attention_mask=attention, position_ids=positions,
                                    past_key_values=cache, use_cache=True).logits[:, -1, :].float()
                if len(banned):
                    logits[:, banned] = float("-inf")
                chosen = torch.multinomial(_nucleus(torch.softmax(logits / request.temperature, dim=1), request.top_p),
                                           1, generator=generator).squeeze(1)
                for row, token in zip(rows.tolist(), chosen.tolist()):
                    if token != eos:
                        written[row].append(token)
                going = (chosen != eos).nonzero().squeeze(1)
                if step == new_tokens - 1 or len(going) == 0:
                    break
                if len(going) < len(rows):
                    cache.batch_select_indices(going)
                    rows, attention, positions, chosen = rows[going], attention[going], positions[going], chosen[going]
                attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
                positions = positions[:, -1:] + 1
                inputs = chosen.unsqueeze(1)
        return written

    def close(self) -> None:
        self.model = None


def _nucleus(probs, top_p: float):
    """The probabilities kept to the smallest set of most likely tokens holding `top_p` of them (all at 1)."""
    if top_p >= 1:
        return probs
    import torch

    ordered, order = torch.sort(probs, descending=True, dim=1)
    dropped = ordered.cumsum(dim=1) - ordered > top_p
    ordered[dropped] = 0.0
    return torch.zeros_like(probs).scatter(1, order, ordered)
