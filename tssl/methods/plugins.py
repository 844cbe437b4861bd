"""Methods from outside packages: entry points in the group ``tssl.methods``.

An installed distribution declares ``NAME = module:factory`` in the entry-point group ``tssl.methods``
(pyproject.toml: ``[project.entry-points."tssl.methods"]``); ``factory()`` returns an object that implements the
method protocol (:class:`tssl.methods.Method`: ``name``, ``build``, ``reset``, ``provenance``; optionally
``training_recipe``). Such a method is a method like the built-in ones: ``tssl run SUITE methods=[NAME]``, its
records, report rows and provenance (the plugin's distribution name and version). docs/adding-a-method.md walks
through a complete plugin.

Discovery reads package metadata only (``importlib.metadata``): it is torch-free, so suite files naming a plugin
validate where torch is missing. A plugin's module is imported when the method is first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

GROUP = "tssl.methods"
PROTOCOL = ("name", "build", "reset", "provenance")


class MethodPluginError(ValueError):
    """A plugin that cannot be used: a name clash, a factory that raises, or an incomplete method."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group: where the method comes from."""

    name: str
    value: str  # "module:factory"
    distribution: str
    version: str

    def describe(self) -> str:
        return f"method {self.name!r} from {self.distribution} {self.version} ({self.value})"

    def provenance(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version, "entry_point": self.value}


def discover(builtin: tuple[str, ...]) -> dict[str, Plugin]:
    """Every installed plugin by name. A name that is also a built-in method, or that two distributions
    declare, is a :class:`MethodPluginError` naming both."""
    plugins: dict[str, Plugin] = {}
    for entry in metadata.entry_points(group=GROUP):
        distribution = entry.dist.name if entry.dist is not None else "an unknown distribution"
        version = entry.dist.version if entry.dist is not None else "?"
        plugin = Plugin(entry.name, entry.value, distribution, version)
        if entry.name in builtin:
            raise MethodPluginError(f"{plugin.describe()} clashes with the built-in method {entry.name!r}; "
                                    f"rename the entry point in the group {GROUP!r} of {distribution}")
        if entry.name in plugins and plugins[entry.name].distribution != distribution:
            raise MethodPluginError(f"{plugin.describe()} clashes with {plugins[entry.name].describe()}; "
                                    "uninstall one or rename its entry point")
        plugins[entry.name] = plugin
    return plugins


def load(plugin: Plugin) -> Any:
    """Import the plugin's factory, call it and check that what it returns is a method."""
    matches = [e for e in metadata.entry_points(group=GROUP) if e.name == plugin.name and e.value == plugin.value]
    try:
        factory = matches[0].load()
        method = factory()
    except Exception as error:  # the plugin's own code: any failure is reported as the plugin's
        raise MethodPluginError(f"{plugin.describe()}: its factory raised {type(error).__name__}: {error}") from None
    missing = [member for member in PROTOCOL if not hasattr(method, member)]
    if missing:
        raise MethodPluginError(f"{plugin.describe()}: the factory returned a {type(method).__name__} without "
                                f"{', '.join(missing)} (a method needs {', '.join(PROTOCOL)})")
    if method.name != plugin.name:
        raise MethodPluginError(f"{plugin.describe()}: the factory returned a method named {method.name!r}; the "
                                "entry point's name and the method's name must agree")
    return method
