"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision: offline loaders, and the fetchers that lay the files out.

Loaders never download: they read the files where torchvision's datasets look for them (``download=False``) and
raise :class:`~tssl.data.base.DataError` naming ``tssl fetch-data NAME`` when they are missing. Each split is
converted once to one normalised float32 tensor straight from the dataset's ``.data`` / ``.targets`` arrays, with
the same float32 operations as ``ToTensor()`` + ``Normalize`` (so the values are identical to the per-sample PIL
pipeline, without its cost). CIFAR-10's training augmentation (random crop with 4 pixels of padding + horizontal
flip) runs per batch, vectorised, on the tensors' device.

Fetchers build the dataset in a temporary folder beside the target, check it (IDX headers, counts, class
counts, SHA-256 / torchvision's MD5s), write a manifest (``tssl-manifest.json``) with the source and the
SHA-256 of every file, and only then rename it into place, so a failed fetch leaves nothing half-written.
The loaders read the manifest back, re-hash the files (about 0.1 s for MNIST) and use those hashes as the
fingerprint.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

from tssl.data.base import DataError, DataKind, PreparedData, TensorSplit, split_validation
from tssl.data.files import (
    MANIFEST,
    check_against_manifest,
    fingerprint_hashes,
    hash_files,
    one_line,
    read_manifest,
    replace_dir,
    staging_dir,
    write_manifest,
)

# Spec section 4: MNIST and Fashion-MNIST both use MNIST's statistics; CIFAR-10 the usual per-channel ones.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR_PADDING = 4

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR_FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"

# Where Debian's `dataset-fashion-mnist` package puts the four original .gz files.
DEBIAN_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# SHA-256 of the DECOMPRESSED Fashion-MNIST files, measured on Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1 (`zcat FILE.gz | sha256sum`). Debian's gzip wrappers differ from the upstream
# downloads (so the .gz MD5s in torchvision differ), but the decompressed bytes are the published data set.
FMNIST_SHA256: Mapping[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


@dataclass(frozen=True)
class IdxSpec:
    """What an MNIST-format data set must look like; the fetch checks every field, the loader reports against it."""

    name: str  # registry name: the NAME in `tssl fetch-data NAME`
    title: str
    dataset: type[MNIST]  # the torchvision class; its name is the folder under the data root
    train_count: int = 60_000
    test_count: int = 10_000
    per_class: tuple[int, int] | None = None  # exact images per class (train, test); None: not balanced
    sha256: Mapping[str, str] | None = None  # expected SHA-256 of each decompressed file; None: no constants

    @property
    def folder(self) -> str:
        return self.dataset.__name__


@dataclass(frozen=True)
class CifarSpec:
    dataset: type[CIFAR10] = CIFAR10  # its MD5 table is the integrity check
    train_count: int = 50_000
    test_count: int = 10_000
    per_class: tuple[int, int] = (5_000, 1_000)


# MNIST is not balanced (5,421 to 6,742 training images per class): only the totals are checked.
MNIST_SPEC = IdxSpec("mnist", "MNIST", MNIST)
FMNIST_SPEC = IdxSpec("fmnist", "Fashion-MNIST", FashionMNIST, per_class=(6_000, 1_000), sha256=FMNIST_SHA256)
CIFAR10_SPEC = CifarSpec()


def _manifest_note(manifest: Mapping[str, Any] | None, name: str) -> str:
    if manifest is None:
        return f"no {MANIFEST}: these files were not checked by `tssl fetch-data {name}`"
    return f"fetched by `tssl fetch-data {name}` at {manifest.get('fetched_at')} from {manifest.get('source')}"


def _kind(train: int, test: int, train_count: int, test_count: int) -> tuple[DataKind, list[str]]:
    """``real`` when the splits have the published sizes, else ``reduced``; a caller that wrote synthetic files
    (tests) is the one that knows they are ``generated``."""
    if (train, test) == (train_count, test_count):
        return "real", []
    return "reduced", [f"{train} train / {test} test images, not the published {train_count} / {test_count}"]


def _checksum_mismatches(hashes: Mapping[str, str], published: Mapping[str, str] | None) -> dict[str, dict[str, str]]:
    """The files whose SHA-256 is not the published one, with both hashes; {} when there are no constants."""
    if published is None:
        return {}
    return {name: {"expected": published[name], "actual": hashes[name]}
            for name in sorted(published) if hashes.get(name) != published[name]}


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")


# ----------------------------------------------------------------------------------------------------------------
# MNIST-format (IDX) files

_IDX_UBYTE = 0x08


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions, after checking its header and length."""
    data = path.read_bytes()
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path.name} is truncated: {len(data)} bytes is shorter than an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE or data[3] != ndim:
        raise DataError(
            f"{path.name} is not an IDX file of {ndim}-dimensional unsigned bytes (magic {data[:4].hex()}, "
            f"expected 000008{ndim:02x})"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path.name} is truncated or padded: {len(data)} bytes, its header {dims} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _check_idx_split(raw: Path, prefix: str, count: int, per_class: int | None) -> None:
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1)
    if images.shape != (count, 28, 28):
        raise DataError(f"{prefix}-images-idx3-ubyte holds images of shape {images.shape}, not ({count}, 28, 28)")
    if labels.shape != (count,):
        raise DataError(f"{prefix}-labels-idx1-ubyte holds {labels.shape[0]} labels, not {count}")
    if labels.max(initial=0) > 9:
        raise DataError(f"{prefix}-labels-idx1-ubyte holds label {int(labels.max())}, outside 0-9")
    if per_class is not None:
        counts = np.bincount(labels, minlength=10)
        if not (counts == per_class).all():
            raise DataError(f"{prefix}-labels-idx1-ubyte has {counts.tolist()} images per class, not {per_class} each")


def _check_idx(raw: Path, spec: IdxSpec) -> dict[str, str]:
    """Structural checks, then the SHA-256s against the spec's constants; returns the SHA-256 of each file."""
    train_per_class, test_per_class = spec.per_class or (None, None)
    _check_idx_split(raw, "train", spec.train_count, train_per_class)
    _check_idx_split(raw, "t10k", spec.test_count, test_per_class)
    hashes = hash_files(raw, IDX_FILES)
    if spec.sha256 is not None:
        for name in IDX_FILES:
            if hashes[name] != spec.sha256[name]:
                raise DataError(
                    f"{name} has SHA-256 {hashes[name]}, not the published {spec.title} file's {spec.sha256[name]}"
                )
    return hashes


def _copy_idx_files(source: Path, raw: Path) -> list[str]:
    """Copy (or decompress) the four IDX files from ``source`` into ``raw`` under torchvision's names."""
    done = []
    for name in IDX_FILES:
        plain, packed = source / name, source / f"{name}.gz"
        if plain.is_file():
            shutil.copyfile(plain, raw / name)
            done.append(name)
        elif packed.is_file():
            try:
                with gzip.open(packed, "rb") as src, (raw / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(
                    f"{packed} cannot be decompressed, it is truncated or corrupt ({one_line(exc)})"
                ) from exc
            done.append(f"{name}.gz")
        else:
            raise DataError(f"{source} holds neither {name} nor {name}.gz")
    return done


def _fetch_idx(spec: IdxSpec, root: Path, source: str | None, default_source: Path | None = None) -> str:
    root = Path(root)
    target = root / spec.folder
    raw_target = target / "raw"
    if source is None and (raw_target / IDX_FILES[0]).is_file() and read_manifest(target) is not None:
        try:
            check_against_manifest(spec.name, target, _check_idx(raw_target, spec))
            return f"{spec.name}: already in {raw_target} and matches its manifest; nothing to do"
        except DataError:
            pass  # damaged: fetch it again
    origin = Path(source) if source is not None else default_source
    if origin is not None and not origin.is_dir():
        raise DataError(f"the {spec.title} source {origin} is not a folder holding the four IDX files")
    staging = staging_dir(root, spec.folder)
    try:
        if origin is not None:
            raw = staging / spec.folder / "raw"
            raw.mkdir(parents=True)
            copied = _copy_idx_files(origin, raw)
            what = f"copied {', '.join(copied)} from {origin}"
            source_text = str(origin)
            if origin == DEBIAN_FMNIST_DIR:
                source_text += " (Debian package dataset-fashion-mnist)"
        else:
            try:  # torchvision checks the MD5 of every .gz it downloads, then decompresses it into raw/
                spec.dataset(str(staging), train=True, download=True)
            except Exception as exc:  # URLError, RuntimeError (MD5 mismatch), OSError, ...
                raise DataError(f"could not download {spec.title} through torchvision: {one_line(exc)}") from exc
            raw = staging / spec.folder / "raw"
            what = "downloaded through torchvision (MD5 of each .gz checked)"
            source_text = f"torchvision {spec.folder} mirrors: {', '.join(spec.dataset.mirrors)}"
        hashes = _check_idx(raw, spec)
        checks = [f"IDX headers, {spec.train_count}/{spec.test_count} images of 28x28"]
        if spec.per_class:
            checks.append(f"{spec.per_class[0]}/{spec.per_class[1]} images per class")
        if spec.sha256 is not None:
            checks.append(f"SHA-256 of each file equals the published {spec.title} file's")
        write_manifest(
            staging / spec.folder,
            spec.name,
            source_text,
            hashes,
            counts={"train": spec.train_count, "test": spec.test_count},
            checks=checks,
        )
        replace_dir(staging / spec.folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"{spec.name}: {what} into {raw_target}; checked {'; '.join(checks)}; manifest {target / MANIFEST}"


def _normalise_gray(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28], the same float32 operations as ToTensor() + Normalize."""
    return images.unsqueeze(1).to(torch.float32).div(255).sub(MNIST_MEAN).div(MNIST_STD)


def _load_idx(spec: IdxSpec, root: Path, steps: int, validation_fraction: float, seed: int) -> PreparedData:
    _check_steps(steps)  # static images: the network repeats them over the T steps
    root = Path(root)
    folder = root / spec.folder
    raw = folder / "raw"
    missing = [name for name in IDX_FILES if not (raw / name).is_file()]
    if missing:
        raise DataError(
            f"{spec.title} is not in {raw} (missing {', '.join(missing)}): run `tssl fetch-data {spec.name}`"
        )
    legacy = folder / "processed"
    if all((legacy / name).is_file() for name in (MNIST.training_file, MNIST.test_file)):
        raise DataError(
            f"{legacy} holds torchvision's legacy {MNIST.training_file} / {MNIST.test_file}, which it would read "
            f"instead of the files in raw/: remove that folder or run `tssl fetch-data {spec.name}`"
        )
    hashes = hash_files(raw, IDX_FILES)
    manifest = check_against_manifest(spec.name, folder, hashes)
    try:
        train_set = spec.dataset(str(root), train=True, download=False)
        test_set = spec.dataset(str(root), train=False, download=False)
    except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
        raise DataError(
            f"torchvision cannot read {spec.title} from {raw} ({one_line(exc)}): "
            f"run `tssl fetch-data {spec.name}` again"
        ) from exc
    splits = []
    for split in (train_set, test_set):
        if split.data.dim() != 3 or tuple(split.data.shape[1:]) != (28, 28) or len(split.targets) != len(split.data):
            raise DataError(f"{spec.title} in {raw} is not 28x28 images with one label each: run `tssl fetch-data`")
        splits.append(TensorSplit(_normalise_gray(split.data), split.targets.to(torch.long)))
    full_train, test = splits
    train, validation = split_validation(full_train, validation_fraction, seed)
    kind, notes = _kind(len(full_train), len(test), spec.train_count, spec.test_count)
    notes.append(_manifest_note(manifest, spec.name))
    mismatches = _checksum_mismatches(hashes, spec.sha256)
    if spec.sha256 is not None:
        notes.append(f"files {'DO NOT match' if mismatches else 'match'} the published {spec.title} SHA-256s")
    # Only files taken for the published set are unverified: a reduced subset cannot match (its note says so).
    checksums = mismatches if kind == "real" else {}
    if checksums:
        kind = "unverified"
        print(f"warning: {spec.title} in {raw}: {', '.join(checksums)} differ from the published SHA-256s; "
              "runs on it are recorded with data kind 'unverified'", file=sys.stderr)
    notes.append(f"Normalize({MNIST_MEAN}, {MNIST_STD}), no augmentation (spec section 4)")
    return PreparedData(
        name=spec.name,
        kind=kind,
        source=f"torchvision {spec.folder} from {raw} ({len(full_train)} train / {len(test)} test)",
        input_shape=(1, 28, 28),
        classes=10,
        train=train,
        validation=validation,
        test=test,
        fingerprint=fingerprint_hashes(hashes),
        notes=notes,
        checksums=checksums,
    )


def load_mnist(root: Path, *, steps: int, validation_fraction: float = 0.0, seed: int = 0) -> PreparedData:
    """MNIST from ``<root>/MNIST/raw``, ``Normalize(0.1307, 0.3081)``; never downloads."""
    return _load_idx(MNIST_SPEC, root, steps, validation_fraction, seed)


def load_fmnist(root: Path, *, steps: int, validation_fraction: float = 0.0, seed: int = 0) -> PreparedData:
    """Fashion-MNIST from ``<root>/FashionMNIST/raw``, ``Normalize(0.1307, 0.3081)`` as the paper; never downloads."""
    return _load_idx(FMNIST_SPEC, root, steps, validation_fraction, seed)


def fetch_mnist(root: Path, source: str | None = None) -> str:
    """Lay MNIST out in ``<root>/MNIST/raw``: from ``source`` (a folder with the four IDX files, .gz or not) or
    downloaded through torchvision; checked (headers, 60000/10000 28x28 images) and hashed into a manifest."""
    return _fetch_idx(MNIST_SPEC, root, source)


def fetch_fmnist(root: Path, source: str | None = None) -> str:
    """Lay Fashion-MNIST out in ``<root>/FashionMNIST/raw``: from ``source``, else from Debian's
    ``dataset-fashion-mnist`` package if installed, else downloaded through torchvision; the files must match the
    published SHA-256s and hold 6000/1000 images per class."""
    default = DEBIAN_FMNIST_DIR if DEBIAN_FMNIST_DIR.is_dir() else None
    return _fetch_idx(FMNIST_SPEC, root, source, default)


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10


def _channel_stats(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(CIFAR_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def _normalise_rgb(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 32, 32, 3] (HWC) -> float32 [N, 3, 32, 32], the same float32 operations as ToTensor() + Normalize."""
    mean, std = _channel_stats()
    chw = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return chw.to(torch.float32).div(255).sub(mean).div(std)


@dataclass(frozen=True)
class RandomCropFlip:
    """``RandomCrop(size, padding)`` + ``RandomHorizontalFlip(0.5)`` on a normalised batch ``[B, C, H, W]``, on its
    device, one crop offset and one flip per image, drawn from the given generator.

    torchvision pads the RAW image with 0 before ``Normalize``; here the image is already normalised, so the border
    is filled with the per-channel value a raw 0 maps to, ``(0 - mean) / std``: the result is exactly what the
    per-sample torchvision pipeline gives for the same offsets and flips (a plain zero pad would be mean grey).
    """

    padding: int
    fill: tuple[float, ...]  # one value per channel

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, channels, height, width = images.shape
        pad, device = self.padding, images.device
        # Draw where the generator lives (a CPU generator may drive CUDA tensors), then move the draws.
        where = generator.device if generator is not None else torch.device("cpu")
        tops = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=where).to(device)
        lefts = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=where).to(device)
        flips = (torch.rand(batch, generator=generator, device=where) < 0.5).to(device)
        fill = torch.tensor(self.fill, dtype=images.dtype, device=device).view(1, channels, 1, 1)
        padded = fill.expand(batch, channels, height + 2 * pad, width + 2 * pad).clone()
        padded[:, :, pad : pad + height, pad : pad + width] = images
        rows = tops[:, None] + torch.arange(height, device=device)  # [B, H]
        cols = lefts[:, None] + torch.arange(width, device=device)  # [B, W]
        cols = torch.where(flips[:, None], cols.flip(1), cols)  # flipping the crop reverses its columns
        index_b = torch.arange(batch, device=device)[:, None, None, None]
        index_c = torch.arange(channels, device=device)[None, :, None, None]
        return padded[index_b, index_c, rows[:, None, :, None], cols[:, None, None, :]]


def cifar_train_augment() -> RandomCropFlip:
    mean, std = _channel_stats()
    fill = (torch.zeros(1, 3, 1, 1) - mean) / std  # a raw 0 after Normalize, computed in float32 as torchvision does
    return RandomCropFlip(CIFAR_PADDING, tuple(fill.flatten().tolist()))


def _open_cifar(spec: CifarSpec, root: Path, train: bool) -> CIFAR10:
    try:  # torchvision checks the MD5 of every batch file and of batches.meta
        return spec.dataset(str(root), train=train, download=False)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        raise DataError(
            f"CIFAR-10 in {root / CIFAR_FOLDER} is missing or fails torchvision's MD5 check ({one_line(exc)}): "
            "run `tssl fetch-data cifar10`"
        ) from exc


def _check_cifar(spec: CifarSpec, root: Path) -> tuple[CIFAR10, CIFAR10]:
    splits = (_open_cifar(spec, root, True), _open_cifar(spec, root, False))
    for split, count, per_class in zip(splits, (spec.train_count, spec.test_count), spec.per_class, strict=True):
        name = "training" if split.train else "test"
        if split.data.shape != (count, 32, 32, 3) or split.data.dtype != np.uint8:
            raise DataError(f"the CIFAR-10 {name} set holds {split.data.shape} {split.data.dtype}, not {count} 32x32x3")
        counts = np.bincount(np.asarray(split.targets), minlength=10)
        if len(counts) != 10 or not (counts == per_class).all():
            raise DataError(f"the CIFAR-10 {name} set has {counts.tolist()} images per class, not {per_class} each")
    return splits


def _stage_cifar_source(origin: Path, staging: Path) -> str:
    """Put ``cifar-10-batches-py`` into ``staging`` from a tarball or a folder; returns what was done."""
    from torchvision.datasets.utils import extract_archive

    tarball = origin if origin.is_file() else origin / CIFAR10.filename
    if (origin / CIFAR_FOLDER).is_dir():
        shutil.copytree(origin / CIFAR_FOLDER, staging / CIFAR_FOLDER)
        return f"copied {origin / CIFAR_FOLDER}"
    if (origin / CIFAR_FILES[0]).is_file():
        shutil.copytree(origin, staging / CIFAR_FOLDER)
        return f"copied {origin}"
    if tarball.is_file():
        try:
            extract_archive(str(tarball), str(staging))
        except Exception as exc:  # tarfile.ReadError, EOFError, zlib.error, ...
            raise DataError(f"{tarball} cannot be extracted, it is truncated or corrupt ({one_line(exc)})") from exc
        return f"extracted {tarball}"
    raise DataError(f"{origin} holds neither {CIFAR_FOLDER}/, its batch files, nor {CIFAR10.filename}")


def fetch_cifar10(root: Path, source: str | None = None) -> str:
    """Lay CIFAR-10 out in ``<root>/cifar-10-batches-py``: from ``source`` (the tarball, or a folder holding it,
    the extracted folder or its files) or downloaded through torchvision; torchvision's MD5s, shapes and
    5000/1000 images per class are checked, and the SHA-256s recorded in a manifest."""
    spec = CIFAR10_SPEC
    root = Path(root)
    target = root / CIFAR_FOLDER
    if source is None and read_manifest(target) is not None:
        try:
            check_against_manifest("cifar10", target, hash_files(target, CIFAR_FILES))
            _check_cifar(spec, root)
            return f"cifar10: already in {target} and matches its manifest; nothing to do"
        except (DataError, OSError):
            pass  # damaged: fetch it again
    staging = staging_dir(root, CIFAR_FOLDER)
    try:
        if source is not None:
            what = _stage_cifar_source(Path(source), staging)
            source_text = str(source)
        else:
            try:  # torchvision checks the tarball's MD5 before extracting it
                spec.dataset(str(staging), train=True, download=True)
            except Exception as exc:
                raise DataError(f"could not download CIFAR-10 through torchvision: {one_line(exc)}") from exc
            (staging / CIFAR10.filename).unlink(missing_ok=True)  # 163 MB, not read by torchvision once extracted
            what = "downloaded through torchvision (tarball MD5 checked)"
            source_text = CIFAR10.url
        _check_cifar(spec, staging)
        checks = [
            "torchvision's MD5 of each batch file",
            f"{spec.train_count}/{spec.test_count} 32x32x3 images",
            f"{spec.per_class[0]}/{spec.per_class[1]} images per class",
        ]
        hashes = hash_files(staging / CIFAR_FOLDER, CIFAR_FILES)
        write_manifest(
            staging / CIFAR_FOLDER,
            "cifar10",
            source_text,
            hashes,
            counts={"train": spec.train_count, "test": spec.test_count},
            checks=checks,
        )
        replace_dir(staging / CIFAR_FOLDER, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"cifar10: {what} into {target}; checked {'; '.join(checks)}; manifest {target / MANIFEST}"


def load_cifar10(root: Path, *, steps: int, validation_fraction: float = 0.0, seed: int = 0) -> PreparedData:
    """CIFAR-10 from ``<root>/cifar-10-batches-py``: normalised per channel; training batches get a random crop
    (padding 4) and a horizontal flip on the device (spec section 4); never downloads."""
    _check_steps(steps)
    spec = CIFAR10_SPEC
    root = Path(root)
    folder = root / CIFAR_FOLDER
    missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 is not in {folder} (missing {', '.join(missing)}): run `tssl fetch-data cifar10`")
    hashes = hash_files(folder, CIFAR_FILES)
    manifest = check_against_manifest("cifar10", folder, hashes)
    train_set, test_set = _open_cifar(spec, root, True), _open_cifar(spec, root, False)
    full_train = TensorSplit(_normalise_rgb(train_set.data), torch.tensor(train_set.targets, dtype=torch.long))
    test = TensorSplit(_normalise_rgb(test_set.data), torch.tensor(test_set.targets, dtype=torch.long))
    train, validation = split_validation(full_train, validation_fraction, seed)
    kind, notes = _kind(len(full_train), len(test), spec.train_count, spec.test_count)
    notes += [
        _manifest_note(manifest, "cifar10"),
        f"Normalize({CIFAR_MEAN}, {CIFAR_STD}); training batches: RandomCrop(32, padding={CIFAR_PADDING}, "
        "border = normalised 0) + horizontal flip p=0.5, on the device (spec section 4)",
    ]
    return PreparedData(
        name="cifar10",
        kind=kind,
        source=f"torchvision CIFAR10 from {folder} ({len(full_train)} train / {len(test)} test)",
        input_shape=(3, 32, 32),
        classes=10,
        train=train,
        validation=validation,
        test=test,
        train_augment=cifar_train_augment(),
        fingerprint=fingerprint_hashes(hashes),
        notes=notes,
    )
