"""How much a network keeps for its backward: bytes saved by autograd per sample, and the authors' layout.

``saved_activation_bytes(model, inputs, labels, loss_fn)`` runs one forward and the loss under
:func:`torch.autograd.graph.saved_tensors_hooks` and adds up the storages of every tensor autograd keeps for
the backward, each storage once, leaving out the parameters and buffers of ``model`` and ``loss_fn``. It works
for any ``nn.Module`` (the native engine, the floor, the snntorch and SpikingJelly baselines). The native engine
does not install saved-tensor hooks of its own: where it keeps a compact form (spikes recomputed from the
membrane, a trace rebuilt from spikes), that compact tensor is what its autograd functions save, so it is
what gets counted.

``authors_layout_bytes(model, inputs)`` is what the authors' code would keep for the same network, from the
architecture alone (see its docstring for the formula).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tssl.engine.layers import SpikingNeuron

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FP32_BYTES = 4


def _storage_key(tensor: torch.Tensor) -> tuple[str, int] | None:
    try:
        storage = tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensors without a storage (e.g. sparse): nothing to count
        return None
    return (str(tensor.device), storage.data_ptr())


def _batch_size(inputs: torch.Tensor, labels: torch.Tensor | None) -> int:
    if labels is not None:
        return int(labels.shape[0])
    return int(inputs.shape[0])


def saved_tensor_storages(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
) -> dict[tuple[str, int], int]:
    """Run ``loss_fn(model(inputs), labels)`` (or ``model(inputs).sum()``) and return the storages autograd
    saved for the backward, as ``{(device, data_ptr): nbytes}``, without parameters and buffers."""
    excluded = set()
    for module in (model, loss_fn):
        if isinstance(module, nn.Module):
            for tensor in [*module.parameters(), *module.buffers()]:
                key = _storage_key(tensor)
                if key is not None:
                    excluded.add(key)
    saved: dict[tuple[str, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key is not None and key not in excluded:
            saved[key] = max(saved.get(key, 0), tensor.untyped_storage().nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(inputs)
        loss = output.sum() if loss_fn is None else loss_fn(output, labels)
    del loss, output  # the graph (and the counted storages) go with them
    return saved


def saved_activation_bytes(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor | None = None,
    loss_fn: LossFn | None = None,
) -> float:
    """Bytes autograd keeps for the backward of one forward + loss, per sample (each storage counted once,
    parameters and buffers excluded). The batch size is ``labels.shape[0]``, else ``inputs.shape[0]``; pass
    labels for time-first event inputs ``[T, B, ...]``. ``model`` is run in its current train/eval mode."""
    total = sum(saved_tensor_storages(model, inputs, labels, loss_fn).values())
    return total / _batch_size(inputs, labels)


def spiking_layer_sizes(model: nn.Module, inputs: torch.Tensor) -> list[tuple[int, int]]:
    """``(T, neurons per sample)`` of every :class:`~tssl.engine.layers.SpikingNeuron` of ``model``, in call order,
    from one forward without gradients."""
    sizes: list[tuple[int, int]] = []

    def record(_module, args, _output):
        current = args[0]  # [T, B, ...]
        sizes.append((int(current.shape[0]), int(current[0, 0].numel())))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, SpikingNeuron)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if not sizes:
        raise ValueError(
            f"{type(model).__name__} has no tssl.engine.layers.SpikingNeuron: no authors' layout to compute"
        )
    return sizes


def authors_layout_bytes(model: nn.Module, inputs: torch.Tensor) -> float:
    """Bytes per sample the authors' code keeps for the backward of the same network, from its architecture.

    The issue's definition: four fp32 activation-sized tensors per spiking layer (the authors' TSSLBP function
    saves the membrane increments, the spikes as floats, the membrane and the output trace, each ``[.., T]``)
    plus two backward temporaries (the reference backward materialises two more activation-sized tensors for
    the layer it is working on, so the largest layer sets them)::

        bytes per sample = 4 * T * (4 * sum_l n_l + 2 * max_l n_l)

    with ``n_l`` the neurons per sample of spiking layer ``l`` (conv: C*H*W, linear: features, output layer
    included) and ``T`` the time steps. ``model`` must be a native network (it is run once to find ``n_l``).
    """
    sizes = spiking_layer_sizes(model, inputs)
    steps = sizes[0][0]
    neurons = [n for _, n in sizes]
    return float(FP32_BYTES * steps * (4 * sum(neurons) + 2 * max(neurons)))
