"""Project settings: ``qualcode.yaml``, read once, every value checked with its line."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from qualcode.database_url import has_password
from qualcode.errors import SettingsError
from qualcode.files import NotReadable, read_bounded, text_of
from qualcode.ingest.segmenting import DEFAULT_INTERVIEWER_LABELS, DEFAULT_RESPONDENT_LABELS, SegmentOptions
from qualcode.vocabulary import DEFAULT_VECTORS, ContextFeatures, Paper, VectorModel, choices

SETTINGS_FILE = "qualcode.yaml"


@dataclass(frozen=True)
class LlmSettings:
    """A language model that suggests codes (the ``llm:`` block; its presence turns it on). The key, if the endpoint
    needs one, stays in the environment variable named by ``api_key_env``: never in this file, a log, an error, the
    database or an export."""

    endpoint: str  # the base URL of an OpenAI-compatible chat-completions API, e.g. http://127.0.0.1:11434/v1
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    concurrency: int = 4  # requests at once
    timeout: float = 120.0  # seconds per request
    allow_remote: bool = False  # interview text goes only to this machine unless the study allows another
    examples: int = 4  # of the researcher's own decisions, chosen by similarity, shown with each segment
    ignore: tuple[str, ...] = ()  # codes the language model does not decide (their rules and models do)


_LLM_TYPES: dict[str, Any] = {"endpoint": str, "model": str, "api_key_env": str, "temperature": float, "concurrency": int,
                              "timeout": float, "allow_remote": bool, "examples": int, "ignore": list}
_LLM_LIMITS = {"temperature": (0.0, 2.0), "concurrency": (1, 64), "timeout": (1.0, 3600.0), "examples": (0, 20)}


@dataclass(frozen=True)
class Settings:
    interviewer_labels: tuple[str, ...] = DEFAULT_INTERVIEWER_LABELS
    respondent_labels: tuple[str, ...] = DEFAULT_RESPONDENT_LABELS  # known respondents' labels: not reported as unknown
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
    llm: LlmSettings | None = None  # a language model that suggests codes; None: none
    paper: Paper | None = None  # what themes.xlsx prints on; None: the locale's (Letter in the Americas' Letter countries, else A4)

    @property
    def segment_options(self) -> SegmentOptions:
        return SegmentOptions(interviewer_labels=self.interviewer_labels, max_words=self.segment_words, respondent_labels=self.respondent_labels)

    def segmenting_state(self) -> dict[str, Any]:
        """The settings that shape segments, as stored with a project: a change re-segments its transcripts."""
        return {"interviewer_labels": sorted(label.casefold() for label in self.interviewer_labels), "segment_words": self.segment_words}

    def suggesting_state(self) -> dict[str, Any]:
        """The settings that shape suggestions but not segments: a change re-suggests every transcript."""
        return {"vectors": self.vectors.value, "context": self.context.value, "min_confidence": self.min_confidence,
                "language": self.language, "pipeline": self.pipeline}

    def group_order(self, attribute: str) -> tuple[str, ...]:
        return dict(self.groups).get(attribute, ())


_SETTING_TYPES: dict[str, Any] = {
    "interviewer_labels": list,
    "respondent_labels": list,
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
    "llm": LlmSettings,
    "paper": Paper,
}
_MINIMUM = {"segment_words": 10, "learn_min_examples": 2, "max_transcript_mb": 1}


MAX_SETTINGS_BYTES = 1_000_000  # settings are a few lines


def load_settings(project_dir: str | Path) -> Settings:
    path = Path(project_dir) / SETTINGS_FILE
    if not path.exists() and not path.is_symlink():  # a link loop or a link to nothing is said, not read as no settings
        return Settings()
    try:
        text = text_of(read_bounded(path, MAX_SETTINGS_BYTES))
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except NotReadable as exc:
        raise SettingsError(f"cannot read settings: {exc}", path=path, fix="qualcode.yaml must be an ordinary text file") from None
    except FileNotFoundError:
        raise SettingsError("cannot read settings: a link to nothing", path=path, fix="point it at the settings file, or remove it") from None
    except RecursionError:
        raise SettingsError("the settings nest too deeply to be read", path=path, fix="write 'key: value' lines") from None
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
    if expected is LlmSettings:
        return _llm(value, path, line)
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


def _llm(value: Any, path: Path, line: int) -> LlmSettings:
    example = "e.g. 'llm: {endpoint: http://127.0.0.1:11434/v1, model: llama3.1:8b}'"
    if not isinstance(value, dict):
        raise SettingsError("expected the language model's settings, one per line under 'llm:'", path=path, line=line, key_path="llm", fix=example)
    values: dict[str, Any] = {}
    for key, item in value.items():
        where = f"llm.{key}"
        if key in ("api_key", "key", "token", "password"):
            raise SettingsError("a key does not belong in qualcode.yaml, which everyone with the project reads", path=path, line=line,
                                key_path=where, fix="put it in an environment variable and name that variable under 'api_key_env'")
        if key not in _LLM_TYPES:
            raise SettingsError(f"unknown setting '{key}'", path=path, line=line, key_path=where, fix=f"known: {', '.join(_LLM_TYPES)}")
        expected = _LLM_TYPES[key]
        if item is None:
            continue
        if expected is bool:
            if not isinstance(item, bool):
                raise SettingsError("expected true or false", path=path, line=line, key_path=where)
        elif expected in (int, float):
            low, high = _LLM_LIMITS[key]
            if isinstance(item, bool) or not isinstance(item, (int, float)) or (expected is int and not isinstance(item, int)) or not low <= item <= high:
                raise SettingsError(f"expected a {'whole ' if expected is int else ''}number from {low:g} to {high:g}", path=path, line=line,
                                    key_path=where)
            item = expected(item)
        elif expected is list:
            if not isinstance(item, list) or not all(isinstance(code, str) and code.strip() for code in item):
                raise SettingsError("expected a list of code ids", path=path, line=line, key_path=where, fix="e.g. [other, sustainability]")
            item = tuple(code.strip() for code in item)
        elif not isinstance(item, str) or not item.strip():
            raise SettingsError("expected some text", path=path, line=line, key_path=where)
        values[key] = item.strip() if isinstance(item, str) else item
    for required in ("endpoint", "model"):
        if required not in values:
            raise SettingsError(f"the language model needs '{required}'", path=path, line=line, key_path=f"llm.{required}", fix=example)
    if not values["endpoint"].startswith(("http://", "https://")):
        raise SettingsError(f"the endpoint {values['endpoint']!r} is not an http(s) URL", path=path, line=line, key_path="llm.endpoint",
                            fix="the API's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8080/v1 (llama.cpp)")
    if has_password(values["endpoint"]):
        raise SettingsError("the endpoint URL holds a password, and qualcode.yaml is shared", path=path, line=line, key_path="llm.endpoint",
                            fix="put the key in an environment variable and name it under 'api_key_env'")
    env = values.get("api_key_env")
    if env is not None and not env.replace("_", "").isalnum():
        raise SettingsError(f"'{env}' is not the name of an environment variable", path=path, line=line, key_path="llm.api_key_env",
                            fix="the variable's name (e.g. OPENAI_API_KEY), never the key itself")
    return LlmSettings(**values)


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
