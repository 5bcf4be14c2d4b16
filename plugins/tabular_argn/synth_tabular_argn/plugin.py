"""Registers the TabularARGN backend through the same hook a third-party plugin uses."""

from synth_assets.plugin_api import hookimpl


@hookimpl
def synth_register_backends():
    from synth_tabular_argn.backend import TabularARGNBackend

    return [TabularARGNBackend]
