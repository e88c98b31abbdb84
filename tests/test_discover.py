"""Themes the codebook does not have yet (issue 23): discover groups what no code covers, names the groups, says who
raised them with quotes, and a chosen candidate goes into codebook.yaml in one command, comments and order kept."""

from __future__ import annotations

import random

import pytest
from chat_server import ChatServer, Reply
from conftest import write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.codebook import load_codebook
from qualcode.errors import CodebookError, ProjectError
from qualcode.exchange.candidates import add_codes
from qualcode.project import Project
from qualcode.suggest.discover import class_terms, discover

runner = CliRunner()

CODEBOOK = """\
# Our codebook, version 3 (comments and order must survive an --add)
name: Partnership challenges
codes:
  - id: timescale   # the first theme we agreed on
    label: Timescale
    keywords: [deadline]

  # funding: agreed at the second team meeting
  - id: funding
    label: Funding
    keywords: [grant]
"""
STAFF = ["Our staff turnover was terrible, people left after six months.", "Staff turnover meant we trained new staff constantly.",
         "Recruiting staff was hard and turnover high.", "We lost key staff, and the turnover hurt delivery.",
         "Turnover of staff in the partner organisations slowed everything.", "High staff turnover: three managers in a year.",
         "The staff turnover problem never went away.", "New staff, then turnover again, it was a cycle."]
VENUES = ["The venue was too small for the workshops and the venue booking was chaos.", "We could not find a venue in the town centre.",
          "Venue costs rose and the venue was often double booked.", "The community venue closed in winter for repairs.",
          "Finding an accessible venue took months.", "Our venue had no parking, so the venue lost people.",
          "A better venue would have helped the sessions.", "The venue manager cancelled twice."]
OTHER = ["The deadline came too soon.", "The grant paid for two posts.", "Honestly it went fine.", "Nothing else to add.",
         "We met on Tuesdays.", "The report was long."]


def study(tmp_path, roles=("lead", "partner", "stakeholder")):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "qualcode.yaml", "retrain_after: 0\ngroups: {role: [lead, partner, stakeholder]}\n")
    answers = STAFF + VENUES + OTHER
    random.Random(1).shuffle(answers)
    for number in range(6):
        chunk = answers[number::6]
        turns = "\n\n".join(f"Interviewer: Q{i}?\n\nRespondent: {text}" for i, text in enumerate(chunk))
        write(tmp_path / "transcripts" / f"t{number}.txt", f"---\nrole: {roles[number % 3]}\n---\n{turns}\n")
    assert runner.invoke(app, ["code", "--project", str(tmp_path)]).exit_code == 0
    return tmp_path


def test_discover_finds_the_themes_no_code_covers_names_them_and_says_who_raised_them(tmp_path):
    path = study(tmp_path)
    with Project.open(path) as opened:
        found = discover(opened, min_size=5)
        again = discover(opened, min_size=5)
    assert found.considered == 20 and not found.everything  # the deadline and grant answers are covered by their rules
    names = {candidate.name for candidate in found.candidates}
    assert [candidate.name for candidate in again.candidates] == [candidate.name for candidate in found.candidates]  # deterministic
    staff = next(c for c in found.candidates if "turnover" in c.name or "staff" in c.name)
    venue = next(c for c in found.candidates if "venue" in c.name)
    assert len(found.candidates) == 2, names
    staff_texts = {quote.text for quote in staff.quotes}
    assert staff_texts <= set(STAFF) and {quote.text for quote in venue.quotes} <= set(VENUES) and 3 <= len(staff.quotes) <= 5
    assert staff.size == 8 and venue.size == 8 and found.groups == ["lead", "partner", "stakeholder"]
    assert sum(segments for segments, _t in staff.spread.values()) == 8 and staff.transcripts == 6
    assert all(quote.segment >= 1 and quote.transcript.startswith("t") for quote in staff.quotes)


def test_the_discover_command_writes_a_readable_page_and_a_fragment_that_adds_in_one_step(tmp_path):
    path = study(tmp_path)
    result = runner.invoke(app, ["discover", "--project", str(path), "--min-size", "5"], env={"COLUMNS": "120"})
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    assert "Candidate themes among the respondent segments no code covers: 20 segments" in out and "lead" in out and "stakeholder" in out
    page = (path / "exports" / "candidates.md").read_text()
    assert "## 1." in page and "## 2." in page and "> —" in page and "segment" in page
    fragment = (path / "exports" / "candidates.yaml").read_text()
    assert "  # 1." in fragment and "  # 2." in fragment and "examples:" in fragment
    venue = 1 if "venue" in fragment.split("  # 2.")[0] else 2
    added = runner.invoke(app, ["codebook", "--add", "exports/candidates.yaml", "--only", str(venue), "--project", str(path)])
    assert added.exit_code == 0 and "Added 1 codes to codebook.yaml" in added.output, added.output
    text = (path / "codebook.yaml").read_text()
    assert text.startswith(CODEBOOK.rstrip("\n")) and "# funding: agreed at the second team meeting" in text
    assert f"  # {venue}." in text and "venue" in text.split("keywords: [grant]")[1]
    codebook = load_codebook(path / "codebook.yaml")
    new = [code for code in codebook.codes if code not in ("timescale", "funding")]
    assert len(new) == 1 and list(codebook.codes)[:2] == ["timescale", "funding"]
    recoded = runner.invoke(app, ["code", "--project", str(path)])
    assert recoded.exit_code == 0 and new[0] in recoded.output  # suggested like any other code now
    with Project.open(path) as opened:
        assert discover(opened, min_size=5).considered < 20  # the venue answers are covered now


def test_adding_refuses_a_clash_with_its_line_and_a_number_out_of_range(tmp_path):
    path = study(tmp_path)
    write(path / "more.yaml", "codes:\n  # 1. another\n  - id: other-thing\n    label: Other thing\n    keywords: [thing]\n"
                              "  # 2. a clash\n  - id: funding\n    label: Money\n    keywords: [money]\n")
    before = (path / "codebook.yaml").read_text()
    with Project.open(path) as opened:
        with pytest.raises(CodebookError) as clash:
            add_codes(opened, path / "more.yaml", only=[2])
        assert "more.yaml:7: codes[1].id: 'funding' is a code of codebook.yaml already (line 9)" in str(clash.value)
        with pytest.raises(ProjectError, match="there is no code number 3"):
            add_codes(opened, path / "more.yaml", only=[3])
        write(path / "bad.yaml", "codes:\n  - id: Bad Id\n    label: x\n")
        with pytest.raises(CodebookError, match="bad.yaml:2"):
            add_codes(opened, path / "bad.yaml")
    assert (path / "codebook.yaml").read_text() == before
    result = runner.invoke(app, ["codebook", "--add", "more.yaml", "--only", "2", "--project", str(path)])
    assert result.exit_code == 1 and "more.yaml:7:" in " ".join(result.output.split())


def test_discover_names_groups_with_the_language_model_when_asked(tmp_path):
    def namer(body: dict, attempt: int, headers: dict) -> Reply:
        quotes = body["messages"][1]["content"]
        name = "Staff turnover" if "turnover" in quotes else "Venues"
        return Reply(content=f'{{"name": "{name}", "description": "What people said about {name.lower()}."}}')

    path = study(tmp_path)
    with ChatServer(namer) as server:
        write(path / "qualcode.yaml", f"retrain_after: 0\nllm:\n  endpoint: {server.url}\n  model: m\n")
        result = runner.invoke(app, ["discover", "--llm", "--min-size", "5", "--project", str(path)], env={"COLUMNS": "120"})
        assert result.exit_code == 0 and "named 2 of 2 groups" in result.output, result.output
    fragment = (path / "exports" / "candidates.yaml").read_text()
    assert 'label: "Staff turnover"' in fragment and 'description: "What people said about venues."' in fragment
    write(path / "qualcode.yaml", "retrain_after: 0\n")
    refused = runner.invoke(app, ["discover", "--llm", "--project", str(path)])
    assert refused.exit_code == 1 and "no language model is set up" in refused.output


def test_class_based_terms_prefer_what_sets_a_group_apart():
    groups = [["the venue was small", "a venue in town", "the venue again"], ["staff left the venue", "staff turnover", "staff again"]]
    (venue_words, _), (staff_words, _) = class_terms(groups)
    assert venue_words[0] == "venue" and staff_words[0] == "staff"


def test_too_few_uncovered_segments_give_no_candidates_and_say_so(tmp_path):
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "transcripts" / "a.txt", "Interviewer: Q?\n\nRespondent: The deadline.\n\nInterviewer: Q?\n\nRespondent: Other.\n")
    runner.invoke(app, ["code", "--project", str(tmp_path)])
    result = runner.invoke(app, ["discover", "--project", str(tmp_path)])
    assert result.exit_code == 0 and "No candidate themes" in result.output
    assert "codes: []" in (tmp_path / "exports" / "candidates.yaml").read_text()
