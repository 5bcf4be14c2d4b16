"""The plugin manager: loads every package of the `synth_assets` entry-point group, built-in backends
included, and collects the backends they register."""

from __future__ import annotations

import functools

import pluggy

from synth_assets import hookspecs
from synth_assets.backend import Backend
from synth_assets.errors import ConfigError, SynthError


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    return manager


def reload_plugins() -> pluggy.PluginManager:
    """Forget the loaded plugins and read the entry points again (after installing a plugin)."""
    plugin_manager.cache_clear()
    return plugin_manager()


def registered_backends(manager: pluggy.PluginManager | None = None) -> dict[str, tuple[Backend, str]]:
    """Backend name -> (backend, name of the plugin that registered it)."""
    manager = manager or plugin_manager()
    found: dict[str, tuple[Backend, str]] = {}
    for impl in manager.hook.synth_register_backends.get_hookimpls():
        for item in impl.function() or []:
            backend = item() if isinstance(item, type) else item
            if not isinstance(backend, Backend):
                raise SynthError(f"plugin '{impl.plugin_name}' registered {item!r}, which is not a Backend")
            if backend.name in found:
                raise SynthError(
                    f"backend '{backend.name}' is registered twice, by '{found[backend.name][1]}'"
                    f" and '{impl.plugin_name}'",
                    hint="uninstall one of the two plugins",
                )
            found[backend.name] = (backend, impl.plugin_name)
    return found


def get_backend(name: str, *, dataset: str | None = None) -> Backend:
    available = registered_backends()
    if name not in available:
        raise ConfigError(
            f"unknown backend '{name}'",
            dataset=dataset,
            hint=f"registered backends: {', '.join(sorted(available)) or 'none (is the plugin installed?)'}",
        )
    return available[name][0]
