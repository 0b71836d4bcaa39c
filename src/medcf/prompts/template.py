"""PromptTemplate: a clinical row → a text prompt, in three styles, plus its healthy counterpart.

- "table": DGM-VLC's tabular→text (Xing et al., arXiv 2410.13823, generate_prompts.ipynb): a modality
  prefix, known fields templated ("Patient age: 63." "Gender: Male."), missing fields skipped, other
  fields as "<field> is <value>,", one final ".". Findings read as report sentences ("No pleural effusion.").
- "simple": one fixed sentence per class, as Latent Drifting's "simple" prompts (Yeganeh et al., CVPR 2025):
  "A chest X-ray of a 63 year old male with pleural effusion." Only present findings are named.
- "diverse": the same content with paraphrased frames, image names, patient phrases and finding wordings
  drawn by a random.Random seeded from (seed, row content) — stable across processes, unlike hash().
`healthy` writes the normal-counterpart prompt of visual attribution (Siddiqui et al., Sci. Rep. 2025):
same patient, every finding absent, plus a normal-appearance description from the vocabulary.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from .fields import SEX_WORDS, SMOKING_WORDS, ClinicalRow, format_age, humanize, parse_row
from .vocabulary import DEFAULT_VOCABULARY, Modality, Vocabulary

STYLES = ("table", "simple", "diverse")
TEMPLATE_FILE = "prompt_template.json"  # in a model folder: the modality, style and patient_info it was trained with
NULL_PROMPT = ""  # the unconditional prompt of classifier-free guidance (Ho & Salimans, 2022)


def instance_prompt(prompt: str, template: str) -> str:
    """Textual inversion / DreamBooth's instance prompt: `template` with "{prompt}" replaced by the clinical
    prompt (e.g. "a <medcf> scan, {prompt}"); the clinical prompt itself when there is no template."""
    return template.replace("{prompt}", prompt) if template else prompt


# First option of each tuple is the "simple" wording; "diverse" samples them all.
_NORMAL_WORDS = ("normal", "unremarkable")
_FINDING_FRAMES = (
    "{opening} with {findings}",
    "{opening} showing {findings}",
    "{opening} demonstrating {findings}",
    "{findings} on {opening}",
    "{opening}; findings: {findings}",
)
_DESCRIPTION_FRAMES = ("{text}. {Description}", "{text}: {description}", "{text}; {description}")
_PATIENT_FORMS = ("{age} year old {noun}", "{age}-year-old {noun}", "{noun} aged {age}")

Pick = Callable[[Sequence[str]], str]


class PromptTemplate:
    """Renders canonical clinical rows as prompts for one modality in one style."""

    def __init__(
        self,
        modality: str,
        *,
        style: str = "table",
        patient_info: bool = True,
        vocabulary: Vocabulary = DEFAULT_VOCABULARY,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"prompt style '{style}' unknown; use one of {', '.join(STYLES)}")
        self.modality = modality
        self.style = style
        self.patient_info = patient_info  # age, sex and smoking; Latent Drifting's "Patient Info" ablation
        self.vocabulary = vocabulary
        self._modality: Modality = vocabulary.modality(modality)

    def __repr__(self) -> str:
        return f"PromptTemplate({self.modality!r}, style={self.style!r}, patient_info={self.patient_info})"

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write `prompt_template.json` into a model folder, so editing renders rows the way training did."""
        path = Path(folder) / TEMPLATE_FILE
        settings = {"modality": self.modality, "style": self.style, "patient_info": self.patient_info}
        staging = path.with_name(path.name + ".partial")
        staging.write_text(json.dumps(settings, indent=2) + "\n")
        return staging.replace(path)  # atomic: never a half-written file

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, modality: str = "chest X-ray", style: str = "table"
    ) -> PromptTemplate:
        """The template a model was trained with; the defaults given for folders without one (e.g. diffusers')."""
        path = Path(folder) / TEMPLATE_FILE
        if not path.is_file():
            return cls(modality, style=style)
        try:
            settings = json.loads(path.read_text())
            return cls(settings["modality"], style=settings["style"], patient_info=bool(settings["patient_info"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: unreadable prompt template ({error}); delete it or re-save the model") from None

    def with_patient_info(self, patient_info: bool | None) -> PromptTemplate:
        """This template with patient info on or off (None: as it is): an edit whose prompts outgrow the text
        encoder's window can drop age, sex and smoking at edit time."""
        if patient_info is None or patient_info == self.patient_info:
            return self
        return PromptTemplate(self.modality, style=self.style, patient_info=patient_info, vocabulary=self.vocabulary)

    def for_editing(self) -> PromptTemplate:
        """The template for source/target prompts of an edit: "diverse" paraphrases would change more than the
        edited field, so edits use its first wordings, the "simple" style, which training also saw."""
        if self.style != "diverse":
            return self
        return PromptTemplate(
            self.modality, style="simple", patient_info=self.patient_info, vocabulary=self.vocabulary
        )

    def render(self, row: Mapping[str, object], *, seed: int = 0) -> str:
        """The prompt for `row`; deterministic in (row, seed), and seed only matters for "diverse"."""
        return self._compose(parse_row(row, self.vocabulary), seed=seed, healthy=False)

    def healthy(self, row: Mapping[str, object], *, seed: int = 0) -> str:
        """The healthy-counterpart prompt: same patient, all findings absent, normal appearance described."""
        return self._compose(parse_row(row, self.vocabulary).healthy(), seed=seed, healthy=True)

    def _compose(self, state: ClinicalRow, *, seed: int, healthy: bool) -> str:
        if self.style == "table":
            return self._table(state, healthy=healthy)
        if self.style == "simple":
            return self._sentence(state, _first, healthy=healthy, describe=healthy)
        # A string seed goes through SHA-512 in random.seed, so it is the same in every process;
        # other fields are sorted so that column order does not change the draw.
        content = replace(state, other=tuple(sorted(state.other)))
        rng = random.Random(f"medcf.prompts|{seed}|{healthy}|{self._modality.name}|{content!r}")
        normal = healthy or self._is_normal(state)
        return self._sentence(state, rng.choice, healthy=healthy, describe=normal)

    def _table(self, state: ClinicalRow, *, healthy: bool) -> str:
        parts = [f"{label}: {value}." for label, value in self._table_fields(state)]
        for key, value in state.findings:
            finding = self.vocabulary.findings[key]
            if value == 1:
                parts.append(_capitalize(finding.statement) + ".")
            elif value == 0 and not finding.normal:  # "no finding" = 0 only says something is abnormal
                parts.append(_capitalize(finding.negative) + ".")
        if healthy:
            parts.append(_capitalize(self._modality.normal[0]) + ".")
        parts += [f"{humanize(name)} is {value}," for name, value in state.other]
        if not parts:
            return self._modality.prefix.rstrip(" :") + "."
        body = " ".join(parts).rstrip(",")  # DGM-VLC: drop the last field's comma, then end the prompt
        return f"{self._modality.prefix} {body}" + ("" if body.endswith(".") else ".")

    def _table_fields(self, state: ClinicalRow) -> list[tuple[str, str]]:
        fields = []
        if self.patient_info and state.age is not None:
            fields.append(("Patient age", format_age(state.age)))
        if self.patient_info and state.sex is not None:
            fields.append(("Gender", SEX_WORDS[state.sex].capitalize()))
        if self.patient_info and state.smoking is not None:
            fields.append(("Smoking status", SMOKING_WORDS[state.smoking][0]))
        if state.view is not None:
            fields.append(("View", state.view))
        if state.diagnosis is not None:
            fields.append(("Diagnosis", state.diagnosis))
        return fields

    def _sentence(self, state: ClinicalRow, pick: Pick, *, healthy: bool, describe: bool) -> str:
        """[A] [normal] [view] <image> [of <patient>] [with <findings>][. <normal description>]."""
        words = [pick(_NORMAL_WORDS)] if healthy or self._is_normal(state) else []
        words += [state.view] if state.view else []
        noun = " ".join([*words, pick(self._modality.image_names)])
        opening = f"{_article(noun)} {noun}"
        if self.patient_info and (patient := _patient(state, pick)):
            opening += f" of {patient}"
        findings = [pick(self.vocabulary.findings[key].paraphrases) for key in self._present(state)]
        findings += [state.diagnosis] if state.diagnosis else []
        text = pick(_FINDING_FRAMES).format(opening=opening, findings=_join(findings)) if findings else opening
        if describe:
            description = pick(self._modality.normal)
            text = pick(_DESCRIPTION_FRAMES).format(
                text=text, description=description, Description=_capitalize(description)
            )
        return _capitalize(text) + "."

    def _present(self, state: ClinicalRow) -> list[str]:
        """Keys of present findings other than normal markers, in vocabulary order."""
        return [key for key, value in state.findings if value == 1 and not self.vocabulary.findings[key].normal]

    def _is_normal(self, state: ClinicalRow) -> bool:
        """A normal marker is present and no pathology is (CN with an incidental lesion is no normal scan)."""
        present = [self.vocabulary.findings[key] for key, value in state.findings if value == 1]
        return any(item.normal for item in present) and not any(item.pathology for item in present)


def _patient(state: ClinicalRow, pick: Pick) -> str:
    """Patient phrase: "a 63 year old male former smoker", "a female patient aged 70", or ""."""
    if state.age is None and state.sex is None and state.smoking is None:
        return ""
    sex = SEX_WORDS[state.sex] if state.sex else ""
    smoker = pick(SMOKING_WORDS[state.smoking]) if state.smoking else ""
    form = pick(_PATIENT_FORMS) if state.age is not None else "{noun}"
    if form.startswith("{noun}") and not smoker:
        sex = f"{sex} patient".strip()  # "a male patient aged 63" rather than "a male aged 63"
    noun = " ".join(word for word in (sex, smoker) if word) or "patient"
    age = format_age(state.age) if state.age is not None else ""
    phrase = form.format(age=age, noun=noun)
    return f"{_article(phrase)} {phrase}"


def _first(options: Sequence[str]) -> str:
    return options[0]


def _join(items: list[str]) -> str:
    """Join as "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(phrase: str) -> str:
    """The article by sound: an 80 year old, an 11 year old, an AP view, an MRI, an X-ray, an unremarkable."""
    word = phrase.split()[0]
    if word[0].isdigit():
        digits = word.split(".")[0].split("-")[0]
        return "an" if digits.startswith("8") or digits in ("11", "18") else "a"
    spelled_letter = len(word) == 1 or not word[1].isalpha() or (word.isupper() and len(word) <= 4)
    if spelled_letter:  # initialisms are read letter by letter: "an MRI", "an AP", "a CT", "an X-ray"
        return "an" if word[0].upper() in "AEFHILMNORSX" else "a"
    if word.lower().startswith(("uni", "use", "eu", "one")):
        return "a"
    return "an" if word[0].lower() in "aeiou" else "a"
