"""vLLM engine: batched decoding under vLLM's own structured outputs (xgrammar backend).

vLLM runs in this process (no engine-core or worker subprocesses): on CPU those are spawned, which
needs a `__main__` guard, and they can outlive a pytest test or a Dagster run worker that dies.
Starting vLLM in-process touches process-wide state, which `_contained` puts back afterwards.
"""

from __future__ import annotations

import gc
import json
import os
import random
from contextlib import contextmanager
from pathlib import Path

from .base import DecodeRequest, Decoded, Engine

MAX_SEQS = 256  # sequences decoded at once on CPU; sizes the KV cache there


@contextmanager
def _contained():
    """Run vLLM's startup with multiprocessing off, then undo what it leaves behind in the process:
    os.environ (on CPU it sets LD_PRELOAD, OMP and inductor variables that children would inherit),
    the global RNG seeds it resets, torch's thread count, and the stub its CPU worker puts in place
    of torch.set_num_threads."""
    import numpy as np
    import torch

    env, set_threads, threads = dict(os.environ), torch.set_num_threads, torch.get_num_threads()
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        # vLLM freezes its env reads once started; let later code see the restored environment.
        import vllm.envs

        vllm.envs.disable_envs_cache()


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model_dir: Path, device: str = "auto", gpu_memory_utilization: float | None = None,
                 max_num_seqs: int = MAX_SEQS):
        super().__init__(model_dir, device)
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        cfg = json.loads((self.model_dir / "config.json").read_text())
        max_len = cfg.get("n_positions") or cfg.get("max_position_embeddings")
        kwargs = {}
        if device == "cpu":
            # gpu_memory_utilization is the share of RAM vLLM may take on CPU. Without an explicit KV
            # size it fills that share (seconds of zeroing) after a warm-up pass; size it for
            # MAX_SEQS full-length sequences instead (fp32 K and V per layer), which also skips the
            # warm-up. fp32: the model is tiny and CPU half precision is slow or missing.
            import psutil

            per_token = 2 * cfg.get("n_layer", cfg.get("num_hidden_layers")) * cfg.get(
                "n_embd", cfg.get("hidden_size")) * 4
            share = gpu_memory_utilization or 0.2
            kv_bytes = min(max_num_seqs * max_len * per_token, int(share * psutil.virtual_memory().available))
            kwargs = dict(gpu_memory_utilization=share, kv_cache_memory_bytes=kv_bytes,
                          max_num_seqs=max_num_seqs, dtype="float32")
        else:
            kwargs = dict(max_num_seqs=max_num_seqs)
            if gpu_memory_utilization is not None:
                kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        with _contained():
            import vllm

            self.llm = vllm.LLM(
                str(self.model_dir),
                max_model_len=max_len,
                enforce_eager=True,  # no torch.compile / CUDA-graph capture: startup in seconds
                # Compact JSON only: with free whitespace an untrained model spends its budget on it.
                structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
                **kwargs,
            )
        self.eos_id = self.llm.get_tokenizer().eos_token_id

    def decode(self, request: DecodeRequest) -> Decoded:
        if not request.prompts:
            return Decoded(texts=[], tokens=0)
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import StructuredOutputsParams

        # One seed per prompt, drawn from request.seed: identical prompts must not give identical
        # rows, and seeds of neighbouring requests (seed, seed+1) must not overlap.
        rng = random.Random(request.seed)
        params = [
            SamplingParams(
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=request.max_new_tokens,
                seed=rng.getrandbits(63),
                stop_token_ids=[self.eos_id],
                skip_special_tokens=True,
                structured_outputs=StructuredOutputsParams(json=request.schema) if request.schema is not None else None,
                logit_bias={token: -100.0 for token in request.suppressed_token_ids} or None,
            )
            for _ in request.prompts
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in request.prompts]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        texts = [o.outputs[0].text for o in outputs]
        return Decoded(texts=texts, tokens=sum(len(o.outputs[0].token_ids) for o in outputs))

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            # Tears down the in-process engine core: model, KV cache, torch.distributed group.
            llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()
