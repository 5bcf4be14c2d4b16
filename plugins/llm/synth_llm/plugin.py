"""Registers the LLM backend, its language model as a text model for any dataset's free-text columns, and the `llm`
flow block, through the same hooks a third-party plugin uses."""

from synth_assets.plugin_api import hookimpl


@hookimpl
def synth_register_backends():
    from synth_llm.backend import LLMBackend

    return [LLMBackend]


@hookimpl
def synth_register_text_models():
    from synth_llm.text_model import LanguageTextModel

    return [LanguageTextModel]


@hookimpl
def synth_register_blocks():
    from synth_llm.flow_block import LLMBlock

    return [LLMBlock]
