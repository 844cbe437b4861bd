"""Files, hashes, manifests and atomic replacement, for the fetchers and loaders of every downloaded dataset.

A fetcher builds the dataset in a staging folder beside the target, writes a manifest (``tssl-manifest.json``)
with the source and the SHA-256 of every file, and only then renames it into place; a loader re-hashes the files
and checks them against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tssl.data.base import DataError

MANIFEST = "tssl-manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(folder: Path, names: Sequence[str]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names}


def fingerprint_hashes(hashes: Mapping[str, str]) -> str:
    """One SHA-256 over the per-file SHA-256s: names the exact files used without hashing tensors."""
    lines = "".join(f"{name} {hashes[name]}\n" for name in sorted(hashes))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"the manifest {path} cannot be read ({one_line(exc)}); run `tssl fetch-data` again") from exc


def write_manifest(folder: Path, dataset: str, source: str, files: Mapping[str, str], **extra: Any) -> None:
    manifest = {
        "schema": 1,
        "dataset": dataset,
        "source": source,
        "fetched_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {name: {"sha256": files[name]} for name in sorted(files)},
        **extra,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def manifest_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    return {name: entry["sha256"] for name, entry in manifest.get("files", {}).items()}


def check_against_manifest(name: str, folder: Path, hashes: Mapping[str, str]) -> dict[str, Any] | None:
    """The manifest, after checking that the files are still the ones fetched; None if there is none."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    recorded = manifest_hashes(manifest)
    changed = sorted(file for file in hashes if recorded.get(file) != hashes[file])
    if changed:
        raise DataError(
            f"{', '.join(changed)} in {folder} no longer match the SHA-256s recorded by `tssl fetch-data {name}`; "
            f"run `tssl fetch-data {name}` again"
        )
    return manifest


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (torchvision's download errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def staging_dir(root: Path, folder: str) -> Path:
    """A temporary folder beside the target (same file system, so the final rename is atomic)."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder}-fetch-", dir=root))


def replace_dir(new: Path, target: Path) -> None:
    """Move the fully checked ``new`` folder to ``target``, replacing whatever was there."""
    if not target.exists():
        new.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    target.rename(old / target.name)
    try:
        new.rename(target)
    except OSError:
        (old / target.name).rename(target)  # put the previous copy back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
