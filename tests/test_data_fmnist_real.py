"""The real Fashion-MNIST, from Debian's ``dataset-fashion-mnist`` package: fetched, checked, loaded and learned.

Skipped where the package is not installed. The short training run is the paper's Fashion-MNIST MLP
(784-400-400-10, T = 5, kernel loss, AdamW 5e-4, batch 100) for one pass over the first 20,000 training images,
evaluated on the full test set: it must be far above chance (10 %).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tssl.data import files, vision
from tssl.data.base import TensorSplit
from tssl.engine.losses import make_loss
from tssl.engine.network import build_network
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import evaluate, train_epoch

pytestmark = pytest.mark.skipif(
    not vision.DEBIAN_FMNIST_DIR.is_dir(),
    reason=f"{vision.DEBIAN_FMNIST_DIR} is absent: `apt-get install dataset-fashion-mnist` to run this test",
)

TRAIN_IMAGES = 20_000
MIN_TEST_ACCURACY = 0.70


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    said = vision.fetch_fmnist(root)
    assert str(vision.DEBIAN_FMNIST_DIR) in said and "6000/1000 images per class" in said
    return root


def test_fetched_files_are_the_published_fashion_mnist(fetched: Path) -> None:
    raw = fetched / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(vision.IDX_FILES)  # what torchvision reads, no .gz
    for name, expected in vision.FMNIST_SHA256.items():
        assert files.sha256_file(raw / name) == expected
    manifest = files.read_manifest(fetched / "FashionMNIST")
    assert manifest is not None and files.manifest_hashes(manifest) == dict(vision.FMNIST_SHA256)
    assert manifest["source"].startswith(str(vision.DEBIAN_FMNIST_DIR))
    assert "nothing to do" in vision.fetch_fmnist(fetched)


def test_loaded_splits_have_the_published_sizes_and_balance(fetched: Path) -> None:
    data = vision.load_fmnist(fetched, steps=5)
    assert data.kind == "real" and data.name == "fmnist"
    assert data.train.inputs.shape == (60_000, 1, 28, 28) and data.test.inputs.shape == (10_000, 1, 28, 28)
    assert torch.bincount(data.train.labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(data.test.labels, minlength=10).tolist() == [1000] * 10
    assert "files match the published Fashion-MNIST SHA-256s" in data.notes
    assert data.fingerprint == files.fingerprint_hashes(vision.FMNIST_SHA256)
    # Normalize(0.1307, 0.3081) of [0, 1] pixels; Fashion-MNIST's own mean is about 0.286.
    low, high = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081
    assert data.train.inputs.min().item() == pytest.approx(low) and data.train.inputs.max().item() == pytest.approx(
        high
    )
    raw_mean = data.train.inputs.mean().item() * 0.3081 + 0.1307
    assert raw_mean == pytest.approx(0.286, abs=0.002)


def test_the_paper_mlp_learns_real_fashion_mnist_in_one_short_epoch(fetched: Path) -> None:
    torch.manual_seed(0)
    data = vision.load_fmnist(fetched, steps=5)
    subset = TensorSplit(data.train.inputs[:TRAIN_IMAGES], data.train.labels[:TRAIN_IMAGES])
    model = build_network("400-400", (1, 28, 28), 10, 5)
    loss = make_loss("kernel", 5, 3.0)
    optimizer = make_optimizer(model.parameters(), 5e-4)

    start = time.perf_counter()
    train_loss, train_accuracy = train_epoch(
        model, loss, optimizer, data.batches(subset, 100, torch.Generator().manual_seed(0))
    )
    accuracy = evaluate(model, data.batches(data.test, 100))
    print(
        f"\nFashion-MNIST MLP, one pass over {TRAIN_IMAGES} images: train loss {train_loss:.4f}, "
        f"train accuracy {train_accuracy:.3f}, test accuracy {accuracy:.4f} ({time.perf_counter() - start:.1f} s)"
    )
    assert np.isfinite(train_loss)
    assert accuracy >= MIN_TEST_ACCURACY, f"test accuracy {accuracy:.3f} after one short epoch (chance 0.10)"
