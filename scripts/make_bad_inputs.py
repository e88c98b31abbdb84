"""Writes the corpus of bad inputs in tests/data/bad/ (run once; the files are committed).

The 50 MB transcript is not committed: tests/test_bad_inputs.py writes it at test time.
Run: python scripts/make_bad_inputs.py
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import docx

BAD = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad"
T = BAD / "transcripts"
C = BAD / "codebooks"
GOOD_TEXT = "Interviewer: How long did you have?\n\nRespondent: About six weeks, which was not enough time.\n"


def docx_bytes(paragraphs: list[str], table: bool = False) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        document.add_table(rows=2, cols=2).cell(0, 0).text = "only a table"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def main() -> None:
    T.mkdir(parents=True, exist_ok=True)
    C.mkdir(parents=True, exist_ok=True)
    rng = random.Random(3)
    good_docx = docx_bytes(["Interviewer: Question?", "Respondent: A long enough answer about the deadline."])
    files = {
        "truncated.docx": good_docx[: len(good_docx) // 2],
        "zip-not-docx.docx": zip_bytes({"notes.txt": b"just a zip"}),
        "pdf-renamed.docx": b"%PDF-1.7\n" + bytes(rng.randrange(256) for _ in range(2000)),
        "table-only.docx": docx_bytes([], table=True),
        "binary-named.txt": b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(3000)),
        "nul-bytes.srt": b"1\n00:00:01,000 --> 00:00:02,000\nhi\x00\x00\x00there\n" + b"\x00" * 500,
        "utf16-no-bom.txt": GOOD_TEXT.encode("utf-16-le"),
        "utf16-with-bom.md": GOOD_TEXT.encode("utf-16"),
        "cp1252-quotes.txt": "Interviewer: Was it “tight”?\n\nRespondent: Yes – the café deadline was brutal.\n".encode("cp1252"),
        "empty.txt": b"",
        "whitespace-only.md": b"   \n\n\t  \n",
        "bom-only.txt": b"\xef\xbb\xbf",
        "front-matter-list.md": b"---\n- role\n- lead\n---\n" + GOOD_TEXT.encode(),
        "front-matter-unclosed.txt": b"---\nrole: lead\n" + GOOD_TEXT.encode(),
        "front-matter-bad-yaml.txt": b"---\nrole: [lead\n---\n" + GOOD_TEXT.encode(),
        "front-matter-nested.md": b"---\nrole: lead\nextra: {a: 1}\n---\n" + GOOD_TEXT.encode(),
        "overlapping-cues.vtt": (
            b"WEBVTT\n\n00:00:01.000 --> 00:00:05.000\n<v Interviewer>How was it?\n\n"
            b"00:00:02.000 --> 00:00:04.000\n<v Ann>Rushed, honestly.\n\n00:00:03.000 --> 00:00:09.000\n<v Ann>Far too quick.\n"
        ),
        "no-header.vtt": b"00:00:01.000 --> 00:00:02.000\nhello\n",
        "no-cues.vtt": b"WEBVTT\n\n",
        "bad-timestamps.srt": b"1\n00:00:xx,000 --> 00:00:02,000\nhello\n",
        "empty-cues.srt": b"1\n00:00:01,000 --> 00:00:02,000\n\n\n2\n00:00:02,000 --> 00:00:03,000\n\n",
        "only-interviewer.txt": b"Interviewer: Hello?\n\nInterviewer: Anyone there?\n",
        "long-line.txt": ("Respondent: " + "the deadline was tight and " * 8000).encode(),
        "control-chars.txt": "Interviewer: Q?\x01\x02\n\nRespondent: An answer\x07 with bells.\x1b[0m\n".encode(),
        "mixed-newlines.txt": b"Interviewer: One?\r\nRespondent: Two.\rInterviewer: Three?\nRespondent: Four.\r\n",
        "speakers-everywhere.txt": "\n".join(f"Speaker {i % 7}: line {i}: more: colons: here" for i in range(300)).encode(),
        "invalid-utf8-random.md": bytes(rng.randrange(128, 256) for _ in range(3000)),
        "duplicate-id.txt": GOOD_TEXT.encode(),
        "duplicate-id.md": GOOD_TEXT.encode(),
        "scan.pdf": b"%PDF-1.4\n%binary\n",
        # Second round of hardening: broken encodings, text without breaks, broken UTF-16.
        "utf16-bom-truncated.txt": GOOD_TEXT.encode("utf-16")[:-1] + b"\x00\xd8",
        "utf8-bom-then-garbage.txt": b"\xef\xbb\xbf" + GOOD_TEXT.encode() + b"\xff\xfe\x80",
        "lone-surrogate.txt": b"Interviewer: Q?\n\nRespondent: \xed\xa0\x80 the deadline.\n",
        "unbroken-2mb.txt": b"Respondent: " + b"a" * 2_000_000 + b" deadline\n",
        "metadata.csv": b"transcript,role\ncp1252-quotes,lead\ncp1252-quotes,partner\n,stakeholder\nmixed-newlines,partner,extra\n",
    }
    for name, data in files.items():
        (T / name).write_bytes(data)
    depth = 10_000
    chain = "\n".join(f"- &a{i} [*a{i - 1}]" if i else "- &a0 [x]" for i in range(depth))
    codebooks = {
        "alias-chain-10000.yaml": f"name: deep\nextra_anchors:\n{chain}\ncodes:\n  - id: a\n    keywords: *a{depth - 1}\n",
        "billion-laughs.yaml": (
            'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
            + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8))
            + "codes:\n  - id: a\n    keywords: *i\n"
        ),
        "recursive-alias.yaml": "codes: &c\n  - id: a\n    keywords: [x]\n    children: *c\n",
        "tabs.yaml": "codes:\n\t- id: a\n\t  keywords: [x]\n",
        "not-utf8.yaml": None,
        "control-char.yaml": "codes:\n  - id: a\x07\n    keywords: [x]\n",
        "cycle.yaml": "codes:\n  - id: a\n    keywords: [x]\n    children: [b]\n  - id: b\n    keywords: [y]\n    children: [a]\n",
        "duplicate-id.yaml": "codes:\n  - id: a\n    keywords: [x]\n  - id: a\n    keywords: [y]\n",
        "unknown-key.yaml": "codes:\n  - id: a\n    keyword: [x]\n",
        "empty.yaml": "",
        "nothing-to-match.yaml": "codes:\n  - id: a\n    label: A\n",
        "bad-pattern.yaml": "codes:\n  - id: a\n    patterns:\n      - [{NOT_A_KEY: x}]\n",
        "not-a-mapping.yaml": "- just\n- a list\n",
        "malformed-id.yaml": "codes:\n  - id: Time Scale\n    keywords: [x]\n",
        "unregistered-extension.yaml": "codes:\n  - id: a\n    patterns:\n      - [{_: {sentiment: 1}}]\n",
        "invalid-regex.yaml": "codes:\n  - id: a\n    patterns:\n      - [{LOWER: {REGEX: '['}}]\n",
        "too-deep.yaml": "codes:\n" + "".join(f"  - id: c{i}\n    keywords: [x]\n    children: [c{i + 1}]\n" for i in range(150)) + "  - id: c150\n    keywords: [x]\n",
        "huge-keyword.yaml": "codes:\n  - id: a\n    keywords: [" + "x" * 100_000 + "]\n",
    }
    for name, text in codebooks.items():
        path = C / name
        if text is None:
            path.write_bytes("codes:\n  - id: a\n    keywords: [café]\n".encode("latin-1"))
        else:
            path.write_text(text, encoding="utf-8")
    (BAD / "metadata-missing-id-column.csv").write_bytes(b",role\nlead-01,lead\n")


if __name__ == "__main__":
    main()
