"""tssl: a native TSSL-BP engine and a benchmark harness for deep spiking neural networks.

The functional entry point is :func:`tsslbp_neuron`; networks come from :func:`build_network`. The engine is
imported on first use, so that the analysis side (``tssl report``, ``tssl check``) starts without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "build_network", "neuron_forward", "predict", "psp_filter", "tsslbp_neuron"]

_ENGINE = {"build_network": "tssl.engine.network", "predict": "tssl.engine.network",
           "neuron_forward": "tssl.engine.neuron", "psp_filter": "tssl.engine.neuron",
           "tsslbp_neuron": "tssl.engine.neuron"}


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        value = getattr(importlib.import_module(_ENGINE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tssl' has no attribute {name!r}")
