"""N-MNIST through tonic, on a tiny data set written here in N-MNIST's own format.

A recording is a ``.bin`` file of 5-byte events (x, y, polarity bit + 23-bit timestamp in microseconds), in
``Train/<digit>/`` and ``Test/<digit>/``, shipped as tonic's ``train.zip`` / ``test.zip``. The expected frames are
computed here independently of tonic (bin = t // 3000, keep the first T bins, set to 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tssl.data import files, nmnist
from tssl.data.base import DataError
from tssl.data.registry import load_data

# tonic is an optional dependency (the N-MNIST `events` extra): without it these tests are skipped, and say why.
pytest.importorskip("tonic", reason="N-MNIST needs tonic: pip install tonic (tested with 1.7.0)")

Event = tuple[int, int, int, int]  # x, y, t (us), polarity

# Recording 0 of class 0: two events in one pixel and bin (clipped to 1), bin edges at 2999/3000 us, the last
# microsecond of bin 4 and the first of bin 5 (outside T = 5, inside T = 6).
KNOWN: list[Event] = [
    (3, 5, 100, 1),
    (3, 5, 200, 1),
    (10, 20, 2999, 0),
    (10, 20, 3000, 0),
    (33, 33, 14999, 1),
    (0, 0, 15000, 1),
]


def encode(events: list[Event]) -> bytes:
    out = bytearray()
    for x, y, t, p in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def expected_frames(events: list[Event], steps: int) -> np.ndarray:
    frames = np.zeros((steps, 2, 34, 34), dtype=np.uint8)
    for x, y, t, p in events:
        if t // 3000 < steps:
            frames[t // 3000, p, y, x] = 1
    return frames


def random_events(rng: np.random.Generator, count: int, duration_us: int) -> list[Event]:
    times = np.sort(rng.integers(0, duration_us, count))
    return [(int(rng.integers(34)), int(rng.integers(34)), int(t), int(rng.integers(2))) for t in times]


def make_recordings(per_class: dict[str, int], seed: int = 0) -> dict[str, list[tuple[int, list[Event]]]]:
    """``{split: [(label, events), ...]}`` in the order tonic lists them (by class folder, then file name)."""
    rng = np.random.default_rng(seed)
    recordings: dict[str, list[tuple[int, list[Event]]]] = {}
    for split, count in per_class.items():
        recordings[split] = [
            (label, random_events(rng, int(rng.integers(20, 80)), 40_000)) for label in range(10) for _ in range(count)
        ]
    recordings["Train"][0] = (0, KNOWN)
    return recordings


def write_zips(folder: Path, recordings: dict[str, list[tuple[int, list[Event]]]]) -> dict[str, str]:
    """tonic's train.zip / test.zip (members ``Train/<digit>/<id>.bin``); returns their MD5s."""
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for split, name in nmnist.ZIPS.items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for index, (label, events) in enumerate(recordings[split]):
                archive.writestr(f"{split}/{label}/{index:05d}.bin", encode(events))
        (folder / name).write_bytes(buffer.getvalue())
        md5s[name] = hashlib.md5(buffer.getvalue()).hexdigest()
    return md5s


@pytest.fixture
def fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A fetched tiny N-MNIST (30 train / 10 test recordings), with the spec set to its sizes and MD5s."""
    recordings = make_recordings({"Train": 3, "Test": 1})
    md5s = write_zips(tmp_path / "download", recordings)
    monkeypatch.setattr(nmnist, "NMNIST_SPEC", nmnist.NmnistSpec(30, 10, md5s))
    said = nmnist.fetch_nmnist(tmp_path / "data", source=str(tmp_path / "download"))
    assert "30/10 recordings" in said and "manifest" in said
    return tmp_path / "data", recordings


def test_frames_are_the_first_t_binary_3ms_bins(fetched: tuple[Path, dict]) -> None:
    root, recordings = fetched
    data = load_data("nmnist", root, steps=5)
    assert data.name == "nmnist" and data.events and data.input_shape == (2, 34, 34) and data.classes == 10
    assert data.train.inputs.shape == (30, 5, 2, 34, 34) and data.test.inputs.shape == (10, 5, 2, 34, 34)
    assert data.kind == "real"  # the sizes of the (patched) spec
    for split, tensors in (("Train", data.train), ("Test", data.test)):
        assert tensors.labels.tolist() == [label for label, _ in recordings[split]]
        expected = np.stack([expected_frames(events, 5) for _, events in recordings[split]])
        assert torch.equal(tensors.inputs, torch.from_numpy(expected))
    known = data.train.inputs[0]
    assert known[0, 1, 5, 3] == 1 and known[0, 0, 20, 10] == 1 and known[1, 0, 20, 10] == 1
    assert known[4, 1, 33, 33] == 1 and known.sum() == 4  # the event at 15000 us is in bin 5, outside T = 5
    assert load_data("nmnist", root, steps=6).train.inputs[0, 5, 1, 0, 0] == 1

    inputs, labels = next(data.batches(data.train, 8, torch.Generator().manual_seed(0)))
    assert inputs.shape == (5, 8, 2, 34, 34) and inputs.dtype == torch.float32  # time-first, float
    assert set(inputs.unique().tolist()) <= {0.0, 1.0} and labels.shape == (8,)
    assert data.fingerprint.startswith("sha256:")
    assert any("fetched by `tssl fetch-data nmnist`" in note for note in data.notes)
    assert any("clipped to 1" in note for note in data.notes)


def test_frames_are_cached_per_t(fetched: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = fetched
    first = nmnist.load_nmnist(root, steps=5, validation_fraction=0.2, seed=1)
    cache = root / "NMNIST" / "tssl-frames-T5.pt"
    assert cache.is_file() and not list((root / "NMNIST").glob(".*"))  # no temporary file left

    def no_binning(*_args: object) -> None:
        raise AssertionError("the recordings were binned again")

    monkeypatch.setattr(nmnist, "_bin_split", no_binning)
    again = nmnist.load_nmnist(root, steps=5, validation_fraction=0.2, seed=1)
    assert torch.equal(first.train.inputs, again.train.inputs) and first.fingerprint == again.fingerprint
    assert len(again.train) == 24 and again.validation is not None and len(again.validation) == 6
    assert any("read from the cache" in note for note in again.notes)
    with pytest.raises(AssertionError, match="binned again"):
        nmnist.load_nmnist(root, steps=10)  # another T: its own conversion


def test_cache_is_rebuilt_when_recordings_change_and_used_without_them(fetched: tuple[Path, dict]) -> None:
    root, _ = fetched
    folder = root / "NMNIST"
    before = nmnist.load_nmnist(root, steps=5)
    (folder / "Train" / "0" / "00000.bin").write_bytes(encode([(1, 2, 10, 0)]))
    changed = nmnist.load_nmnist(root, steps=5)
    assert changed.train.inputs[0].sum() == 1 and changed.fingerprint != before.fingerprint
    assert any("binned through tonic" in note for note in changed.notes)

    for split in nmnist.SPLITS:
        for path in (folder / split).rglob("*.bin"):
            path.unlink()
    cached = nmnist.load_nmnist(root, steps=5)
    assert torch.equal(cached.train.inputs, changed.train.inputs)
    assert any("raw recordings are not in" in note for note in cached.notes)
    with pytest.raises(DataError, match="tssl fetch-data nmnist"):
        nmnist.load_nmnist(root, steps=6)


def test_a_corrupt_cache_is_rebuilt(fetched: tuple[Path, dict]) -> None:
    root, _ = fetched
    first = nmnist.load_nmnist(root, steps=5)
    cache = root / "NMNIST" / "tssl-frames-T5.pt"
    cache.write_bytes(cache.read_bytes()[:100])
    assert torch.equal(nmnist.load_nmnist(root, steps=5).train.inputs, first.train.inputs)


def test_missing_data_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tssl fetch-data nmnist"):
        load_data("nmnist", tmp_path, steps=5)
    (tmp_path / "NMNIST" / "Train" / "0").mkdir(parents=True)
    with pytest.raises(DataError, match="tssl fetch-data nmnist"):
        load_data("nmnist", tmp_path, steps=5)


def test_the_loader_never_downloads(tmp_path: Path) -> None:
    offline = nmnist._offline_nmnist()(str(tmp_path), train=True)
    assert len(offline) == 0
    with pytest.raises(DataError, match="tssl fetch-data nmnist"):
        offline.download()


def test_fetch_refuses_zips_with_other_md5s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_zips(tmp_path / "download", make_recordings({"Train": 3, "Test": 1}))
    monkeypatch.setattr(nmnist, "NMNIST_SPEC", nmnist.NmnistSpec(30, 10))  # tonic's MD5s of the real zips
    with pytest.raises(DataError, match="not tonic's"):
        nmnist.fetch_nmnist(tmp_path / "data", source=str(tmp_path / "download"))
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate-zip", "cannot be extracted"),
        ("odd-size", "5-byte events"),
        ("wrong-count", "holds 30 recordings, not 31"),
        ("missing", "does not hold"),
    ],
)
def test_failed_fetch_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, message: str
) -> None:
    recordings = make_recordings({"Train": 3, "Test": 1})
    download = tmp_path / "download"
    md5s = write_zips(download, recordings)
    train_zip = download / "train.zip"
    if damage == "odd-size":  # a recording cut mid-event
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for index, (label, events) in enumerate(recordings["Test"]):
                archive.writestr(f"Test/{label}/{index:05d}.bin", encode(events)[:-2] if index == 5 else encode(events))
        (download / "test.zip").write_bytes(buffer.getvalue())
    elif damage == "truncate-zip":
        train_zip.write_bytes(train_zip.read_bytes()[:-200])
    elif damage == "missing":
        train_zip.unlink()
    # The damaged zips' own MD5s, so that the damage, not the MD5 check, is what the fetch must catch.
    md5s = {name: hashlib.md5(path.read_bytes()).hexdigest() for name in md5s if (path := download / name).is_file()}
    train_count = 31 if damage == "wrong-count" else 30
    monkeypatch.setattr(nmnist, "NMNIST_SPEC", nmnist.NmnistSpec(train_count, 10, md5s))
    with pytest.raises(DataError, match=message):
        nmnist.fetch_nmnist(tmp_path / "data", source=str(download))
    assert list((tmp_path / "data").iterdir()) == []


def test_a_second_fetch_has_nothing_to_do(fetched: tuple[Path, dict]) -> None:
    root, _ = fetched
    assert "nothing to do" in nmnist.fetch_nmnist(root)
    manifest = files.read_manifest(root / "NMNIST")
    assert manifest is not None and manifest["counts"] == {"train": 30, "test": 10}
    assert set(manifest["files"]) == {"train.zip", "test.zip"}  # kept: tonic's own check wants them


def test_tonic_md5s_are_the_default() -> None:
    from tonic.datasets import NMNIST

    assert dataclasses.asdict(nmnist.NMNIST_SPEC)["zip_md5"] is None
    assert nmnist._zip_md5(nmnist.NMNIST_SPEC) == {"train.zip": NMNIST.train_md5, "test.zip": NMNIST.test_md5}


def test_unfetched_recordings_load_with_a_note_and_bad_events_fail(tmp_path: Path) -> None:
    folder = tmp_path / "NMNIST"
    for split in nmnist.SPLITS:
        (folder / split / "7").mkdir(parents=True)
        (folder / split / "7" / "00001.bin").write_bytes(encode(KNOWN))
    data = nmnist.load_nmnist(tmp_path, steps=5)
    assert data.kind == "reduced" and data.train.labels.tolist() == [7]
    assert torch.equal(data.train.inputs[0], torch.from_numpy(expected_frames(KNOWN, 5)))
    assert any("not checked by `tssl fetch-data nmnist`" in note for note in data.notes)

    (folder / "Test" / "7" / "00001.bin").write_bytes(encode([(40, 2, 10, 1)]))  # x outside the 34x34 sensor
    with pytest.raises(DataError, match=r"00001\.bin cannot be binned"):
        nmnist.load_nmnist(tmp_path, steps=5)
