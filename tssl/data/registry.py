"""Datasets by name: how to load each (offline, from the data root) and how to fetch it."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry itself is torch-free: suite files are validated on machines without torch
    from tssl.data.base import PreparedData

DATA_ROOT_ENV = "TSSL_DATA"


def default_data_root() -> Path:
    """``$TSSL_DATA`` if set, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


@dataclass(frozen=True)
class DatasetEntry:
    loader: str  # "module:function(root, *, steps, validation_fraction, seed) -> PreparedData"
    fetcher: str | None  # "module:function(root, source=None) -> str (what was done)"; None: nothing to fetch
    description: str


DATASETS: dict[str, DatasetEntry] = {
    "digits": DatasetEntry(
        "tssl.data.digits:load_prepared", None, "scikit-learn's 1,797 real 8x8 handwritten digits (ships offline)"
    ),
    "mnist": DatasetEntry(
        "tssl.data.vision:load_mnist", "tssl.data.vision:fetch_mnist", "MNIST through torchvision"
    ),
    "fmnist": DatasetEntry(
        "tssl.data.vision:load_fmnist", "tssl.data.vision:fetch_fmnist", "Fashion-MNIST through torchvision"
    ),
    "cifar10": DatasetEntry(
        "tssl.data.vision:load_cifar10", "tssl.data.vision:fetch_cifar10", "CIFAR-10 through torchvision"
    ),
    "nmnist": DatasetEntry(
        "tssl.data.nmnist:load_nmnist", "tssl.data.nmnist:fetch_nmnist", "N-MNIST through tonic, 3 ms bins"
    ),
}


def _resolve(reference: str):
    module, attribute = reference.split(":")
    return getattr(importlib.import_module(module), attribute)


def dataset_entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise KeyError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_data(
    name: str, root: Path | None = None, *, steps: int, validation_fraction: float = 0.0, seed: int = 0
) -> PreparedData:
    """Load a dataset offline from the data root; raises DataError naming `tssl fetch-data NAME` if missing."""
    loader = _resolve(dataset_entry(name).loader)
    return loader(root or default_data_root(), steps=steps, validation_fraction=validation_fraction, seed=seed)


def fetch_data(name: str, root: Path | None = None, source: str | None = None) -> str:
    entry = dataset_entry(name)
    if entry.fetcher is None:
        return f"{name}: nothing to fetch ({entry.description})"
    return _resolve(entry.fetcher)(root or default_data_root(), source=source)
