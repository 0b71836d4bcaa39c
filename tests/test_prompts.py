"""medcf.prompts: table / simple / diverse prompts, healthy counterparts, missing values, the vocabulary."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import medcf.prompts
from medcf.prompts import DEFAULT_VOCABULARY, FINDINGS, NULL_PROMPT, PromptTemplate, Vocabulary, is_missing

EXAMPLE_YAML = Path(__file__).parents[1] / "configs" / "vocabulary.example.yaml"
CXR_ROW = {
    "id": "p1-img1", "patient_id": "p1", "path": "/data/p1.png", "report": "Right effusion.",
    "split": "train", "age": 63.0, "sex": "M", "smoking": "former", "view": "PA",
    "pleural_effusion": 1, "cardiomegaly": 0, "pneumothorax": None, "edema": float("nan"),
    "pack_years": 20.0, "site_code": "A",
}  # fmt: skip
NORMAL_CXR = ("Clear lungs, no focal consolidation, pleural effusion or pneumothorax; "
              "normal cardiomediastinal silhouette; sharp costophrenic angles.")  # fmt: skip


def test_table_style_follows_dgm_vlc():
    template = PromptTemplate("chest X-ray")
    assert template.render(CXR_ROW) == (
        "Chest X-ray: Patient age: 63. Gender: Male. Smoking status: former smoker. View: PA. "
        "No cardiomegaly. Pleural effusion. pack years is 20, site code is A."
    )
    assert PromptTemplate("cxr", patient_info=False).render(CXR_ROW) == (
        "Chest X-ray: View: PA. No cardiomegaly. Pleural effusion. pack years is 20, site code is A."
    )
    assert template.render({"age": 63.46, "pneumothorax": None}) == "Chest X-ray: Patient age: 63.5."
    assert template.render({"age": 0.04}) == "Chest X-ray: Patient age: 0.04."  # infants do not round to 0
    assert template.render({}) == "Chest X-ray."


def test_pandas_rows_with_na_values_render_like_dicts():
    frame = pd.DataFrame({
        "age": [80.0, np.nan], "sex": ["female", None],
        "smoking": pd.array(["current", pd.NA], dtype="string"),
        "cardiomegaly": [1.0, np.nan], "lung_opacity": [True, pd.NA], "support_devices": [1, 0],
        "note": ["", pd.NaT],
    }).astype({"lung_opacity": "object"})  # fmt: skip
    table, simple = PromptTemplate("cxr"), PromptTemplate("cxr", style="simple")
    first, second = frame.iloc[0], frame.iloc[1]
    assert table.render(first) == (
        "Chest X-ray: Patient age: 80. Gender: Female. Smoking status: current smoker. "
        "Cardiomegaly. Lung opacity. Support devices present."
    )
    assert simple.render(first) == (
        "A chest X-ray of an 80 year old female current smoker with cardiomegaly, lung opacity and support devices."
    )
    assert table.render(second) == "Chest X-ray: No support devices."
    assert simple.render(second) == "A chest X-ray."


def test_simple_style_is_one_sentence_per_class():
    simple = PromptTemplate("chest X-ray", style="simple")
    expected = "A PA chest X-ray of a 63 year old male former smoker with pleural effusion."
    assert simple.render(CXR_ROW) == expected
    assert PromptTemplate("cxr", style="simple", patient_info=False).render(CXR_ROW) == (
        "A PA chest X-ray with pleural effusion."
    )
    normal = {"no_finding": 1, "support_devices": 1, "age": 18, "view": "AP"}
    assert simple.render(normal) == "A normal AP chest X-ray of an 18 year old patient with support devices."
    assert simple.render({"no_finding": 1}) == "A normal chest X-ray."
    assert simple.render({"mass": 1, "smoking": "yes"}) == "A chest X-ray of a smoker with a mass."


def test_brain_rows_map_diagnosis_codes_to_findings():
    brain = {"age": 72, "sex": "F", "diagnosis": "AD", "scanner": "3T"}
    assert PromptTemplate("brain MRI").render(brain) == (
        "Brain MRI: Patient age: 72. Gender: Female. Alzheimer's disease. scanner is 3T."
    )
    simple = PromptTemplate("brain_mri", style="simple")
    assert simple.render(brain) == "A brain MRI of a 72 year old female with Alzheimer's disease."
    assert simple.render({"diagnosis": "cn", "sex": "M"}) == "A normal brain MRI of a male patient."
    assert PromptTemplate("chest CT").render({"diagnosis": "IPF"}) == "Chest CT: Diagnosis: IPF."


@pytest.mark.parametrize(
    ("value", "words"),
    [("never", "never smoker"), ("Former", "former smoker"), ("CURRENT", "current smoker"), ("yes", "smoker"),
     (True, "smoker"), (1, "smoker"), (1.0, "smoker"), ("no", "non-smoker"), (False, "non-smoker"),
     (0, "non-smoker")],
)  # fmt: skip
def test_smoking_values(value, words):
    assert PromptTemplate("cxr").render({"smoking": value}) == f"Chest X-ray: Smoking status: {words}."


@pytest.mark.parametrize(("value", "sex"), [("M", "Male"), ("m", "Male"), ("MALE", "Male"), ("f", "Female"),
                                            ("Female", "Female")])  # fmt: skip
def test_sex_values(value, sex):
    assert PromptTemplate("cxr").render({"sex": value}) == f"Chest X-ray: Gender: {sex}."


@pytest.mark.parametrize(
    ("row", "message"),
    [({"age": "sixty"}, r"age value 'sixty' is not a number; give the age in years"),
     ({"age": 200}, "age value '200' is outside 0–130 years"),
     ({"age": True}, "age value 'True' is not a number"),
     ({"sex": "X"}, r"sex value 'X' not understood; use M or F"),
     ({"sex": 1}, r"sex value '1' not understood; use M or F"),
     ({"smoking": "sometimes"}, r"smoking value 'sometimes' not understood; use never, former or current"),
     ({"smoking": 2}, r"smoking value '2' not understood"),
     ({"view": "oblique"}, r"view value 'oblique' not understood; use PA, AP or lateral"),
     ({"pleural_effusion": -1}, r"finding column 'pleural_effusion' value '-1' .* uncertain labels \(-1\)"),
     ({"cardiomegaly": "maybe"}, r"finding column 'cardiomegaly' value 'maybe' not understood"),
     ({"diagnosis": "AD", "alzheimers_disease": 0}, r"diagnosis 'AD' means alzheimers_disease=1 but the row"),
     ({"no_finding": 1, "pneumonia": 1}, r"row marks no_finding=1 \(normal\) and pneumonia=1")],
)  # fmt: skip
def test_bad_values_raise_one_line_errors(row, message):
    for style in ("table", "simple", "diverse"):
        with pytest.raises(ValueError, match=message):
            PromptTemplate("cxr", style=style).render(row)


def test_bad_template_arguments():
    with pytest.raises(ValueError, match=r"prompt style 'fancy' unknown; use one of table, simple, diverse"):
        PromptTemplate("cxr", style="fancy")
    with pytest.raises(ValueError, match=r"modality 'knee' unknown; use one of cxr \(chest X-ray\), brain"):
        PromptTemplate("knee")


def test_identity_columns_and_missing_values_never_reach_the_prompt():
    for style in ("table", "simple", "diverse"):
        for prompt in (PromptTemplate("cxr", style=style).render(CXR_ROW, seed=3),
                       PromptTemplate("cxr", style=style).healthy(CXR_ROW, seed=3)):  # fmt: skip
            assert not re.search(r"p1|/data|train|Right effusion|\bnan\b|None", prompt), prompt


def test_diverse_varies_with_seed_and_keeps_content():
    diverse = PromptTemplate("cxr", style="diverse")
    prompts = {diverse.render(CXR_ROW, seed=seed) for seed in range(50)}
    assert len(prompts) >= 20
    wordings = DEFAULT_VOCABULARY.findings["pleural_effusion"].paraphrases
    assert all(any(w in p.lower() for w in wordings) and "63" in p and "PA" in p for p in prompts)
    assert {w for w in wordings if any(w in p.lower() for p in prompts)} == set(wordings)
    assert diverse.render(CXR_ROW, seed=7) == diverse.render(dict(reversed(CXR_ROW.items())), seed=7)
    anonymous = PromptTemplate("cxr", style="diverse", patient_info=False)
    assert not any(re.search(r"63|male|smoker|patient", anonymous.render(CXR_ROW, seed=s)) for s in range(50))
    normal = {diverse.render({"no_finding": 1}, seed=seed) for seed in range(50)}
    descriptions = DEFAULT_VOCABULARY.modalities["cxr"].normal
    described = {d for d in descriptions if any(d in p.lower() for p in normal)}
    assert len(described) >= 4


SCRIPT = (
    "from medcf.prompts import PromptTemplate\n"
    "row = {'age': 55, 'sex': 'F', 'smoking': 'current', 'pneumothorax': 1, 'atrophy': 0, 'x': 'y'}\n"
    "t = PromptTemplate('cxr', style='diverse')\n"
    "print('|'.join(t.render(row, seed=s) + '#' + t.healthy(row, seed=s) for s in range(8)))\n"
)


def test_diverse_is_the_same_in_every_process():
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    namespace: dict[str, object] = {}
    exec(compile(SCRIPT.replace("print(", "result = ("), "<script>", "exec"), namespace)
    assert outputs[0] == outputs[1] == namespace["result"]
    assert len(set(outputs[0].split("|"))) > 1


def test_healthy_prompts_drop_every_finding_and_describe_normal_anatomy():
    row = {**CXR_ROW, "pneumonia": 1, "cardiomegaly": 1}
    assert PromptTemplate("cxr").healthy(row) == (
        "Chest X-ray: Patient age: 63. Gender: Male. Smoking status: former smoker. View: PA. "
        "No cardiomegaly. No pulmonary edema. No pneumonia. No pneumothorax. No pleural effusion. "
        f"{NORMAL_CXR} pack years is 20, site code is A."
    )
    assert PromptTemplate("cxr", style="simple").healthy(row) == (
        f"A normal PA chest X-ray of a 63 year old male former smoker. {NORMAL_CXR}"
    )
    descriptions = DEFAULT_VOCABULARY.modalities["cxr"].normal
    for seed in range(30):
        prompt = PromptTemplate("cxr", style="diverse").healthy(row, seed=seed).lower()
        assert re.search(r"normal|unremarkable", prompt) and "63" in prompt
        for description in descriptions:
            prompt = prompt.replace(description.lower(), "")
        for key in ("pleural_effusion", "pneumonia", "cardiomegaly"):
            assert not any(w.lower() in prompt for w in DEFAULT_VOCABULARY.findings[key].paraphrases), prompt
    brain = PromptTemplate("brain MRI", style="simple").healthy({"age": 72, "sex": "F", "diagnosis": "AD"})
    assert brain == ("A normal brain MRI of a 72 year old female. No mass lesion; ventricles and sulci "
                     "normal for age; no white-matter hyperintensities.")  # fmt: skip


def test_vocabulary_covers_the_canonical_findings_and_modalities():
    contract = """no_finding enlarged_cardiomediastinum cardiomegaly lung_opacity lung_lesion edema
        consolidation pneumonia atelectasis pneumothorax pleural_effusion pleural_other fracture
        support_devices infiltration mass nodule emphysema fibrosis pleural_thickening hernia covid19
        viral_pneumonia alzheimers_disease mild_cognitive_impairment lesion atrophy"""  # the contract list
    assert set(contract.split()) <= set(FINDINGS)
    assert FINDINGS["enlarged_cardiomediastinum"] == "enlarged cardiomediastinum" and NULL_PROMPT == ""
    assert DEFAULT_VOCABULARY.findings["support_devices"].negative == "no support devices"
    for modality in DEFAULT_VOCABULARY.modalities.values():
        assert len(modality.normal) >= 4 and len(modality.image_names) >= 4


def test_vocabulary_extension_from_the_example_yaml():
    vocabulary = Vocabulary.from_mapping(yaml.safe_load(EXAMPLE_YAML.read_text()))
    table = PromptTemplate("chest CT", vocabulary=vocabulary)
    assert table.render({"pulmonary_embolism": 0, "study_id": "S9"}) == "Chest CT: No pulmonary embolism."
    assert table.render({"diagnosis": "pe"}) == "Chest CT: Pulmonary embolism."
    diverse = PromptTemplate("cxr", style="diverse", vocabulary=vocabulary)
    assert any("meniscus sign" in diverse.render({"pleural_effusion": 1}, seed=s) for s in range(60))
    knee = PromptTemplate("Knee MRI", style="simple", vocabulary=vocabulary)
    assert knee.healthy({"age": 54, "sex": "F"}) == (
        "A normal knee MRI of a 54 year old female. Intact menisci and cruciate ligaments; "
        "no joint effusion; normal articular cartilage."
    )
    assert "pulmonary_embolism" not in DEFAULT_VOCABULARY.findings  # the default is never mutated


@pytest.mark.parametrize(
    ("mapping", "message"),
    [([1, 2], "vocabulary: expected a mapping with sections findings, modalities"),
     ({"finding": {}}, "vocabulary: unknown section 'finding'; use findings, modalities"),
     ({"findings": {"PE": {"phrase": "x"}}}, "vocabulary findings: key 'PE' must be snake_case"),
     ({"findings": {"age": {"phrase": "x"}}}, "vocabulary findings.age: 'age' is a patient or identity"),
     ({"findings": {"pe": {"negative": "no pe"}}}, "vocabulary findings.pe: a new finding needs 'phrase'"),
     ({"findings": {"pe": {"phrase": "pe", "color": "red"}}}, "vocabulary findings.pe: unknown key 'color'"),
     ({"findings": {"mass": {"normal": "yes"}}}, r"vocabulary findings.mass.normal: expected true or false"),
     ({"findings": {"mass": {"normal": True}}}, "a normal marker cannot be a pathology"),
     ({"findings": {"mass": {"paraphrases": "a lump"}}}, "vocabulary findings.mass: expected a non-empty"),
     ({"modalities": {"knee": {"name": "knee MRI"}}}, "modalities.knee: a new modality needs normal, prefix"),
     ({"modalities": {"ct2": {"name": "CT", "prefix": "CT:", "normal": ["x"], "aliases": ["lung ct"]}}},
      "vocabulary modalities: 'lung ct' names both chest_ct and ct2; remove one alias"),
     ({"diagnoses": {"PE": "pulmonary_embolism"}}, "diagnoses.PE: 'pulmonary_embolism' is not a finding")],
)  # fmt: skip
def test_vocabulary_mapping_errors(mapping, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_mapping(mapping)


def test_is_missing():
    missing = (None, float("nan"), np.nan, np.float64("nan"), pd.NA, pd.NaT, "", "  ")
    assert all(is_missing(value) for value in missing)
    assert not any(is_missing(v) for v in (0, 0.0, False, "0", "no", "nan?"))


_MISSING = st.sampled_from([None, float("nan"), np.nan, pd.NA, pd.NaT, "", " "])
_CHEST = [key for key in FINDINGS if key not in {"no_finding", "cognitively_normal", "alzheimers_disease",
                                                 "mild_cognitive_impairment"}]  # fmt: skip
_ROWS = st.fixed_dictionaries(
    {},
    optional={
        "age": st.one_of(_MISSING, st.integers(0, 130), st.floats(0, 130), st.just("63")),
        "sex": st.one_of(_MISSING, st.sampled_from(["M", "F", "male", "Female", "m"])),
        "smoking": st.one_of(_MISSING, st.sampled_from(["never", "former", "current", "yes", "no", 1, True])),
        "view": st.one_of(_MISSING, st.sampled_from(["PA", "AP", "lateral", "ll"])),
        "diagnosis": st.one_of(_MISSING, st.sampled_from(["AD", "MCI", "IPF"])),
        "no_finding": st.one_of(_MISSING, st.sampled_from([0, 0.0])),
        "site": st.one_of(_MISSING, st.text("abc-xyz", min_size=1), st.floats(-5, 5)),
        **{key: st.one_of(_MISSING, st.sampled_from([0, 1, 0.0, 1.0, True, False])) for key in _CHEST},
    },
)


@settings(max_examples=150, deadline=None)
@given(row=_ROWS, seed=st.integers(0, 2**32), style=st.sampled_from(["table", "simple", "diverse"]),
       modality=st.sampled_from(["cxr", "brain_mri", "chest_ct"]), patient_info=st.booleans())  # fmt: skip
def test_any_row_of_canonical_keys_renders_without_missing_markers(row, seed, style, modality, patient_info):
    template = PromptTemplate(modality, style=style, patient_info=patient_info)
    for prompt in (template.render(row, seed=seed), template.healthy(row, seed=seed)):
        assert prompt.endswith(".") and "  " not in prompt
        assert not re.search(r"\bnan\b|\bNone\b|<NA>|NaT", prompt, flags=re.IGNORECASE), prompt


def test_prompts_package_imports_only_the_standard_library():
    package = Path(medcf.prompts.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue  # relative imports stay inside medcf.prompts
            offenders += [f"{path.name}: {name}" for name in names
                          if name.split(".")[0] not in sys.stdlib_module_names
                          and not name.startswith("medcf.prompts")]  # fmt: skip
    assert not offenders, offenders


def test_a_template_round_trips_through_a_model_folder(tmp_path) -> None:
    template = PromptTemplate("brain MRI", style="diverse", patient_info=False)
    template.save_pretrained(tmp_path)
    loaded = PromptTemplate.from_pretrained(tmp_path)
    assert repr(loaded) == repr(template) and not list(tmp_path.glob("*.partial"))
    assert loaded.for_editing().style == "simple" and loaded.for_editing().patient_info is False
    assert repr(PromptTemplate.from_pretrained(tmp_path / "none")) == repr(PromptTemplate("chest X-ray"))
    (tmp_path / "prompt_template.json").write_text("{")
    with pytest.raises(ValueError, match="prompt_template.json: unreadable"):
        PromptTemplate.from_pretrained(tmp_path)
