"""The method registry: every method ``tssl run`` and ``tssl bench`` can name, in one place.

A built-in method is registered by name, as the object itself or as ``"module:attribute"`` for one whose
libraries are imported only when it is used (the baselines). A method from another package is an entry point in
the group ``tssl.methods`` (:mod:`tssl.methods.plugins`, docs/adding-a-method.md): no edit here.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

from tssl.methods.base import Method
from tssl.methods.native import NativeMethod
from tssl.methods.plugins import Plugin, discover, load

# name -> the method itself, or "module:attribute" for methods whose libraries are imported only when used.
METHODS: dict[str, Method | str] = {
    "tssl": NativeMethod("tssl", "tsslbp"),
    "tssl-surrogate": NativeMethod("tssl-surrogate", "surrogate"),
    "snntorch": "tssl_baselines.snntorch_backend:METHOD",
    "spikingjelly": "tssl_baselines.spikingjelly_backend:METHOD",
}
NATIVE_METHODS: tuple[str, ...] = tuple(name for name, entry in METHODS.items() if isinstance(entry, NativeMethod))


@functools.cache
def installed_plugins() -> dict[str, Plugin]:
    """The methods that installed packages declare (entry points in ``tssl.methods``), found once per process."""
    return discover(tuple(METHODS))


def forget_plugins() -> None:
    """Look for installed plugins afresh at the next call (after a package was installed in this process)."""
    installed_plugins.cache_clear()
    _plugin_method.cache_clear()


def method_names() -> tuple[str, ...]:
    """Every method's name, built-in and from installed packages: what a suite file may list under ``methods``."""
    return (*METHODS, *sorted(installed_plugins()))


def plugin_of(name: str) -> Plugin | None:
    """Where the method ``name`` comes from when an installed package declares it (None for a built-in one)."""
    return None if name in METHODS else installed_plugins().get(name)


@functools.cache
def _plugin_method(name: str) -> Method:
    return load(installed_plugins()[name])


def get_method(name: str, **options) -> Method:
    """The method registered as ``name`` (built-in, or declared by an installed package); ``options`` set its
    fields, e.g. ``recipe="native"`` or, for SpikingJelly, ``implementation="triton"``."""
    if name in METHODS:
        entry = METHODS[name]
        if isinstance(entry, str):
            module, attribute = entry.split(":")
            entry = getattr(importlib.import_module(module), attribute)
    elif name in installed_plugins():
        entry = _plugin_method(name)
    else:
        raise KeyError(f"method {name!r} is unknown; allowed: {', '.join(method_names())}")
    if options:
        if not dataclasses.is_dataclass(entry):
            raise TypeError(f"method {name!r} takes no options")
        allowed = [f.name for f in dataclasses.fields(entry) if f.name != "name"]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"method {name!r} has no option {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        entry = dataclasses.replace(entry, **options)
    return entry
