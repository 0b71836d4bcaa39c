"""Numeric options are range-checked in one pass before any work: one line naming the option and its range."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medcf.cli.checks import RULES, check_options
from test_cli import medcf


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": -5}, "--steps -5: must be ≥ 1"),
        ({"steps": 0}, "--steps 0: must be ≥ 1"),
        ({"batch_size": 0}, "--batch-size 0: must be ≥ 1"),
        ({"seed": 2**64}, "--seed 18446744073709551616: must be in 0..9223372036854775807"),
        ({"seed": -1}, "--seed -1: must be in 0.."),
        ({"guidance": math.nan}, "--guidance nan: must be a finite number"),
        ({"guidance": -math.inf}, "--guidance -inf: must be a finite number"),
        ({"drift": [0.1, math.inf, 0, 0]}, "--drift inf: must be a finite number"),
        ({"strength": 0.0}, "--strength 0.0: must be in (0, 1]"),
        ({"strength": 1.5}, "--strength 1.5: must be in (0, 1]"),
        ({"sigma": -1.0}, "--sigma -1.0: must be a finite number ≥ 0"),
        ({"sigma": math.nan}, "--sigma nan: must be a finite number ≥ 0"),
    ],
)
def test_out_of_range_options_are_named_with_their_range(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_options(**values)


def test_in_range_options_pass() -> None:
    check_options(steps=1, n=10_000_000, seed=2**63 - 1, guidance=-3.0, drift=[0.0, 0.1], strength=1.0, sigma=0.0)
    assert {"steps", "seed", "guidance", "drift", "strength", "sigma", "batch_size"} <= set(RULES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--prompt", "x", "--steps", "0"], "--steps 0: must be ≥ 1"),
        (["effect", "--attribute", "smoking", "--seed", str(2**64)], "--seed 18446744073709551616: must be in"),
    ],
)
def test_the_commands_refuse_before_any_work(tmp_path: Path, args: list[str], message: str, medcf_main) -> None:
    result = medcf_main(*args[:1], "--model", "absent", *args[1:], "--out", tmp_path / "o", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_control_characters_in_names_reach_the_terminal_escaped(tmp_path: Path) -> None:
    from medcf.cli.app import printable

    assert printable("a\x1b[31mred\x07 \u202etxt.dcm\nnext\tδ") == "a\\x1b[31mred\\x07 \\u202etxt.dcm\nnext\tδ"
    result = medcf("info", "scan\x1b[2J.dcm", cwd=tmp_path)  # a file name that would clear the screen
    assert result.returncode == 1 and "scan\\x1b[2J.dcm" in result.stderr and "\x1b" not in result.stderr
