"""Provenance: the dirty flag says whether the code differs from the commit, not whether outputs were added."""

from __future__ import annotations

import subprocess

import pytest

from tssl.provenance import git_state


def _git(cwd, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "test@example.com")
    _git(tmp_path, "config", "user.name", "test")
    (tmp_path / "tssl").mkdir()
    (tmp_path / "tssl" / "code.py").write_text("x = 1\n")
    for folder in ("results", "reports"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "store.jsonl").write_text("{}\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_appending_to_a_tracked_results_store_or_report_is_not_dirty(checkout):
    (checkout / "results" / "store.jsonl").write_text("{}\n{}\n")
    (checkout / "reports" / "store.jsonl").write_text("changed\n")
    state = git_state(checkout)
    assert state["git_sha"] and state["git_dirty"] is False


def test_a_changed_source_file_is_dirty(checkout):
    (checkout / "tssl" / "code.py").write_text("x = 2\n")
    assert git_state(checkout)["git_dirty"] is True


def test_outside_a_checkout_both_are_null(tmp_path):
    assert git_state(tmp_path) == {"git_sha": None, "git_dirty": None}
