"""medcf.editing rows → prompts: attribute edits expressed on the clinical row."""

from __future__ import annotations

import pytest

from medcf.editing import counterfactual_rows, edit_prompts, healthy_prompts
from medcf.prompts import PromptTemplate

ROW = {"id": "p1", "age": 63, "sex": "M", "smoking": "never", "view": "PA", "nodule": 1, "no_finding": 0}


def test_edits_change_the_target_row_only() -> None:
    source, target = counterfactual_rows(ROW, ["nodule=absent", "age+=10", "smoking=current"])
    assert source == ROW
    assert (target["nodule"], target["age"], target["smoking"]) == (0, 73, "current")
    assert {k: v for k, v in target.items() if k not in ("nodule", "age", "smoking")} == {
        k: v for k, v in ROW.items() if k not in ("nodule", "age", "smoking")
    }


def test_an_unmentioned_finding_is_taken_to_be_the_opposite_in_the_source() -> None:
    source, target = counterfactual_rows({"age": 50}, ["pneumonia=absent"])
    assert (source["pneumonia"], target["pneumonia"]) == (1, 0)
    source, target = counterfactual_rows({"age": 50}, ["pleural_effusion=present"])
    assert (source["pleural_effusion"], target["pleural_effusion"]) == (0, 1)


@pytest.mark.parametrize("style", ["table", "simple", "diverse"])
def test_prompts_differ_in_the_edited_field_alone(style: str) -> None:
    template = PromptTemplate("chest X-ray", style=style)
    (source,), (target,) = edit_prompts(template, [ROW], ["smoking=current"])
    assert "never" in source and "current" in target
    assert source.replace("never", "current") == target
    (_,), (healthy,) = healthy_prompts(template, [ROW])
    assert "nodule" in source.lower() and "with a nodule" not in healthy.lower()


def test_bad_edits_name_the_fix() -> None:
    with pytest.raises(ValueError, match="no edit given"):
        counterfactual_rows(ROW, [])
    with pytest.raises(ValueError, match="age is unknown"):
        counterfactual_rows({"sex": "F"}, ["age+=20"])
