"""A one-task suite on the digits data (scikit-learn's, offline) that trains in seconds, for the tests that
run the runner, the CLI or a report end to end; each test names what it needs to differ."""

from __future__ import annotations

from collections.abc import Sequence


def digits_suite(
    name: str,
    *,
    task: str = "digits-tiny",
    architecture: str = "8C3-P2-16",
    epochs: int = 1,
    methods: Sequence[str] = ("tssl",),
    seeds: Sequence[int] = (0,),
    validation_fraction: float | None = None,
) -> str:
    """The suite file's YAML text: ``task`` on digits with padding 1, T = 5, batch 64, lr 0.005, kernel loss."""
    validation = "" if validation_fraction is None else f"    validation_fraction: {validation_fraction}\n"
    return f"""
name: {name}
tasks:
  - name: {task}
    dataset: digits
    architecture: {architecture}
    padding: 1
    steps: 5
    epochs: {epochs}
    batch_size: 64
    lr: 0.005
    loss: kernel
    methods: [{", ".join(methods)}]
    seeds: [{", ".join(str(seed) for seed in seeds)}]
{validation}"""
