"""The paper's architecture strings (``15C5-P2-40C5-P2-300``) parsed into layer specifications.

A string lists the hidden layers; the output layer (one spiking linear layer with ``classes`` neurons) is
always appended. Tokens, separated by ``-``:

- ``<n>C<k>``: conv with n output channels and a k x k kernel; ``<n>C<k>p<pad>`` overrides the padding for
  that layer (``12C5p1``); ``s<stride>`` may follow (``64C3s2``).
- ``P<k>``: 1.1 x sum pooling over non-overlapping k x k windows (not a spiking layer).
- ``<n>``: a fully connected spiking layer of n neurons.
- ``D<p>``: dropout with probability p in [0, 1) on the next layer's input, one mask per (sample, neuron)
  shared over time (``D0.2``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACCEPTED_FORMS = (
    "'<n>C<k>' conv (e.g. 96C3), optionally 'p<pad>' and 's<stride>' (12C5p1), "
    "'P<k>' sum pooling (P2), '<n>' linear (400), 'D<p>' dropout (D0.2)"
)

_CONV = re.compile(r"^(\d+)C(\d+)(?:p(\d+))?(?:s(\d+))?$")
_POOL = re.compile(r"^P(\d+)$")
_LINEAR = re.compile(r"^(\d+)$")
_DROPOUT = re.compile(r"^D(0(?:\.\d+)?|\.\d+)$")


class ArchitectureError(ValueError):
    """A malformed architecture string or an impossible layer sequence."""


@dataclass(frozen=True)
class ConvSpec:
    out_channels: int
    kernel_size: int
    padding: int | None = None  # None: the network-wide default
    stride: int = 1


@dataclass(frozen=True)
class PoolSpec:
    kernel_size: int


@dataclass(frozen=True)
class LinearSpec:
    out_features: int


@dataclass(frozen=True)
class DropoutSpec:
    p: float


LayerSpec = ConvSpec | PoolSpec | LinearSpec | DropoutSpec


def _positive(value: str, token: str) -> int:
    number = int(value)
    if number < 1:
        raise ArchitectureError(f"token {token!r}: sizes must be >= 1; accepted forms: {ACCEPTED_FORMS}")
    return number


def parse_token(token: str) -> LayerSpec:
    if match := _CONV.match(token):
        out, kernel, pad, stride = match.groups()
        return ConvSpec(
            _positive(out, token),
            _positive(kernel, token),
            None if pad is None else int(pad),
            1 if stride is None else _positive(stride, token),
        )
    if match := _POOL.match(token):
        return PoolSpec(_positive(match.group(1), token))
    if match := _LINEAR.match(token):
        return LinearSpec(_positive(match.group(1), token))
    if match := _DROPOUT.match(token):
        return DropoutSpec(float(match.group(1)))
    raise ArchitectureError(f"bad token {token!r} in architecture string; accepted forms: {ACCEPTED_FORMS}")


def parse_architecture(architecture: str) -> list[LayerSpec]:
    """Parse the hidden layers of an architecture string (the output layer is not part of it)."""
    if not isinstance(architecture, str) or not architecture.strip():
        raise ArchitectureError(f"empty architecture string; accepted forms: {ACCEPTED_FORMS}")
    specs = [parse_token(token.strip()) for token in architecture.strip().split("-")]
    seen_linear = False
    for token, spec in zip(architecture.split("-"), specs, strict=True):
        if isinstance(spec, LinearSpec):
            seen_linear = True
        elif isinstance(spec, (ConvSpec, PoolSpec)) and seen_linear:
            raise ArchitectureError(
                f"token {token.strip()!r}: conv and pooling layers must come before the first linear layer"
            )
    return specs


def with_dropout(specs: list[LayerSpec], p: float) -> list[LayerSpec]:
    """Insert dropout before every weighted layer but the first, where the authors' CIFAR-10 config has it.

    That is after each hidden spiking layer, or after its pooling layer when one follows.
    The output layer (appended later) gets one too: pass the list including it.
    """
    if p == 0:
        return list(specs)
    if not 0 <= p < 1:
        raise ArchitectureError(f"dropout must be in [0, 1); got {p}")
    result: list[LayerSpec] = []
    weighted_seen = False
    for spec in specs:
        if isinstance(spec, (ConvSpec, LinearSpec)):
            if weighted_seen:
                result.append(DropoutSpec(p))
            weighted_seen = True
        result.append(spec)
    return result
