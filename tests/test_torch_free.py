"""The analysis side starts without torch: `tssl report`, `tssl check --write-reference`, `tssl check` and
`tssl check --paper` run in a process where importing torch fails, and load neither torch nor the engine.

The store is SYNTHETIC (tests/records.py): invented numbers, valid under the schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from records import seeds_of, suite_yaml, write_store

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: a finder first on sys.meta_path refuses torch and every torch.* module, as on a
# machine where torch is not installed (sys.modules["torch"] = None would break scipy, which probes for torch).
SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys


    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the torch-free test)", name=name)
            return None


    sys.meta_path.insert(0, NoTorch())
    from tssl.cli import main

    codes = {}
    for argv in (["report", "synth"], ["check", "synth", "--write-reference"], ["check", "synth"],
                 ["check", "synth", "--paper"], ["check", "synth", "--paper", "--json"]):
        codes[" ".join(argv)] = main(argv)
    engine = ("torch", "tssl.engine.neuron", "tssl.engine.network", "tssl.engine.layers", "tssl.engine.train",
              "tssl.methods", "tssl.measure", "tssl.harness.runner", "tssl.harness.provenance", "tssl_baselines",
              "snntorch", "spikingjelly")
    loaded = sorted(m for m in sys.modules if any(m == e or m.startswith(e + ".") for e in engine))
    print("RESULT " + json.dumps({"codes": codes, "loaded": loaded, "tssl": sys.modules["tssl"].__file__}))
    """
)


def test_report_and_check_run_without_torch(tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "synth.yaml").write_text(suite_yaml("synth", methods=("tssl", "snntorch")))
    write_store(tmp_path / "results" / "synth.jsonl",
                seeds_of([96.7, 96.8, 96.9]) + seeds_of([95.0, 95.4, 95.2], method="snntorch"))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["loaded"] == [], result["loaded"]
    assert result["codes"] == {"report synth": 0, "check synth --write-reference": 0, "check synth": 0,
                               "check synth --paper": 0, "check synth --paper --json": 0}, done.stdout
    # It imported this working tree, and did the work.
    assert Path(result["tssl"]).resolve() == ROOT / "tssl" / "__init__.py"
    assert "reproduced" in done.stdout
    assert (tmp_path / "reports" / "synth" / "index.md").exists()
    assert (tmp_path / "reports" / "synth" / "accuracy.png").exists()
    assert (tmp_path / "results" / "reference" / "synth.json").exists()


def test_the_refusing_finder_really_refuses_torch(tmp_path: Path) -> None:
    """The test above can only fail if the finder works: with it, importing torch fails."""
    probe = SCRIPT.split("from tssl.cli import main", 1)[0] + textwrap.dedent(
        """
        try:
            import torch  # noqa: F401
        except ModuleNotFoundError as error:
            print("REFUSED", error)
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "REFUSED No module named 'torch'" in done.stdout, done.stderr
