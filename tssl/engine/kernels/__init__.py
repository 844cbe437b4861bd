"""Fused neuron kernels and the choice between them and the PyTorch path.

``tssl.engine.neuron`` asks :func:`neuron_backend` which implementation runs a layer's neuron. The Triton kernels live
in :mod:`tssl.engine.kernels.triton_neuron`, imported only when chosen, so this package imports without Triton.

``TSSL_NEURON_BACKEND`` selects the backend:

- ``auto`` (default): Triton for CUDA tensors when Triton imports and its interpreter is off; PyTorch otherwise.
- ``torch``: always the PyTorch path.
- ``triton``: always Triton; CPU tensors only under ``TRITON_INTERPRET=1`` (Triton's interpreter, for tests).
"""

from __future__ import annotations

import functools
import os

import torch

BACKEND_ENV = "TSSL_NEURON_BACKEND"
BACKENDS: tuple[str, ...] = ("auto", "torch", "triton")


class BackendError(RuntimeError):
    """The requested neuron backend cannot run here."""


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` succeeds (it can fail on import, not just be missing)."""
    try:
        import triton.language  # noqa: F401
    except Exception:  # any import failure (missing, or a broken install) means "not available"
        return False
    return True


def triton_interpreting() -> bool:
    """True when Triton would run kernels in its CPU interpreter (``TRITON_INTERPRET``, read on every call)."""
    from triton import knobs

    return bool(knobs.runtime.interpret)


def require_triton() -> None:
    if not triton_available():
        raise BackendError(
            f"{BACKEND_ENV}=triton, but `import triton` fails on this machine; install triton "
            f"(it ships with PyTorch's CUDA wheels) or set {BACKEND_ENV}=auto or torch"
        )


def require_triton_device(x: torch.Tensor) -> None:
    """Triton compiles for CUDA; CPU tensors run only in its interpreter."""
    if not x.is_cuda and not triton_interpreting():
        raise BackendError(
            f"the Triton neuron kernels need a CUDA tensor (got one on {x.device}); set TRITON_INTERPRET=1 to run "
            f"them in Triton's CPU interpreter, or set {BACKEND_ENV}=auto or torch"
        )


def requested_backend() -> str:
    """The value of ``TSSL_NEURON_BACKEND`` (``auto`` when unset or empty)."""
    value = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    if value not in BACKENDS:
        raise BackendError(
            f"environment variable {BACKEND_ENV}={os.environ[BACKEND_ENV]!r} is not a neuron backend; "
            f"allowed: {', '.join(BACKENDS)}"
        )
    return value


def neuron_backend(x: torch.Tensor) -> str:
    """``"triton"`` or ``"torch"``: which implementation runs the neuron on ``x``."""
    requested = requested_backend()
    if requested == "torch":
        return "torch"
    if requested == "triton":
        require_triton()
        require_triton_device(x)
        return "triton"
    # auto: the interpreter is for tests, far slower than the PyTorch path, so it is never picked implicitly.
    if x.is_cuda and triton_available() and not triton_interpreting():
        return "triton"
    return "torch"
