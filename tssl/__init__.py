"""tssl: a native TSSL-BP engine and a benchmark harness for deep spiking neural networks.

The functional entry point is :func:`tsslbp_neuron`; networks come from :func:`build_network`.
"""

from tssl.network import build_network, predict
from tssl.neuron import neuron_forward, psp_filter, tsslbp_neuron

__version__ = "0.1.0"
__all__ = ["__version__", "build_network", "neuron_forward", "predict", "psp_filter", "tsslbp_neuron"]
