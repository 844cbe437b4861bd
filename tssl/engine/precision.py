"""Numerical precision of a run's dense kernels: ``fp32``, ``tf32`` or ``bf16``.

- ``fp32``: IEEE float32 everywhere. On CUDA this turns TF32 off for cuBLAS matmuls and cuDNN convolutions
  for the run (PyTorch's own default lets cuDNN convolutions use TF32).
- ``tf32``: float32 tensors, with CUDA matmuls and convolutions on TF32 tensor cores (Ampere and later; older
  GPUs compute in float32 anyway). CPUs have no TF32 mode, so ``tf32`` on a CPU device is refused.
- ``bf16``: ``torch.autocast(dtype=torch.bfloat16)`` on the run's device (CPU or CUDA) around the forward and
  the loss: convolutions and linear layers compute in bfloat16, everything autocast keeps in float32 stays so.
  Weights, gradients and optimiser state stay float32.

In every mode the spiking neuron's state (membrane, spikes, trace) is float32: the neuron casts a bfloat16
input current to float32 under autocast (``tssl.engine.neuron.tsslbp_neuron``, and ``BaselineNeuron`` for the
baselines), so only the synaptic matmuls change precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"
NEURON_STATE_DTYPE = torch.float32


class PrecisionError(ValueError):
    """A precision that is unknown or cannot run on the chosen device."""


def check_precision(precision: str, device: torch.device | str | None = None) -> str:
    """``precision`` if it is known and can run on ``device`` (when given); else :class:`PrecisionError`."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision {precision!r} is unknown; allowed: {', '.join(PRECISIONS)}")
    if device is not None and precision == "tf32" and torch.device(device).type != "cuda":
        raise PrecisionError(
            f"precision 'tf32' needs a CUDA device (TF32 is a GPU tensor-core mode; a CPU has none); "
            f"on {torch.device(device)} use fp32 or bf16"
        )
    return precision


def describe(precision: str, device: torch.device | str) -> str:
    """What ``precision`` means on ``device``, for records and tables."""
    kind = torch.device(device).type
    if precision == "bf16":
        return f"torch.autocast({kind!r}, bfloat16) on conv/linear; neuron state float32"
    if precision == "tf32":
        return "float32 tensors, TF32 cuBLAS matmuls and cuDNN convolutions; neuron state float32"
    return "IEEE float32" + (" (TF32 off for cuBLAS and cuDNN)" if kind == "cuda" else "")


def _tf32_flags() -> tuple[object, ...]:
    """The current float32 matmul / convolution mode, in whichever of torch's two APIs this process uses."""
    try:  # the legacy flags, which torch keeps consistent with its per-backend fp32_precision settings
        return ("legacy", torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    except RuntimeError:  # something set the new per-backend API directly: torch refuses to mix the two
        return ("new", torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)


def _set_tf32_flags(flags: tuple[object, ...]) -> None:
    api, matmul, conv = flags
    if api == "legacy":
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, conv
    else:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = matmul, conv


@contextlib.contextmanager
def math_mode(precision: str, device: torch.device | str) -> Iterator[None]:
    """The float32 matmul / convolution mode of ``precision`` on CUDA, for everything inside (forward,
    backward and optimiser step); restored on exit. A no-op on CPU."""
    check_precision(precision, device)
    if torch.device(device).type != "cuda":
        yield
        return
    saved = _tf32_flags()
    tf32 = precision == "tf32"
    if saved[0] == "legacy":
        _set_tf32_flags(("legacy", tf32, tf32))
    else:
        mode = "tf32" if tf32 else "ieee"
        _set_tf32_flags(("new", mode, mode))
    try:
        yield
    finally:
        _set_tf32_flags(saved)


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Autocast for the forward pass and loss under ``precision`` (bfloat16 for ``bf16``; nothing otherwise)."""
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def neuron_input(current: torch.Tensor) -> torch.Tensor:
    """A neuron's input current as float32 when autocast made it lower precision, so that the neuron state
    is always float32; unchanged otherwise (float32, or float64 in the exactness tests)."""
    if current.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(current.device.type):
        return current.to(NEURON_STATE_DTYPE)
    return current
