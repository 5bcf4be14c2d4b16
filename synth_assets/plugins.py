"""The plugin manager: loads every package of the `synth_assets` entry-point group, built-in backends
included, and collects the backends they register."""

from __future__ import annotations

import functools

import pluggy

from synth_assets import hookspecs
from synth_assets.backend import Backend
from synth_assets.blocks import Block
from synth_assets.errors import ConfigError, SynthError
from synth_assets.text_model import TextModel


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    return manager


def reload_plugins() -> pluggy.PluginManager:
    """Forget the loaded plugins and read the entry points again (after installing a plugin)."""
    plugin_manager.cache_clear()
    _registered.cache_clear()
    _text_models.cache_clear()
    _block_types.cache_clear()
    return plugin_manager()


def registered_backends(manager: pluggy.PluginManager | None = None) -> dict[str, tuple[Backend, str]]:
    """Backend name -> (backend, name of the plugin that registered it). Each backend is made once per loading of
    the plugins, so what a backend caches (an engine, a loaded model) is shared by every dataset that uses it."""
    return _registered(manager or plugin_manager())


@functools.lru_cache(maxsize=8)
def _registered(manager: pluggy.PluginManager) -> dict[str, tuple[Backend, str]]:
    return _collect(manager.hook.synth_register_backends, Backend, "backend")


def _collect(hook, base: type, what: str, *, classes: bool = False) -> dict[str, tuple]:
    """Name -> (instance, name of the plugin that registered it) of everything the plugins return from `hook`:
    classes (made once here) or instances of `base`, each name registered once. With `classes`, the classes
    themselves, named by their `block_type` (a flow makes its blocks per run)."""
    found: dict[str, tuple] = {}
    for impl in hook.get_hookimpls():
        for item in impl.function() or []:
            if classes:
                made = item if isinstance(item, type) and issubclass(item, base) else None
            else:
                made = item() if isinstance(item, type) else item
            if made is None or not (classes or isinstance(made, base)):
                raise SynthError(f"plugin '{impl.plugin_name}' registered {item!r}, which is not a {base.__name__}"
                                 + (" subclass" if classes else ""))
            name = made.block_type if classes else made.name
            if name in found:
                raise SynthError(f"{what} '{name}' is registered twice, by '{found[name][1]}' and "
                                 f"'{impl.plugin_name}'", hint="uninstall one of the two plugins")
            found[name] = (made, impl.plugin_name)
    return found


class InstalledBackends:
    """The installed backends, as the project file's validation sees them (config.BackendCatalogue)."""

    def __init__(self, backends: dict[str, Backend]):
        self.backends = backends

    def choose(self, name: str | None, *, dataset: str | None = None) -> Backend:
        """The backend called `name`; without a name, the only one installed, or the one that claims to be the
        default (Backend.default); otherwise an error listing them."""
        listed = ", ".join(sorted(self.backends)) or "none (is the plugin installed?)"
        if name is None:
            if len(self.backends) == 1:
                return next(iter(self.backends.values()))
            claims = [b for b in self.backends.values() if b.default]
            if len(claims) == 1:
                return claims[0]
            raise ConfigError("no backend given, and " + ("none is installed" if not self.backends else
                              f"{len(claims) or 'none'} of the installed ones claim to be the default"),
                              dataset=dataset, hint=f"set backend: to one of {listed}")
        if name not in self.backends:
            raise ConfigError(f"unknown backend '{name}'", dataset=dataset, hint=f"registered backends: {listed}")
        return self.backends[name]

    def names(self, *, with_train_option: str | None = None) -> list[str]:
        """The backends' names; with `with_train_option`, those whose training takes that section."""
        return sorted(name for name, backend in self.backends.items()
                      if with_train_option is None or with_train_option in backend.TrainOptions.model_fields)


def installed_backends() -> InstalledBackends:
    return InstalledBackends({name: backend for name, (backend, _) in registered_backends().items()})


def get_backend(name: str | None, *, dataset: str | None = None) -> Backend:
    """The backend called `name` (None: the installed default), or a ConfigError listing the installed ones."""
    return installed_backends().choose(name, dataset=dataset)


@functools.lru_cache(maxsize=8)
def _text_models(manager: pluggy.PluginManager) -> dict[str, TextModel]:
    return {name: model for name, (model, _) in
            _collect(manager.hook.synth_register_text_models, TextModel, "text model").items()}


def get_text_model(name: str | None, *, dataset: str | None = None, table: str | None = None,
                   column: str | None = None) -> TextModel:
    """The text model called `name`; without a name, the first installed (by name). An error where none is."""
    models = _text_models(plugin_manager())
    if not models:
        raise ConfigError("this column is free text, but no installed plugin writes text", dataset=dataset,
                          table=table, column=column, hint="install synth-assets-llm (plugins/llm), or set the column's "
                                              "encoding: categorical")
    if name is None:
        return models[sorted(models)[0]]
    if name not in models:
        raise ConfigError(f"unknown text model '{name}'", dataset=dataset, table=table, column=column,
                          hint=f"train.text.model takes one of {', '.join(sorted(models))}")
    return models[name]


@functools.lru_cache(maxsize=8)
def _block_types(manager: pluggy.PluginManager) -> dict[str, type[Block]]:
    found = _collect(manager.hook.synth_register_blocks, Block, "block type", classes=True)
    return {name: block for name, (block, _) in found.items()}


def block_types() -> dict[str, type[Block]]:
    """Block type name -> its class, from every installed plugin (the built-in blocks included). A block is made
    per flow run (it holds that run's state), so the registry keeps classes, not instances."""
    return _block_types(plugin_manager())
