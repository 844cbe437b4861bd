"""Datasets, as tensors or loaders of static images ``[B, C, H, W]`` and event frames ``[T, B, C, H, W]``."""
