"""Surrogate-gradient baselines beside the native TSSL-BP engine (installed as ``tssl_baselines``).

- ``tssl_baselines.common``: what every baseline shares: the TSSL-BP architecture with only the neuron
  swapped for a framework's LIF, the input encoding, the PSP synapse, weight copies, the error and notice
  types for unavailable implementations.
- ``tssl_baselines.snntorch_backend``: snntorch 1.0 ``Leaky`` (registered as method ``snntorch``).
- ``tssl_baselines.spikingjelly_backend``: SpikingJelly 2.0 ``activation_based.neuron.LIFNode`` in multi-step
  mode (registered as method ``spikingjelly``).

Each backend module exposes ``METHOD`` (see :mod:`tssl.methods`) and ``lif_sequences(current, tau_m,
threshold)``, which runs the framework's own neuron class over input currents ``[T, ...]`` for the
equivalence tests. Importing this package imports neither framework. See ``docs/baselines.md``.
"""
