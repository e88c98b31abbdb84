from __future__ import annotations

import io
from collections import Counter

import pytest
from conftest import open_store, write
from rich.console import Console

from qualcode.analysis.status import review_status
from qualcode.cli.keys import ScriptedKeys, StreamKeys
from qualcode.cli.review import FOOTER, render_screen, run_review
from qualcode.errors import ReviewError
from qualcode.project import Project
from qualcode.review.session import ReviewFilter, ReviewSession, accept_above


def open_session(project, coder="ann", clock=None, **filters):
    opened = Project.open(project)
    kwargs = {"clock": clock} if clock else {}
    return ReviewSession(opened, coder=coder, filters=ReviewFilter(**filters), **kwargs)


def drive(session, *keys, plain=True):
    out = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    scripted = ScriptedKeys(keys)
    ended = run_review(session, scripted, out, plain=plain, interactive=False)
    return ended, out.file.getvalue(), scripted


def numbered(store):
    """segment id -> (transcript, segment number)."""
    transcript_of = {row.id: row.transcript_id for row in store.codable_segments()}
    return {segment_id: (transcript_of[segment_id], number) for segment_id, number in store.segment_numbers().items()}


def rows(project, coder=None):
    """Every decision row, oldest first: (transcript, segment number, code, verdict, coder, method)."""
    with open_store(project) as store:
        numbers = numbered(store)
        result = []
        for row in store.decisions():
            if coder and row.coder != coder:
                continue
            tid, number = numbers[row.segment_id]
            result.append((tid, number, row.code, row.verdict, row.coder, row.method) + ((row.note,) if row.note else ()))
        return result


def latest(project, coder=None):
    with open_store(project) as store:
        numbers = numbered(store)
        return sorted((*numbers[segment_id], code_id, row.verdict, who) for (segment_id, code_id, who), row in store.latest_decisions(coder).items())


def test_queue_holds_segments_with_suggestions_in_transcript_order(review_project):
    session = open_session(review_project)
    assert [(item.transcript_id, item.number, [s.code for s in item.suggestions]) for item in session.items] == [
        ("lead-01", 1, ["timescale"]),
        ("lead-01", 2, ["sustainability"]),
        ("partner-01", 2, ["sustainability", "timescale"]),
    ]
    assert session.current.number == 1


def test_a_accepts_all_and_moves_on(review_project):
    ended, output, _ = drive(open_session(review_project), "a", "a", "q")
    assert ended == "quit"
    assert rows(review_project) == [
        ("lead-01", 1, "timescale", "accepted", "ann", "manual"),
        ("lead-01", 1, None, "reviewed", "ann", "manual"),
        ("lead-01", 2, "sustainability", "accepted", "ann", "manual"),
        ("lead-01", 2, None, "reviewed", "ann", "manual"),
    ]
    assert "Accepted 1 code." in output
    assert "segment 2/2 of partner-01" in output  # the screen after the second key


def test_digits_toggle_one_code_and_x_rejects_the_rest(review_project):
    session = open_session(review_project, transcript="partner-01")
    drive(session, "1", "1", "2", "x", "q")
    # Issue 24: a suggested code is shown as the machine's yes, so its key says no at the first press, then flips.
    assert rows(review_project) == [
        ("partner-01", 2, "sustainability", "rejected", "ann", "manual"),
        ("partner-01", 2, "sustainability", "accepted", "ann", "manual"),
        ("partner-01", 2, "timescale", "rejected", "ann", "manual"),
        ("partner-01", 2, None, "reviewed", "ann", "manual"),
    ]
    # x only rejects what was still undecided: the toggled codes keep their verdicts.
    assert latest(review_project) == [
        ("partner-01", 2, "sustainability", "accepted", "ann"),
        ("partner-01", 2, "timescale", "rejected", "ann"),
    ]


def test_toggle_out_of_range_writes_nothing(review_project):
    _, output, _ = drive(open_session(review_project), "7", "q")
    assert rows(review_project) == []
    assert "No code 7 here." in output


def test_c_adds_a_code_by_number_prefix_or_label(review_project):
    session = open_session(review_project)
    _, output, scripted = drive(session, "c", "4", "c", "sus", "c", "zzz", "c", "", "a", "q")
    # 4th in the codebook list is 'other'; 'sus' is the start of 'sustainability'.
    assert rows(review_project) == [
        ("lead-01", 1, "other", "added", "ann", "manual"),
        ("lead-01", 1, "sustainability", "added", "ann", "manual"),
        ("lead-01", 1, "timescale", "accepted", "ann", "manual"),
        ("lead-01", 1, None, "reviewed", "ann", "manual"),
    ]
    assert scripted.prompts == ["Code (number, or start of id or label; Enter or Esc cancels): "] * 4
    assert "No code added." in output  # the empty answer cancelled
    assert "No code matches 'zzz'." in output
    assert "  4 other  Other" in output  # the codebook is listed before the prompt


def test_c_on_a_suggested_code_records_it_as_accepted(review_project):
    drive(open_session(review_project), "c", "t", "c", "time", "q")
    assert rows(review_project) == [("lead-01", 1, "timescale", "accepted", "ann", "manual")]


def test_find_codes_ambiguity(review_project):
    session = open_session(review_project)
    assert [c.id for c in session.find_codes("c")] == ["challenges"]
    assert [c.id for c in session.find_codes("Timescale")] == ["timescale"]
    write(review_project / "codebook.yaml", (review_project / "codebook.yaml").read_text().replace("id: other", "id: sunset"))
    session = open_session(review_project)
    assert [c.id for c in session.find_codes("su")] == ["sustainability", "sunset"]
    _, output, scripted = drive(session, "c", "su", "sun", "q")
    # 'su' narrows the list to the two codes it fits; 'sun' then picks one.
    assert len(scripted.prompts) == 2 and output.count("sunset  ") >= 2
    assert rows(review_project) == [("lead-01", 1, "sunset", "added", "ann", "manual")]
    _, output, _ = drive(open_session(review_project), "c", "su", "su", "q")
    assert "Ambiguous 'su': sustainability, sunset." in output


def test_s_skips_without_deciding_and_n_writes_a_note(review_project):
    session = open_session(review_project)
    _, output, _ = drive(session, "s", "n", "Respondent hedges here", "n", "", "q")
    assert rows(review_project) == [("lead-01", 2, None, "note", "ann", "manual", "Respondent hedges here")]
    assert "note: Respondent hedges here" in output
    assert "No note written." in output


def test_u_undoes_several_levels_even_across_a_resume(review_project):
    drive(open_session(review_project), "a", "a", "q")
    assert latest(review_project) == [
        ("lead-01", 1, "timescale", "accepted", "ann"),
        ("lead-01", 2, "sustainability", "accepted", "ann"),
    ]
    session = open_session(review_project)  # a new session: resumes at the first unreviewed segment
    assert (session.current.transcript_id, session.current.number) == ("partner-01", 2)
    _, output, _ = drive(session, "u", "u", "u", "q")
    assert latest(review_project) == []
    assert "Undone: sustainability accepted, reviewed." in output
    assert "Undone: timescale accepted, reviewed." in output
    assert "Nothing to undo." in output
    assert open_session(review_project).current.number == 1
    # The log only grows: 4 decisions and 4 undo rows.
    with open_store(review_project) as store:
        assert sorted(Counter(row.verdict for row in store.decisions()).items()) == [("accepted", 2), ("reviewed", 2), ("undo", 4)]


def test_undo_restores_the_previous_verdict(review_project):
    session = open_session(review_project, transcript="partner-01")
    drive(session, "1", "1", "u", "q")
    assert latest(review_project) == [("partner-01", 2, "sustainability", "rejected", "ann")]


def test_w_widens_context_and_question_mark_shows_help(review_project):
    _, output, _ = drive(open_session(review_project, transcript="partner-01"), "w", "?", "q")
    screens = output.split("─" * 80)
    assert "Interviewer: And the bid?" in screens[1] and "housing association" not in screens[1]
    assert "housing association" in screens[2]  # widened: the turn before the question too
    assert "undo your last action" in screens[3]
    assert rows(review_project) == []


def test_unknown_key_eof_and_ctrl_c_end_cleanly(review_project):
    ended, output, _ = drive(open_session(review_project), "z")
    assert ended == "end of input" and "Unknown key 'z'. Press ? for help." in output
    ended, _, _ = drive(open_session(review_project), "a", "CTRL-C")
    assert ended == "interrupted"
    assert rows(review_project)[-1] == ("lead-01", 1, None, "reviewed", "ann", "manual")


def test_quitting_midway_and_resuming_loses_nothing(review_project):
    drive(open_session(review_project), "1", "q")  # toggled but did not move on
    session = open_session(review_project)
    assert session.current.number == 1  # not reviewed yet, so it comes back
    assert [entry.verdict for entry in session.shown_codes()] == ["rejected"]
    drive(session, "a", "q")
    assert rows(review_project) == [
        ("lead-01", 1, "timescale", "rejected", "ann", "manual"),
        ("lead-01", 1, None, "reviewed", "ann", "manual"),
    ]


def test_two_coders_are_kept_apart(review_project):
    drive(open_session(review_project, coder="ann"), "a", "q")
    bob = open_session(review_project, coder="bob")
    assert bob.current.number == 1  # ann's review does not count for bob
    drive(bob, "x", "q")
    assert latest(review_project) == [
        ("lead-01", 1, "timescale", "accepted", "ann"),
        ("lead-01", 1, "timescale", "rejected", "bob"),
    ]
    drive(open_session(review_project, coder="bob"), "u", "q")  # bob's undo never touches ann's decisions
    assert latest(review_project) == [("lead-01", 1, "timescale", "accepted", "ann")]


def test_filters(review_project):
    def queue(**filters):
        return [(i.transcript_id, i.number) for i in open_session(review_project, **filters).items]

    assert queue(code="timescale") == [("lead-01", 1), ("partner-01", 2)]
    assert queue(code="challenges") == [("lead-01", 1), ("lead-01", 2), ("partner-01", 2)]
    assert queue(role="partner") == [("partner-01", 2)]
    assert queue(transcript="lead-01") == [("lead-01", 1), ("lead-01", 2)]
    assert queue(include_unsuggested=True) == [("lead-01", 1), ("lead-01", 2), ("partner-01", 1), ("partner-01", 2)]
    confident = open_session(review_project, min_confidence=0.7).items
    assert [(i.transcript_id, i.number, [s.code for s in i.suggestions]) for i in confident] == [
        ("lead-01", 2, ["sustainability"]),
        ("partner-01", 2, ["sustainability"]),
    ]
    uncertain = open_session(review_project, order="uncertain").items
    distances = [i.uncertainty() for i in uncertain]
    assert distances == sorted(distances) and len(uncertain) == 3
    with pytest.raises(ReviewError, match="no code 'nope' in the codebook"):
        queue(code="nope")
    with pytest.raises(ReviewError, match="no transcript 'x-9' in the project"):
        queue(transcript="x-9")


def test_all_lets_a_segment_without_suggestions_be_reviewed_with_no_code_or_an_added_one(review_project):
    session = open_session(review_project, include_unsuggested=True, transcript="partner-01")
    _, output, _ = drive(session, "a", "c", "other", "a", "q")
    assert "No suggestions. c to add a code" in output
    assert rows(review_project) == [
        ("partner-01", 1, None, "reviewed", "ann", "manual"),
        ("partner-01", 2, "other", "added", "ann", "manual"),
        ("partner-01", 2, "sustainability", "accepted", "ann", "manual"),
        ("partner-01", 2, "timescale", "accepted", "ann", "manual"),
        ("partner-01", 2, None, "reviewed", "ann", "manual"),
    ]
    assert "All segments in this queue are reviewed" in output


def test_progress_line_counts_and_rate(review_project):
    now = [0.0]
    session = open_session(review_project, clock=lambda: now[0])
    session.accept_all()
    now[0] = 60.0
    session.reject_all()
    progress = session.progress()
    assert (progress.reviewed, progress.total, progress.accepted, progress.rejected, progress.added) == (2, 3, 1, 1, 0)
    assert progress.per_minute == pytest.approx(2.0)
    screen = Console(file=io.StringIO(), width=80, color_system=None)
    screen.print(render_screen(session, plain=True))
    text = screen.file.getvalue()
    assert "reviewed 2/3 · accepted 1 · rejected 1 · added 0 · 2.0 decisions/min" in text
    assert FOOTER in text


def test_screen_fits_80_columns_and_marks_evidence(review_project):
    session = open_session(review_project)
    screen = Console(file=io.StringIO(), width=80, color_system=None)
    screen.print(render_screen(session, plain=True))
    lines = screen.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("lead-01  lead · third sector") and lines[0].endswith("segment 1/2 of lead-01")
    assert "Respondent: The [deadline] was brutal, we had to [rush] everything." in lines
    assert "1 · timescale 0.62 rules: 'deadline', 'rush'" in lines


def test_batch_accept_above_threshold(review_project):
    with Project.open(review_project) as project:
        assert accept_above(project, coder="ann", threshold=0.7) == 2
        assert accept_above(project, coder="ann", threshold=0.7) == 0  # already decided
    assert rows(review_project) == [
        ("lead-01", 2, "sustainability", "accepted", "ann", "batch"),
        ("partner-01", 2, "sustainability", "accepted", "ann", "batch"),
    ]
    # Batch decisions do not mark segments reviewed: the coder still sees them, labelled.
    session = open_session(review_project, transcript="lead-01")
    session.skip()
    assert [(e.code, e.verdict, e.method) for e in session.shown_codes()] == [("sustainability", "accepted", "batch")]


def test_status_report(review_project):
    drive(open_session(review_project, coder="ann"), "a", "q")
    drive(open_session(review_project, coder="bob"), "x", "x", "q")
    with Project.open(review_project) as project:
        report = review_status(project)
    assert report.coders == ["ann", "bob"]
    lead = report.transcripts[0]
    assert (lead.transcript, lead.segments, lead.suggested, lead.coders["ann"].reviewed, lead.coders["bob"].reviewed) == ("lead-01", 2, 2, 1, 2)
    timescale = next(row for row in report.codes if row.code == "timescale")
    assert (timescale.suggested, timescale.coders["ann"].accepted, timescale.coders["bob"].rejected) == (2, 1, 1)
    # A parent counts every segment suggested one of its codes, once, as `qualcode code` reports it.
    challenges = next(row for row in report.codes if row.code == "challenges")
    children = {row.code: row.suggested for row in report.codes if row.code in ("timescale", "sustainability")}
    assert max(children.values()) <= challenges.suggested <= sum(children.values()) and challenges.suggested > 0


def test_stream_keys_read_one_character_at_a_time():
    keys = StreamKeys(io.StringIO("a1\nx\nnote text\nq"))
    assert [keys.read_key(), keys.read_key(), keys.read_key()] == ["a", "1", "x"]
    assert keys.read_line("Note: ") == ""  # the rest of the current line
    assert keys.read_line("Note: ") == "note text"
    assert keys.read_key() == "q" and keys.read_key() == ""


def test_escape_and_ctrl_c_cancel_prompts_and_a_cancelled_note_is_shown_not_lost(review_project):
    _, output, _ = drive(open_session(review_project), "c", "ESC", "n", "half a thought|CTRL-C", "n", "ESC", "q")
    assert rows(review_project) == []
    assert "No code added." in output
    assert "Note cancelled, not saved: 'half a thought'." in output
    assert "No note written." in output


def test_the_outcome_of_a_and_x_is_shown_with_the_segment_it_belongs_to(review_project):
    _, output, _ = drive(open_session(review_project), "x", "q")
    assert "Previous segment (lead-01 1/2): Rejected 1 code." in output


def test_help_is_a_screen_of_its_own_and_any_key_goes_back(review_project):
    _, output, _ = drive(open_session(review_project), "?", "z", "q")
    screens = output.split("─" * 80)
    assert "Press any key to go back" in screens[2] and "1-9" in screens[2]
    assert "Unknown key" not in output  # the key that left help did nothing else


def test_every_screen_fits_an_80x24_terminal_with_the_header_on_top(review_project):
    from qualcode.cli.review import codebook_listing, render_screen

    console = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    session = open_session(review_project)
    long_turn = "word " * 600
    original = session.context

    def long_context(item, widen=False):
        before, after = original(item, widen=widen)
        return [type(turn)(**{**turn.__dict__, "text": long_turn}) for turn in before] * 3, after

    session.context = long_context
    for options in ({"widen": True}, {"show_help": True}):
        console.print(render_screen(session, plain=True, fit=console, **options))
        lines = console.file.getvalue().rstrip("\n").split("\n")
        console.file.truncate(0), console.file.seek(0)
        assert len(lines) <= 23 and lines[0].startswith("lead-01"), options
    assert "earlier lines not shown" in "\n".join(lines) or options["show_help"]
    codebook = review_project / "codebook.yaml"
    write(codebook, codebook.read_text() + "".join(f"  - id: extra-{number}\n    manual: true\n" for number in range(300)))
    listing = codebook_listing(open_session(review_project), rows=21).plain.splitlines()
    assert len(listing) == 21 and "more: type the start of an id or label" in listing[-1]


LONG = ("We ran the wellbeing sessions every week for the staff, and " * 14).strip()


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (50, 16)])
def test_a_small_terminal_keeps_the_header_the_question_and_the_start_of_the_answer(tmp_path, size):
    """Issue 24: at 60x20 the header, the question and the first lines of the answer scrolled off the top."""
    from conftest import call

    from qualcode.run.coding import code

    write(tmp_path / "codebook.yaml", "codes:\n  - id: wellbeing-support-for-staff-and-volunteers\n    label: Wellbeing\n"
                                      "    keywords: [wellbeing, staff, sessions, week, every]\n")
    write(tmp_path / "transcripts" / "lead-01.txt", "Interviewer: Earlier you said something about it.\n\nRespondent: Yes.\n\n"
                                                    "Interviewer: What did you do to look after people in the partnership, day to day, "
                                                    "when the pressure was on?\n\nRespondent: " + LONG + "\n")
    call(code, tmp_path)
    width, height = size
    session = open_session(tmp_path, include_unsuggested=True)
    session.skip()
    for widen in (False, True):
        screen = Console(file=io.StringIO(), width=width, height=height, color_system=None)
        screen.print(render_screen(session, plain=True, fit=screen, widen=widen))
        lines = screen.file.getvalue().splitlines()
        assert len(lines) <= height - 1, "\n".join(lines)
        assert lines[0].startswith("lead-01") and "segment 2/2" in " ".join(lines[:2])
        text = " ".join(lines)
        assert "wellbeing-support-for-staff-and-volunteers" in "".join(lines)  # whole, never cut at 16 characters
        assert "q:quit" in text
        cut = size != (80, 24)  # the whole answer fits at 80x24
        if not widen:
            assert "was on?" in text and "Respondent: We ran the" in text
            assert ("more lines of this answer: w shows them" in text) == cut
        else:
            assert ("lines above: w goes back to them" in text) == cut


def test_the_agreement_table_never_cuts_a_number_at_80_columns(decided_project):
    from typer.testing import CliRunner

    from qualcode.cli import app

    result = CliRunner().invoke(app, ["agreement", "coder:ann", "coder:bob", "machine", "--project", str(decided_project)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "…" not in result.output and "alpha" in result.output, result.output


def test_progress_kept_as_decisions_come_in_equals_a_recount(review_project):
    """Issue 26: the counts are kept up to date, not recounted over the queue at every key; they must agree."""
    import random

    session = open_session(review_project, include_unsuggested=True)
    generator = random.Random(5)
    for _ in range(40):
        key = generator.choice(["a", "x", "1", "2", "s", "u", "n"])
        {"a": session.accept_all, "x": session.reject_all, "s": session.skip, "u": session.undo}.get(key, lambda: None)()
        if key in "12":
            session.toggle(int(key))
        if key == "n":
            session.note("a memo")
        progress = session.progress()
        recount = [session.state(item) for item in session.items]
        assert progress.reviewed == sum(state.reviewed for state in recount)
        assert progress.accepted == sum(list(state.codes.values()).count("accepted") for state in recount)
        assert progress.rejected == sum(list(state.codes.values()).count("rejected") for state in recount)
        assert session.finished == all(state.reviewed for state in recount)


def test_forty_suggestions_still_leave_the_header_and_the_answer_on_screen(tmp_path):
    from conftest import call

    from qualcode.run.coding import code

    words = [f"word{n}" for n in range(40)]
    codes = "".join(f"  - id: code-{n:02d}\n    label: Code {n}\n    keywords: [{word}]\n" for n, word in enumerate(words))
    write(tmp_path / "codebook.yaml", "codes:\n" + codes)
    write(tmp_path / "transcripts" / "lead-01.txt", "Interviewer: Tell me everything?\n\nRespondent: " + " ".join(words) + ".\n")
    call(code, tmp_path)
    session = open_session(tmp_path)
    screen = Console(file=io.StringIO(), width=80, height=24, color_system=None)
    screen.print(render_screen(session, plain=True, fit=screen))
    lines = screen.file.getvalue().splitlines()
    assert len(lines) <= 23 and lines[0].startswith("lead-01") and "Tell me everything?" in lines[1]
    assert any(line.startswith("Respondent: [word0]") for line in lines)
    assert any("more codes: a accepts and x rejects every one" in line for line in lines) and "q:quit" in lines[-1]


@pytest.mark.sqlite_only
def test_the_review_loop_takes_over_sqlite_s_checkpoints_and_a_batch_keeps_them(review_project):
    """Issue 26, item 3: the loop checkpoints after each screen (``idle``), not inside a key's commit; a session that
    never idles (accept-above, scripts) keeps SQLite's own checkpoints, or its log would only grow."""
    batch = open_session(review_project)
    assert batch.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    batch.project.close()
    session = open_session(review_project)
    ended, _out, _keys = drive(session, "a", "q")
    assert ended == "quit"
    assert session.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    session.project.close()
