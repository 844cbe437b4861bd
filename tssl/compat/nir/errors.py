"""The error NIR export and import raise for bad input, and the guarded import of the optional ``nir`` package."""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "pip install 'tssl-bench[nir]' (nir==1.0.8, nirtorch==2.6)"


class NIRError(ValueError):
    """A network NIR cannot express, or a NIR graph our engine cannot represent; the message names the node."""


def require_nir() -> ModuleType:
    """The ``nir`` package; without it, an ImportError that says how to install the optional extra."""
    try:
        import nir
    except ImportError:
        raise ImportError(f"NIR export and import need the nir package: {INSTALL_HINT}") from None
    return nir
