"""The codebook: codes, their definitions and what signals them, loaded from YAML.

The YAML is walked node by node (not loaded into plain dicts first) so that every
problem can be reported with its line and key path.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import yaml

from qualcode.errors import CodebookError, CodebookProblems
from qualcode.files import NotReadable, read_bounded, text_of

CODE_KEYS = (
    "id",
    "label",
    "description",
    "include",
    "exclude",
    "keywords",
    "exact",
    "phrases",
    "patterns",
    "examples",
    "children",
    "manual",
    "guid",
)
GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TOP_KEYS = ("name", "description", "version", "codes")
# libyaml's loader when PyYAML has it: a 262-code codebook composes in 20 ms instead of 250.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass
class Code:
    id: str
    label: str
    description: str = ""
    include: str = ""
    exclude: str = ""
    keywords: list[str] = field(default_factory=list)
    exact: list[str] = field(default_factory=list)  # matched as written (any case), not by lemma
    phrases: list[str] = field(default_factory=list)
    patterns: list[list[dict[str, Any]]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    manual: bool = False
    guid: str = ""  # its REFI-QDA GUID, kept from another tool's codebook; none: derived from the id alone
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    line: int | None = None
    key_path: str = ""
    pattern_lines: list[int | None] = field(default_factory=list)
    broken: bool = field(default=False, repr=False, compare=False)  # only while loading: its entries had problems

    @property
    def has_rules(self) -> bool:
        return bool(self.keywords or self.phrases or self.exact or self.patterns)


@dataclass
class Codebook:
    path: Path
    name: str
    description: str
    codes: dict[str, Code]
    fingerprint: str
    text: str = ""  # the YAML it was read from, which is what a worker receives

    def __contains__(self, code_id: object) -> bool:
        return code_id in self.codes

    def __getitem__(self, code_id: str) -> Code:
        return self.codes[code_id]

    def __len__(self) -> int:
        return len(self.codes)

    def roots(self) -> list[Code]:
        return [code for code in self.codes.values() if code.parent is None]

    def children(self, code_id: str) -> list[Code]:
        return [self.codes[child] for child in self.codes[code_id].children]

    def walk(self) -> Iterator[tuple[Code, int]]:
        """Codes in tree order with their depth (0 for roots). Iterative: a codebook may nest deeper than Python recurses."""
        stack = [(root, 0) for root in reversed(self.roots())]
        while stack:
            code, depth = stack.pop()
            yield code, depth
            stack.extend((child, depth + 1) for child in reversed(self.children(code.id)))

    def descendants(self, code_id: str) -> list[str]:
        """Every code below ``code_id``, in tree order."""
        found: list[str] = []
        stack = list(reversed(self.codes[code_id].children))
        while stack:
            child = stack.pop()
            found.append(child)
            stack.extend(reversed(self.codes[child].children))
        return found

    def ancestors(self, code_id: str) -> list[str]:
        chain = []
        parent = self.codes[code_id].parent
        while parent is not None:
            chain.append(parent)
            parent = self.codes[parent].parent
        return chain

    def suggestible(self) -> list[Code]:
        """Codes the rules can suggest: those with keywords, phrases or patterns."""
        return [code for code in self.codes.values() if code.has_rules]


MAX_REGEX_LENGTH = 200
MAX_DEPTH = 100  # levels of children
# A group holding a quantifier or an alternation, itself quantified: (a+)+, (a|aa)*, (\w+\s?)*, (x{2,})+ ...
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+}]|\|)(?:[^()\\]|\\.)*\)(?:[*+]|\{\d*,)")


def regex_problem(pattern: object) -> str | None:
    """Why a token REGEX is refused, or None: not text, too long, not valid, a backreference, or nested repetition."""
    if not isinstance(pattern, str):
        return "a regex must be text"
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"longer than {MAX_REGEX_LENGTH} characters"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return "backreferences can take exponential time"
    if _NESTED_QUANTIFIER.search(pattern):
        return "a repeated group that itself repeats or alternates can take exponential time"
    return None


def fingerprint(text: str) -> str:
    """Identifies a codebook's text: suggestions made from another text are recomputed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


MAX_CODEBOOK_BYTES = 20_000_000  # a codebook of thousands of codes is a few MB


def load_codebook(path: str | Path) -> Codebook:
    path = Path(path)
    try:
        text = text_of(read_bounded(path, MAX_CODEBOOK_BYTES))
    except NotReadable as exc:
        raise CodebookError(f"cannot read the codebook: {exc}", path=path, fix="codebook.yaml must be an ordinary text file") from None
    except FileNotFoundError:
        raise CodebookError(
            "codebook not found",
            path=path,
            fix="create codebook.yaml in the project folder (see README) or pass --project",
        ) from None
    except UnicodeDecodeError as exc:
        raise CodebookError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})",
            path=path,
            fix="save the codebook as UTF-8",
        ) from None
    except OSError as exc:
        raise CodebookError(f"cannot read: {exc.strerror}", path=path) from None
    return parse_codebook(text, path=path)


def parse_codebook(text: str, *, path: str | Path = "codebook.yaml") -> Codebook:
    path = Path(path)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, path) from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise CodebookError(
            f"YAML syntax error: {exc.problem or exc.context}",
            path=path,
            line=mark.line + 1 if mark else None,
            fix="check the indentation and quoting around this line",
        ) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, path) from None
    except yaml.YAMLError as exc:
        raise CodebookError(f"YAML error: {exc}", path=path) from None
    except RecursionError:
        raise CodebookError(
            "YAML nesting is too deep", path=path, fix="remove deeply nested anchors and aliases"
        ) from None
    finally:
        loader.dispose()
    builder = _CodebookBuilder(path, loader)
    try:
        codebook = builder.build(root)
    except RecursionError:
        raise CodebookError(
            "codebook nesting is too deep (or aliases refer to themselves)",
            path=path,
            fix="remove recursive anchors and aliases",
        ) from None
    codebook.fingerprint = fingerprint(text)
    codebook.text = text
    return codebook


def _reader_error(exc: "yaml.reader.ReaderError", text: str, path: Path) -> CodebookError:
    line = text[: exc.position].count("\n") + 1
    return CodebookError(
        f"character U+{exc.character:04X} is not allowed in YAML",
        path=path,
        line=line,
        fix="remove the control character (often pasted from another program)",
    )


class _CodebookBuilder:
    def __init__(self, path: Path, loader: Any) -> None:
        self.path = path
        self.loader = loader
        self.codes: dict[str, Code] = {}
        self.child_refs: list[tuple[str, str, yaml.Node, str]] = []
        self.problems: list[CodebookError] = []

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Note a problem and go on with the next part, so that one run reports every problem in the file."""
        try:
            yield
        except CodebookProblems as many:
            self.problems.extend(many.problems)
        except CodebookError as problem:
            self.problems.append(problem)

    def error(self, message: str, node: yaml.Node | None, key_path: str, fix: str | None = None) -> CodebookError:
        line = node.start_mark.line + 1 if node is not None else None
        return CodebookError(message, path=self.path, line=line, key_path=key_path or None, fix=fix)

    def build(self, root: yaml.Node | None) -> Codebook:
        if root is None:
            raise self.error("the codebook is empty", None, "", fix="add a 'codes:' list (see README)")
        top = self.mapping(root, "", TOP_KEYS)
        if "codes" not in top:
            raise self.error("missing 'codes'", root, "", fix="add a 'codes:' list of codes")
        name = self.string(top["name"], "name") if "name" in top else self.path.stem
        description = self.string(top["description"], "description") if "description" in top else ""
        if "version" in top:
            self.scalar(top["version"][1], "version")
        codes_node = top["codes"][1]
        items = self.sequence(codes_node, "codes")
        if not items:
            raise self.error("'codes' is empty", codes_node, "codes", fix="add at least one code")
        for index, item in enumerate(items):
            with self.collecting():
                self.code(item, f"codes[{index}]", parent=None)
        self.resolve_child_references()
        self.check_cycles()
        if not self.problems:
            self.check_depth()
        for code in self.codes.values():
            if not code.has_rules and not code.children and not code.manual and not code.broken:
                self.problems.append(CodebookError(
                    f"code '{code.id}' has nothing to match",
                    path=self.path,
                    line=code.line,
                    key_path=code.key_path,
                    fix="add keywords, phrases, exact terms or patterns, or children, or set 'manual: true' for a code applied only by hand",
                ))
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise CodebookProblems(sorted(self.problems, key=lambda problem: problem.line or 0))
        return Codebook(self.path, name, description, self.codes, fingerprint="")

    # -- node helpers -----------------------------------------------------------------

    def mapping(self, node: yaml.Node, key_path: str, allowed: tuple[str, ...]) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(f"expected a mapping (key: value), found {self.kind(node)}", node, key_path)
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error("keys must be plain words", key_node, key_path)
            key = key_node.value
            where = f"{key_path}.{key}" if key_path else key
            if key == "<<":
                raise self.error("merge keys ('<<') are not supported", key_node, where, fix="write the keys out")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed keys are: {', '.join(allowed)}"
                raise self.error(f"unknown key '{key}'", key_node, where, fix=hint)
            if key in entries:
                raise self.error(f"duplicate key '{key}'", key_node, where, fix="keep only one of them")
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: yaml.Node, key_path: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(f"expected a list, found {self.kind(node)}", node, key_path, fix="write one item per line starting with '- '")
        return list(node.value)

    def scalar(self, node: yaml.Node, key_path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(f"expected a single value, found {self.kind(node)}", node, key_path)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error(f"invalid value: {exc}", node, key_path) from None

    def string(self, entry: tuple[yaml.Node, yaml.Node] | yaml.Node, key_path: str) -> str:
        node = entry[1] if isinstance(entry, tuple) else entry
        value = self.scalar(node, key_path)
        if value is None:
            return ""
        if isinstance(value, (dict, list)) or isinstance(value, bytes):
            raise self.error("expected text", node, key_path)
        return str(value).strip()

    def strings(self, node: yaml.Node, key_path: str) -> list[str]:
        values = []
        for index, item in enumerate(self.sequence(node, key_path)):
            value = self.string(item, f"{key_path}[{index}]")
            if not value:
                raise self.error("empty entry", item, f"{key_path}[{index}]", fix="remove it or write the term")
            values.append(value)
        return values

    @staticmethod
    def kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return f"'{node.value}'" if node.value != "" else "nothing"

    # -- codes ------------------------------------------------------------------------

    def code(self, node: yaml.Node, key_path: str, parent: str | None) -> str:
        entries = self.mapping(node, key_path, CODE_KEYS)
        if "id" not in entries:
            raise self.error("code without an 'id'", node, key_path, fix="add 'id: some-slug' (lower case letters, digits, - and _)")
        id_node = entries["id"][1]
        code_id = self.string(id_node, f"{key_path}.id")
        if not ID_PATTERN.match(code_id):
            raise self.error(
                f"malformed id '{code_id}'",
                id_node,
                f"{key_path}.id",
                fix="use a slug: a lower-case letter, then lower-case letters, digits, '-' or '_' (at most 64)",
            )
        if code_id in self.codes:
            first = self.codes[code_id]
            raise self.error(
                f"duplicate id '{code_id}' (first defined at line {first.line})",
                id_node,
                f"{key_path}.id",
                fix="give each code its own id",
            )
        code = Code(id=code_id, label=code_id.replace("_", " ").replace("-", " ").capitalize(), parent=parent,
                    line=node.start_mark.line + 1, key_path=key_path)
        self.codes[code_id] = code
        before = len(self.problems)
        for key in ("label", "description", "include", "exclude"):
            if key in entries:
                with self.collecting():
                    value = self.string(entries[key], f"{key_path}.{key}")
                    if key == "label" and not value:
                        raise self.error("empty label", entries[key][1], f"{key_path}.label", fix="write a label or remove the key")
                    setattr(code, key, value)
        for key in ("keywords", "phrases", "exact", "examples"):
            if key in entries:
                with self.collecting():
                    setattr(code, key, self.strings(entries[key][1], f"{key_path}.{key}"))
        if "guid" in entries:
            with self.collecting():
                value = self.string(entries["guid"][1], f"{key_path}.guid")
                if not GUID_PATTERN.match(value):
                    raise self.error(f"'{value}' is not a GUID", entries["guid"][1], f"{key_path}.guid",
                                     fix="write it as 8-4-4-4-12 hexadecimal digits, as a REFI-QDA file gives it, or remove the key")
                code.guid = value.lower()
        if "manual" in entries:
            with self.collecting():
                value = self.scalar(entries["manual"][1], f"{key_path}.manual")
                if not isinstance(value, bool):
                    raise self.error("expected true or false", entries["manual"][1], f"{key_path}.manual")
                code.manual = value
        if "patterns" in entries:
            with self.collecting():
                self.patterns(code, entries["patterns"][1], f"{key_path}.patterns")
        if "children" in entries:
            with self.collecting():
                for index, child in enumerate(self.sequence(entries["children"][1], f"{key_path}.children")):
                    child_path = f"{key_path}.children[{index}]"
                    with self.collecting():
                        if isinstance(child, yaml.ScalarNode):
                            # A child given by id refers to a code defined elsewhere in the file.
                            self.child_refs.append((code_id, self.string(child, child_path), child, child_path))
                        else:
                            code.children.append(self.code(child, child_path, parent=code_id))
        # A code whose own entries failed is not also reported as having nothing to match.
        code.broken = len(self.problems) > before
        return code_id

    def patterns(self, code: Code, node: yaml.Node, key_path: str) -> None:
        for index, pattern_node in enumerate(self.sequence(node, key_path)):
            where = f"{key_path}[{index}]"
            tokens = self.sequence(pattern_node, where)
            if not tokens:
                raise self.error("empty pattern", pattern_node, where, fix="a pattern is a list of token specs like {LEMMA: deadline}")
            pattern = []
            for token_index, token_node in enumerate(tokens):
                token_where = f"{where}[{token_index}]"
                if not isinstance(token_node, yaml.MappingNode) or not token_node.value:
                    raise self.error(
                        "a pattern token must be a mapping like {LOWER: tight}",
                        token_node,
                        token_where,
                        fix="see spaCy's Matcher token patterns",
                    )
                try:
                    token = self.loader.construct_object(token_node, deep=True)
                except yaml.YAMLError as exc:  # a YAML tag the safe loader refuses (!!python/...), a bad timestamp, ...
                    raise self.error(f"invalid value in a pattern token: {str(exc).splitlines()[0]}", token_node, token_where,
                                     fix="write plain values: text, numbers, lists and mappings, no YAML tags") from None
                self.check_regexes(token, token_node, token_where)
                pattern.append(token)
            code.patterns.append(pattern)
            code.pattern_lines.append(pattern_node.start_mark.line + 1)

    def check_regexes(self, value: Any, node: yaml.Node, key_path: str) -> None:
        """Refuse token regexes that can take exponential time (ReDoS): spaCy runs them on every token of every transcript."""
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                for key, inner in item.items():
                    if key == "REGEX":
                        problem = regex_problem(inner)
                        if problem and problem.startswith("not a valid"):
                            raise self.error(f"invalid REGEX {inner!r}: {problem}", node, key_path,
                                             fix="write a Python regular expression; escape [ ( { with a backslash to match them")
                        if problem:
                            raise self.error(f"unsafe REGEX {inner!r}: {problem}", node, key_path,
                                             fix="write it without a repeated group that itself repeats or alternates, e.g. 'a+' not '(a+)+'")
                    else:
                        stack.append(inner)
            elif isinstance(item, list):
                stack.extend(item)

    def resolve_child_references(self) -> None:
        for reference in self.child_refs:
            with self.collecting():
                self.resolve_child_reference(*reference)

    def resolve_child_reference(self, parent_id: str, child_id: str, node: yaml.Node, key_path: str) -> None:
        if child_id not in self.codes:
            raise self.error(f"child '{child_id}' is not defined", node, key_path, fix="define a code with this id or fix the spelling")
        child = self.codes[child_id]
        if child.parent is not None and child.parent != parent_id:
            raise self.error(
                f"code '{child_id}' already has parent '{child.parent}'",
                node,
                key_path,
                fix="a code has one parent: remove one of the references",
            )
        if child_id in self.codes[parent_id].children:
            raise self.error(f"child '{child_id}' is listed twice", node, key_path, fix="remove the repeat")
        child.parent = parent_id
        self.codes[parent_id].children.append(child_id)

    def check_depth(self) -> None:
        """Refuse codes nested deeper than MAX_DEPTH: no study needs it, and exports (REFI-QDA's nested XML,
        indented tables) should never meet a tree they cannot draw. Depths are counted without recursion."""
        depth: dict[str, int] = {}
        for code in self.codes.values():
            chain = []
            current: str | None = code.id
            while current is not None and current not in depth:
                chain.append(current)
                current = self.codes[current].parent
            base = depth[current] if current is not None else -1
            for index, code_id in enumerate(reversed(chain), start=1):
                depth[code_id] = base + index
        too_deep = [code_id for code_id, level in depth.items() if level == MAX_DEPTH]  # where the tree first goes past the limit
        if too_deep:
            code = self.codes[too_deep[0]]
            self.problems.append(CodebookError(
                f"code '{code.id}' sits {MAX_DEPTH + 1} levels deep (the tree goes down {max(depth.values()) + 1}); qualcode takes at most {MAX_DEPTH}",
                path=self.path, line=code.line, key_path=code.key_path,
                fix="flatten the tree: a theme rarely needs more than a few levels",
            ))

    def check_cycles(self) -> None:
        # Each code's ancestors are walked once: a code known to reach the root (or a reported loop) ends the walk of every
        # code below it, so a chain of n codes costs n steps, not n squared.
        reported: set[frozenset[str]] = set()
        settled: set[str] = set()
        for code in self.codes.values():
            seen = [code.id]
            on_path = {code.id}
            parent = code.parent
            while parent is not None and parent not in settled:
                if parent in on_path:
                    loop = frozenset(seen[seen.index(parent):])
                    if loop in reported:
                        break
                    reported.add(loop)
                    cycle = " -> ".join(reversed(seen + [parent]))
                    self.problems.append(CodebookError(
                        f"child cycle: {cycle}",
                        path=self.path,
                        line=code.line,
                        key_path=code.key_path,
                        fix="a code cannot be its own ancestor: remove one of the children references",
                    ))
                    break
                seen.append(parent)
                on_path.add(parent)
                parent = self.codes[parent].parent
            settled.update(seen)
