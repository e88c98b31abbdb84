"""Every CLI command on a copy of the sample project, with scripted decisions: prints all output.

Used to check that a refactoring leaves what a researcher sees unchanged: run it on two
commits and diff the outputs. Timestamps, temporary paths and file sizes are normalised;
exports are printed as their contents (CSV and Markdown as text, the workbook cell by cell,
the REFI-QDA XML with its creation times blanked).

Run: .venv/bin/python scripts/cli_golden.py > before.txt
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUALCODE = [sys.executable, "-m", "qualcode"]
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}


def normalise(text: str, root: Path) -> str:
    text = text.replace(str(root), "<project>").replace(str(root.parent), "<work>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?", "<time>", text)
    text = re.sub(r"\d{8}T\d{6}\d*Z", "<stamp>", text)
    text = re.sub(r"\(\d[\d,]* bytes\)", "(<size> bytes)", text)
    text = re.sub(r"saved in \d+\.\d s", "saved in <t> s", text)
    text = re.sub(r"\d+\.\d decisions/min", "<rate> decisions/min", text)
    return text


def run(root: Path, *args: str, keys: str | None = None) -> None:
    completed = subprocess.run([*QUALCODE, *args], cwd=root, env=ENV, input=keys, capture_output=True, text=True, timeout=300)
    print(normalise(f"$ qualcode {' '.join(args)}", root) + (f"   <<< {keys!r}" if keys is not None else ""))
    print(normalise(completed.stdout, root), end="")
    if completed.stderr:
        print("[stderr]")
        print(normalise(completed.stderr, root), end="")
    print(f"[exit {completed.returncode}]\n")


def show_exports(folder: Path, root: Path) -> None:
    for path in sorted(folder.iterdir()):
        print(f"--- {path.name}")
        if path.suffix in (".csv", ".md"):
            print(normalise(path.read_text(encoding="utf-8"), root))
        elif path.suffix == ".xlsx":
            from openpyxl import load_workbook

            workbook = load_workbook(path)
            for sheet in workbook.worksheets:
                print(f"[sheet {sheet.title}] freeze={sheet.freeze_panes}")
                for row in sheet.iter_rows(values_only=True):
                    print(row)
        elif path.suffix in (".qdpx", ".qdc"):
            data = path.read_bytes()
            if path.suffix == ".qdpx":
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    for name in sorted(archive.namelist()):
                        print(f"[member {name}]")
                        print(normalise(archive.read(name).decode("utf-8"), root))
            else:
                print(normalise(data.decode("utf-8"), root))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="qualcode-golden-"))
    root = work / "study"
    root.mkdir()
    shutil.copy(REPO / "codebook.yaml", root / "codebook.yaml")
    shutil.copytree(REPO / "transcripts", root / "transcripts")
    (root / "qualcode.yaml").write_text("retrain_after: 0\nlearn_min_examples: 2\n", encoding="utf-8")
    try:
        run(root, "--help")
        for command in ("code", "codebook", "review", "status", "stats", "export", "import-qdpx", "agreement", "evaluate", "train", "backup", "check"):
            run(root, command, "--help")
        run(root, "status")
        run(root, "code")
        run(root, "code")
        run(root, "codebook")
        run(root, "codebook", "--terms")
        run(root, "codebook", "--check")
        run(root, "status")
        run(root, "stats", "--status", "suggested")
        run(root, "review", "--coder", "ann", "--plain", keys="a1x2a\nsxaa" + "c\n3\n" + "n\nhedging here\n" + "uax" * 4 + "aaaaaaaaxxaaaq")
        run(root, "review", "--coder", "bob", "--plain", "--transcript", "lead-01", keys="axaxaxaxa1aq")
        run(root, "review", "--coder", "cy", "--accept-above", "0.7")
        run(root, "review", "--coder", "ann", "--plain", "--order", "uncertain", "--role", "partner", keys="x" * 6 + "q")
        run(root, "status")
        run(root, "stats")
        run(root, "stats", "--by", "role,sector", "--status", "all", "--segments")
        run(root, "stats", "--by", "sector", "--coder", "ann")
        run(root, "agreement", "coder:ann", "coder:bob")
        run(root, "agreement", "coder:ann", "coder:bob", "machine", "--disagreements")
        run(root, "agreement", "coder:ann", "machine", "--format", "csv")
        run(root, "agreement", "coder:ann", "coder:bob", "--disagreements", "--format", "csv")
        gold = root / "gold.csv"
        gold.write_text(
            "transcript,text,code\nlead-01,the window was short,timescale\nlead-01,someone different at nearly every meeting,personnel\n"
            "partner-02,deadline,timescale\n",
            encoding="utf-8",
        )
        run(root, "evaluate", "gold.csv", "--top", "2")
        run(root, "train", "--seed", "1")
        run(root, "status")
        run(root, "code")
        run(root, "export", "--by", "sector", "--by", "role,organisation_type")
        show_exports(root / "exports", root)
        run(root, "export", "--format", "csv", "--status", "all", "--coder", "bob", "--output", "other")
        show_exports(root / "other", root)
        run(root, "check")
        run(root, "backup", "--output", "copy.db")
        run(root, "import-qdpx", "exports/project.qdpx", "--project", str(work / "imported"))
        run(work / "imported", "status")
        run(root, "agreement", "coder:ann", f"gold:{root / 'exports' / 'project.qdpx'}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
