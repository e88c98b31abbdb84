"""Project settings: ``qualcode.yaml``, read once, every value checked with its line."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from qualcode.errors import SettingsError
from qualcode.ingest.segmenting import DEFAULT_INTERVIEWER_LABELS, SegmentOptions
from qualcode.vocabulary import DEFAULT_VECTORS, ContextFeatures, VectorModel, choices

SETTINGS_FILE = "qualcode.yaml"


@dataclass(frozen=True)
class Settings:
    interviewer_labels: tuple[str, ...] = DEFAULT_INTERVIEWER_LABELS
    segment_words: int = 120
    pipeline: str | None = None
    language: str = "en"
    coder: str | None = None
    min_confidence: float = 0.0
    transcripts: str = "transcripts"
    exports: str = "exports"
    workers: int = 0  # 0: decide from the machine and the amount of work
    retrain_after: int = 50  # new decisions before `code` and `review` refit the models; 0: never
    max_transcript_mb: int = 20  # larger files are skipped: no interview is that long, a mis-saved export might be
    learn_min_examples: int = 5  # of each class, before a code gets a model
    database: str | None = None  # a database URL; None: .qualcode/project.db in the project
    vectors: VectorModel = DEFAULT_VECTORS  # sentence vectors the models learn from as well as words; none: words alone
    # the neighbours' sentence vectors the models read too; none by default: on the benchmark data the gain was small and
    # mixed, +0.006 kappa on the Scrum themes, -0.010 on Du Bois (README, "Context")
    context: ContextFeatures = ContextFeatures.NONE
    # CSV cells that a spreadsheet would run as a formula (=, +, -, @ first) get a leading apostrophe (OWASP's advice);
    # off for those who read the CSVs with code and want the text exactly.
    csv_formula_guard: bool = True
    # Order of group values in tables, per attribute (e.g. role: [lead, partner, stakeholder]);
    # values not listed follow alphabetically, 'unknown' last.
    groups: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())

    @property
    def segment_options(self) -> SegmentOptions:
        return SegmentOptions(interviewer_labels=self.interviewer_labels, max_words=self.segment_words)

    def group_order(self, attribute: str) -> tuple[str, ...]:
        return dict(self.groups).get(attribute, ())


_SETTING_TYPES: dict[str, Any] = {
    "interviewer_labels": list,
    "segment_words": int,
    "pipeline": str,
    "language": str,
    "coder": str,
    "min_confidence": float,
    "transcripts": str,
    "exports": str,
    "workers": int,
    "retrain_after": int,
    "learn_min_examples": int,
    "max_transcript_mb": int,
    "database": str,
    "vectors": VectorModel,
    "context": ContextFeatures,
    "groups": dict,
    "csv_formula_guard": bool,
}
_MINIMUM = {"segment_words": 10, "learn_min_examples": 2, "max_transcript_mb": 1}


def has_password(url: str) -> bool:
    """Whether a database URL carries a password (user:password@host, or password= in its query)."""
    from urllib.parse import urlsplit  # only when a URL is given: the import costs every command ~10 ms

    parts = urlsplit(url)
    return bool(parts.password) or "password=" in parts.query


def load_settings(project_dir: str | Path) -> Settings:
    path = Path(project_dir) / SETTINGS_FILE
    if not path.exists():
        return Settings()
    try:
        text = path.read_text(encoding="utf-8-sig")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise SettingsError(f"YAML syntax error: {exc.problem}", path=path, line=mark.line + 1 if mark else None) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read settings ({str(exc).splitlines()[0]})", path=path, fix="write 'key: value' lines in UTF-8") from None
    if node is None:
        return Settings()
    if not isinstance(node, yaml.MappingNode):
        raise SettingsError("expected 'key: value' settings", path=path, line=node.start_mark.line + 1)
    values: dict[str, Any] = {}
    context_line = 0
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key not in _SETTING_TYPES:
            raise SettingsError(f"unknown setting '{key}'", path=path, line=line, key_path=key, fix=f"known settings: {', '.join(_SETTING_TYPES)}")
        value = _construct(value_node)
        if value is None:
            continue
        values[key] = _checked(key, value, path, line)
        if key == "context":
            context_line = line
    if values.get("context", ContextFeatures.NONE) != ContextFeatures.NONE and values.get("vectors", DEFAULT_VECTORS) == VectorModel.NONE:
        raise SettingsError("context is read through sentence vectors, and 'vectors' is none", path=path, line=context_line,
                            key_path="context", fix="set 'vectors: minilm-static', or 'context: none'")
    return Settings(**values)


def _checked(key: str, value: Any, path: Path, line: int) -> Any:
    expected = _SETTING_TYPES[key]
    if expected is bool:
        if not isinstance(value, bool):
            raise SettingsError("expected true or false", path=path, line=line, key_path=key)
        return value
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            raise SettingsError("expected a list of labels", path=path, line=line, key_path=key, fix="e.g. [Interviewer, I, Q]")
        return tuple(item.strip() for item in value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise SettingsError("expected a number from 0 to 1", path=path, line=line, key_path=key)
        return float(value)
    if expected is int:
        minimum = _MINIMUM.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SettingsError(f"expected a whole number of at least {minimum}", path=path, line=line, key_path=key)
        return value
    if isinstance(expected, type) and issubclass(expected, StrEnum):
        if not isinstance(value, str) or value not in {member.value for member in expected}:
            raise SettingsError(f"unknown {key} {value!r}", path=path, line=line, key_path=key, fix=f"use one of: {choices(expected)}")
        return expected(value)
    if expected is dict:
        if not isinstance(value, dict) or not all(
            isinstance(attribute, str) and isinstance(order, list) and all(isinstance(item, (str, int, float)) for item in order)
            for attribute, order in value.items()
        ):
            raise SettingsError(
                "expected attributes, each with a list of its values in table order",
                path=path, line=line, key_path=key, fix="e.g. 'groups: {role: [lead, partner, stakeholder]}'",
            )
        return tuple((attribute, tuple(str(item).strip() for item in order)) for attribute, order in value.items())
    text = value if isinstance(value, str) else str(value)
    if key == "database" and has_password(text):
        raise SettingsError(
            "the database URL holds a password, and qualcode.yaml is shared with everyone who has the project",
            path=path, line=line, key_path=key,
            fix="remove the password from the URL; libpq reads it from ~/.pgpass, a PGSERVICE entry or PGPASSWORD",
        )
    return text


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def default_coder(settings: Settings) -> str:
    if settings.coder:
        return settings.coder
    try:
        return getpass.getuser()
    except Exception:  # getuser raises various errors when no user name is set
        return "coder"
