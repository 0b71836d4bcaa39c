"""What the app offers for each anatomy: its demo patients' cohort, the clinical fields shown, the edits in the
menu and the inpainting prompt. The model's own prompt template (its modality) picks the anatomy."""

from __future__ import annotations

from dataclasses import dataclass

from medcf.pretrained import PretrainedModel
from medcf.prompts.vocabulary import DEFAULT_VOCABULARY


@dataclass(frozen=True)
class AppAnatomy:
    kind: str  # the semi-synthetic cohort of the demo patients (medcf.data.synthetic)
    title: str
    row_fields: tuple[str, ...]  # the demo patients' clinical fields shown in the row box
    edits: dict[str, str]  # menu label → --edit
    default_edit: str
    inpaint_prompt: str


_AGE_AND_SEX = {"age +20 years": "age+=20", "age −20 years": "age-=20", "sex → female": "sex=F", "sex → male": "sex=M"}
CHEST = AppAnatomy(
    "cxr",
    "counterfactual chest X-rays",
    ("age", "sex", "smoking", "view", "nodule", "consolidation", "pleural_effusion", "cardiomegaly"),
    {
        "remove nodule": "nodule=absent",
        "remove consolidation": "consolidation=absent",
        "remove pleural effusion": "pleural_effusion=absent",
        "remove cardiomegaly": "cardiomegaly=absent",
        "add pleural effusion": "pleural_effusion=present",
        **_AGE_AND_SEX,
        "smoking → current": "smoking=current",
        "smoking → never": "smoking=never",
    },
    "remove pleural effusion",
    "A PA chest X-ray with consolidation.",
)
BRAIN = AppAnatomy(
    "brain",
    "counterfactual brain MRI",
    ("age", "sex", "diagnosis", "lesion", "alzheimers_disease"),
    {
        "remove lesion": "lesion=absent",
        "add lesion": "lesion=present",
        "remove Alzheimer's disease": "alzheimers_disease=absent",
        "add Alzheimer's disease": "alzheimers_disease=present",
        **_AGE_AND_SEX,
    },
    "age +20 years",
    "A brain MRI with a lesion.",
)
ANATOMIES = {"chest X-ray": CHEST, "brain MRI": BRAIN}


def anatomy_of(model: PretrainedModel) -> AppAnatomy:
    """The anatomy of the model's modality; a model of another modality gets the chest menu's generic edits."""
    try:
        name = DEFAULT_VOCABULARY.modality(model.template.modality).name
    except ValueError:
        return CHEST
    return ANATOMIES.get(name, CHEST)
