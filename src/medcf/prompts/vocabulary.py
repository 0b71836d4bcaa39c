"""The curated radiology vocabulary: finding wordings, modality names and normal-appearance descriptions.

Finding keys follow the canonical row (CheXpert 14, NIH ChestX-ray14, COVID-19 Radiography, brain MRI).
Paraphrases feed the "diverse" prompt style of Latent Drifting (Yeganeh et al., CVPR 2025), whose
diverse + patient-info prompts gave the best FID. Normal descriptions are the healthy-counterpart
prompts "from medical science and applied radiology" of Siddiqui et al. (Sci. Rep. 2025, VALD-MD),
written in the wording of a normal radiology report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Finding:
    """Radiology wording of one finding key."""

    phrase: str  # the label's wording: "pleural effusion"; FINDINGS maps keys to it
    negative: str  # table-style absent statement: "no pleural effusion"
    statement: str  # table-style present statement: "support devices present"
    paraphrases: tuple[str, ...]  # in-sentence noun phrases ("a mass"); "simple" uses the first
    normal: bool = False  # study-level normal marker (CheXpert "No Finding"): 1 = normal, 0 says nothing
    pathology: bool = True  # False for support devices, which CheXpert's "No Finding" allows
    # A normal marker's scope: the findings it rules out; () = every pathology (study-level, CheXpert's "No
    # Finding"). ADNI's CN is a cognitive diagnosis: it rules out dementia, not an incidental lesion on the scan.
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Modality:
    """How prompts name one imaging modality and describe its normal appearance."""

    name: str  # "chest X-ray"
    prefix: str  # table-style opener, as DGM-VLC's "Lung CT scan :"
    image_names: tuple[str, ...]  # the name comes first ("simple"); all are sampled by "diverse"
    normal: tuple[str, ...]  # normal-appearance descriptions; the first is used by "table" and "simple"
    aliases: tuple[str, ...] = ()  # other spellings accepted by PromptTemplate(modality=...)


@dataclass(frozen=True)
class Vocabulary:
    """Findings, modalities, diagnosis codes and identity columns used to render prompts."""

    findings: Mapping[str, Finding]
    modalities: Mapping[str, Modality]
    diagnoses: Mapping[str, str]  # upper-case diagnosis code → finding key
    identity_fields: frozenset[str]  # columns never rendered (ids, paths, splits, free-text reports)

    def __post_init__(self) -> None:
        for code, key in self.diagnoses.items():
            if key not in self.findings:
                raise ValueError(f"vocabulary diagnoses.{code}: '{key}' is not a finding key; add the finding")
        for key, finding in self.findings.items():
            if unknown := [name for name in finding.scope if name not in self.findings]:
                raise ValueError(f"vocabulary findings.{key}.scope: '{unknown[0]}' is not a finding key")
        owners: dict[str, str] = {}
        for key, modality in self.modalities.items():
            for spelling in spellings(key, modality):
                if owners.setdefault(spelling, key) != key:
                    raise ValueError(
                        f"vocabulary modalities: '{spelling}' names both {owners[spelling]} and {key}; "
                        "remove one alias"
                    )

    def contradicts(self, key: str, other: str) -> bool:
        """Whether findings `key` and `other` cannot both be present: a normal marker and a pathology it rules out."""
        for marker, finding in ((key, other), (other, key)):
            normal, item = self.findings[marker], self.findings[finding]
            if normal.normal and item.pathology and (not normal.scope or finding in normal.scope):
                return True
        return False

    def modality(self, name: str) -> Modality:
        """Look a modality up by key, name or alias, case-insensitively."""
        for key, modality in self.modalities.items():
            if normalize_spelling(name) in spellings(key, modality):
                return modality
        known = ", ".join(f"{key} ({modality.name})" for key, modality in self.modalities.items())
        raise ValueError(f"modality '{name}' unknown; use one of {known} or add it to the vocabulary")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], *, base: Vocabulary | None = None) -> Vocabulary:
        """Extend or override `base` (default DEFAULT_VOCABULARY) with a mapping parsed from YAML.

        Sections: findings and modalities (key → fields; `extra_<list field>` appends to a list),
        diagnoses (code → finding key), identity_fields (list). See configs/vocabulary.example.yaml.
        """
        from .vocabulary_mapping import extend_vocabulary  # it builds Finding/Modality, so it imports us

        return extend_vocabulary(DEFAULT_VOCABULARY if base is None else base, mapping)


def normalize_spelling(spelling: str) -> str:
    """Lower case, underscores as spaces, single spaces: how modality names are compared."""
    return " ".join(spelling.replace("_", " ").lower().split())


def spellings(key: str, modality: Modality) -> set[str]:
    """Every accepted spelling of a modality."""
    return {
        normalize_spelling(key),
        normalize_spelling(modality.name),
        *map(normalize_spelling, modality.aliases),
    }


def make_finding(
    phrase: str,
    *paraphrases: str,
    negative: str | None = None,
    statement: str | None = None,
    normal: bool = False,
    pathology: bool = True,
    scope: tuple[str, ...] = (),
    article: bool = False,
) -> Finding:
    """A finding with report-style defaults; `article` makes sentences say "with a mass" (count nouns)."""
    head = f"a {phrase}" if article else phrase
    return Finding(
        phrase,
        negative or f"no {phrase}",
        statement or phrase,
        tuple(dict.fromkeys((head, *paraphrases))),
        normal,
        pathology,
        scope,
    )


_f = make_finding
# fmt: off
_FINDINGS = {
    # CheXpert 14 (Irvin et al., AAAI 2019), in the order of its label columns.
    "no_finding": _f("no finding", normal=True, pathology=False),
    "enlarged_cardiomediastinum": _f("enlarged cardiomediastinum", "an enlarged cardiomediastinal silhouette",
                                     "a widened mediastinum", "mediastinal widening",
                                     negative="normal cardiomediastinal silhouette"),
    "cardiomegaly": _f("cardiomegaly", "an enlarged heart", "an enlarged cardiac silhouette",
                       "an increased cardiothoracic ratio"),
    "lung_opacity": _f("lung opacity", "pulmonary opacity", "airspace opacity",
                       "increased density in the lung"),
    "lung_lesion": _f("lung lesion", "a pulmonary lesion", "a focal lung lesion",
                      "a pulmonary nodule or mass", article=True),
    "edema": _f("pulmonary edema", "pulmonary oedema", "interstitial and alveolar edema",
                "fluid overload in the lungs"),
    "consolidation": _f("consolidation", "airspace consolidation", "lung consolidation",
                        "focal consolidation"),
    "pneumonia": _f("pneumonia", "pulmonary infection", "infectious consolidation", "findings of pneumonia"),
    "atelectasis": _f("atelectasis", "atelectatic change", "partial lung collapse",
                      "collapse of a lung segment"),
    "pneumothorax": _f("pneumothorax", "air in the pleural space", "a visible visceral pleural line",
                       "a collapsed lung with pleural air"),
    "pleural_effusion": _f("pleural effusion", "fluid in the pleural space",
                           "blunting of the costophrenic angle", "a pleural fluid collection"),
    "pleural_other": _f("other pleural abnormality", "a pleural abnormality", "pleural disease",
                        "an abnormality of the pleura"),
    "fracture": _f("fracture", "an osseous fracture", "a bony fracture", "a fractured bone", article=True),
    "support_devices": _f("support devices", "lines and tubes", "indwelling medical devices",
                          "monitoring devices",
                          statement="support devices present", pathology=False),
    # NIH ChestX-ray14 (Wang et al., CVPR 2017) adds seven labels.
    "infiltration": _f("infiltration", "a pulmonary infiltrate", "lung infiltrates",
                       "an infiltrative opacity"),
    "mass": _f("mass", "a lung mass", "a pulmonary mass", "a mass lesion in the lung", article=True),
    "nodule": _f("nodule", "a pulmonary nodule", "a lung nodule", "a nodular opacity", article=True),
    "emphysema": _f("emphysema", "emphysematous change", "hyperinflated lungs",
                    "hyperinflation with flattened diaphragms"),
    "fibrosis": _f("fibrosis", "pulmonary fibrosis", "fibrotic change", "reticular fibrotic opacities"),
    "pleural_thickening": _f("pleural thickening", "thickened pleura", "pleural scarring",
                             "a thickened pleural surface"),
    "hernia": _f("hernia", "a hiatal hernia", "a diaphragmatic hernia", "herniation through the diaphragm",
                 article=True),
    # COVID-19 Radiography Database (Chowdhury et al. 2020; Rahman et al. 2021) classes.
    "covid19": _f("COVID-19 pneumonia", "COVID-19", "SARS-CoV-2 pneumonia",
                  "bilateral peripheral ground-glass opacities of COVID-19"),
    "viral_pneumonia": _f("viral pneumonia", "viral pneumonitis", "a viral lung infection",
                          "non-COVID viral pneumonia"),
    # Brain MRI cohorts (ADNI / OASIS): diagnostic groups and common structural findings.
    "alzheimers_disease": _f("Alzheimer's disease", "changes of Alzheimer's disease",
                             "medial temporal lobe atrophy of Alzheimer's disease",
                             "hippocampal atrophy consistent with Alzheimer's disease"),
    "mild_cognitive_impairment": _f("mild cognitive impairment", "MCI", "mild cognitive decline",
                                    "prodromal cognitive impairment"),
    "cognitively_normal": _f("cognitively normal", normal=True, pathology=False,
                             scope=("alzheimers_disease", "mild_cognitive_impairment")),
    "lesion": _f("lesion", "a focal lesion", "a focal brain lesion", "abnormal focal signal", article=True),
    "atrophy": _f("atrophy", "cerebral atrophy", "brain volume loss",
                  "enlarged ventricles and widened sulci"),
}

_MODALITIES = {
    "cxr": Modality(
        name="chest X-ray", prefix="Chest X-ray:",
        image_names=("chest X-ray", "chest radiograph", "chest film", "CXR"),
        normal=(
            "clear lungs, no focal consolidation, pleural effusion or pneumothorax; "
            "normal cardiomediastinal silhouette; sharp costophrenic angles",
            "the lungs are clear and well expanded; normal heart size; no pleural effusion or pneumothorax",
            "no acute cardiopulmonary abnormality; normal heart size and mediastinal contours; clear lungs",
            "clear lung fields with normal lung volumes; normal cardiac silhouette; intact bony thorax",
            "no consolidation, effusion or pneumothorax; normal cardiomediastinal contours and vessels",
        ),
        aliases=("chest x ray", "chest xray", "chest radiograph"),
    ),
    "brain_mri": Modality(
        name="brain MRI", prefix="Brain MRI:",
        image_names=("brain MRI", "brain MR image", "cranial MRI", "cerebral MRI scan"),
        normal=(
            "no mass lesion; ventricles and sulci normal for age; no white-matter hyperintensities",
            "normal grey-white matter differentiation; no mass effect or midline shift; normal ventricles",
            "no focal lesion or abnormal signal; age-appropriate brain volume; normal hippocampi",
            "normal cortical thickness and hippocampal volume; no white-matter disease; no hydrocephalus",
        ),
        aliases=("mri brain", "brain mr"),
    ),
    "chest_ct": Modality(
        name="chest CT", prefix="Chest CT:",
        image_names=("chest CT", "thoracic CT", "chest CT scan", "lung CT scan"),
        normal=(
            "clear lungs without nodules, consolidation or ground-glass opacity; no pleural effusion; "
            "normal mediastinum",
            "normal lung parenchyma and airways; no emphysema or fibrosis; no lymphadenopathy",
            "no pulmonary nodule or mass; patent central airways; no pleural or pericardial effusion",
            "normal lung attenuation; no interstitial abnormality; normal heart size and great vessels",
        ),
        aliases=("ct chest", "lung ct", "lung ct scan", "thoracic ct"),
    ),
}
# fmt: on

# ADNI / OASIS diagnostic groups: cognitively normal, mild cognitive impairment, Alzheimer's disease.
_DIAGNOSES = {"CN": "cognitively_normal", "MCI": "mild_cognitive_impairment", "AD": "alzheimers_disease"}
IDENTITY_FIELDS = frozenset({"id", "patient_id", "session_id", "path", "mask_path", "slice_index", "split", "report"})
IDENTITY_FIELDS |= {"source_path", "source_slice_index", "instruction"}  # image pairs (medcf.data.pairs)

DEFAULT_VOCABULARY = Vocabulary(
    MappingProxyType(_FINDINGS), MappingProxyType(_MODALITIES), MappingProxyType(_DIAGNOSES), IDENTITY_FIELDS
)
FINDINGS: Mapping[str, str] = MappingProxyType({key: item.phrase for key, item in _FINDINGS.items()})
