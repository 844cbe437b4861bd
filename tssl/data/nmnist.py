"""N-MNIST through tonic, binned as the paper: 3 ms bins, the first T bins of each recording, 2 x 34 x 34.

Each recording is read by ``tonic.datasets.NMNIST`` and binned by ``tonic.transforms.ToFrame(time_window=3000)``
(microseconds) from t = 0 to T x 3 ms, giving ``[T, 2 (polarity), 34 (y), 34 (x)]`` event counts per bin; the
counts are clipped to 1, because the authors fed binary 0/1 spike frames (their preprocessed files list, per
input neuron, the bins that hold a spike). Recordings shorter than T x 3 ms end in empty frames.

The conversion (about 0.1-0.4 ms per recording plus reading the file) runs once per T: the frames are cached,
bit-packed, in ``<root>/NMNIST/tssl-frames-T{steps}.pt`` (written atomically). In memory the frames are uint8
and batches are handed out as float32: N-MNIST at T = 100 is 16 GB as uint8 but 65 GB as float32.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tssl.data.base import DataError, DataKind, PreparedData, TensorSplit, split_validation
from tssl.data.files import MANIFEST, one_line, read_manifest, replace_dir, sha256_file, staging_dir, write_manifest

FOLDER = "NMNIST"  # tonic's location: <save_to>/NMNIST/{Train,Test}/<digit>/<id>.bin
SPLITS = ("Train", "Test")
ZIPS = {"Train": "train.zip", "Test": "test.zip"}
BIN_US = 3000  # 3 ms bins (spec section 4); N-MNIST timestamps are in microseconds
SENSOR_SIZE = (34, 34, 2)  # tonic's (x, y, polarity)
FRAME_SHAPE = (2, 34, 34)  # one step: (polarity, y, x)
EVENT_BYTES = 5  # N-MNIST stores each event in 40 bits
CACHE_FORMAT = 1


@dataclass(frozen=True)
class NmnistSpec:
    train_count: int = 60_000
    test_count: int = 10_000
    zip_md5: Mapping[str, str] | None = None  # per zip name; None: tonic's NMNIST.train_md5 / test_md5


NMNIST_SPEC = NmnistSpec()


def _zip_md5(spec: NmnistSpec) -> Mapping[str, str]:
    if spec.zip_md5 is not None:
        return spec.zip_md5
    from tonic.datasets import NMNIST

    return {NMNIST.train_filename: NMNIST.train_md5, NMNIST.test_filename: NMNIST.test_md5}


@functools.cache
def _offline_nmnist() -> type:
    """tonic's NMNIST, minus its download: the loader never downloads, and it has already checked the folders
    (tonic's own check also wants the .zip files and at least 10,000 recordings)."""
    from tonic.datasets import NMNIST

    def check_exists(self: NMNIST) -> bool:
        return True

    def download(self: NMNIST) -> None:
        raise DataError(f"N-MNIST is not in {self.location_on_system}: run `tssl fetch-data nmnist`")

    # Named NMNIST too: tonic reads the recordings from <save_to>/<class name>.
    return type("NMNIST", (NMNIST,), {"_check_exists": check_exists, "download": download})


def _require_tonic() -> None:
    try:
        import tonic  # noqa: F401
    except ImportError as exc:
        raise DataError(f"N-MNIST needs tonic, which is not installed ({one_line(exc)}): pip install tonic") from exc


def _tonic_version() -> str:
    import tonic

    return str(tonic.__version__)


def _recordings(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.bin"))


def _raw_listing(folder: Path) -> str:
    """A cheap fingerprint of the recordings on disk (names and sizes), to notice a cache gone stale."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for path in _recordings(folder / split):
            digest.update(f"{path.relative_to(folder)} {path.stat().st_size}\n".encode())
    return "sha256:" + digest.hexdigest()


def _raw_present(folder: Path) -> bool:
    """Both splits have at least one recording (their number is checked by the fetch, not on every load)."""
    return all((folder / split).is_dir() and next((folder / split).rglob("*.bin"), None) for split in SPLITS)


def _missing(folder: Path) -> DataError:
    return DataError(f"N-MNIST is not in {folder} (no Train/ and Test/ recordings): run `tssl fetch-data nmnist`")


# ----------------------------------------------------------------------------------------------------------------
# Binning and the cache


def _bin_split(root: Path, train: bool, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit-packed binary frames ``[N, ceil(T*2*34*34 / 8)]`` and labels ``[N]`` of one split, through tonic."""
    from tonic.transforms import ToFrame

    to_frame = ToFrame(sensor_size=SENSOR_SIZE, time_window=BIN_US, start_time=0, end_time=steps * BIN_US)
    dataset = _offline_nmnist()(str(root), train=train)
    if len(dataset) == 0:
        raise _missing(root / FOLDER)
    shape = (steps, *FRAME_SHAPE)
    size = int(np.prod(shape))
    bits = np.empty((len(dataset), -(-size // 8)), dtype=np.uint8)
    labels = np.empty(len(dataset), dtype=np.int64)
    split = "train" if train else "test"
    for index in tqdm(range(len(dataset)), desc=f"binning N-MNIST {split}, T={steps}", disable=None, leave=False):
        try:
            events, label = dataset[index]
            # tonic returns one frame for an empty recording: an empty recording is T empty frames.
            frames = to_frame(events) if len(events) else np.zeros(shape, dtype=np.int16)
        except (IndexError, ValueError, OSError) as exc:  # events outside 34x34x2, unreadable file
            raise DataError(
                f"{dataset.data[index]} cannot be binned ({one_line(exc)}): run `tssl fetch-data nmnist` again"
            ) from exc
        if frames.shape != shape:
            raise DataError(f"{dataset.data[index]} binned to {frames.shape}, not {shape}")
        bits[index] = np.packbits(np.minimum(frames, 1).astype(np.uint8).reshape(-1))  # counts clipped to 1
        labels[index] = label
    return bits, labels


def _unpack(bits: torch.Tensor, steps: int) -> torch.Tensor:
    shape = (steps, *FRAME_SHAPE)
    frames = np.unpackbits(bits.numpy(), axis=1, count=int(np.prod(shape)))
    return torch.from_numpy(frames.reshape(len(bits), *shape))


def _frames_fingerprint(payload: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(f"nmnist T={payload['steps']} bin_us={BIN_US} binary".encode())
    for key in ("train_bits", "train_labels", "test_bits", "test_labels"):
        digest.update(payload[key].numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def _build_cache(folder: Path, steps: int, listing: str) -> dict[str, Any]:
    _require_tonic()
    root = folder.parent
    train_bits, train_labels = _bin_split(root, True, steps)
    test_bits, test_labels = _bin_split(root, False, steps)
    payload: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "steps": steps,
        "bin_us": BIN_US,
        "start_us": 0,
        "binary": True,
        "tonic": _tonic_version(),
        "raw_listing": listing,
        "train_bits": torch.from_numpy(train_bits),
        "train_labels": torch.from_numpy(train_labels),
        "test_bits": torch.from_numpy(test_bits),
        "test_labels": torch.from_numpy(test_labels),
    }
    payload["fingerprint"] = _frames_fingerprint(payload)
    return payload


def _write_cache(path: Path, payload: Mapping[str, Any]) -> None:
    """Write to a temporary file beside ``path``, then rename: a reader never sees half a cache."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(dict(payload), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cache(path: Path, steps: int) -> dict[str, Any] | None:
    """The cached frames for ``steps``, or None if absent or not this version's (then they are rebuilt)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or from another version: rebuild it
        return None
    expected = {"format": CACHE_FORMAT, "steps": steps, "bin_us": BIN_US, "start_us": 0, "binary": True}
    if not isinstance(payload, dict) or any(payload.get(key) != value for key, value in expected.items()):
        return None
    if any(key not in payload for key in ("train_bits", "train_labels", "test_bits", "test_labels", "fingerprint")):
        return None
    return payload


# ----------------------------------------------------------------------------------------------------------------
# Loader and fetcher


def load_nmnist(root: Path, *, steps: int, validation_fraction: float = 0.0, seed: int = 0) -> PreparedData:
    """N-MNIST as binary 3 ms frames ``[N, T, 2, 34, 34]`` (``events=True``), from ``<root>/NMNIST``; never
    downloads. The first call for a given T bins every recording through tonic and caches the result."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    folder = Path(root) / FOLDER
    cache = folder / f"tssl-frames-T{steps}.pt"
    listing = _raw_listing(folder) if _raw_present(folder) else None
    payload = _read_cache(cache, steps)
    notes: list[str] = []
    if payload is not None and listing is not None and payload.get("raw_listing") != listing:
        payload = None  # the recordings changed since the cache was made
    if payload is None:
        if listing is None:
            raise _missing(folder)
        payload = _build_cache(folder, steps, listing)
        _write_cache(cache, payload)
        notes.append(f"binned through tonic {payload['tonic']} and cached in {cache}")
    elif listing is None:
        notes.append(f"read from the cache {cache}; the raw recordings are not in {folder}")
    else:
        notes.append(f"read from the cache {cache} (made with tonic {payload.get('tonic')})")

    full_train = TensorSplit(_unpack(payload["train_bits"], steps), payload["train_labels"].long())
    test = TensorSplit(_unpack(payload["test_bits"], steps), payload["test_labels"].long())
    train, validation = split_validation(full_train, validation_fraction, seed)
    spec = NMNIST_SPEC
    kind: DataKind = "real"
    if (len(full_train), len(test)) != (spec.train_count, spec.test_count):
        kind = "reduced"
        notes.append(
            f"{len(full_train)} train / {len(test)} test recordings, not the published "
            f"{spec.train_count} / {spec.test_count}"
        )
    manifest = read_manifest(folder)
    if manifest is None:
        notes.append(f"no {MANIFEST}: these recordings were not checked by `tssl fetch-data nmnist`")
    else:
        notes.append(
            f"fetched by `tssl fetch-data nmnist` at {manifest.get('fetched_at')} from {manifest.get('source')}"
        )
    notes.append(
        f"tonic ToFrame(time_window={BIN_US} us, start_time=0, end_time={steps * BIN_US} us): the first {steps} "
        "3 ms bins of each recording, [T, polarity, y, x], counts clipped to 1 (binary frames); stored as uint8, "
        "batches as float32"
    )
    return PreparedData(
        name="nmnist",
        kind=kind,
        source=(
            f"tonic NMNIST from {folder} ({len(full_train)} train / {len(test)} test), "
            f"first {steps} bins of 3 ms, binary"
        ),
        input_shape=FRAME_SHAPE,
        classes=10,
        train=train,
        validation=validation,
        test=test,
        events=True,
        fingerprint=payload["fingerprint"],
        notes=notes,
    )


def _check_recordings(stage: Path, spec: NmnistSpec) -> dict[str, list[int]]:
    """Counts per split and class, after checking the layout tonic reads; raises DataError."""
    counts = {}
    for split, expected in zip(SPLITS, (spec.train_count, spec.test_count), strict=True):
        per_class = [0] * 10
        for path in _recordings(stage / split):
            if path.parent.name not in {str(digit) for digit in range(10)}:
                raise DataError(f"{path} is not in a class folder 0-9 of {split}/")
            if path.stat().st_size % EVENT_BYTES:
                raise DataError(f"{path} is not a whole number of {EVENT_BYTES}-byte events: it is truncated")
            per_class[int(path.parent.name)] += 1
        if sum(per_class) != expected:
            raise DataError(f"N-MNIST {split}/ holds {sum(per_class)} recordings, not {expected}")
        counts[split] = per_class
    return counts


def fetch_nmnist(root: Path, source: str | None = None) -> str:
    """Lay N-MNIST out in ``<root>/NMNIST`` as tonic reads it: from ``source`` (a folder holding tonic's
    ``train.zip`` and ``test.zip``) or downloaded through tonic; the zips' MD5s (tonic's), the recordings'
    count (60000 / 10000) and format are checked and recorded in a manifest."""
    _require_tonic()
    from tonic.download_utils import extract_archive

    spec = NMNIST_SPEC
    root = Path(root)
    target = root / FOLDER
    md5s = _zip_md5(spec)
    if source is None and read_manifest(target) is not None:
        try:
            _check_recordings(target, spec)
            return f"nmnist: already in {target} and matches its manifest; nothing to do"
        except DataError:
            pass  # damaged: fetch it again
    staging = staging_dir(root, FOLDER)
    try:
        stage = staging / FOLDER
        stage.mkdir()
        if source is not None:
            origin = Path(source)
            for name in ZIPS.values():
                if not (origin / name).is_file():
                    raise DataError(f"{origin} does not hold tonic's N-MNIST {name}")
                shutil.copyfile(origin / name, stage / name)
                digest = hashlib.md5((stage / name).read_bytes()).hexdigest()
                if digest != md5s[name]:
                    raise DataError(f"{origin / name} has MD5 {digest}, not tonic's {md5s[name]} for N-MNIST")
                try:
                    extract_archive(str(stage / name), str(stage))
                except Exception as exc:  # zipfile.BadZipFile, EOFError, ...
                    raise DataError(
                        f"{origin / name} cannot be extracted, it is truncated or corrupt ({one_line(exc)})"
                    ) from exc
            what, source_text = f"copied and extracted train.zip and test.zip from {origin}", str(origin)
        else:
            from tonic.datasets import NMNIST

            try:  # tonic checks each zip's MD5, then extracts it
                NMNIST(str(staging), train=True)
                NMNIST(str(staging), train=False)
            except Exception as exc:
                raise DataError(f"could not download N-MNIST through tonic: {one_line(exc)}") from exc
            what, source_text = "downloaded through tonic (zip MD5s checked)", NMNIST.base_url
        counts = _check_recordings(stage, spec)
        hashes = {name: sha256_file(stage / name) for name in ZIPS.values()}
        write_manifest(
            stage,
            "nmnist",
            source_text,
            hashes,
            md5={name: md5s[name] for name in ZIPS.values()},
            counts={split.lower(): sum(per_class) for split, per_class in counts.items()},
            per_class={split.lower(): per_class for split, per_class in counts.items()},
            tonic=_tonic_version(),
        )
        replace_dir(stage, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return (
        f"nmnist: {what} into {target}; checked the zips' MD5s, {spec.train_count}/{spec.test_count} recordings "
        f"of whole 5-byte events in class folders 0-9; manifest {target / MANIFEST}"
    )
