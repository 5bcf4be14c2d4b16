"""Registers the LLM backend, and its language model as a text model for any dataset's free-text columns, through
the same hooks a third-party plugin uses."""

from synth_assets.plugin_api import hookimpl


@hookimpl
def synth_register_backends():
    from synth_llm.backend import LLMBackend

    return [LLMBackend]


@hookimpl
def synth_register_text_models():
    from synth_llm.text_model import LanguageTextModel

    return [LanguageTextModel]
