"""Slow, per-neuron reference of the TSSL-BP neuron, written from docs/tsslbp-spec.md sections 1 and 2.

It is written straight from the spec text, independently of the engine (``tssl/engine/neuron.py``), and on purpose
uses a different formulation: plain Python floats (float64), explicit loops over neurons and over time, the
kernel term ``K[t]`` as the explicit full-future window sum (O(T^2)), and ``n(t)`` found by explicit search.
The surrogate rule is plain BPTT through the same forward, differentiated by hand with an explicit reverse
loop. Nothing here is meant to be fast. The threshold V of the spec is the argument ``threshold``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SURROGATE_WIDTH = 0.2
SURROGATE_ARG_CLAMP = 8.0
INV_DU_CLAMP = 8.0


def _floats(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values]


def reference_forward(
    x_1d: Sequence[float], tau_m: float, tau_s: float, threshold: float
) -> tuple[list[float], list[float], list[int], list[float]]:
    """Spec section 1 for one neuron: returns ``(u, du, s, a)`` as lists (``s`` as 0/1 ints).

    u[t] = am*m[t-1] + x[t];  du[t] = u[t] - m[t-1];  s[t] = u[t] > V;  m[t] = u[t]*(1 - s[t]);
    a[t] = as*a[t-1] + s[t]/tau_s;  zero initial state.
    """
    am = 1.0 - 1.0 / tau_m
    a_s = 1.0 - 1.0 / tau_s
    m_prev = 0.0
    a_prev = 0.0
    u: list[float] = []
    du: list[float] = []
    s: list[int] = []
    a: list[float] = []
    for x_t in _floats(x_1d):
        u_t = am * m_prev + x_t
        du_t = u_t - m_prev
        s_t = 1 if u_t > threshold else 0
        m_t = u_t * (1 - s_t)
        a_t = a_s * a_prev + s_t / tau_s
        u.append(u_t)
        du.append(du_t)
        s.append(s_t)
        a.append(a_t)
        m_prev = m_t
        a_prev = a_t
    return u, du, s, a


def sigmoid_surrogate(u_t: float, threshold: float) -> float:
    """sigma'(clamp((u - V)/0.2, -8, 8)) / 0.2, with sigma the logistic function."""
    z = (u_t - threshold) / SURROGATE_WIDTH
    z = min(max(z, -SURROGATE_ARG_CLAMP), SURROGATE_ARG_CLAMP)
    sig = 1.0 / (1.0 + math.exp(-z))
    return sig * (1.0 - sig) / SURROGATE_WIDTH


def _inverse_du(du_t: float) -> float:
    """P[t] = min(1/du, 8) if du > 0; 8 if du == 0; 0 if du < 0."""
    if du_t > 0:
        return min(1.0 / du_t, INV_DU_CLAMP)
    if du_t == 0:
        return INV_DU_CLAMP
    return 0.0


def reference_tsslbp_parts(
    x_1d: Sequence[float], g_1d: Sequence[float], tau_m: float, tau_s: float, threshold: float
) -> dict[str, list]:
    """Every intermediate of the spec's TSSL-BP closed form for one neuron.

    Returns a dict with the forward (``u``, ``du``, ``s``, ``a``), ``K``, ``P``, ``next_spike`` (``n(t)`` or
    None), ``D`` (the value before the switch), ``surrogate`` (True where ``a[t] < 1/(4 tau_s)``),
    ``surrogate_value`` (sigma'(...)/0.2 * K[t], for every t) and ``grad`` (dL/dx).
    """
    g = _floats(g_1d)
    u, du, s, a = reference_forward(x_1d, tau_m, tau_s, threshold)
    steps = len(u)
    if len(g) != steps:
        raise ValueError(f"x and g must have the same length; got {steps} and {len(g)}")
    am = 1.0 - 1.0 / tau_m
    a_s = 1.0 - 1.0 / tau_s

    # K[t] = sum_{j=0}^{T-1-t} k[j] g[t+j], k[j] = (1/tau_s) as**j: explicit window sum over the full future.
    kernel = [(1.0 / tau_s) * a_s**j for j in range(steps)]
    k_term = [sum(kernel[j] * g[t + j] for j in range(steps - t)) for t in range(steps)]
    p_term = [_inverse_du(du_t) for du_t in du]

    # n(t): the next spike strictly after t, by explicit search.
    next_spike: list[int | None] = []
    for t in range(steps):
        found = None
        for later in range(t + 1, steps):
            if s[later] == 1:
                found = later
                break
        next_spike.append(found)

    # D, from the last step backwards (D[n] with n > t is always known when D[t] is computed).
    d_term = [0.0] * steps
    for t in reversed(range(steps)):
        n = next_spike[t]
        if s[t] == 1:
            value = p_term[t] * k_term[t]
            if n is not None:
                value += d_term[n] * am ** (n - t - 1) * u[t] * (1.0 / tau_m) * p_term[t]
            d_term[t] = value
        else:
            d_term[t] = d_term[n] * am ** (n - t) if n is not None else 0.0

    switch = 1.0 / (4.0 * tau_s)
    use_surrogate = [a_t < switch for a_t in a]  # strict '<': a == 1/(4 tau_s) takes the TSSL branch
    surrogate_value = [sigmoid_surrogate(u[t], threshold) * k_term[t] for t in range(steps)]
    grad = [surrogate_value[t] if use_surrogate[t] else d_term[t] for t in range(steps)]
    return {
        "u": u,
        "du": du,
        "s": s,
        "a": a,
        "K": k_term,
        "P": p_term,
        "next_spike": next_spike,
        "D": d_term,
        "surrogate": use_surrogate,
        "surrogate_value": surrogate_value,
        "grad": grad,
    }


def reference_tsslbp_grad(
    x_1d: Sequence[float], g_1d: Sequence[float], tau_m: float, tau_s: float, threshold: float
) -> list[float]:
    """dL/dx for one neuron under the spec's TSSL-BP rule (section 2), given g = dL/da."""
    return reference_tsslbp_parts(x_1d, g_1d, tau_m, tau_s, threshold)["grad"]


def reference_surrogate_grad(
    x_1d: Sequence[float], g_1d: Sequence[float], tau_m: float, tau_s: float, threshold: float
) -> list[float]:
    """dL/dx for one neuron by plain surrogate-gradient BPTT through the section-1 forward.

    Hand-differentiated reverse loop. Forward graph per step:
        u[t] = am*m[t-1] + x[t];  s[t] = H(u[t] - V);  m[t] = u[t]*(1 - s[t]);  a[t] = as*a[t-1] + s[t]/tau_s
    with ds/du replaced by sigma'(clamp((u-V)/0.2, -8, 8))/0.2, dm/du = 1 - s, dm/ds = -u.
    """
    g = _floats(g_1d)
    u, _, s, _ = reference_forward(x_1d, tau_m, tau_s, threshold)
    steps = len(u)
    if len(g) != steps:
        raise ValueError(f"x and g must have the same length; got {steps} and {len(g)}")
    am = 1.0 - 1.0 / tau_m
    a_s = 1.0 - 1.0 / tau_s

    grad_x = [0.0] * steps
    grad_a_next = 0.0  # dL/da[t+1], total (through every later step)
    grad_u_next = 0.0  # dL/du[t+1], total
    for t in reversed(range(steps)):
        grad_a = g[t] + a_s * grad_a_next  # a[t] feeds the loss directly and a[t+1]
        grad_m = am * grad_u_next  # m[t] feeds only u[t+1]
        grad_s = grad_a / tau_s + grad_m * (-u[t])  # s[t] feeds a[t] (1/tau_s) and m[t] (-u[t])
        grad_u = grad_s * sigmoid_surrogate(u[t], threshold) + grad_m * (1 - s[t])  # u[t] feeds s[t] and m[t]
        grad_x[t] = grad_u  # du[t]/dx[t] = 1
        grad_a_next = grad_a
        grad_u_next = grad_u
    return grad_x


def reference_over_tensor(x, g=None, *, tau_m: float, tau_s: float, threshold: float, grad: str = "tsslbp"):
    """Apply the per-neuron reference to every neuron of a time-first ``[T, ...]`` array or tensor.

    ``x`` (and ``g``, same shape) may be numpy arrays or torch tensors (any device/dtype; values are taken as
    float64). Returns a dict of float64 numpy arrays shaped like ``x``: ``trace``, ``membrane``, ``du``,
    ``spikes`` (bool) and, when ``g`` is given, ``grad_x`` under rule ``grad`` ("tsslbp" or "surrogate").
    """
    if grad not in ("tsslbp", "surrogate"):
        raise ValueError(f"unknown grad rule {grad!r}")
    x_np = _as_numpy(x)
    shape = x_np.shape
    steps = shape[0]
    x_flat = x_np.reshape(steps, -1)
    g_flat = None if g is None else _as_numpy(g).reshape(steps, -1)
    out = {name: np.zeros(x_flat.shape, dtype=np.float64) for name in ("trace", "membrane", "du", "grad_x")}
    spikes = np.zeros(x_flat.shape, dtype=bool)
    for neuron in range(x_flat.shape[1]):
        column = x_flat[:, neuron].tolist()
        u, du, s, a = reference_forward(column, tau_m, tau_s, threshold)
        out["membrane"][:, neuron] = u
        out["du"][:, neuron] = du
        out["trace"][:, neuron] = a
        spikes[:, neuron] = [bool(v) for v in s]
        if g_flat is not None:
            g_col = g_flat[:, neuron].tolist()
            if grad == "tsslbp":
                out["grad_x"][:, neuron] = reference_tsslbp_grad(column, g_col, tau_m, tau_s, threshold)
            else:
                out["grad_x"][:, neuron] = reference_surrogate_grad(column, g_col, tau_m, tau_s, threshold)
    result = {name: value.reshape(shape) for name, value in out.items()}
    result["spikes"] = spikes.reshape(shape)
    if g is None:
        del result["grad_x"]
    return result


def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, without importing torch here
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)
