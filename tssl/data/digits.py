"""scikit-learn's handwritten digits (1,797 real 8x8 images, 10 classes): the offline default dataset.

It ships inside scikit-learn, so it needs no download. The split is fixed and stratified; images are
scaled to [0, 1] and normalised with the training set's mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

INPUT_SHAPE = (1, 8, 8)
CLASSES = 10
TEST_SIZE = 500
SPLIT_SEED = 0


@dataclass(frozen=True)
class TensorSplit:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str


def load_digits_split(test_size: int = TEST_SIZE, split_seed: int = SPLIT_SEED) -> TensorSplit:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(), test_size=test_size, random_state=split_seed, stratify=labels.numpy()
    )
    train_x, test_x = images[train_idx], images[test_idx]
    mean, std = train_x.mean(), train_x.std()
    return TensorSplit(
        (train_x - mean) / std,
        labels[train_idx],
        (test_x - mean) / std,
        labels[test_idx],
        source=f"sklearn.datasets.load_digits (real 8x8 digits; {len(train_idx)} train / {len(test_idx)} test, "
        f"stratified split seed {split_seed})",
    )


def load_prepared(_root, *, steps: int, validation_fraction: float = 0.0, seed: int = 0):
    """The digits as :class:`~tssl.data.base.PreparedData` (the data root is not used: it ships offline)."""
    from tssl.data.base import PreparedData, TensorSplit, split_validation

    split = load_digits_split()
    train, validation = split_validation(TensorSplit(split.train_x, split.train_y), validation_fraction, seed)
    return PreparedData(
        name="digits",
        kind="real",
        source=split.source,
        input_shape=INPUT_SHAPE,
        classes=CLASSES,
        train=train,
        validation=validation,
        test=TensorSplit(split.test_x, split.test_y),
    )
