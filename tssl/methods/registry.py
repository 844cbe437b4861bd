"""The method registry: every method ``tssl run`` and ``tssl bench`` can name, in one place.

A method is registered by name, as the object itself or as ``"module:attribute"`` for one whose libraries are
imported only when it is used (the baselines). Adding a method is one module that implements
:class:`tssl.methods.base.Method` plus one entry in :data:`METHODS`.
"""

from __future__ import annotations

import dataclasses
import importlib

from tssl.methods.base import Method
from tssl.methods.native import NativeMethod

# name -> the method itself, or "module:attribute" for methods whose libraries are imported only when used.
METHODS: dict[str, Method | str] = {
    "tssl": NativeMethod("tssl", "tsslbp"),
    "tssl-surrogate": NativeMethod("tssl-surrogate", "surrogate"),
    "snntorch": "tssl_baselines.snntorch_backend:METHOD",
    "spikingjelly": "tssl_baselines.spikingjelly_backend:METHOD",
}
NATIVE_METHODS: tuple[str, ...] = tuple(name for name, entry in METHODS.items() if isinstance(entry, NativeMethod))


def method_names() -> tuple[str, ...]:
    """Every registered method's name: what a suite file may list under ``methods``."""
    return tuple(METHODS)


def get_method(name: str, **options) -> Method:
    """The method registered as ``name``; ``options`` set its fields, e.g. ``recipe="native"`` or, for
    SpikingJelly, ``implementation="triton"``."""
    if name not in METHODS:
        raise KeyError(f"method {name!r} is unknown; allowed: {', '.join(METHODS)}")
    entry = METHODS[name]
    if isinstance(entry, str):
        module, attribute = entry.split(":")
        entry = getattr(importlib.import_module(module), attribute)
    if options:
        if not dataclasses.is_dataclass(entry):
            raise TypeError(f"method {name!r} takes no options")
        allowed = [f.name for f in dataclasses.fields(entry) if f.name != "name"]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"method {name!r} has no option {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        entry = dataclasses.replace(entry, **options)
    return entry
