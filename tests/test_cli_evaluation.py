"""The evaluation commands' one-line errors: bad input fails fast, names the file and the fix, writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "nowhere", "--data", ".", "--out", "o"], "nowhere: not found; check --model"),
        (["evaluate", "--model", ".", "--data", ".", "--out", "o"], ".: no model_index.json"),
        (["evaluate", "--model", ".", "--data", "gone", "--out", "o"], "gone: not found; check --data"),
        (["benchmark", "--suite", "mnist", "--out", "o", "--work", "w"], "suite 'mnist' is unknown; choose one of"),
        (["benchmark", "--only", "LoRA", "--out", "o", "--work", "w"], "no earlier results to add rows to"),
        (["benchmark", "--only", "GAN", "--out", "o", "--work", "w"], "--only 'GAN' names no run of cxr-synth"),
        (["benchmark", "--suite", "ct-synth", "--only", "GAN", "--out", "o", "--work", "w"], "run ct-synth whole"),
    ],
)  # fmt: skip
def test_evaluation_errors_are_one_line(tmp_path: Path, args: list[str], message: str, medcf_main) -> None:
    result = medcf_main(*args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()
