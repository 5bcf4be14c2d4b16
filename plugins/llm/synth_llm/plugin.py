"""Registers the LLM backend through the same hook a third-party plugin uses."""

from synth_assets.plugin_api import hookimpl


@hookimpl
def synth_register_backends():
    from synth_llm.backend import LLMBackend

    return [LLMBackend]
