"""Methods from outside packages (issue 14): an installed distribution's entry point in the group
``tssl.methods`` is a method like the built-in ones; a clash, a factory that raises and an incomplete method are
one clear error each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tiny_suites import digits_suite

from tssl.cli import main
from tssl.methods import MethodPluginError, get_method, method_names, plugin_of
from tssl.methods.registry import forget_plugins

ROOT = Path(__file__).resolve().parents[1]

GOOD_MODULE = '''
from dataclasses import dataclass

from tssl.methods import ModelConfig, build_native


@dataclass(frozen=True)
class WideSurrogate:
    """The native engine trained with the surrogate rule, under a name of its own: a plugin's whole method."""

    name: str = "{name}"

    def build(self, config: ModelConfig):
        return build_native(config, "surrogate")

    def reset(self, model) -> None:
        """Stateless between batches."""

    def provenance(self, model) -> dict:
        return {{"engine": "my-tssl-method", "rule": "surrogate"}}


def make_method():
    return WideSurrogate()


def broken():
    raise RuntimeError("cannot find my CUDA extension")


class Incomplete:
    name = "{name}"


def incomplete():
    return Incomplete()
'''


def fake_distribution(site: Path, distribution: str, entry_points: dict[str, str], module: str = "my_plugin",
                      name: str = "wide-surrogate") -> None:
    """An installed distribution as pip leaves it (a module and a .dist-info with its entry points), without pip."""
    (site / f"{module}.py").write_text(GOOD_MODULE.format(name=name))
    info = site / f"{distribution.replace('-', '_')}-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.3.1\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tssl.methods]\n{lines}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    forget_plugins()
    yield folder
    forget_plugins()


def test_an_installed_plugin_is_a_method_like_the_built_in_ones(site):
    fake_distribution(site, "my-tssl-method", {"wide-surrogate": "my_plugin:make_method"})
    forget_plugins()
    assert "wide-surrogate" in method_names() and "tssl" in method_names()
    method = get_method("wide-surrogate")
    assert method.name == "wide-surrogate"
    assert plugin_of("wide-surrogate").provenance() == {
        "distribution": "my-tssl-method", "version": "0.3.1", "entry_point": "my_plugin:make_method"}
    assert plugin_of("tssl") is None


def test_a_plugin_named_like_a_built_in_method_is_refused(site):
    fake_distribution(site, "evil-method", {"tssl": "my_plugin:make_method"}, name="tssl")
    forget_plugins()
    with pytest.raises(MethodPluginError, match=r"method 'tssl' from evil-method 0\.3\.1 .* clashes with the built-in"):
        method_names()


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("my_plugin:broken", r"its factory raised RuntimeError: cannot find my CUDA extension"),
        ("my_plugin:incomplete", r"returned a Incomplete without build, reset, provenance"),
        ("my_plugin:no_such_factory", r"its factory raised AttributeError"),
    ],
)
def test_a_broken_plugin_is_one_clear_error(site, factory, message):
    fake_distribution(site, "my-tssl-method", {"wide-surrogate": factory})
    forget_plugins()
    with pytest.raises(MethodPluginError, match=message):
        get_method("wide-surrogate")


def test_a_broken_plugin_stops_tssl_run_before_anything_trains(site, tmp_path, monkeypatch, capsys):
    fake_distribution(site, "my-tssl-method", {"wide-surrogate": "my_plugin:broken"})
    forget_plugins()
    suite = tmp_path / "plugged.yaml"
    suite.write_text(digits_suite("plugged", methods=("wide-surrogate",)))
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(suite), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "cannot find my CUDA extension" in error and "Traceback" not in error
    assert not (tmp_path / "results" / "plugged.jsonl").exists()


def test_a_pip_installed_plugin_runs_the_digits_suite(tmp_path):
    """Build a complete plugin package, install it with pip, run a digits suite with it, and report it."""
    project = tmp_path / "my-tssl-method"
    (project / "my_tssl_method").mkdir(parents=True)
    (project / "my_tssl_method" / "__init__.py").write_text(GOOD_MODULE.format(name="wide-surrogate"))
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "my-tssl-method"
        version = "0.1.0"

        [project.entry-points."tssl.methods"]
        wide-surrogate = "my_tssl_method:make_method"

        [tool.setuptools]
        packages = ["my_tssl_method"]
    """))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(project)], check=True, timeout=300)
    suite = tmp_path / "plugged.yaml"
    suite.write_text(digits_suite("plugged", methods=("tssl", "wide-surrogate")))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}

    def tssl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tssl", *args], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=600)

    ran = tssl("run", str(suite), "--device", "cpu")
    assert ran.returncode == 0, ran.stderr
    records = [json.loads(line) for line in (tmp_path / "results" / "plugged.jsonl").read_text().splitlines()]
    by_method = {record["method"]: record for record in records}
    assert set(by_method) == {"tssl", "wide-surrogate"} and all(r["status"] == "ok" for r in records)
    assert by_method["wide-surrogate"]["provenance"]["implementation"]["plugin"] == {
        "distribution": "my-tssl-method", "version": "0.1.0", "entry_point": "my_tssl_method:make_method"}
    assert "plugin" not in by_method["tssl"]["provenance"]["implementation"]
    reported = tssl("report", str(suite))
    assert reported.returncode == 0, reported.stderr
    index = (tmp_path / "reports" / "plugged" / "index.md").read_text()
    assert "`wide-surrogate`" in index and "my-tssl-method" in index
