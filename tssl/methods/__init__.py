"""Training methods behind one protocol: the native engine (``tssl``, ``tssl-surrogate``) and the baselines
(``snntorch``, ``spikingjelly`` in ``tssl_baselines``).

``tssl.methods.base`` says what a method is (:class:`Method`, :class:`ModelConfig`, :class:`Recipe`),
``tssl.methods.native`` holds the native engine's methods and ``tssl.methods.registry`` every method by name:
``get_method(name, **options)``, e.g. ``get_method("snntorch", recipe="native")``; methods from other packages
come in through entry points (``tssl.methods.plugins``, docs/adding-a-method.md). The names below are the
package's public API.
"""

from tssl.methods.base import (
    RECIPES,
    LossFn,
    Method,
    ModelConfig,
    OptimizerFactory,
    Recipe,
    check_recipe,
    matched_recipe,
    training_recipe,
)
from tssl.methods.native import NativeMethod, build_native
from tssl.methods.plugins import MethodPluginError
from tssl.methods.registry import METHODS, NATIVE_METHODS, get_method, method_names, plugin_of

__all__ = [
    "METHODS",
    "NATIVE_METHODS",
    "RECIPES",
    "LossFn",
    "Method",
    "MethodPluginError",
    "ModelConfig",
    "NativeMethod",
    "OptimizerFactory",
    "Recipe",
    "build_native",
    "check_recipe",
    "get_method",
    "matched_recipe",
    "method_names",
    "plugin_of",
    "training_recipe",
]
