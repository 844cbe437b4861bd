"""The engine: what a user imports to train a TSSL-BP network.

The neuron and its kernels, the layers, networks from architecture strings, the losses, the optimiser recipe,
precision modes, several processes (``distributed``) and the one training step and epoch loop (``train``). It
imports nothing else of the project. Nothing is imported here, so that ``tssl.engine.architecture`` (which the
suite files are validated with) loads without torch.
"""
