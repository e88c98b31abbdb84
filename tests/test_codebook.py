from __future__ import annotations

import pytest
from conftest import REPO, SMALL_CODEBOOK

from qualcode.codebook import load_codebook, parse_codebook
from qualcode.errors import CodebookError


def test_sample_codebook_has_the_five_psp_themes_under_challenges():
    codebook = load_codebook(REPO / "codebook.yaml")
    assert [code.id for code in codebook.children("challenges")] == [
        "timescale",
        "competitiveness",
        "clarity",
        "personnel",
        "sustainability",
    ]
    for code in codebook.children("challenges"):
        assert code.description and code.include and code.exclude and code.examples
        assert len(code.keywords) + len(code.phrases) >= 15
    assert codebook["other"].manual and not codebook["other"].has_rules


def test_tree_order_depth_ancestors_and_descendants():
    codebook = parse_codebook(SMALL_CODEBOOK)
    assert [(code.id, depth) for code, depth in codebook.walk()] == [
        ("challenges", 0),
        ("timescale", 1),
        ("sustainability", 1),
        ("other", 0),
    ]
    assert codebook.ancestors("timescale") == ["challenges"]
    assert codebook.descendants("challenges") == ["timescale", "sustainability"]
    assert codebook["sustainability"].patterns == [[{"NORM": "who"}, {"NORM": "will"}, {"NORM": "pay"}]]
    assert codebook["sustainability"].pattern_lines == [16]


def test_children_may_refer_to_codes_by_id():
    codebook = parse_codebook(
        "codes:\n"
        "  - id: parent\n"
        "    children: [child]\n"
        "  - id: child\n"
        "    keywords: [x]\n"
    )
    assert codebook["child"].parent == "parent"
    assert [code.id for code in codebook.roots()] == ["parent"]


def test_fingerprint_changes_with_the_text():
    assert parse_codebook(SMALL_CODEBOOK).fingerprint != parse_codebook(SMALL_CODEBOOK + "\n# note\n").fingerprint


BAD_CODEBOOKS = [
    # (text, expected rendering)
    (
        "codes:\n  - id: a\n    keywords: [x\n",
        "cb.yaml:4: YAML syntax error",
    ),
    (
        "codes:\n  - id: a\n    keyword: [x]\n",
        "cb.yaml:3: codes[0].keyword: unknown key 'keyword'. Fix: did you mean 'keywords'?",
    ),
    (
        "codes:\n  - id: a\n    keywords: [x]\n  - id: a\n    keywords: [y]\n",
        "cb.yaml:4: codes[1].id: duplicate id 'a' (first defined at line 2). Fix: give each code its own id",
    ),
    (
        "codes:\n  - id: Time Scale\n    keywords: [x]\n",
        "cb.yaml:2: codes[0].id: malformed id 'Time Scale'. Fix: use a slug",
    ),
    (
        "codes:\n  - id: a\n    children: [b]\n  - id: b\n    children: [a]\n    keywords: [x]\n",
        "child cycle: ",
    ),
    (
        "codes:\n  - id: a\n    label: A\n",
        "cb.yaml:2: codes[0]: code 'a' has nothing to match. Fix: add keywords, phrases, exact terms or patterns",
    ),
    (
        "name: x\n",
        "cb.yaml:1: missing 'codes'",
    ),
    (
        "",
        "cb.yaml: the codebook is empty",
    ),
    (
        "codes:\n  - keywords: [x]\n",
        "cb.yaml:2: codes[0]: code without an 'id'",
    ),
    (
        "codes:\n  - id: a\n    keywords: [x]\n    keywords: [y]\n",
        "cb.yaml:4: codes[0].keywords: duplicate key 'keywords'",
    ),
    (
        "codes: just text\n",
        "cb.yaml:1: codes: expected a list, found 'just text'",
    ),
    (
        "codes:\n  - id: a\n    patterns:\n      - [deadline]\n",
        "cb.yaml:4: codes[0].patterns[0][0]: a pattern token must be a mapping",
    ),
    (
        "codes:\n  - id: a\n    keywords: [x, '']\n",
        "cb.yaml:3: codes[0].keywords[1]: empty entry",
    ),
    (
        "codes:\n  - id: a\n    children: [zzz]\n",
        "cb.yaml:3: codes[0].children[0]: child 'zzz' is not defined",
    ),
    (
        "- id: a\n",
        "cb.yaml:1: expected a mapping (key: value), found a list",
    ),
    (
        "codes:\n  - &a\n    id: a\n    keywords: [x]\n    children: [*a]\n",
        "duplicate id 'a'",
    ),
]


@pytest.mark.parametrize("text, expected", BAD_CODEBOOKS)
def test_bad_codebooks_name_file_line_key_and_fix(text, expected):
    with pytest.raises(CodebookError) as raised:
        parse_codebook(text, path="cb.yaml")
    assert expected in str(raised.value)


def test_missing_codebook_file(tmp_path):
    with pytest.raises(CodebookError, match="codebook not found. Fix: create codebook.yaml"):
        load_codebook(tmp_path / "codebook.yaml")


def test_codebook_not_utf8(tmp_path):
    path = tmp_path / "codebook.yaml"
    path.write_bytes(b"codes:\n  - id: a\n    keywords: [caf\xe9]\n")
    with pytest.raises(CodebookError, match="not UTF-8"):
        load_codebook(path)


def test_invalid_token_pattern_is_reported_at_its_line(tmp_path):
    from qualcode.suggest.pipeline import build_pipeline

    codebook = parse_codebook("codes:\n  - id: a\n    patterns:\n      - [{NORM: x}]\n      - [{NOT_AN_ATTR: x}]\n", path="cb.yaml")
    with pytest.raises(CodebookError) as raised:
        build_pipeline(codebook)
    message = str(raised.value)
    assert message.startswith("cb.yaml:5: codes[0].patterns[1]: invalid token pattern for 'a'")
    assert "Fix: use spaCy Matcher keys" in message


def test_every_problem_is_reported_in_one_run_each_located():
    text = (
        "name: x\ncodes:\n"
        "  - id: Good\n    keywords: [a]\n"          # line 3: malformed id
        "  - id: b\n    lable: B\n    keywords: [b]\n"  # line 6: unknown key
        "  - id: c\n"                                  # line 8: nothing to match
        "  - id: d\n    keywords: [d, '']\n    children: [zz]\n"  # lines 10, 11
        "  - id: e\n    manual: maybe\n"               # line 13
        "  - id: f\n    children: [g]\n  - id: g\n    children: [f]\n"  # a cycle, reported once
    )
    with pytest.raises(CodebookError) as raised:
        parse_codebook(text, path="codebook.yaml")
    lines = str(raised.value).splitlines()
    assert lines[0] == "codebook.yaml: 7 problems in the codebook:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        "codebook.yaml:3", "codebook.yaml:6", "codebook.yaml:8", "codebook.yaml:10", "codebook.yaml:11", "codebook.yaml:13", "codebook.yaml:14",
    ]
    assert "child cycle" in lines[-1] and "did you mean 'label'" in lines[2]


def test_one_problem_reads_as_before():
    with pytest.raises(CodebookError, match=r"^codebook.yaml:3: codes\[0\].id: malformed id 'Good'"):
        parse_codebook("name: x\ncodes:\n  - id: Good\n    keywords: [a]\n", path="codebook.yaml")
