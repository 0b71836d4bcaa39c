"""Extending the vocabulary from a mapping parsed from YAML, with one-line errors that name the entry.

Schema (configs/vocabulary.example.yaml is the annotated example):
  findings:        <snake_case key>: {phrase, negative, statement, paraphrases, normal, pathology, scope}
  modalities:      <snake_case key>: {name, prefix, image_names, normal, aliases}
  diagnoses:       <code>: <finding key>
  identity_fields: [<column>, ...]
Given fields replace the base's; `extra_<list field>` appends to a list. A new finding needs `phrase`;
a new modality needs `name`, `prefix` and `normal`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from .fields import CANONICAL_FIELDS
from .vocabulary import Finding, Modality, Vocabulary, make_finding

SECTIONS = ("findings", "modalities", "diagnoses", "identity_fields")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
# Field kinds accepted from YAML: "text" is a non-empty string, "texts" a non-empty list of them.
_FINDING_FIELDS = {"phrase": "text", "negative": "text", "statement": "text", "paraphrases": "texts",
                   "normal": "flag", "pathology": "flag", "scope": "texts"}  # fmt: skip
_MODALITY_FIELDS = {"name": "text", "prefix": "text", "image_names": "texts", "normal": "texts",
                    "aliases": "texts"}  # fmt: skip


def extend_vocabulary(base: Vocabulary, mapping: Mapping[str, object]) -> Vocabulary:
    """`base` with the entries of `mapping` added or overridden."""
    if not isinstance(mapping, Mapping):
        raise ValueError(f"vocabulary: expected a mapping with sections {', '.join(SECTIONS)}, "
                         f"got {type(mapping).__name__}")  # fmt: skip
    if unknown := sorted(set(map(str, mapping)) - set(SECTIONS)):
        raise ValueError(f"vocabulary: unknown section '{unknown[0]}'; use {', '.join(SECTIONS)}")
    identity = set(base.identity_fields)
    if mapping.get("identity_fields") is not None:
        identity |= set(_texts(mapping["identity_fields"], "identity_fields"))
    findings = dict(base.findings)
    for key, spec in _entries(mapping, "findings", reserved=set(CANONICAL_FIELDS) | identity):
        findings[key] = _merge_finding(findings.get(key), spec, f"findings.{key}")
    modalities = dict(base.modalities)
    for key, spec in _entries(mapping, "modalities", reserved=set()):
        modalities[key] = _merge_modality(modalities.get(key), spec, f"modalities.{key}")
    codes = mapping.get("diagnoses") or {}
    if not isinstance(codes, Mapping):
        raise ValueError("vocabulary diagnoses: expected a mapping of diagnosis code → finding key")
    diagnoses = dict(base.diagnoses)
    diagnoses |= {str(code).upper(): _text(key, f"diagnoses.{code}") for code, key in codes.items()}
    return Vocabulary(MappingProxyType(findings), MappingProxyType(modalities), MappingProxyType(diagnoses),
                      frozenset(identity))  # fmt: skip


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"vocabulary {where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _texts(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"vocabulary {where}: expected a non-empty list of strings, got {value!r}")
    return tuple(dict.fromkeys(_text(item, where) for item in value))


def _entries(mapping: Mapping[str, object], section: str, *, reserved: set[str]) -> list[tuple[str, object]]:
    """(key, spec) pairs of one section, keys checked as snake_case and not reserved."""
    entries = mapping.get(section) or {}
    if not isinstance(entries, Mapping):
        raise ValueError(f"vocabulary {section}: expected a mapping of key → fields, got {type(entries).__name__}")
    for key in entries:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"vocabulary {section}: key {key!r} must be snake_case, e.g. pulmonary_embolism")
        if key in reserved:
            raise ValueError(f"vocabulary {section}.{key}: '{key}' is a patient or identity field, not a finding")
    return list(entries.items())


def _fields(spec: object, kinds: dict[str, str], where: str) -> tuple[dict[str, object], dict[str, tuple]]:
    """Validated (given fields, lists to append from extra_<field>) of one entry."""
    allowed = list(kinds) + [f"extra_{name}" for name, kind in kinds.items() if kind == "texts"]
    if not isinstance(spec, Mapping):
        raise ValueError(f"vocabulary {where}: expected a mapping with keys {', '.join(allowed)}")
    given: dict[str, object] = {}
    extra: dict[str, tuple] = {}
    for key, value in spec.items():
        if key not in allowed:
            raise ValueError(f"vocabulary {where}: unknown key '{key}'; use {', '.join(allowed)}")
        name = key.removeprefix("extra_")
        if kinds[name] == "flag" and not isinstance(value, bool):
            raise ValueError(f"vocabulary {where}.{key}: expected true or false, got {value!r}")
        checked = value if kinds[name] == "flag" else (_text if kinds[name] == "text" else _texts)(value, where)
        (extra if key.startswith("extra_") else given)[name] = checked
    return given, extra


def _merge_finding(current: Finding | None, spec: object, where: str) -> Finding:
    given, extra = _fields(spec, _FINDING_FIELDS, where)
    if current is None:
        if "phrase" not in given:
            raise ValueError(f"vocabulary {where}: a new finding needs 'phrase'")
        current = make_finding(str(given["phrase"]))
    if given.get("normal") and given.get("pathology", current.pathology):
        raise ValueError(f"vocabulary {where}: a normal marker cannot be a pathology; add pathology: false")
    head = given.get("phrase", current.paraphrases[0])  # the "simple" style reads the first paraphrase
    tail = given.get("paraphrases", current.paraphrases[1:])
    paraphrases = tuple(dict.fromkeys((head, *tail, *extra.get("paraphrases", ()))))
    return replace(current, **{**given, "paraphrases": paraphrases})


def _merge_modality(current: Modality | None, spec: object, where: str) -> Modality:
    given, extra = _fields(spec, _MODALITY_FIELDS, where)
    if current is None:
        if missing := sorted({"name", "prefix", "normal"} - set(given)):
            raise ValueError(f"vocabulary {where}: a new modality needs {', '.join(missing)}")
        current = Modality(str(given["name"]), str(given["prefix"]), (str(given["name"]),), ())
    merged = replace(current, **given)
    lists = {name: tuple(dict.fromkeys((*getattr(merged, name), *more))) for name, more in extra.items()}
    merged = replace(merged, **lists)
    return replace(merged, image_names=tuple(dict.fromkeys((merged.name, *merged.image_names))))
