"""Every hook a synth-assets plugin can implement. Built-in backends use these same hooks.

A plugin is a module with functions marked `@hookimpl`, announced through the `synth_assets`
entry-point group of its package:

    [project.entry-points.synth_assets]
    my_backend = "my_package.plugin"
"""

from __future__ import annotations

import pluggy

PROJECT = "synth_assets"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def synth_register_backends():
    """Return a list of model backends this plugin provides.

    Each item is a subclass of `synth_assets.backend.Backend` (or an instance of one) with a unique
    `name`; datasets choose it with `backend: <name>` in synth.yaml.
    """


@hookspec
def synth_register_text_models():
    """Return a list of text models this plugin provides: subclasses of `synth_assets.text_model.TextModel` (or
    instances), each with a unique `name`. They write the free-text columns of datasets whose backend writes no
    text itself; `train: {text: {model: <name>}}` chooses one where several are installed.
    """


@hookspec
def synth_register_blocks():
    """Return a list of flow block types this plugin provides: subclasses of `synth_assets.blocks.Block`, each
    with a unique `block_type`; a flow's blocks choose one with `block_type: <name>` (synth_assets.flows).
    """
