"""The language-model suggester (issue 21), against a local server that speaks the chat-completions protocol: what
reaches the database, what the researcher sees, that nothing is sent where it may not go, that the key never shows,
and that a rerun (or a run after kill -9) asks nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chat_server import ChatServer, Reply, answer_of, keyword_answerer
from conftest import call, open_store, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.errors import SettingsError
from qualcode.project import Project
from qualcode.settings import load_settings
from qualcode.suggest.prompt import find_verbatim, parse_reply

runner = CliRunner()

CODEBOOK = """\
name: Partnership challenges
codes:
  - id: timescale
    label: Timescale
    description: Time pressure and the time available.
    include: Complaints about deadlines or the pace.
    keywords: [deadline]
  - id: funding
    label: Funding
    description: Money for the partnership, and what happens when it ends.
    keywords: [grant]
  - id: other
    label: Other notable
    manual: true
"""
ANSWERS = ["The deadline was brutal and we rushed.", "Nobody knows who pays when the money runs out.",
           "We are a housing association.", "Six weeks was never enough time to do it well.", "Yes."]
KEYWORDS = {"timescale": ["deadline", "six weeks"], "funding": ["money", "pays"]}


def project(tmp_path: Path, url: str, extra: str = "") -> Path:
    write(tmp_path / "codebook.yaml", CODEBOOK)
    write(tmp_path / "qualcode.yaml", f"retrain_after: 0\nllm:\n  endpoint: {url}\n  model: test-model\n  concurrency: 2\n  timeout: 5\n{extra}")
    turns = "\n\n".join(f"Interviewer: Question {i}?\n\nRespondent: {answer}" for i, answer in enumerate(ANSWERS, start=1))
    write(tmp_path / "transcripts" / "lead-01.txt", f"---\nrole: lead\n---\n{turns}\n")
    return tmp_path


def suggestions(path: Path) -> dict[str, list[tuple[str, str, bool, list[str]]]]:
    with open_store(path) as store:
        text = {row.id: row.text for row in store.codable_segments()}
        found: dict[str, list] = {value: [] for value in text.values()}
        for row in store.suggestions():
            quotes = [text[row.segment_id][e.start : e.end] for e in row.suggestion.evidence]
            found[text[row.segment_id]].append((row.code, str(row.source), row.suggestion.says_yes, quotes))
        return found


def test_the_llm_block_is_checked_with_its_line_and_a_key_is_refused_in_the_file(tmp_path):
    cases = {
        "llm:\n  endpoint: http://127.0.0.1:11434/v1\n  model: m\n  api_key: sk-abc\n": "a key does not belong in qualcode.yaml",
        "llm:\n  endpoint: http://127.0.0.1:11434/v1\n": "the language model needs 'model'",
        "llm:\n  endpoint: ftp://x\n  model: m\n": "is not an http(s) URL",
        "llm:\n  endpoint: http://127.0.0.1/v1\n  model: m\n  temperatur: 0\n": "unknown setting 'temperatur'",
        "llm:\n  endpoint: http://127.0.0.1/v1\n  model: m\n  concurrency: 0\n": "expected a whole number from 1 to 64",
        "llm:\n  endpoint: http://127.0.0.1/v1\n  model: m\n  api_key_env: sk-live-abc\n": "is not the name of an environment variable",
        "llm: yes\n": "expected the language model's settings",
    }
    for text, expected in cases.items():
        write(tmp_path / "qualcode.yaml", text)
        with pytest.raises(SettingsError) as raised:
            load_settings(tmp_path)
        assert expected in str(raised.value) and "qualcode.yaml:1: llm" in str(raised.value), (text, str(raised.value))
    write(tmp_path / "qualcode.yaml", "llm:\n  endpoint: http://127.0.0.1:11434/v1\n  model: llama3.1:8b\n  ignore: [other]\n")
    settings = load_settings(tmp_path).llm
    assert settings is not None and (settings.model, settings.temperature, settings.ignore, settings.allow_remote) == ("llama3.1:8b", 0.0, ("other",), False)


def test_replies_are_checked_evidence_must_be_verbatim_and_unknown_codes_are_dropped():
    text = "The deadline was brutal, and  we rushed."
    answer = parse_reply('```json\n{"codes": [{"code": "timescale", "confidence": 1.4, "evidence": "\\"deadline was brutal\\""},'
                         '{"code": "funding", "evidence": "the grant ran out"}, {"code": "staffing", "evidence": "rushed"},'
                         '{"code": "timescale", "confidence": 0.5, "evidence": ["We Rushed"]}]}\n```', text, {"timescale", "funding"})
    assert answer.codes == {"timescale": (1.0, [(4, 23), (30, 39)])} and answer.invented == 1 and answer.unknown == 1
    assert find_verbatim("and we rushed…", text) == (25, 39) and find_verbatim("brutal deadline", text) is None
    for bad in ("not json", '{"verdict": "yes"}', '{"codes": [42]}'):
        with pytest.raises(ValueError):
            parse_reply(bad, text, {"timescale"})


def test_code_asks_the_model_files_every_reply_and_a_rerun_asks_nothing_again(tmp_path, backend):
    with ChatServer(keyword_answerer(KEYWORDS)) as server:
        path = project(tmp_path, server.url)
        result = runner.invoke(app, ["code", "--project", str(path)])
        assert result.exit_code == 0, result.output
        out = " ".join(result.output.split())
        assert f"Language model test-model at 127.0.0.1:{server.url.split(':')[2].split('/')[0]} (this machine): sending 5 segments" in out
        assert "5 segments answered now, 0 from earlier runs" in out
        assert sorted(server.asked()) == sorted(ANSWERS)
        [body] = [request for request in server.requests if answer_of(request) == ANSWERS[0]]
        assert body["model"] == "test-model" and body["temperature"] == 0.0 and body["response_format"] == {"type": "json_object"}
        system = body["messages"][0]["content"]
        assert "id: timescale" in system and "Time pressure" in system and "use when: Complaints about deadlines" in system
        assert "id: other" in system  # a manual code is the model's to decide too
        assert 'The interviewer asked: "Question 1?"' in body["messages"][1]["content"]
        found = suggestions(path)
        assert found["The deadline was brutal and we rushed."] == [("timescale", "llm", True, ["deadline", "deadline"])]
        assert found["Six weeks was never enough time to do it well."] == [("timescale", "llm", True, ["Six weeks"])]
        assert found["Nobody knows who pays when the money runs out."] == [("funding", "llm", True, ["money"])]
        assert found["Yes."] == []
        again = runner.invoke(app, ["code", "--project", str(path)])
        assert again.exit_code == 0 and len(server.requests) == 5, again.output
        assert "every segment is answered already (5 filed); nothing is sent" in " ".join(again.output.split())


def test_what_the_model_gets_wrong_is_dropped_counted_and_said(tmp_path):
    def script(body: dict, attempt: int, headers: dict) -> Reply:
        text = answer_of(body)
        if text.startswith("The deadline"):
            return Reply(content='{"codes": [{"code": "timescale", "confidence": 0.8, "evidence": "the deadline moved twice"}]}')
        if text.startswith("Nobody"):
            return Reply(content='{"codes": [{"code": "staffing", "evidence": "Nobody"}, {"code": "funding", "evidence": "money"}]}')
        if text.startswith("We are"):
            return Reply(content="Sure! Here are the codes: timescale" if attempt == 1 else '{"codes": []}')
        if text.startswith("Six"):
            return Reply(content="I cannot help with that.")  # malformed twice: the segment fails, keeping its rule suggestions
        return Reply(content='{"codes": []}')

    with ChatServer(script) as server:
        path = project(tmp_path, server.url)
        result = runner.invoke(app, ["code", "--project", str(path)])
        out = " ".join(result.output.split())
        assert result.exit_code == 0, out
        assert "1 codes whose quoted evidence is not in the segment" in out and "1 codes the codebook does not have" in out
        assert "3 malformed replies" in out and "1 failed (they keep their rule suggestions" in out
        found = suggestions(path)
        # the invented quote is dropped with its code; the rule's hit stays on screen as the model's no
        assert found["The deadline was brutal and we rushed."] == [("timescale", "llm", False, ["deadline"])]
        assert found["Nobody knows who pays when the money runs out."] == [("funding", "llm", True, ["money"])]
        assert found["Six weeks was never enough time to do it well."] == []
        assert server.asked().count("We are a housing association.") == 2 and server.asked().count("Six weeks was never enough time to do it well.") == 2
        runner.invoke(app, ["code", "--project", str(path)])
        assert server.asked().count("Six weeks was never enough time to do it well.") == 4  # a failed segment is asked again
        assert server.asked().count("Nobody knows who pays when the money runs out.") == 1


def test_rate_limits_server_errors_drops_and_timeouts_are_retried_within_a_bound(tmp_path):
    def script(body: dict, attempt: int, headers: dict) -> Reply:
        text = answer_of(body)
        if text.startswith("The deadline") and attempt == 1:
            return Reply(status=429, headers={"Retry-After": "0.2"})
        if text.startswith("Nobody") and attempt <= 2:
            return Reply(status=500 if attempt == 1 else 503)
        if text.startswith("We are") and attempt == 1:
            return Reply(drop=True)
        if text.startswith("Six"):
            return Reply(delay=2.5, content='{"codes": []}')  # past the 1 s timeout, every time
        return keyword_answerer(KEYWORDS)(body, attempt, headers)

    with ChatServer(script) as server:
        path = project(tmp_path, server.url, "  temperature: 0.2\n").joinpath()
        text = (path / "qualcode.yaml").read_text().replace("timeout: 5", "timeout: 1")
        (path / "qualcode.yaml").write_text(text)
        started = time.perf_counter()
        result = runner.invoke(app, ["code", "--project", str(path)])
        out = " ".join(result.output.split())
        assert result.exit_code == 0, out
        assert "1 failed" in out and "no reply within 1 s" in out
        asked = server.asked()
        assert asked.count("The deadline was brutal and we rushed.") == 2 and asked.count("Nobody knows who pays when the money runs out.") == 3
        assert asked.count("We are a housing association.") == 2 and asked.count("Six weeks was never enough time to do it well.") == 2  # a timeout is tried once more, then the segment fails
        assert time.perf_counter() - started < 60
        assert server.requests[0]["temperature"] == 0.2
        found = suggestions(path)
        assert found["The deadline was brutal and we rushed."] == [("timescale", "llm", True, ["deadline", "deadline"])]
        assert found["Six weeks was never enough time to do it well."] == []


def test_a_remote_endpoint_is_refused_unless_the_study_allows_it_and_nothing_is_sent(tmp_path):
    path = project(tmp_path, "http://llm.example.org/v1")
    result = runner.invoke(app, ["code", "--project", str(path)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and "llm.example.org is not this machine" in out and "allow_remote: true" in out, out
    for dry in (["code", "--dry-run"],):
        assert runner.invoke(app, [*dry, "--project", str(path)]).exit_code == 1
    with ChatServer(keyword_answerer(KEYWORDS)) as server:
        remote_name = server.url.replace("127.0.0.1", "localhost.localdomain")  # a name, not this machine's address
        project(tmp_path, remote_name)
        refused = runner.invoke(app, ["code", "--project", str(path)])
        assert refused.exit_code == 1 and server.requests == []


def test_the_key_is_read_from_the_environment_sent_as_a_bearer_token_and_never_shown(tmp_path, monkeypatch):
    secret = "sk-test-Zq81hF0rB2xXk3lLmNoPqRsT"

    def script(body: dict, attempt: int, headers: dict) -> Reply:
        if headers.get("Authorization") != f"Bearer {secret}":
            return Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {headers.get('Authorization', '')[7:]}"}})
        return keyword_answerer(KEYWORDS)(body, attempt, headers)

    with ChatServer(script) as server:
        path = project(tmp_path, server.url, "  api_key_env: QUALCODE_TEST_KEY\n")
        missing = runner.invoke(app, ["code", "--project", str(path)])
        assert missing.exit_code == 1 and "'QUALCODE_TEST_KEY' holding the language model's key is not set" in " ".join(missing.output.split())
        monkeypatch.setenv("QUALCODE_TEST_KEY", secret[:-1] + "X")  # a wrong key: the server echoes it
        wrong = runner.invoke(app, ["code", "--project", str(path)])
        assert wrong.exit_code == 1 and "refused the request (401" in wrong.output and secret[:-1] not in wrong.output, wrong.output
        monkeypatch.setenv("QUALCODE_TEST_KEY", secret)
        good = runner.invoke(app, ["code", "--project", str(path)])
        assert good.exit_code == 0 and secret not in good.output
        assert server.headers[-1]["Authorization"] == f"Bearer {secret}"
        exported = runner.invoke(app, ["export", "--project", str(path)])
        assert exported.exit_code == 0
        agreement = runner.invoke(app, ["agreement", "llm", "machine", "--project", str(path)])
        assert agreement.exit_code == 0 and secret not in agreement.output
    for file in [*path.rglob("*")]:
        if file.is_file():
            assert secret.encode() not in file.read_bytes() and secret[:-1].encode() not in file.read_bytes(), file


def test_dry_run_says_how_many_requests_and_tokens_and_sends_nothing(tmp_path):
    with ChatServer(keyword_answerer(KEYWORDS)) as server:
        path = project(tmp_path, server.url)
        result = runner.invoke(app, ["code", "--dry-run", "--project", str(path)])
        out = " ".join(result.output.split())
        assert result.exit_code == 0 and "1 new and 0 changed transcripts" in out and "(5 respondent segments)" in out, out
        assert "5 requests, about" in out and "Nothing was sent" in out and server.requests == []
        assert not (path / ".qualcode" / "project.db").exists()
        runner.invoke(app, ["code", "--project", str(path)])
        write(path / "transcripts" / "lead-02.txt", "Interviewer: Q?\n\nRespondent: The deadline again.\n\nInterviewer: Q2?\n\nRespondent: Yes.\n")
        second = " ".join(runner.invoke(app, ["code", "--dry-run", "--project", str(path)]).output.split())
        # "Yes." after "Q2?" has not been asked; after "Question 5?" it was: the question is part of what is asked
        assert "1 new and 0 changed" in second and "2 requests" in second and "5 segments answered before" in second, second
        assert len(server.requests) == 5


def test_the_researchers_decisions_become_the_models_examples_and_agreement_measures_it(tmp_path):
    from qualcode.review.session import ReviewFilter, ReviewSession

    with ChatServer(keyword_answerer(KEYWORDS)) as server:
        path = project(tmp_path, server.url)
        call(__import__("qualcode.run.coding", fromlist=["code"]).code, path)
        with Project.open(path) as opened:
            session = ReviewSession(opened, coder="ann", filters=ReviewFilter(include_unsuggested=True))
            session.accept_all()  # the deadline answer: timescale
            session.reject_all()  # funding on the money answer: rejected
        result = runner.invoke(app, ["code", "--llm-refresh", "--project", str(path)])
        assert result.exit_code == 0, result.output
        asked = [body for body in server.requests[5:]]
        assert len(asked) == 3  # the three undecided segments, asked again
        user = asked[0]["messages"][1]["content"]
        assert "How the researcher coded similar answers" in user and "Codes the researcher applied: timescale" in user
        assert "Codes the researcher rejected: funding" in " ".join(body["messages"][1]["content"] for body in asked)
        agreement = runner.invoke(app, ["agreement", "llm", "coder:ann", "--project", str(path)])
        out = " ".join(agreement.output.split())
        assert agreement.exit_code == 0 and "llm (test-model) vs coder:ann" in out, out


def test_a_killed_run_loses_nothing_and_the_rerun_asks_only_what_was_not_answered(tmp_path, backend):
    many = [f"Answer number {i} mentions the deadline." for i in range(30)]

    def slow(body: dict, attempt: int, headers: dict) -> Reply:
        reply = keyword_answerer(KEYWORDS)(body, attempt, headers)
        reply.delay = 0.15
        return reply

    with ChatServer(slow) as server:
        path = project(tmp_path, server.url)
        turns = "\n\n".join(f"Interviewer: Q{i}?\n\nRespondent: {text}" for i, text in enumerate(many))
        write(path / "transcripts" / "lead-01.txt", turns + "\n")
        process = subprocess.Popen([sys.executable, "-m", "qualcode", "code", "--project", str(path)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
        deadline = time.monotonic() + 60
        while len(server.requests) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)

        def filed() -> int:
            with open_store(path) as store:  # the run is asking, so it has made the database
                return int(store._q("SELECT COUNT(*) FROM llm_replies").fetchone()[0])

        # Killed once answers are in the database while the run still asks: answers filed only at the end of a batch
        # (30 segments here, one batch) would let the run finish first. Waiting on the database rather than on the
        # server's count leaves no race with a loaded machine's commits.
        while filed() < 5 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        first = list(server.asked())
        assert 8 <= len(first) < 30 and len(set(first)) == len(first)
        kept = filed()
        assert 5 <= kept <= len(first)
        result = runner.invoke(app, ["code", "--project", str(path)])
        assert result.exit_code == 0, result.output
        asked = server.asked()
        assert sorted(set(asked)) == sorted(many)
        twice = [text for text in set(asked) if asked.count(text) > 1]
        # nothing filed is asked again, and everything not filed is: the segments in flight (or answered but not yet
        # filed) at the kill, and the ones never asked
        assert len(twice) == len(first) - kept and len(asked) - len(first) == 30 - kept
        assert all(entry[0][0] == "timescale" for entry in suggestions(path).values())


def test_review_shows_the_models_suggestion_with_its_quoted_evidence(tmp_path):
    with ChatServer(keyword_answerer(KEYWORDS)) as server:
        path = project(tmp_path, server.url)
        runner.invoke(app, ["code", "--project", str(path)])
        result = runner.invoke(app, ["review", "--project", str(path), "--coder", "ann", "--plain"], input="q")
        out = " ".join(result.output.split())
        assert "llm: 'deadline'" in out and "[deadline]" in out, out
        with Project.open(path) as opened:
            assert json.loads(json.dumps(opened.settings.llm.model)) == "test-model"
