"""Decoding with transformers' `generate`, each output held to the JSON schema by an xgrammar logits processor."""

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

    def close(self) -> None:
        self.model = None
