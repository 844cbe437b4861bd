"""The definitions behind the recorded efficiency numbers: the SynOps counting convention and the energy model.

Torch-free, so that the report can explain the records' ``efficiency`` without loading the engine; the
measurement itself is in :mod:`tssl.measure.metrics` (docs/metrics.md).
"""

from __future__ import annotations

__all__ = ["CONVENTION", "CONVENTIONS", "ENERGY_LABEL", "E_AC_JOULES", "E_MAC_JOULES"]

CONVENTION = "tssl-bench/event-driven-v1"
CONVENTIONS: dict[str, str] = {
    CONVENTION: (
        "Synaptic operations are counted from the events each weighted layer's input carries: a presynaptic "
        "spike (directly or through sum pooling, which maps it to one pooled unit) costs one accumulate (AC) per "
        "nonzero synapse it reaches, with the PSP kernel applied at the synapse, as event-driven hardware would; "
        "real-valued PSP traces between layers are not counted as multiply-accumulates. A static image (constant "
        "current over T steps) costs one MAC per nonzero input value and synapse at every step; event frames "
        "cost one AC per event and synapse. Dense = every input x every synapse x T, as MACs. The same counting "
        "applies to every backend, from the spikes its own neurons emit."
    ),
}
E_MAC_JOULES = 4.6e-12  # 32-bit float multiply-accumulate, 45 nm CMOS (Horowitz, ISSCC 2014)
E_AC_JOULES = 0.9e-12  # 32-bit float add, 45 nm CMOS (Horowitz, ISSCC 2014)
ENERGY_LABEL = (
    "theoretical lower bound, 45 nm CMOS (Horowitz 2014): E_MAC = 4.6 pJ, E_AC = 0.9 pJ; ignores memory traffic"
)
