"""Provenance: the dirty flag says whether the code differs from the commit, not whether outputs were added; the
diff hash names the exact changes; the run environment carries threads, command line and determinism settings."""

from __future__ import annotations

import subprocess

import pytest

from tssl.harness.provenance import determinism, git_diff_sha256, git_state, run_environment


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


def test_a_clean_tree_has_no_diff_hash_and_outputs_do_not_make_one(checkout):
    assert git_diff_sha256(checkout) is None
    (checkout / "results" / "store.jsonl").write_text("{}\n{}\n")
    assert git_diff_sha256(checkout) is None


def test_the_diff_hash_names_the_changes(checkout):
    (checkout / "tssl" / "code.py").write_text("x = 2\n")
    first = git_diff_sha256(checkout)
    assert first is not None and first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert git_diff_sha256(checkout) == first  # the same changes, the same hash
    (checkout / "results" / "store.jsonl").write_text("more\n")
    assert git_diff_sha256(checkout) == first  # outputs are left out, as for the dirty flag
    _git(checkout, "add", "tssl/code.py")
    assert git_diff_sha256(checkout) == first  # staged or not, the tree differs from HEAD the same way
    (checkout / "tssl" / "code.py").write_text("x = 3\n")
    assert git_diff_sha256(checkout) not in (None, first)


def test_outside_a_checkout_there_is_no_diff_hash(tmp_path):
    assert git_diff_sha256(tmp_path) is None


def test_determinism_reports_the_settings_in_force(monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    settings = determinism()
    assert settings["cudnn_benchmark"] is True and settings["cudnn_deterministic"] is True
    assert settings["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert settings["matmul_allow_tf32"] is torch.backends.cuda.matmul.allow_tf32
    assert settings["cudnn_allow_tf32"] is torch.backends.cudnn.allow_tf32


def test_the_run_environment_adds_threads_command_line_diff_and_determinism(monkeypatch):
    import sys

    import torch

    monkeypatch.setattr(sys, "argv", ["tssl", "run", "digits", "--limit-batches", "2"])
    environment = run_environment(torch.device("cpu"))
    assert environment["torch_threads"] == torch.get_num_threads()
    assert environment["argv"] == ["tssl", "run", "digits", "--limit-batches", "2"]
    assert environment["git_diff_sha256"] == git_diff_sha256()
    assert environment["determinism"] == determinism()
    assert {"git_sha", "git_dirty", "packages", "hardware"} <= set(environment)
