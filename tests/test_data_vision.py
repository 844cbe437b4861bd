"""MNIST, Fashion-MNIST and CIFAR-10 loaders and fetchers, on small files written here in the real on-disk formats.

The IDX files are the MNIST format torchvision reads; the CIFAR-10 files are the pickled batches of
``cifar-10-batches-py``. torchvision checks the CIFAR-10 files against its MD5 table, so the tests give it a
subclass whose table holds the MD5s of the files written here: the check still runs (and a corrupted file still
fails it), it just names these files. Loaders label such small splits ``reduced`` (not the published sizes); no
loader here produces ``generated`` data.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import transforms
from torchvision.datasets import CIFAR10, MNIST
from torchvision.transforms import functional as TF

from tssl.data import files, vision
from tssl.data.base import DataError
from tssl.data.registry import fetch_data, load_data

IDX_NAMES = vision.IDX_FILES


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000080N, N big-endian dimensions, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def make_idx(train: int, test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random images with balanced labels (train and test counts must be multiples of 10)."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.permutation(np.arange(train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.permutation(np.arange(test) % 10).astype(np.uint8),
    }


def write_idx(folder: Path, arrays: dict[str, np.ndarray], compress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def small_spec(spec: vision.IdxSpec, arrays: dict[str, np.ndarray], **changes: object) -> vision.IdxSpec:
    train = len(arrays["train-labels-idx1-ubyte"])
    test = len(arrays["t10k-labels-idx1-ubyte"])
    fields: dict[str, object] = {"train_count": train, "test_count": test}
    if spec.per_class is not None:
        fields["per_class"] = (train // 10, test // 10)
    return dataclasses.replace(spec, **(fields | changes))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST


def test_load_mnist_normalises_like_torchvision(tmp_path: Path) -> None:
    arrays = make_idx(40, 20)
    arrays["train-images-idx3-ubyte"][0, 3, 4] = 200
    write_idx(tmp_path / "MNIST" / "raw", arrays, compress=False)
    data = vision.load_mnist(tmp_path, steps=5)

    assert data.name == "mnist" and data.classes == 10 and data.input_shape == (1, 28, 28) and not data.events
    assert data.train.inputs.shape == (40, 1, 28, 28) and data.train.inputs.dtype == torch.float32
    assert data.test.inputs.shape == (20, 1, 28, 28)
    assert torch.equal(data.train.labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long())
    assert torch.equal(data.test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert data.train.inputs[0, 0, 3, 4].item() == pytest.approx((200 / 255 - 0.1307) / 0.3081, abs=1e-6)
    # Bit-identical to the per-sample pipeline the paper used.
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    reference = MNIST(str(tmp_path), train=True, transform=pipeline)
    for index in (0, 1, 39):
        assert torch.equal(data.train.inputs[index], reference[index][0])
    assert data.train_augment is None and data.validation is None
    assert data.kind == "reduced"  # 40 / 20 images are not the published 60000 / 10000
    assert any("not checked by `tssl fetch-data mnist`" in note for note in data.notes)
    assert data.source == f"torchvision MNIST from {tmp_path / 'MNIST' / 'raw'} (40 train / 20 test)"
    raw = tmp_path / "MNIST" / "raw"
    hashes = {name: sha256((raw / name).read_bytes()) for name in IDX_NAMES}
    assert data.fingerprint == files.fingerprint_hashes(hashes)


def test_load_mnist_validation_split_is_fixed_by_seed(tmp_path: Path) -> None:
    write_idx(tmp_path / "MNIST" / "raw", make_idx(40, 10), compress=False)
    first = vision.load_mnist(tmp_path, steps=5, validation_fraction=0.25, seed=3)
    again = vision.load_mnist(tmp_path, steps=5, validation_fraction=0.25, seed=3)
    assert len(first.train) == 30 and first.validation is not None and len(first.validation) == 10
    assert torch.equal(first.validation.labels, again.validation.labels)
    assert torch.equal(first.validation.inputs, again.validation.inputs)


def test_legacy_processed_files_are_not_read_silently(tmp_path: Path) -> None:
    write_idx(tmp_path / "MNIST" / "raw", make_idx(10, 10), compress=False)
    (tmp_path / "MNIST" / "processed").mkdir()
    for name in ("training.pt", "test.pt"):
        (tmp_path / "MNIST" / "processed" / name).write_bytes(b"")
    with pytest.raises(DataError, match=r"legacy training\.pt"):
        vision.load_mnist(tmp_path, steps=5)


@pytest.mark.parametrize("name", ["mnist", "fmnist", "cifar10"])
def test_missing_data_names_the_fetch_command(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"tssl fetch-data {name}"):
        load_data(name, tmp_path, steps=5)


def test_fetch_mnist_from_gz_folder_writes_manifest_and_loader_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = make_idx(30, 10)
    source, root = tmp_path / "download", tmp_path / "data"
    write_idx(source, arrays, compress=True)
    monkeypatch.setattr(vision, "MNIST_SPEC", small_spec(vision.MNIST_SPEC, arrays))

    said = fetch_data("mnist", root, source=str(source))
    assert "mnist:" in said and str(source) in said and "manifest" in said
    raw = root / "MNIST" / "raw"
    assert listing(root) == [
        "MNIST",
        "MNIST/raw",
        *(f"MNIST/raw/{n}" for n in sorted(IDX_NAMES)),
        f"MNIST/{files.MANIFEST}",
    ]
    manifest = files.read_manifest(root / "MNIST")
    assert manifest is not None and manifest["source"] == str(source)
    for name, array in arrays.items():
        assert (raw / name).read_bytes() == idx_bytes(array)  # decompressed under torchvision's names
        assert manifest["files"][name]["sha256"] == sha256(idx_bytes(array))

    data = vision.load_mnist(root, steps=5)
    assert data.kind == "real"  # the sizes the (patched) spec publishes
    assert data.fingerprint == files.fingerprint_hashes(files.manifest_hashes(manifest))
    assert any(f"from {source}" in note for note in data.notes)
    # Nothing to do a second time (no download attempted).
    assert "nothing to do" in vision.fetch_mnist(root)


def test_loader_refuses_files_changed_since_the_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_idx(30, 10)
    write_idx(tmp_path / "src", arrays, compress=False)
    monkeypatch.setattr(vision, "MNIST_SPEC", small_spec(vision.MNIST_SPEC, arrays))
    vision.fetch_mnist(tmp_path / "data", source=str(tmp_path / "src"))
    labels = tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x03")
    with pytest.raises(DataError, match=r"no longer match.*tssl fetch-data mnist"):
        vision.load_mnist(tmp_path / "data", steps=5)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate-gz", "cannot be decompressed"),
        ("truncate-raw", "truncated"),
        ("bad-magic", "not an IDX file"),
        ("wrong-count", "not 30"),
        ("missing", "neither"),
    ],
)
def test_failed_fetch_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, message: str
) -> None:
    arrays = make_idx(30, 10)
    source, root = tmp_path / "src", tmp_path / "data"
    monkeypatch.setattr(vision, "MNIST_SPEC", small_spec(vision.MNIST_SPEC, arrays))
    write_idx(source, arrays, compress=damage == "truncate-gz")
    images = source / "train-images-idx3-ubyte"
    if damage == "truncate-gz":
        packed = images.with_suffix(".gz")
        packed.write_bytes(packed.read_bytes()[: len(packed.read_bytes()) // 2])
    elif damage == "truncate-raw":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "bad-magic":
        images.write_bytes(b"\x00\x00\x08\x01" + images.read_bytes()[4:])
    elif damage == "wrong-count":
        write_idx(source, {"train-labels-idx1-ubyte": np.zeros(29, np.uint8)}, compress=False)
    elif damage == "missing":
        images.unlink()

    with pytest.raises(DataError, match=message):
        vision.fetch_mnist(root, source=str(source))
    assert listing(root) == []  # no target, no staging folder left behind


def test_failed_fetch_keeps_the_previous_good_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_idx(30, 10)
    good, bad, root = tmp_path / "good", tmp_path / "bad", tmp_path / "data"
    monkeypatch.setattr(vision, "MNIST_SPEC", small_spec(vision.MNIST_SPEC, arrays))
    write_idx(good, arrays, compress=False)
    vision.fetch_mnist(root, source=str(good))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    write_idx(bad, arrays, compress=False)
    (bad / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(DataError, match="truncated"):
        vision.fetch_mnist(root, source=str(bad))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert vision.load_mnist(root, steps=5).kind == "real"


def test_fetch_fmnist_checks_the_published_sha256s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_idx(30, 10)
    write_idx(tmp_path / "src", arrays, compress=True)
    # Right shape and class balance, but not the published Fashion-MNIST bytes: refused.
    monkeypatch.setattr(vision, "FMNIST_SPEC", small_spec(vision.FMNIST_SPEC, arrays))
    with pytest.raises(DataError, match=r"SHA-256 .* not the published Fashion-MNIST file's"):
        vision.fetch_fmnist(tmp_path / "data", source=str(tmp_path / "src"))
    assert listing(tmp_path / "data") == []

    # With these files' SHA-256s as the published ones it goes through, and the loader says they match.
    published = {name: sha256(idx_bytes(array)) for name, array in arrays.items()}
    monkeypatch.setattr(vision, "FMNIST_SPEC", small_spec(vision.FMNIST_SPEC, arrays, sha256=published))
    said = vision.fetch_fmnist(tmp_path / "data", source=str(tmp_path / "src"))
    assert "3/1 images per class" in said and "SHA-256" in said
    data = vision.load_fmnist(tmp_path / "data", steps=5)
    assert data.name == "fmnist" and data.kind == "real" and data.train.inputs.shape == (30, 1, 28, 28)
    assert "files match the published Fashion-MNIST SHA-256s" in data.notes


def test_fmnist_files_that_differ_from_the_published_sha256s_load_as_unverified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = make_idx(30, 10)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_idx(raw, arrays, compress=False)
    actual = {name: sha256(idx_bytes(array)) for name, array in arrays.items()}
    # The published sizes (so the loader takes them for the real data set), and published SHA-256s that only
    # the label files match: the two image files are not the published bytes.
    published = {**vision.FMNIST_SHA256, "train-labels-idx1-ubyte": actual["train-labels-idx1-ubyte"],
                 "t10k-labels-idx1-ubyte": actual["t10k-labels-idx1-ubyte"]}
    monkeypatch.setattr(vision, "FMNIST_SPEC", small_spec(vision.FMNIST_SPEC, arrays, sha256=published))
    data = vision.load_fmnist(tmp_path, steps=5)
    assert data.kind == "unverified"
    images = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
    assert data.checksums == {name: {"expected": published[name], "actual": actual[name]} for name in images}
    (warning,) = capsys.readouterr().err.splitlines()
    assert "unverified" in warning and all(name in warning for name in images) and str(raw) in warning


def test_fetch_fmnist_checks_class_balance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_idx(30, 10)
    arrays["train-labels-idx1-ubyte"][:] = np.arange(30) % 3  # 10 per class for 3 classes
    write_idx(tmp_path / "src", arrays, compress=False)
    monkeypatch.setattr(vision, "FMNIST_SPEC", small_spec(vision.FMNIST_SPEC, arrays, per_class=(3, 1)))
    with pytest.raises(DataError, match="per class, not 3 each"):
        vision.fetch_fmnist(tmp_path / "data", source=str(tmp_path / "src"))
    assert listing(tmp_path / "data") == []


def test_fetch_source_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        vision.fetch_fmnist(tmp_path / "data", source=str(tmp_path / "nowhere"))


def test_fmnist_constants_are_the_measured_hashes() -> None:
    assert set(vision.FMNIST_SHA256) == set(IDX_NAMES)
    assert all(len(value) == 64 and int(value, 16) >= 0 for value in vision.FMNIST_SHA256.values())
    assert vision.FMNIST_SPEC.per_class == (6000, 1000) and vision.FMNIST_SPEC.sha256 is vision.FMNIST_SHA256


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10


def write_cifar(folder: Path, per_batch: int, test: int, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The six pickled batches and batches.meta of cifar-10-batches-py (rows: 1024 R, 1024 G, 1024 B values)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]:
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(count) % 10)]
        batch = {"batch_label": f"{name} (test)", "labels": labels, "data": data, "filenames": [""] * count}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    meta = {"num_cases_per_batch": per_batch, "label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def cifar_with_md5s_of(folder: Path) -> type[CIFAR10]:
    """torchvision's CIFAR10 whose MD5 table names the files in ``folder`` (the check itself is unchanged)."""

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    return type(
        "GeneratedCIFAR10",
        (CIFAR10,),
        {
            "train_list": [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)],
            "test_list": [["test_batch", md5("test_batch")]],
            "meta": {**CIFAR10.meta, "md5": md5("batches.meta")},
        },
    )


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    root = tmp_path / "data"
    written = write_cifar(root / "cifar-10-batches-py", per_batch=10, test=10)
    spec = vision.CifarSpec(
        dataset=cifar_with_md5s_of(root / "cifar-10-batches-py"), train_count=50, test_count=10, per_class=(5, 1)
    )
    monkeypatch.setattr(vision, "CIFAR10_SPEC", spec)
    return root, written


def test_load_cifar10_normalises_like_torchvision(cifar_root: tuple[Path, dict]) -> None:
    root, written = cifar_root
    data = vision.load_cifar10(root, steps=5)
    assert data.name == "cifar10" and data.input_shape == (3, 32, 32) and data.classes == 10
    assert data.train.inputs.shape == (50, 3, 32, 32) and data.train.inputs.dtype == torch.float32
    assert data.test.inputs.shape == (10, 3, 32, 32)
    labels = [label for i in range(1, 6) for label in written[f"data_batch_{i}"][1]]
    assert data.train.labels.tolist() == labels and data.test.labels.tolist() == written["test_batch"][1]
    red = written["data_batch_1"][0][0, 0]  # first image, R channel, pixel (0, 0)
    assert data.train.inputs[0, 0, 0, 0].item() == pytest.approx((red / 255 - 0.4914) / 0.2023, abs=1e-6)
    pipeline = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))]
    )
    reference = vision.CIFAR10_SPEC.dataset(str(root), train=False, transform=pipeline)
    for index in (0, 9):
        assert torch.equal(data.test.inputs[index], reference[index][0])
    assert data.kind == "real" and isinstance(data.train_augment, vision.RandomCropFlip)
    assert data.fingerprint.startswith("sha256:")


def test_cifar10_real_md5_check_stays_on(cifar_root: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = cifar_root
    monkeypatch.setattr(vision, "CIFAR10_SPEC", vision.CifarSpec())  # torchvision's own MD5 table
    with pytest.raises(DataError, match=r"MD5 check.*tssl fetch-data cifar10"):
        vision.load_cifar10(root, steps=5)


def test_fetch_cifar10_from_folder_and_tarball(cifar_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = cifar_root
    said = vision.fetch_cifar10(tmp_path / "copy", source=str(root))
    assert "MD5" in said and "5/1 images per class" in said
    manifest = files.read_manifest(tmp_path / "copy" / "cifar-10-batches-py")
    assert manifest is not None and set(manifest["files"]) == set(vision.CIFAR_FILES)
    assert vision.load_cifar10(tmp_path / "copy", steps=5).notes[0].startswith("fetched by `tssl fetch-data cifar10`")

    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert "extracted" in vision.fetch_cifar10(tmp_path / "fromtar", source=str(tarball))
    assert (
        vision.load_cifar10(tmp_path / "fromtar", steps=5).fingerprint
        == vision.load_cifar10(tmp_path / "copy", steps=5).fingerprint
    )

    tarball.write_bytes(tarball.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"cannot be extracted|MD5"):
        vision.fetch_cifar10(tmp_path / "broken", source=str(tarball))
    assert listing(tmp_path / "broken") == []


def test_fetch_cifar10_corrupted_batch_fails_cleanly(cifar_root: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = cifar_root
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(DataError, match="MD5 check"):
        vision.fetch_cifar10(tmp_path / "copy", source=str(root))
    assert listing(tmp_path / "copy") == []


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10 training augmentation


def find_crop_flip(
    image: torch.Tensor, out: torch.Tensor, fill: torch.Tensor, pad: int = 4
) -> list[tuple[int, int, bool]]:
    """Every (top, left, flip) whose crop of the ``fill``-padded ``image`` (flipped or not) equals ``out``."""
    channels, height, width = image.shape
    padded = fill.view(channels, 1, 1).expand(channels, height + 2 * pad, width + 2 * pad).clone()
    padded[:, pad : pad + height, pad : pad + width] = image
    found = []
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            crop = padded[:, top : top + height, left : left + width]
            for flip in (False, True):
                if torch.equal(crop.flip(-1) if flip else crop, out):
                    found.append((top, left, flip))
    return found


def test_cifar_augmentation_is_a_crop_and_flip_matching_torchvision() -> None:
    rng = np.random.default_rng(1)
    raw = rng.integers(1, 256, (64, 32, 32, 3), dtype=np.uint8)  # no raw 0 inside, so the border is unambiguous
    images = vision._normalise_rgb(raw)
    augment = vision.cifar_train_augment()
    fill = torch.tensor(augment.fill)
    out = augment(images, torch.Generator().manual_seed(7))
    assert out.shape == images.shape and out.dtype == images.dtype

    params = []
    for index in range(len(images)):
        found = find_crop_flip(images[index], out[index], fill)
        assert len(found) >= 1, f"image {index} is not a crop (+ flip) of the padded input"
        params.append(found[0])
        top, left, flip = found[0]
        # torchvision's own order: pad the RAW image with 0, crop, flip, then ToTensor + Normalize.
        pil = TF.to_pil_image(raw[index])
        crop = TF.crop(TF.pad(pil, 4, fill=0), top, left, 32, 32)
        crop = TF.hflip(crop) if flip else crop
        expected = TF.normalize(TF.to_tensor(crop), vision.CIFAR_MEAN, vision.CIFAR_STD)
        assert torch.equal(out[index], expected)
    assert {flip for _, _, flip in params} == {False, True}
    assert len({(top, left) for top, left, _ in params}) > 10
    assert any(top != 4 or left != 4 for top, left, _ in params)  # the border shows up


def test_cifar_augmentation_is_deterministic_for_a_generator() -> None:
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    augment = vision.cifar_train_augment()
    first = augment(images, torch.Generator().manual_seed(5))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(6)))


def test_cifar_batches_augment_training_batches_only(cifar_root: tuple[Path, dict]) -> None:
    root, _ = cifar_root
    data = vision.load_cifar10(root, steps=5)
    (train_x, train_y), *_ = data.batches(data.train, 50, torch.Generator().manual_seed(0), augment=True)
    (plain_x, plain_y), *_ = data.batches(data.train, 50, torch.Generator().manual_seed(0))
    assert torch.equal(train_y, plain_y) and train_x.shape == plain_x.shape == (50, 3, 32, 32)
    assert not torch.equal(train_x, plain_x)
    (test_x, _), *_ = data.batches(data.test, 10)
    assert torch.equal(test_x, data.test.inputs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cifar_augmentation_on_cuda_with_a_cpu_generator() -> None:
    images = torch.randn(8, 3, 32, 32)
    augment = vision.cifar_train_augment()
    on_cpu = augment(images, torch.Generator().manual_seed(3))
    on_gpu = augment(images.cuda(), torch.Generator().manual_seed(3))
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), on_cpu)
