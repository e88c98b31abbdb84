"""Team projects on a real PostgreSQL server: migrations on request, one `code` at a time,
moving a project between SQLite and PostgreSQL, pg_dump backups, exports identical to
SQLite's, and a review that survives a server restart.

The server comes from libpq's environment (pg_virtualenv sets it up in `make test-postgres`
and in CI); without one these tests skip, unless QUALCODE_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, SMALL_CODEBOOK, call, write
from typer.testing import CliRunner

from qualcode.cli import app
from qualcode.errors import ProjectError, SettingsError
from qualcode.project import Project
from qualcode.run.coding import code
from qualcode.settings import load_settings
from qualcode.store import SCHEMA_VERSION, Entry, Store
from qualcode.store.schema import statements
from qualcode.suggest.training import train

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "120", **(env or {})}, input=input)


def sample_copy(folder: Path, database: str | None = None) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(REPO / "codebook.yaml", folder / "codebook.yaml")
    shutil.copytree(REPO / "transcripts", folder / "transcripts")
    settings = "retrain_after: 0\nlearn_min_examples: 2\n" + (f"database: {database}\n" if database else "")
    settings += next(line for line in (REPO / "qualcode.yaml").read_text(encoding="utf-8").splitlines() if line.startswith("respondent_labels:")) + "\n"
    (folder / "qualcode.yaml").write_text(settings, encoding="utf-8")
    return folder


def do_the_same_work(project: Path) -> None:
    """Code, review with two coders, batch-accept with a third, train with a fixed seed, code again."""
    assert run("code", "--project", str(project)).exit_code == 0
    keys = {"ann": "a1x2asxaac\n3\nuaxuaxn\nhedging here\naaaaaaaaxxaaaq", "bob": "axaxaxaxa1aq"}
    for coder, typed in keys.items():
        result = run("review", "--project", str(project), "--coder", coder, "--plain", input=typed)
        assert result.exit_code == 0, result.output
    assert run("review", "--project", str(project), "--coder", "cy", "--accept-above", "0.7").exit_code == 0
    with Project.open(project) as opened:
        train(opened, seed=3)
    assert run("code", "--project", str(project)).exit_code == 0


def export_contents(project: Path) -> dict[str, object]:
    """Every export file's content, with the creation times of the REFI-QDA XML blanked."""
    assert run("export", "--project", str(project), "--by", "sector").exit_code == 0
    found: dict[str, object] = {}
    for path in sorted((project / "exports").iterdir()):
        if path.suffix in (".csv", ".md"):
            found[path.name] = path.read_text(encoding="utf-8")
        elif path.suffix == ".xlsx":
            from openpyxl import load_workbook

            workbook = load_workbook(path)
            found[path.name] = {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}
        elif path.suffix == ".qdpx":
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
                found[path.name] = {
                    name: re.sub(r'creationDateTime="[^"]+"', "", archive.read(name).decode("utf-8")) for name in sorted(archive.namelist())
                }
        else:
            found[path.name] = path.read_bytes()
    return found


def test_exports_from_a_postgresql_project_are_identical_to_sqlite_ones(tmp_path, pg_url):
    on_sqlite = sample_copy(tmp_path / "sqlite" / "study")  # the same folder name: REFI-QDA GUIDs derive from it
    on_server = sample_copy(tmp_path / "server" / "study", database=pg_url)
    do_the_same_work(on_sqlite)
    do_the_same_work(on_server)
    assert not (on_server / ".qualcode" / "project.db").exists()
    left, right = export_contents(on_sqlite), export_contents(on_server)
    assert list(left) == list(right) == sorted(["by_sector.csv", "codebook-taguette.csv", "codebook.csv", "codebook.qdc", "codings.csv", "co_occurrence.csv", "excerpts.csv",
                                                "project.qdpx", "quotes.md", "respondents.csv", "summary.csv", "themes.xlsx"])
    for name in left:
        assert left[name] == right[name], name
    for command in ("status", "stats", "check"):
        outputs = [re.sub(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", "<time>", run(command, "--project", str(project)).output) for project in (on_sqlite, on_server)]
        assert outputs[0] == outputs[1], command


def test_an_older_schema_on_a_server_is_refused_until_db_upgrade(tmp_path, pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as raw:
        for statement in statements(0, 2, "postgresql"):
            raw.execute(statement)
        raw.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
        raw.execute("INSERT INTO transcripts VALUES ('t1', 't1.txt', 'txt', 'h', 'A: hi', '{}', '{}', 'now', 'now')")
        raw.execute("INSERT INTO segments (transcript_id, position, speaker, start, \"end\", text, coded) VALUES ('t1', 0, 'A', 3, 5, 'hi', 1)")
        raw.execute("INSERT INTO decisions (segment_id, code, verdict, coder, batch, created_at) VALUES (1, 'timescale', 'added', 'ann', 7, 'now')")
        raw.execute("INSERT INTO model_runs (trained_at, decisions, summary, model) VALUES ('now', 1, '{}', '\\x80049500'::bytea)")
    project = tmp_path / "study"
    write(project / "codebook.yaml", SMALL_CODEBOOK)
    write(project / "qualcode.yaml", f"database: {pg_url}\n")
    refused = run("status", "--project", str(project))
    assert refused.exit_code == 1
    assert f"the project database has schema version 2; this qualcode needs {SCHEMA_VERSION}. Fix: run 'qualcode db upgrade' once" in " ".join(refused.output.split())
    backed_up = run("backup", "--project", str(project), "--output", str(tmp_path / "before-upgrade.dump"))
    assert backed_up.exit_code == 0 and (tmp_path / "before-upgrade.dump").stat().st_size > 0, backed_up.output  # issue 26: any schema
    # four upgrades at once: one upgrades, the others find it done (issue 26: two used to say they had upgraded)
    import subprocess
    import sys

    runs = [subprocess.Popen([sys.executable, "-m", "qualcode", "db", "upgrade", "--project", str(project)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=120)[0] for process in runs]
    assert all(process.returncode == 0 for process in runs), outputs
    assert sum(f"schema upgraded from version 2 to {SCHEMA_VERSION}" in output for output in outputs) == 1, outputs
    assert sum("already up to date" in output for output in outputs) == 3, outputs
    again = run("db", "upgrade", "--project", str(project))
    assert f"schema version {SCHEMA_VERSION}, already up to date" in again.output
    with Store(pg_url) as store:
        assert [(row.code, row.verdict, row.batch) for row in store.decisions()] == [("timescale", "added", 7)]
        assert store.codable_segments()[0].text == "hi"
        run_ = store.latest_model_run(parameters=True)
        assert run_ is not None and run_.format == "pickle-discarded" and run_.parameters is None  # the pickle was dropped unread
        store.record([Entry(1, None, "reviewed")], coder="bob")
        assert store.decisions()[-1].batch == 8  # the database's numbering goes on after the old batch ids


def test_a_password_in_qualcode_yaml_is_refused(tmp_path):
    write(tmp_path / "qualcode.yaml", "database: postgresql://ann:secret@db.example.org/study\n")
    with pytest.raises(SettingsError, match="the database URL holds a password.*Fix: remove the password"):
        load_settings(tmp_path)
    write(tmp_path / "qualcode.yaml", "database: postgresql:///study?service=team\n")
    assert load_settings(tmp_path).database == "postgresql:///study?service=team"


def test_a_password_in_the_environment_gets_a_warning(tmp_path):
    write(tmp_path / "codebook.yaml", SMALL_CODEBOOK)
    result = run("status", "--project", str(tmp_path), env={"QUALCODE_DATABASE_URL": "postgresql://ann:secret@127.0.0.1:1/nowhere"})
    assert "QUALCODE_DATABASE_URL holds a password" in " ".join(result.output.split())
    assert "secret" not in result.output


def test_copy_to_postgresql_and_back_keeps_every_row_and_id(tmp_path, pg_url):
    project = sample_copy(tmp_path / "study")
    do_the_same_work(project)
    before = export_contents(project)
    with Store(project / ".qualcode" / "project.db") as store:
        batches = [row.batch for row in store.decisions()]
        notes = [(note.coder, note.text) for note in store.notes()]
        runs = store.latest_model_run(parameters=True)
    copied = run("db", "copy", "--to", pg_url, "--project", str(project))
    assert copied.exit_code == 0, copied.output
    assert "read back and identical" in copied.output
    with Store(pg_url) as server:
        assert [row.batch for row in server.decisions()] == batches
        assert [(note.coder, note.text) for note in server.notes()] == notes and len(notes) == 1
        copied_run = server.latest_model_run(parameters=True)
        assert runs is not None and copied_run is not None and (copied_run.id, copied_run.parameters) == (runs.id, runs.parameters)
    refused = run("db", "copy", "--to", pg_url, "--project", str(project))
    assert refused.exit_code == 1 and "the target database already holds a project" in refused.output

    # Work on the server from now on, then move back to a new SQLite file.
    write(project / "qualcode.yaml", (project / "qualcode.yaml").read_text(encoding="utf-8") + f"database: {pg_url}\n")
    checked = run("check", "--project", str(project))
    assert checked.exit_code == 0 and f"OK: schema version {SCHEMA_VERSION}, 6 transcripts" in checked.output
    assert export_contents(project) == before
    assert run("review", "--project", str(project), "--coder", "dee", "--plain", input="aq").exit_code == 0
    back = run("db", "copy", "--to", "sqlite:///back.db", "--project", str(project))
    assert back.exit_code == 0, back.output
    with Store(pg_url) as server, Store(project / "back.db") as local:
        assert [row.batch for row in local.decisions()] == [row.batch for row in server.decisions()]
        local.record([Entry(local.codable_segments()[0].id, None, "reviewed")], coder="eve")
        assert local.decisions()[-1].batch == max(row.batch for row in server.decisions()) + 1


def test_only_one_code_run_writes_at_a_time(small_project):
    with Project.open(small_project) as holder:
        call(code, small_project)
        with holder.store.code_lock("ann"):
            result = run("code", "--project", str(small_project))
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert re.search(r"another 'qualcode code' is (running on|writing to) this project \(ann on \S+, process \d+, since ", message), message
    assert "Fix: wait for it to finish, then run 'qualcode code' again" in message
    assert run("code", "--project", str(small_project)).exit_code == 0  # released


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_backup_of_a_server_project_is_a_pg_dump_that_restores(decided_project, postgres_server):
    import psycopg

    result = run("backup", "--project", str(decided_project))
    assert result.exit_code == 0, result.output
    [dump] = (decided_project / ".qualcode" / "backups").glob("project-*.dump")
    assert " ".join(result.output.split()).startswith(f"Backed up to {dump}")
    restored = "qualcode_restored_" + os.urandom(4).hex()
    with psycopg.connect("", dbname=postgres_server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={restored}", str(dump)], check=True, capture_output=True)
        with Store(f"postgresql:///{restored}") as copy, Project.open(decided_project) as project:
            assert copy.counts() == project.store.counts() and copy.problems() == []
            assert copy.decisions() == project.store.decisions()
    finally:
        with psycopg.connect("", dbname=postgres_server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


def test_reading_commands_need_a_project_in_the_server_database(tmp_path, pg_url):
    write(tmp_path / "codebook.yaml", SMALL_CODEBOOK)
    write(tmp_path / "qualcode.yaml", f"database: {pg_url}\n")
    result = run("status", "--project", str(tmp_path))
    assert result.exit_code == 1 and f"{pg_url}: no project database yet. Fix: run 'qualcode code' first" in " ".join(result.output.split())
    with Store(pg_url) as store:
        assert store.is_blank()


def test_an_unreachable_server_is_one_clear_message(tmp_path):
    write(tmp_path / "codebook.yaml", SMALL_CODEBOOK)
    write(tmp_path / "qualcode.yaml", "database: postgresql://127.0.0.1:9/study?connect_timeout=2\n")
    result = run("status", "--project", str(tmp_path))
    assert result.exit_code == 1
    assert "cannot reach the database server" in result.output and "Traceback" not in result.output
    with pytest.raises(ProjectError, match="cannot reach the database server"):
        with Project.open(tmp_path) as project:
            project.store  # noqa: B018


# -- a server restart in the middle of a review ------------------------------------------------


def test_review_survives_a_server_restart_and_loses_nothing(tmp_path, pg_url, server_control):
    pexpect = pytest.importorskip("pexpect")
    project = tmp_path / "study"
    write(project / "codebook.yaml", SMALL_CODEBOOK)
    write(project / "qualcode.yaml", f"database: {pg_url}\n")
    write(project / "transcripts" / "t1.txt", "\n\n".join(f"Q: Question {n}?\n\nA: We had to rush, the deadline number {n}." for n in range(12)) + "\n")
    assert run("code", "--project", str(project)).exit_code == 0
    env = {key: value for key, value in os.environ.items() if key.startswith("PG") or key == "PATH"}
    child = pexpect.spawn(sys.executable, ["-m", "qualcode", "review", "--project", str(project), "--coder", "ann"],
                          env={**env, "TERM": "xterm"}, encoding="utf-8", timeout=90, dimensions=(24, 80))
    acknowledged = 0
    child.expect("segment 1/12 of t1")
    for number in range(2, 5):
        child.send("a")
        child.expect(f"segment {number}/12 of t1")
        acknowledged += 1
    subprocess.run([*server_control, "restart"], check=True, capture_output=True)
    child.send("a")
    child.expect("The connection to the database was lost; trying again")
    child.expect("segment 5/12 of t1")
    acknowledged += 1
    for number in range(6, 9):
        child.send("a")
        child.expect(f"segment {number}/12 of t1")
        acknowledged += 1
    child.send("q")
    child.expect("Review quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with Store(pg_url) as store:
        reviewed = [row for row in store.decisions("ann") if row.verdict == "reviewed"]
        accepted = [row for row in store.decisions("ann") if row.verdict == "accepted"]
    assert len(reviewed) == acknowledged == 7 and len(accepted) == 7  # every acknowledged key, none twice
    assert len({row.segment_id for row in reviewed}) == 7


def test_the_code_lock_holds_through_a_server_restart(small_project, pg_url, monkeypatch, server_control):
    """Issue 26: the advisory lock died with its connection, and a second `code` ran beside the first after a restart."""
    monkeypatch.setenv("QUALCODE_DATABASE_URL", pg_url)
    call(code, small_project)
    with Project.open(small_project) as holder:
        with holder.store.code_lock("ann") as lock:
            subprocess.run([*server_control, "restart"], check=True, capture_output=True)
            lock.renew()  # reconnects, and the lease is still this run's
            second = run("code", "--project", str(small_project))
            assert second.exit_code == 1 and "another 'qualcode code' is writing to this project (ann on" in " ".join(second.output.split())
    assert run("code", "--project", str(small_project)).exit_code == 0


def test_a_code_started_while_the_server_restarts_waits_for_it(small_project, pg_url, server_control):
    """Issue 26: a batch run started beside eight coders is slow to start, and met a server restart while opening its
    database: 'cannot reach the database server' at once. Opening for writing now waits for a server that refuses
    connections for 5 s, as a run waits for one lost later."""
    write(small_project / "qualcode.yaml", f"database: {pg_url}\n")
    env = {key: value for key, value in os.environ.items() if key.startswith("PG") or key in ("PATH", "HOME")}
    subprocess.run([*server_control, "stop"], check=True, capture_output=True)
    try:
        batch = subprocess.Popen([sys.executable, "-m", "qualcode", "code", "--project", str(small_project)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        assert batch.poll() is None  # still waiting for the server, not given up
    finally:
        subprocess.run([*server_control, "start"], check=True, capture_output=True)
    output, _ = batch.communicate(timeout=120)
    assert batch.returncode == 0, output
    assert "2 imported" in output
    with pytest.raises(ProjectError, match="cannot reach the database server"):  # a reading command does not wait
        Store("postgresql://127.0.0.1:9/study?connect_timeout=2")


def test_a_server_back_between_retries_is_used_within_a_second(pg_url, server_control):
    """Issue 26, item 9: the retries come 0.5, 1, 2, 4, 8, 15 and 30 s apart, and a server back after 20 s kept a coder
    waiting until the attempt due at 30 s. Within each delay the store now tries to connect every second."""
    with Store(pg_url) as store:
        assert store.coders() == []
        subprocess.run([*server_control, "stop"], check=True, capture_output=True)
        retries: list[float] = []
        store.on_retry = retries.append
        back_at: list[float] = []

        def start_later() -> None:
            time.sleep(8.0)  # after the attempts at 0.5, 1.5, 3.5 and 7.5 s; the next was due at 15.5 s
            subprocess.run([*server_control, "start"], check=True, capture_output=True)
            back_at.append(time.monotonic())

        starter = threading.Thread(target=start_later)
        began = time.monotonic()
        starter.start()
        try:
            assert store.coders() == []
        finally:
            starter.join()
        done = time.monotonic()
    assert retries[:5] == [0.5, 1.0, 2.0, 4.0, 8.0][: len(retries)] and len(retries) == 5, retries
    assert done - back_at[0] < 2.5 and done - began < 12, (done - began, done - back_at[0])


def test_backup_hands_the_password_to_pg_dump_through_its_environment_never_its_command_line(tmp_path, pg_url, monkeypatch):
    """Issue 27, class 11: pg_dump got the whole URL, password included, on its command line, which every local user
    sees in `ps`. A wrapper ahead of the real pg_dump on PATH writes down what it was given, then runs it."""
    password = os.environ.get("PGPASSWORD") or "no-password-needed"
    host, port, user = os.environ.get("PGHOST", "localhost"), os.environ.get("PGPORT", "5432"), os.environ.get("PGUSER", "postgres")
    url = f"host={host} port={port} user={user} password='{password}' dbname={pg_url.rsplit('/', 1)[1]}"
    real = shutil.which("pg_dump")
    assert real is not None
    spy = tmp_path / "bin"
    spy.mkdir()
    log = tmp_path / "pg_dump.log"
    (spy / "pg_dump").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\necho "PGPASSWORD=$PGPASSWORD" >> {log}\nexec {real} "$@"\n')
    (spy / "pg_dump").chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    project = sample_copy(tmp_path / "study")
    monkeypatch.setenv("QUALCODE_DATABASE_URL", url)
    assert run("code", "--project", str(project)).exit_code == 0
    result = run("backup", "--project", str(project))
    assert result.exit_code == 0 and password not in result.output, result.output
    arguments, environment = log.read_text().rsplit("PGPASSWORD=", 1)
    assert password not in arguments and "password=" not in arguments and f"dbname={pg_url.rsplit('/', 1)[1]}" in arguments
    assert environment.strip() == password


@pytest.mark.parametrize("attempt", range(3))
def test_first_code_runs_started_together_on_an_empty_database_create_the_schema_once(tmp_path, pg_url, attempt):
    """Issue 27, class 13: two first `code` runs at once on an empty PostgreSQL database ended in a DuplicateTable
    traceback (2 of 4 tries): the one that waited for the schema lock read a stale catalog and created it again."""
    project = sample_copy(tmp_path / "study")
    env = {**os.environ, "QUALCODE_DATABASE_URL": pg_url, "COLUMNS": "200"}
    runs = [subprocess.Popen([sys.executable, "-m", "qualcode", "code", "--project", str(project)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [(run.communicate(timeout=300)[0], run.returncode) for run in runs]
    assert all("Traceback" not in out and (code == 0 or "another 'qualcode code' is writing to this project" in out)
               for out, code in outputs), outputs
    assert sum(1 for _out, code in outputs if code == 0) >= 1
    with Store(pg_url) as store:
        assert store.schema_version == SCHEMA_VERSION and store.problems() == []


def test_a_project_in_a_schema_this_connection_does_not_use_is_said(tmp_path, pg_url):
    """Issue 27, class 12: a search_path that hides the project's schema made `status` say "run qualcode code" (and
    `code` start a second, empty project); a role without USAGE on its schemas made `code` crash."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    role = f"coder_{os.urandom(3).hex()}"
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA study")
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        connection.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    try:
        project = tmp_path / "study"
        write(project / "codebook.yaml", SMALL_CODEBOOK)
        write(project / "transcripts" / "t1.txt", "Q: ?\n\nA: We had to rush, the deadline.\n")
        assert run("code", "--project", str(project), env={"QUALCODE_DATABASE_URL": f"{pg_url}?options=-csearch_path%3Dstudy"}).exit_code == 0
        for command in ("status", "code"):
            out = " ".join(run(command, "--project", str(project), env={"QUALCODE_DATABASE_URL": pg_url}).output.split())
            assert "this database's qualcode project is in schema 'study', and this connection uses schema 'public'" in out, out
            assert "options=-csearch_path%3Dstudy" in out
        with psycopg.connect(pg_url) as connection:  # nothing was created beside it
            assert connection.execute("SELECT to_regclass('public.meta')").fetchone()[0] is None
        host, port = os.environ.get("PGHOST", "localhost"), os.environ.get("PGPORT", "5432")
        host = "localhost" if host.startswith("/") else host
        url = f"postgresql://{role}:pw@{host}:{port}/{name}?options=-csearch_path%3Dstudy"
        for command in ("status", "code"):
            result = run(command, "--project", str(project), env={"QUALCODE_DATABASE_URL": url})
            out = " ".join(result.output.split())
            assert result.exit_code == 1 and "this role may use no schema on its search_path (study)" in out and "Traceback" not in out, out
            assert "pw@" not in out
    finally:
        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"DROP ROLE {role}")
