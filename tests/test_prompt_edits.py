"""medcf.prompts.apply_edit: attribute edits on a clinical row for counterfactual prompts."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medcf.prompts import PromptTemplate, Vocabulary, apply_edit

ROW = {"id": "p1", "path": "/data/p1.png", "age": 63.0, "sex": "M", "smoking": "former", "view": "PA",
       "pleural_effusion": 1, "cardiomegaly": 0, "edema": math.nan, "site": "A"}  # fmt: skip


def test_finding_edits_return_a_new_row():
    edited = apply_edit(ROW, "pleural_effusion=absent")
    assert edited["pleural_effusion"] == 0 and ROW["pleural_effusion"] == 1
    assert {k: v for k, v in edited.items() if k != "pleural_effusion"}.keys() == {
        k for k in ROW if k != "pleural_effusion"
    }
    assert apply_edit(ROW, " cardiomegaly = present ")["cardiomegaly"] == 1
    assert apply_edit(ROW, "cardiomegaly=1")["cardiomegaly"] == 1
    assert apply_edit(ROW, "pneumothorax=0")["pneumothorax"] == 0  # a finding the row did not mention
    simple = PromptTemplate("cxr", style="simple")
    assert simple.render(apply_edit(ROW, "pleural_effusion=absent")) == (
        "A PA chest X-ray of a 63 year old male former smoker."
    )


def test_age_edits():
    assert apply_edit(ROW, "age+=20")["age"] == 83.0
    assert apply_edit(ROW, "age-=5")["age"] == 58.0
    assert apply_edit(ROW, "age=70")["age"] == 70.0
    assert apply_edit({**ROW, "age": "40"}, "age+=2.5")["age"] == 42.5
    older = PromptTemplate("cxr", style="simple").render(apply_edit(ROW, "age+=20"))
    assert older.startswith("A PA chest X-ray of an 83 year old male")


def test_patient_and_other_field_edits():
    assert apply_edit(ROW, "sex=F")["sex"] == "F"
    assert apply_edit(ROW, "sex=female")["sex"] == "F"
    assert apply_edit(ROW, "smoking=current")["smoking"] == "current"
    assert apply_edit(ROW, "smoking=Never")["smoking"] == "never"
    assert apply_edit(ROW, "view=ap")["view"] == "AP"
    assert apply_edit(ROW, "site=B")["site"] == "B"
    assert apply_edit(ROW, "diagnosis=IPF")["diagnosis"] == "IPF"


def test_pandas_rows_are_edited_into_dicts():
    series = pd.Series({"age": 50.0, "sex": "F", "pneumonia": 1.0})
    assert apply_edit(series, "pneumonia=absent") == {"age": 50.0, "sex": "F", "pneumonia": 0}


def test_normal_markers_and_pathologies_flip_together():
    assert apply_edit({"no_finding": 1}, "pneumonia=present") == {"no_finding": 0, "pneumonia": 1}
    assert apply_edit({"pneumonia": 1, "atelectasis": 0}, "no_finding=present") == {
        "pneumonia": 0, "atelectasis": 0, "no_finding": 1,
    }  # fmt: skip
    # CheXpert's "No Finding" allows support devices.
    assert apply_edit({"no_finding": 1}, "support_devices=1") == {"no_finding": 1, "support_devices": 1}


def test_brain_diagnosis_edits():
    brain = {"age": 72, "sex": "F", "diagnosis": "AD"}
    simple = PromptTemplate("brain MRI", style="simple")
    assert simple.render(apply_edit(brain, "diagnosis=CN")) == "A normal brain MRI of a 72 year old female."
    # The diagnosis code follows an edit of its finding: removed, the code is cleared (CN or MCI is not known).
    assert apply_edit(brain, "alzheimers_disease=absent") == {**brain, "diagnosis": "", "alzheimers_disease": 0}
    assert apply_edit(brain, "cognitively_normal=present")["diagnosis"] == "CN"
    # What `medcf synth brain` writes: the flag beside its code; adding AD recodes CN, a lesion leaves it.
    normal = {"age": 59, "sex": "F", "diagnosis": "CN", "lesion": 0, "alzheimers_disease": 0}
    assert apply_edit(normal, "alzheimers_disease=present") == {**normal, "diagnosis": "AD", "alzheimers_disease": 1}
    assert apply_edit(normal, "lesion=present") == {**normal, "lesion": 1}


def test_a_cognitive_diagnosis_does_not_rule_out_a_lesion():
    """ADNI's CN rules out dementia, not an incidental lesion: both may be present, and the scan is not "normal"."""
    simple = PromptTemplate("brain MRI", style="simple")
    row = {"age": 59, "sex": "F", "diagnosis": "CN", "lesion": 1}
    assert simple.render(row) == "A brain MRI of a 59 year old female with a lesion."
    assert simple.render({**row, "lesion": 0}) == "A normal brain MRI of a 59 year old female."
    with pytest.raises(ValueError, match=r"cognitively_normal=1 \(normal\) and alzheimers_disease=1, which"):
        simple.render({**row, "alzheimers_disease": 1})
    scoped = Vocabulary.from_mapping({"findings": {"no_finding": {"scope": ["pneumonia"]}}})
    assert apply_edit({"no_finding": 1}, "nodule=present", vocabulary=scoped) == {"no_finding": 1, "nodule": 1}
    with pytest.raises(ValueError, match=r"findings.no_finding.scope: 'pneumonia_x' is not a finding key"):
        Vocabulary.from_mapping({"findings": {"no_finding": {"scope": ["pneumonia_x"]}}})


def test_edits_with_an_extended_vocabulary():
    extension = {"findings": {"pulmonary_embolism": {"phrase": "pulmonary embolism"}}}
    vocabulary = Vocabulary.from_mapping(extension)
    assert apply_edit({}, "pulmonary_embolism=present", vocabulary=vocabulary) == {"pulmonary_embolism": 1}
    with pytest.raises(ValueError, match="unknown field 'pulmonary_embolism'"):
        apply_edit({}, "pulmonary_embolism=present")


@pytest.mark.parametrize(
    ("row", "edit", "message"),
    [(ROW, "pleural effusion", r"edit 'pleural effusion' not understood; write field=value, age\+=years"),
     (ROW, "age*=2", r"edit 'age\*=2' not understood"),
     (ROW, "sex=", r"edit 'sex=': empty value; give a value after '='"),
     (ROW, "pleural_effusion=maybe", r"finding value 'maybe' not understood; use present, absent, 1 or 0"),
     (ROW, "pleural_effusion=-1", r"finding value '-1' not understood"),
     (ROW, "age+=ten", r"edit 'age\+=ten': 'ten' is not a number of years"),
     (ROW, "age+=100", r"edit 'age\+=100' gives age 163, outside 0–130 years"),
     (ROW, "age-=70", r"edit 'age-=70' gives age -7, outside 0–130 years"),
     ({"sex": "M"}, "age+=20", r"the row's age is unknown; set it with age=<years>"),
     (ROW, "site+=1", r"edit 'site\+=1': only age supports \+= and -=; write site=<value>"),
     (ROW, "age=old", r"age value 'old' is not a number"),
     (ROW, "sex=X", r"sex value 'X' not understood; use M or F"),
     (ROW, "smoking=yes", r"edit 'smoking=yes': smoking must be never, former or current"),
     (ROW, "view=oblique", r"view value 'oblique' not understood"),
     (ROW, "path=/x.png", r"edit 'path=/x.png': 'path' identifies the image and cannot be edited"),
     (ROW, "weight=80", r"edit 'weight=80': unknown field 'weight'; use a finding key"),
     ({"cardiomegaly": 7}, "sex=F", r"edit 'sex=F' makes an invalid row: finding column 'cardiomegaly'")],
)  # fmt: skip
def test_bad_edits_raise_one_line_errors(row, edit, message):
    with pytest.raises(ValueError, match=message):
        apply_edit(row, edit)
