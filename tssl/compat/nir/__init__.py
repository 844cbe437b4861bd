"""NIR (the Neuromorphic Intermediate Representation) export and import for our engine (docs/nir.md).

- :func:`export_nir`: a trained network as a NIR graph (and a ``.nir`` file).
- :func:`load_nir` (also ``load``): a NIR graph as a network of our engine, to train with TSSL-BP or evaluate.
- :func:`save_final_weights`, :func:`load_final_network`, :func:`export_run`: a finished run's ``final.pt``.
- :func:`output_scores`: our readout of a NIR reader's output spikes (what ``tssl.predict`` ranks).

Bad input raises :class:`NIRError` (a ValueError) naming the layer or node; without the optional ``nir``
package (``pip install 'tssl-bench[nir]'``), export and import raise ImportError saying so. Saving final
weights needs no nir.
"""

from __future__ import annotations

from tssl.compat.nir.errors import NIRError
from tssl.compat.nir.export import POOLINGS, Pooling, export_nir
from tssl.compat.nir.final_weights import (
    FINAL_WEIGHTS,
    SOURCE_GRAPH,
    export_run,
    load_final_network,
    save_final_weights,
)
from tssl.compat.nir.load import load_nir
from tssl.compat.nir.mapping import DEFAULT_DT, output_scores

load = load_nir  # the name issue 16 gives it: tssl.compat.nir.load(path)

__all__ = [
    "DEFAULT_DT",
    "FINAL_WEIGHTS",
    "POOLINGS",
    "SOURCE_GRAPH",
    "NIRError",
    "Pooling",
    "export_nir",
    "export_run",
    "load",
    "load_final_network",
    "load_nir",
    "output_scores",
    "save_final_weights",
]
