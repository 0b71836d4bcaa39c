"""Clinical table → text prompts, stdlib only: field parsing, radiology vocabulary, prompt styles, edits."""

from .edits import apply_edit
from .fields import CANONICAL_FIELDS, is_missing
from .template import NULL_PROMPT, STYLES, PromptTemplate, instance_prompt
from .vocabulary import DEFAULT_VOCABULARY, FINDINGS, Finding, Modality, Vocabulary

__all__ = [
    "CANONICAL_FIELDS",
    "DEFAULT_VOCABULARY",
    "FINDINGS",
    "NULL_PROMPT",
    "STYLES",
    "Finding",
    "Modality",
    "PromptTemplate",
    "Vocabulary",
    "apply_edit",
    "instance_prompt",
    "is_missing",
]
