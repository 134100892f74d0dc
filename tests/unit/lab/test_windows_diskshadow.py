"""The lab's simulated diskshadow on the scripts the collection generates (plugins/plugin_utils/diskshadow.py), the
batch files it runs, the writers' states and events, the faults, and the SQL application's invariant checker.

The lab itself never imports the collection; these tests do, to feed it exactly what the controller will send.
"""

import pathlib
import re
import threading
import time

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow as generator
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    parse_diskshadow_failure,
    parse_diskshadow_shadows,
    parse_vssadmin_writers,
)
from lab.windows import LabWindowsHost
from lab.windows.application import Journal, assess_journal, check_consistency
from lab.windows.diskshadow import run_diskshadow
from lab.windows.locales import agent_decode, console_bytes
from lab.windows.agent_twin import read_ops, session_ops
from lab.windows.batch import Batch, parse_redirections, protocol_script_kind
from lab.windows.testing import call_agent, sample_instance
from unit.lab.session_calls import UNTIL_CREATED, UNTIL_END, agent_call, leftovers, session_call

SQL_WRITER_ID = "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "windows"
RUN_ID = "ss-20261125T010203-0a1b2c3d"


def plan(volumes=("D:", "E:"), backup_type="copy", verify=(SQL_WRITER_ID,), run_id=RUN_ID, **options):
    return generator.SessionPlan(run_id=run_id, volumes=list(volumes), backup_type=backup_type,
                                 verify_writer_ids=list(verify), **options)


def fixed_files(session_plan):
    """The generated files, with run.cmd's exit-code line written so that cmd.exe writes the number (see
    test_a_digit_before_a_redirection_is_a_handle): a no-op once the generator writes it that way."""
    files = generator.session_files(session_plan)
    files["run.cmd"] = re.sub(r'^echo %ERRORLEVEL%> (".*")(\r?)$', r">\1 echo %ERRORLEVEL%\2", files["run.cmd"], flags=re.MULTILINE)
    return files


def write_run(model, session_plan):
    run_dir = session_plan.run_dir()
    for name, text in generator.session_files(session_plan).items():
        model.files.write(run_dir + "\\" + name, text.encode("ascii"))
    return run_dir


def run_generated(model, session_plan, **options):
    """diskshadow /s snapshot.dsh of a generated session (the batch files written first, the run dir as cwd)."""
    run_dir = write_run(model, session_plan)
    script = model.files.read(run_dir + "\\snapshot.dsh").decode("ascii")
    return run_diskshadow(model, script, cwd=run_dir, run_id=session_plan.run_id, **options)


def states(model):
    return {writer.name: writer.state for writer in model.writers}


def events(model, event):
    return [entry["writer"] for entry in model.vss_events.select(event)]


# ------------------------------------------------------------------------------------------------ copy backup
def test_copy_backup_creates_the_set_records_it_and_never_sends_backup_complete(host_model):
    model = host_model()
    session_plan = plan()
    result = run_generated(model, session_plan)
    assert result.exit_code == 0 and result.failure is None
    text = result.output
    assert text.startswith("Microsoft DiskShadow version 1.0\nCopyright (C) 2013 Microsoft Corporation\nOn computer:  WIN-SQL-01,  ")
    echoed = [line[3:] for line in text.splitlines() if line.startswith("-> ")]
    assert echoed == [line for line in generator.diskshadow_script(session_plan).split("\r\n") if line]
    # aliases and the set become environment variables; record.cmd wrote them into created.txt
    assert re.search(r"^Alias vol_d for shadow ID \{[0-9a-f-]{36}\} set as environment variable\.$", text, re.MULTILINE)
    assert "Alias VSS_SHADOW_SET for shadow set ID %s set as environment variable." % result.set_id in text
    created = model.files.read(session_plan.run_dir() + "\\created.txt").decode("ascii")
    set_id, shadows = generator.read_created_record(created).by_volume(session_plan)
    assert set_id == result.set_id and shadows == {"D:": result.shadows["vol_d"], "E:": result.shadows["vol_e"]}
    # the create output parses like the captures, and Win32_ShadowCopy agrees
    parsed = parse_diskshadow_shadows(text)
    assert [(s["shadow_id"], s["alias"], s["original_volume_display"]) for s in parsed] == [
        (shadows["D:"], "vol_d", "D:\\"), (shadows["E:"], "vol_e", "E:\\")]
    assert all(s["attributes"] == ["No_Auto_Release", "Persistent", "Differential"] and s["shadow_set_id"] == set_id for s in parsed)
    wmi = read_ops.shadows(model)["shadows"]
    assert {s["ID"].lower() for s in wmi} == set(shadows.values()) and all(s["Persistent"] and s["NoAutoRelease"] for s in wmi)
    # SqlServerWriter went through the freeze and is STABLE again; no BackupComplete for a copy backup
    assert events(model, "Freeze") == ["SqlServerWriter"] and events(model, "BackupComplete") == []
    assert events(model, "BackupShutdown") == ["SqlServerWriter"] and set(states(model).values()) == {1}
    history = [entry["state"] for entry in model.writers.histories("SqlServerWriter")["SqlServerWriter"]]
    assert history == [1, 2, 3, 4, 5, 1]
    # the metadata document was written where `set metadata` said
    cab = model.files.read(session_plan.run_dir() + "\\backup.cab").decode("utf-8")
    assert 'backupType="COPY"' in cab and 'writerName="SqlServerWriter"' in cab and "Inserted file Manifest.xml into .cab file backup.cab" in text


def test_volumes_outside_the_set_silently_exclude_writers_and_verbose_mode_says_so(host_model):
    model = host_model()
    result = run_generated(model, plan(volumes=["D:"], verify=()))
    assert result.exit_code == 0
    text = result.output
    assert ('Component "\\WIN-SQL-01\\shop" from writer "SqlServerWriter" is excluded from backup,\n'
            "because it requires volume E:\\ which is not in the shadow copy set.") in text
    assert 'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.' in text
    assert "Including writer" not in text
    assert model.vss_events.select("Freeze") == [] and model.vss_events.select("SnapshotSetCreated")[0]["writers"] == []
    # without verbose mode the exclusion is silent
    quiet = run_diskshadow(model, "set context persistent\r\nadd volume D:\r\ncreate\r\n")
    assert quiet.exit_code == 0 and "excluded" not in quiet.output


def test_writer_verify_fails_create_when_the_writer_is_left_out(host_model):
    model = host_model()
    session_plan = plan(volumes=["D:"])
    result = run_generated(model, session_plan)
    assert result.exit_code == 1
    failure = parse_diskshadow_failure(result.output)
    assert failure == {"hresult": 0x800423F0, "name": "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
                       "error_text": "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT"}
    assert result.output.endswith("\nThe last operation failed.\n        - Returned HRESULT: 800423F0\n"
                                  "        - Error text: VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT\n\n")
    assert "-> exec" not in result.output and not model.files.exists(session_plan.run_dir() + "\\created.txt")
    assert model.shadows.list() == [] and model.vss_events.select("Freeze") == []
    # a writer that is not on the host at all
    model.writers.set_state("SqlServerWriter", "missing")
    missing = run_generated(model, plan(run_id="ss-2"))
    assert parse_diskshadow_failure(missing.output)["hresult"] == 0x80042308


@pytest.mark.parametrize("failure", ["fault at freeze", "failed state", "time-out"])
def test_an_unverified_writer_that_fails_is_left_out_and_the_set_is_still_created(failure, host_model):
    """The script forgot `writer verify`: diskshadow succeeds without the writer, which is what makes the mistake visible."""
    model = host_model()
    if failure == "fault at freeze":
        model.vss_faults.arm("writer_fail_at_freeze", writer="SqlServerWriter")
    elif failure == "failed state":
        model.writers.set_state("SqlServerWriter", "failed_at_prepare_snapshot")
    else:
        model.vss_faults.arm("writer_timeout", writer="SqlServerWriter", seconds=0.05)
    session_plan = plan(volumes=("C:", "D:", "E:"), backup_type="full", verify=())
    model.files.write(session_plan.run_dir() + "\\release.txt", b"ok\r\n")
    result = run_generated(model, session_plan)
    assert result.exit_code == 0 and result.failure is None and len(model.shadows.list()) == 3
    sql = model.writers.get("SqlServerWriter")
    assert 7 <= sql.state <= 9, "the writer stays failed"
    assert re.search(r'^The writer "SqlServerWriter" failed \(state [789], VSS_WS_FAILED_AT_\w+, VSS_E_WRITERERROR_\w+\): '
                     r"it is not part of this shadow copy set\.$", result.output, re.MULTILINE)
    created = model.vss_events.select("SnapshotSetCreated")[0]
    assert created["failed_writers"] == ["SqlServerWriter"] and "SqlServerWriter" not in created["writers"]
    assert [e["event"] for e in model.vss_events.select(writer="SqlServerWriter")
            if not e.get("failed")] in ([], ["PrepareForBackup", "PrepareForSnapshot"])
    assert events(model, "BackupComplete") != [] and "SqlServerWriter" not in events(model, "BackupComplete")
    assert model.files.exists(session_plan.run_dir() + "\\created.txt"), "record.cmd ran: the session saw a set"
    assert 'writerName="SqlServerWriter"' not in model.files.read(session_plan.run_dir() + "\\backup.cab").decode()


def test_a_verified_writer_that_fails_fails_create_and_leaves_no_shadow_copy(host_model):
    model = host_model()
    model.vss_faults.arm("writer_fail_at_freeze", writer="SqlServerWriter", error="non_retryable")
    result = run_generated(model, plan(volumes=("C:", "D:", "E:"), backup_type="full"))
    assert result.exit_code == 1 and parse_diskshadow_failure(result.output)["hresult"] == 0x800423F4
    assert model.shadows.list() == [] and model.vss_events.select("SnapshotSetCreated") == []
    frozen = [e["writer"] for e in model.vss_events.select("Freeze") if not e.get("failed")]
    assert frozen and sorted(events(model, "Abort")) == sorted(frozen), "the writers that froze are aborted"
    assert events(model, "BackupComplete") == []


def test_a_writer_that_vanishes_after_the_preflight(host_model):
    host = LabWindowsHost(host_model())
    model = host.model
    model.vss_faults.arm("writer_vanishes", writer="SqlServerWriter")
    text = call_agent(host, "writers", {"sources": ["vssadmin"]})["result"]["outputs"]["vssadmin"]["text"]
    assert "SqlServerWriter" in [w["name"] for w in parse_vssadmin_writers(text)], "the pre-flight still sees it"
    verified = run_generated(model, plan())
    assert parse_diskshadow_failure(verified.output)["hresult"] == 0x80042308
    assert model.shadows.list() == [] and model.vss_events.select("Freeze") == []
    assert [e["writer"] for e in model.vss_events.select("WriterVanished")] == ["SqlServerWriter"]
    text = call_agent(host, "writers", {"sources": ["vssadmin"]})["result"]["outputs"]["vssadmin"]["text"]
    assert "SqlServerWriter" not in [w["name"] for w in parse_vssadmin_writers(text)], "gone until its service restarts"

    forgot = host_model()
    forgot.vss_faults.arm("writer_vanishes", writer="SqlServerWriter")
    result = run_generated(forgot, plan(verify=()))
    assert result.exit_code == 0 and len(forgot.shadows.list()) == 2, "without writer verify the set is made without it"
    assert forgot.vss_events.select("SnapshotSetCreated")[0]["writers"] == []
    assert forgot.vss_events.select(writer="SqlServerWriter")[0]["event"] == "WriterVanished"
    forgot.services.restart("SQLWriter")
    assert run_generated(forgot, plan(run_id="ss-back")).exit_code == 0


def test_writer_verify_and_exclude_of_a_component(host_model):
    shop = SQL_WRITER_ID + ":\\WIN-SQL-01\\shop"
    model = host_model()
    only_data = run_diskshadow(model, "set context persistent\nwriter verify %s\nadd volume D:\ncreate\n" % shop)
    assert parse_diskshadow_failure(only_data.output)["hresult"] == 0x800423F0, "shop's log is on E:"
    unknown = run_diskshadow(model, "writer verify %s:\\WIN-SQL-01\\nosuchdb\nadd volume D:\nadd volume E:\ncreate\n" % SQL_WRITER_ID)
    assert parse_diskshadow_failure(unknown.output)["hresult"] == 0x80042308
    by_name = run_diskshadow(model, "set context persistent\nset metadata C:\\m.cab\nwriter verify \"SqlServerWriter:\\WIN-SQL-01\\shop\"\n"
                                    "writer exclude %s:\\WIN-SQL-01\\master\nadd volume D:\nadd volume E:\ncreate\n" % SQL_WRITER_ID)
    assert by_name.exit_code == 0
    cab = model.files.read("C:\\m.cab").decode()
    assert 'componentName="shop"' in cab and 'componentName="master"' not in cab and 'componentName="msdb"' in cab
    whole = run_diskshadow(model, "writer verify %s\nwriter exclude %s:\\WIN-SQL-01\\master\nadd volume D:\nadd volume E:\ncreate\n"
                           % (SQL_WRITER_ID, SQL_WRITER_ID))
    assert parse_diskshadow_failure(whole.output)["hresult"] == 0x800423F0, "a writer verified as a whole lacks master"


def test_system_databases_on_c_as_setup_installs_them(host_model):
    """D: + E: holds the user database; master, model and msdb stay on C:: verifying the writer as a whole fails as
    Microsoft documents it (800423F0), verifying the user database's component does not."""
    model = host_model(windows=dict(sample_instance("win-sql-01")["windows"], sql_system_databases="C:"))
    components = {c["spec"].name: [v.display_name for v in c["volumes"]]
                  for c in model.writers.components(model.writers.get("SqlServerWriter"))}
    assert components == {"master": ["C:\\"], "model": ["C:\\"], "msdb": ["C:\\"], "shop": ["D:\\", "E:\\"]}
    instance_data = "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\DATA\\"
    assert all(model.files.exists(instance_data + name) for name in ("master.mdf", "mastlog.ldf", "MSDBData.mdf", "modellog.ldf"))
    assert not model.files.exists("D:\\SQLData\\master.mdf") and model.files.exists("D:\\SQLData\\shop.mdf")
    whole = run_generated(model, plan())
    assert parse_diskshadow_failure(whole.output)["hresult"] == 0x800423F0
    assert "3 of its 4 components are excluded" in whole.output
    assert ('Component "\\WIN-SQL-01\\master" from writer "SqlServerWriter" is excluded from backup,\n'
            "because it requires volume C:\\ which is not in the shadow copy set.") in whole.output
    script = ("set context persistent\nset verbose on\nset metadata C:\\m.cab\nwriter verify %s:\\WIN-SQL-01\\shop\n"
              "add volume D:\nadd volume E:\ncreate\n" % SQL_WRITER_ID)
    shop = run_diskshadow(model, script)
    assert shop.exit_code == 0 and model.vss_events.select("Freeze", "SqlServerWriter")
    assert "+ Adding component: \\WIN-SQL-01\\shop" in shop.output and "+ Adding component: \\WIN-SQL-01\\master" not in shop.output
    cab = model.files.read("C:\\m.cab").decode()
    assert 'componentName="shop"' in cab and 'componentName="master"' not in cab
    assert model.application.journal is not None and model.application.write_transaction() == 1


def test_explicit_exclusion_and_nowriters_leave_the_writer_out(host_model):
    model = host_model()
    result = run_diskshadow(model, "set context persistent\nset verbose on\nwriter exclude %s\nadd volume D:\nadd volume E:\n"
                                   "create\n" % SQL_WRITER_ID)
    assert result.exit_code == 0 and model.vss_events.select("Freeze") == []
    result = run_diskshadow(model, "set context persistent nowriters\nadd volume D:\nadd volume E:\ncreate\n")
    assert result.exit_code == 0 and model.vss_events.select("Freeze") == []
    assert "No_Writers" in model.shadows.record(result.shadows["VSS_SHADOW_1"])["Attributes"]
    assert "Attributes:  No_Auto_Release Persistent No_Writers Differential" in result.output


def test_volatile_shadows_exist_for_the_script_only(host_model):
    model = host_model()
    model.files.write("C:\\Scripts\\check.cmd", b"@echo off\r\nrem a user's script\r\n")
    seen = []
    original = model.exec_exit_codes.get

    def spy(path, default):
        seen.append(len(model.shadows.list()))
        return original(path, default)

    model.exec_exit_codes = type("Spy", (dict,), {"get": lambda self, path, default=None: spy(path, default)})()
    result = run_diskshadow(model, "set context volatile\nadd volume D: alias data\ncreate\nexec C:\\Scripts\\check.cmd\n")
    assert result.exit_code == 0 and seen == [1] and model.shadows.list() == []
    assert not model.vss_events.select("SnapshotSetCreated")[0]["shadows"] == {}


# ------------------------------------------------------------------------------------------------ full backup
def test_full_backup_holds_writers_until_end_backup_and_exec_failure_quits_before_it(host_model):
    model = host_model()
    model.files.write("C:\\Scripts\\after.cmd", b"@echo off\r\nexit /b 3\r\n")
    model.set_exec_exit_code("C:\\Scripts\\after.cmd", 3)
    script = "set context persistent\nbegin backup\nadd volume D:\nadd volume E:\ncreate\nexec C:\\Scripts\\after.cmd\nend backup\n"
    result = run_diskshadow(model, script)
    assert result.exit_code == 1 and "-> end backup" not in result.output
    assert 'The script file "C:\\Scripts\\after.cmd" returned error code 3.' in result.output
    assert parse_diskshadow_failure(result.output)["hresult"] == 0x80004005
    assert events(model, "BackupComplete") == [] and events(model, "Abort") == ["SqlServerWriter"]
    assert set(states(model).values()) == {1}, "abort leaves no writer waiting"
    assert len(model.shadows.list()) == 2, "persistent shadows outlive diskshadow; the controller deletes them"
    model.set_exec_exit_code("C:\\Scripts\\after.cmd", None)
    result = run_diskshadow(model, script)
    assert result.exit_code == 0 and result.output.rstrip().endswith("-> end backup")
    assert events(model, "BackupComplete") == ["SqlServerWriter"]
    complete = model.vss_events.select("BackupComplete")[0]
    assert complete["backup_type"] == "full" and complete["set_id"] == result.set_id


def test_held_full_backup_shows_waiting_writers_to_another_agent_call_until_released(host_model):
    host = LabWindowsHost(host_model())
    model = host.model
    session_plan = plan(backup_type="full", hold_timeout_seconds=30)
    status = session_call(host, "session_start", {"run_id": RUN_ID, "files": fixed_files(session_plan), "wait_seconds": 10,
                                                  "run_dir": session_plan.run_dir(), "wait_for": UNTIL_CREATED})
    assert status["state"] == "created" and status["task_running"] and status["task_state"] == "Running"
    assert status["cleaned"] == [] and set(status["shadows"]) == {"vol_d", "vol_e"}
    text = call_agent(host, "writers", {"sources": ["vssadmin"]})["result"]["outputs"]["vssadmin"]["text"]
    sql = next(w for w in parse_vssadmin_writers(text) if w["name"] == "SqlServerWriter")
    assert (sql["state"], sql["state_name"]) == (5, "WAITING_FOR_BACKUP_COMPLETE")
    assert "Waiting for completion" in text
    # one session at a time
    other = agent_call(host, "session_start", {"run_id": "ss-other", "files": fixed_files(plan(run_id="ss-other"))})
    assert not other["ok"] and other["error"]["hresult"] == "0x80042316" and "shadowsnap-" + RUN_ID in other["error"]["message"]
    assert events(model, "BackupComplete") == []
    result = session_call(host, "session_release", {"run_id": RUN_ID, "decision": "ok", "wait_seconds": 10, "delete_shadows": True})
    assert result["state"] == "completed" and result["exit_code"] == 0 and result["decision"] == "ok"
    assert sorted(result["present_shadow_ids"]) == sorted(status["shadows"].values()) == sorted(result["deleted_shadow_ids"])
    assert not result["released_before"] and model.shadows.list() == []
    assert events(model, "BackupComplete") == ["SqlServerWriter"] and states(model)["SqlServerWriter"] == 1
    assert result["log"].rstrip().endswith("-> end backup")
    # the first decision stands; the task is gone, the run directory stays until cleanup
    again = session_call(host, "session_release", {"run_id": RUN_ID, "decision": "abort"})
    assert again["decision"] == "ok" and again["released_before"] and again["task_state"] is None
    cab = call_agent(host, "file_read", {"path": session_plan.run_dir() + "\\backup.cab"})["result"]
    assert cab["size"] > 0 and len(cab["sha256"]) == 64 and cab["content_base64"]


@pytest.mark.parametrize("how", ["abort", "timeout"])
def test_abort_or_hold_timeout_quits_without_backup_complete(how, host_model):
    host = LabWindowsHost(host_model())
    model = host.model
    session_plan = plan(backup_type="full", hold_timeout_seconds=1 if how == "timeout" else 30)
    started = session_call(host, "session_start", {"run_id": RUN_ID, "files": fixed_files(session_plan), "wait_seconds": 10,
                                                   "wait_for": UNTIL_CREATED})
    assert started["state"] == "created"
    began = time.monotonic()
    if how == "abort":
        result = session_call(host, "session_release", {"run_id": RUN_ID, "decision": "abort", "wait_seconds": 10})
        assert time.monotonic() - began < 2, "the release wakes the hold at once"
        assert result["decision"] == "abort" and result["deleted_shadow_ids"] == [] and len(result["present_shadow_ids"]) == 2
    else:
        result = session_call(host, "session_status", {"run_id": RUN_ID, "wait_seconds": 10, "wait_for": UNTIL_END})
        assert 0.5 < time.monotonic() - began < 5
    assert result["state"] == "failed" and result["exit_code"] == 1 and not result["task_running"]
    assert "-> end backup" not in result["log"] and "hold.cmd\" returned error code 1." in result["log"]
    assert parse_diskshadow_failure(result["log"])["hresult"] == 0x80004005
    assert events(model, "BackupComplete") == [] and events(model, "Abort") == ["SqlServerWriter"]
    assert set(states(model).values()) == {1}
    # persistent shadows outlive the abort; shadow_delete removes them (nothing left to delete is fine)
    deleted = call_agent(host, "shadow_delete", {"shadow_set_id": result["shadow_set_id"]})["result"]["deleted_shadow_ids"]
    assert sorted(deleted) == sorted(result["shadows"].values()) and model.shadows.list() == []
    assert call_agent(host, "shadow_delete", {"shadow_set_id": result["shadow_set_id"]})["result"] == {"deleted_shadow_ids": []}


def test_session_status_of_runs_that_do_not_exist_and_argument_checks(host_model):
    host = LabWindowsHost(host_model())
    missing = session_call(host, "session_status", {"run_id": "ss-nothing"})
    assert missing["state"] == "missing" and missing["shadows"] == {} and missing["log"] is None
    assert "is not valid" in call_agent(host, "session_status", {"run_id": "../x"})["error"]["message"]
    assert "argument 'wait_for' may hold created.txt, exit.txt, release.txt, diskshadow.log, not 'soon'" in call_agent(
        host, "session_status", {"run_id": "r1", "wait_for": ["soon"]})["error"]["message"]
    assert "argument 'create_folders' may hold" in call_agent(
        host, "session_start", {"run_id": "r1", "files": fixed_files(plan()), "create_folders": "C:\\Windows"})["error"]["message"]
    files = fixed_files(plan())
    assert "not ASCII" in agent_call(host, "session_start", {"run_id": "r1", "files": dict(files, **{"record.cmd": "caf\u00e9"})})["error"]["message"]
    assert "not a session file" in agent_call(host, "session_start", {"run_id": "r1", "files": dict(files, **{"x.cmd": ""})})["error"]["message"]
    assert "needs the file run.cmd" in agent_call(host, "session_start", {"run_id": "r1", "files": {"snapshot.dsh": "", "record.cmd": ""}})["error"]["message"]
    assert "generated for" in agent_call(host, "session_start", {"run_id": "r1", "files": files, "run_dir": "D:\\runs\\r1"})["error"]["message"]
    assert "whole number" in agent_call(host, "session_start", {"run_id": "r1", "files": files, "wait_seconds": "soon"})["error"]["message"]
    assert "not a GUID" in call_agent(host, "shadow_delete", {"shadow_ids": ["x; delete shadows all"]})["error"]["message"]
    assert "session_cleanup needs runs" in call_agent(host, "session_cleanup", {})["error"]["message"]
    assert "decision must be 'ok' or 'abort', not 'OK'" in call_agent(
        host, "session_release", {"run_id": "r1", "decision": "OK"})["error"]["message"]


def test_session_cleanup_stops_stale_tasks_deletes_their_shadows_and_removes_the_runs(host_model):
    host = LabWindowsHost(host_model())
    model = host.model
    session_plan = plan(backup_type="full", hold_timeout_seconds=300)
    status = session_call(host, "session_start", {"run_id": RUN_ID, "files": fixed_files(session_plan), "wait_seconds": 10,
                                                  "time_limit_seconds": 600, "wait_for": UNTIL_CREATED})
    assert leftovers(host, 0) == [], "younger than 60 s"
    session_ops.age(model, RUN_ID, 61)
    assert leftovers(host, 60) == [], "a task within its own time limit is left alone"
    session_ops.age(model, RUN_ID, 600)
    runs = leftovers(host, 60)
    assert runs == [{"run_id": RUN_ID, "shadow_set_id": status["shadow_set_id"]}]
    cleaned = call_agent(host, "session_cleanup", {"runs": runs})["result"]["cleaned"]
    assert [(c["run_id"], c["shadow_set_id"], sorted(c["deleted_shadow_ids"]), c["error"]) for c in cleaned] == [
        (RUN_ID, status["shadow_set_id"], sorted(status["shadows"].values()), None)]
    assert model.shadows.list() == [] and model.files.list(session_plan.run_dir()) == []
    assert events(model, "BackupComplete") == [] and set(states(model).values()) == {1}
    assert session_call(host, "session_status", {"run_id": RUN_ID})["state"] == "missing"
    assert model.tasks.describe() == []


def test_the_task_time_limit_stops_diskshadow(host_model):
    host = LabWindowsHost(host_model())
    session_plan = plan(backup_type="full", hold_timeout_seconds=300)
    agent_call(host, "session_start", {"run_id": RUN_ID, "files": fixed_files(session_plan), "wait_seconds": 10,
                                       "wait_for": UNTIL_CREATED})
    task = host.model.tasks.get(session_ops.task_name(RUN_ID))
    host.model.tasks._time_limit(task)  # pylint: disable=protected-access
    status = session_call(host, "session_status", {"run_id": RUN_ID, "wait_seconds": 10, "wait_for": UNTIL_END})
    assert status["state"] == "failed" and status["exit_code"] is None and not status["task_running"]
    assert task.last_result == 0x41306 and "time limit" in task.error
    assert set(states(host.model).values()) == {1} and events(host.model, "Abort") == ["SqlServerWriter"]


# ---------------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize("kind, options, hresult, symbol", [
    ("writer_fail_at_freeze", {"writer": "SqlServerWriter"}, 0x800423F3, "VSS_E_WRITERERROR_RETRYABLE"),
    ("writer_fail_at_freeze", {"writer": "SqlServerWriter", "error": "non_retryable"}, 0x800423F4, "VSS_E_WRITERERROR_NONRETRYABLE"),
    ("writer_timeout", {"writer": "SqlServerWriter", "seconds": 0.1}, 0x800423F2, "VSS_E_WRITERERROR_TIMEOUT"),
    ("provider_veto", {}, 0x80042306, "VSS_E_PROVIDER_VETO"),
    ("insufficient_storage", {"volume": "E:"}, 0x8004231F, "VSS_E_INSUFFICIENT_STORAGE"),
    ("snapshot_set_in_progress", {}, 0x80042316, "VSS_E_SNAPSHOT_SET_IN_PROGRESS"),
])
def test_faults_fail_create_once_and_leave_nothing_behind(kind, options, hresult, symbol, host_model):
    model = host_model()
    model.vss_faults.arm(kind, **options)
    result = run_generated(model, plan())
    assert result.exit_code == 1 and parse_diskshadow_failure(result.output) == {"hresult": hresult, "name": symbol, "error_text": symbol}
    assert model.shadows.list() == [] and "-> exec" not in result.output
    sql = model.writers.get("SqlServerWriter")
    if kind.startswith("writer"):
        failed = model.vss_events.select("Freeze", "SqlServerWriter")
        assert sql.state == 9 and [(e["state"], e.get("failed")) for e in failed] == [(9, True)]
        text = call_agent(LabWindowsHost(model), "writers")["result"]["outputs"]["vssadmin"]["text"]
        assert next(w for w in parse_vssadmin_writers(text) if w["name"] == "SqlServerWriter")["state"] == 9
    else:
        assert sql.state == 1 and events(model, "Abort") == (["SqlServerWriter"] if kind != "snapshot_set_in_progress" else [])
    assert run_generated(model, plan(run_id="ss-again")).exit_code == 0, "a fault fires once by default"
    assert sql.state == 1


def test_a_failed_writer_keeps_failing_until_its_service_restarts(host_model):
    host = LabWindowsHost(host_model())
    model = host.model
    model.writers.set_state("SqlServerWriter", "failed_at_prepare_snapshot", error="retryable")
    before = model.writers.get("SqlServerWriter").instance_id
    for run_id in ("ss-1", "ss-2"):
        result = run_generated(model, plan(run_id=run_id))
        assert parse_diskshadow_failure(result.output)["hresult"] == 0x800423F3
    restarted = call_agent(host, "service_restart", {"name": "SQLWriter"})["result"]["services"]
    assert [(s["name"], s["previous_status"], s["status"]) for s in restarted] == [("SQLWriter", "Running", "Running")]
    assert model.writers.get("SqlServerWriter").instance_id != before and model.writers.get("SqlServerWriter").state == 1
    assert run_generated(model, plan(run_id="ss-3")).exit_code == 0
    assert "no service" in call_agent(host, "service_restart", {"name": "NoSuchService"})["error"]["message"]


def test_diff_area_too_small_is_insufficient_storage(host_model):
    model = host_model()
    model.shadows.set_storage("E:", "E:", max_space=100 << 20)
    result = run_generated(model, plan())
    assert parse_diskshadow_failure(result.output)["hresult"] == 0x8004231F
    assert "cannot hold the diff area of E:\\" in result.output


def test_two_creations_at_once_collide_with_snapshot_set_in_progress(host_model):
    model = host_model()
    model.vss_faults.arm("create_delay", seconds=1.0)
    first = {}
    thread = threading.Thread(target=lambda: first.update(result=run_diskshadow(model, "add volume D:\ncreate\n")))
    thread.start()
    deadline = time.monotonic() + 5
    while model.shadows.creating_set is None and time.monotonic() < deadline:
        time.sleep(0.01)
    second = run_diskshadow(model, "add volume E:\ncreate\n")
    thread.join(10)
    assert parse_diskshadow_failure(second.output)["hresult"] == 0x80042316
    assert first["result"].exit_code == 0


# -------------------------------------------------------------------------------- listing, deleting, exposing
def test_list_delete_expose_and_revert(host_model):
    model = host_model()
    created = run_diskshadow(model, "add volume D: alias data\nadd volume E: alias logs\ncreate\n")
    listing = run_diskshadow(model, "list shadows all\n").output
    assert "Querying all shadow copies on the computer ..." in listing and "Number of shadow copies listed: 2" in listing
    assert [s["shadow_id"] for s in parse_diskshadow_shadows(listing)] == [created.shadows["data"], created.shadows["logs"]]
    model.files.write("D:\\SQLData\\late.txt", b"after the shadow")
    exposed = run_diskshadow(model, "expose %s X:\n" % created.shadows["data"])
    assert "The shadow copy was successfully exposed as X:\\." in exposed.output
    assert model.files.read("X:\\SQLData\\shop.mdf") == model.shadows.content(created.shadows["data"])["SQLData\\shop.mdf"]
    assert model.files.read("X:\\SQLData\\late.txt") is None
    wmi = next(s for s in read_ops.shadows(model)["shadows"] if s["ID"].lower() == created.shadows["data"])
    assert wmi["ExposedLocally"] and wmi["ExposedName"] == "X:\\"
    refused = run_diskshadow(model, "revert %s\n" % created.shadows["data"])
    assert parse_diskshadow_failure(refused.output)["hresult"] == 0x8004231B
    deleted = run_diskshadow(model, "delete shadows set %s\n" % created.set_id)
    assert re.search(r"^Deleting shadow copy \{[0-9a-f-]+\} on volume \\\\\?\\Volume\{[0-9a-f-]+\}\\ from provider "
                     r"\{b5946137-7b9f-4925-af80-51abd60b20d5\} \[Attributes: 0x00120009\]\.\.\.$", deleted.output, re.MULTILINE)
    assert "Number of shadow copies deleted: 2" in deleted.output and model.shadows.list() == [] and model.shadows.exposures == {}
    accessible = run_diskshadow(model, "set context clientaccessible\nadd volume D: alias data\ncreate\n")
    model.files.write("D:\\SQLData\\later.txt", b"after the shadow")
    reverted = run_diskshadow(model, "revert %s\n" % accessible.shadows["data"])
    assert reverted.exit_code == 0 and model.files.read("D:\\SQLData\\later.txt") is None and model.shadows.list() == []
    assert model.files.read("D:\\SQLData\\late.txt") == b"after the shadow"
    missing = run_diskshadow(model, "delete shadows id {00000000-0000-0000-0000-000000000001}\n")
    assert parse_diskshadow_failure(missing.output)["hresult"] == 0x80042308


def test_japanese_host_lists_shadows_with_the_captured_labels_in_code_page_932(host_model):
    model = host_model("win-web-01")
    created = run_diskshadow(model, "add volume D:\ncreate\nlist shadows all\n")
    raw = console_bytes(created.output, 932)
    text = agent_decode(raw, 932)
    assert "\u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc ID = %s" % created.shadows["VSS_SHADOW_1"] in text
    assert "- \u5c5e\u6027:  No_Auto_Release Persistent Differential" in text
    assert [s["shadow_id"] for s in parse_diskshadow_shadows(text)][-1] == created.shadows["VSS_SHADOW_1"]
    capture = (FIXTURES / "diskshadow_list_shadows_all_ja_wsb_01.txt").read_text(encoding="utf-8").splitlines()
    captured_labels = {line.strip().split(":")[0].split("=")[0].strip() for line in capture if line.strip().startswith(("-", "*"))}
    ours = {line.strip().split(":")[0].split("=")[0].strip() for line in text.splitlines() if line.strip().startswith(("- ", "* "))}
    assert captured_labels <= ours


# ------------------------------------------------------------------------------------------------ batch files
@pytest.mark.parametrize("line, handle, text", [
    ('echo %ERRORLEVEL%> "C:\\t\\x.txt"', 0, "ECHO is off.\n"),
    ('>"C:\\t\\x.txt" echo %ERRORLEVEL%', None, "0\r\n"),
    ('echo %ERRORLEVEL% > "C:\\t\\x.txt"', None, "0 \r\n"),
    ('(echo %ERRORLEVEL%)> "C:\\t\\x.txt"', None, "0\r\n"),
])
def test_a_digit_before_a_redirection_is_a_handle(line, handle, text, host_model):
    """cmd.exe: ``echo 0> file`` redirects handle 0 and writes nothing into the file (``ECHO is off.`` goes to the
    console). The run.cmd the collection generates writes diskshadow's exit code that way (see the lab notes)."""
    model = host_model()
    out = []
    code = Batch(model, "C:\\t\\t.cmd", "@echo off\r\n%s\r\n" % line, {}, out.append).run()
    assert code == 0
    if handle is not None:
        assert model.files.read("C:\\t\\x.txt") == b"" and out == [text]
        assert parse_redirections(line.replace("%ERRORLEVEL%", "0"))[1][0][0] == handle
    else:
        assert model.files.read("C:\\t\\x.txt") == text.encode() and out == []


def test_the_generated_run_cmd_as_cmd_exe_runs_it(host_model):
    """What Windows does with plugins/plugin_utils/diskshadow.py's run.cmd: exit.txt holds the number only when the
    exit-code line is not ``echo %ERRORLEVEL%> file`` (empty for exit code 0, ``ECHO is off.`` for 1)."""
    host = LabWindowsHost(host_model())
    files = generator.session_files(plan())
    agent_call(host, "session_start", {"run_id": RUN_ID, "files": files, "wait_seconds": 10, "wait_for": UNTIL_CREATED})
    status = session_call(host, "session_status", {"run_id": RUN_ID, "wait_seconds": 10, "wait_for": UNTIL_END})
    assert status["shadow_set_id"] and status["log"].rstrip().endswith(".cmd")
    if re.search(r"^echo %ERRORLEVEL%> ", files["run.cmd"], re.MULTILINE):
        assert (status["exit_code"], status["state"]) == (None, "failed"), "exit.txt is empty: the generator's bug"
    else:
        assert (status["exit_code"], status["state"]) == (0, "completed")


def test_protocol_scripts_are_recognised_by_their_marker():
    files = generator.session_files(plan(backup_type="full"))
    assert {name: protocol_script_kind(text) for name, text in files.items()} == {
        "snapshot.dsh": None, "record.cmd": "record", "hold.cmd": "hold", "run.cmd": "run"}
    assert protocol_script_kind("@echo off\r\nrem shadowsnap-hold protocol=2 timeout=5\r\n") is None


def test_unknown_commands_in_a_batch_file_set_errorlevel_9009(host_model):
    model = host_model()
    out = []
    code = Batch(model, "C:\\t\\t.cmd", "@echo off\r\nrobocopy a b\r\nexit /b %ERRORLEVEL%\r\n", {}, out.append).run()
    assert code == 9009 and "'robocopy' is not recognized as an internal or external command," in out[0]


# ------------------------------------------------------------------------------------- the application journal
def test_the_invariant_checker_on_consistent_lazy_torn_and_mismatched_images(host_model):
    model = host_model()
    journal = model.application.journal
    data, log = journal.data_volume, journal.log_volume
    model.application.transactions(3)
    assert check_consistency(data.files(), log.files()) == (True, [])
    consistent_data = data.files()
    model.application.transactions(2, mode="lazy")
    ok, reasons = check_consistency(data.files(), log.files())
    verdict = assess_journal(data.files(), log.files())
    assert not ok and verdict["recoverable"] and "the log holds LSN 4..5" in reasons[0]
    model.application.transactions(1, mode="torn")
    verdict = assess_journal(data.files(), log.files())
    assert not verdict["consistent"] and verdict["torn"] and verdict["recoverable"] and "torn" in verdict["reasons"][0]
    assert Journal.read(data.files(), log.files()).applied_lsn == -1
    journal.checkpoint()
    assert check_consistency(data.files(), log.files()) == (True, [])
    early_log = dict(log.files())
    model.application.transactions(2)
    verdict = assess_journal(data.files(), early_log)
    assert not verdict["consistent"] and not verdict["recoverable"] and "different points in time" in verdict["reasons"][0]
    assert check_consistency(consistent_data, {})[1] == ["SQLLogs\\shop_log.ldf is missing from the image"]


def test_the_writer_flushes_the_application_at_freeze_so_the_shadow_is_consistent(host_model):
    model = host_model()
    model.application.transactions(3, mode="lazy")
    model.application.transactions(1, mode="torn")
    assert not model.application.check()["consistent"]
    included = run_diskshadow(model, "add volume D: alias d\nadd volume E: alias e\ncreate\n")
    assert check_consistency(model.shadows.content(included.shadows["d"]), model.shadows.content(included.shadows["e"])) == (True, [])
    model.application.transactions(2, mode="lazy")
    left_out = run_diskshadow(model, "set context persistent nowriters\nadd volume D: alias d\nadd volume E: alias e\ncreate\n")
    ok, reasons = check_consistency(model.shadows.content(left_out.shadows["d"]), model.shadows.content(left_out.shadows["e"]))
    assert not ok and "the log holds LSN 5..6" in reasons[0]


def test_the_background_application_keeps_writing_and_stops_with_the_host(host_model):
    model = host_model()
    model.application.start(interval=0.002, checkpoint_every=2, torn_pause=0.002)
    deadline = time.monotonic() + 5
    while model.application.state()["background_transactions"] < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    shadows = run_diskshadow(model, "add volume D: alias d\nadd volume E: alias e\ncreate\n").shadows
    assert check_consistency(model.shadows.content(shadows["d"]), model.shadows.content(shadows["e"])) == (True, [])
    model.shutdown()
    assert not model.application.state()["running"]
    assert assess_journal(model.application.journal.data_volume.files(), model.application.journal.log_volume.files())["recoverable"]


def test_mount_folders_aliases_in_commands_and_writer_listings(host_model):
    volumes = [{"device": "/dev/sda1", "size": 60, "drive": "C:"},
               {"device": "xvdb", "size": 20, "drive": "C:\\Mounts\\Data", "label": "Data"}]
    model = host_model("win-mnt-01", volumes=volumes, windows={"os": "2022"})
    session_plan = plan(volumes=["C:\\Mounts\\Data"], verify=())
    result = run_generated(model, session_plan)
    assert result.exit_code == 0 and list(result.shadows) == ["vol_c_mounts_data"]
    record = model.shadows.record(result.shadows["vol_c_mounts_data"])
    assert record["VolumeName"] == model.storage.find_volume("C:\\Mounts\\Data").unique_id
    assert "[C:\\Mounts\\Data\\]" in result.output
    refused = run_diskshadow(model, "add volume C:\\Windows\ncreate\n")
    assert parse_diskshadow_failure(refused.output)["hresult"] == 0x80042308, "a folder that is not a mount point"
    script = "add volume C: alias sys\ncreate\nexpose %sys% Z:\nlist writers status\n"
    listed = run_diskshadow(model, script)
    assert "-> %%sys%% = %s\n" % listed.shadows["sys"] in listed.output
    assert "The shadow copy was successfully exposed as Z:\\." in listed.output
    assert "Listing writer status ..." in listed.output and "10 writers listed." in listed.output


def test_a_japanese_host_writes_its_session_log_in_code_page_932(host_model):
    host = LabWindowsHost(host_model("win-web-01"))
    session_plan = plan(volumes=["D:"], verify=())
    agent_call(host, "session_start", {"run_id": RUN_ID, "files": fixed_files(session_plan), "wait_seconds": 10})
    status = session_call(host, "session_status", {"run_id": RUN_ID, "wait_seconds": 10, "wait_for": UNTIL_END})
    assert status["state"] == "completed"
    raw = host.model.files.read(session_plan.run_dir() + "\\diskshadow.log")
    assert raw.decode("cp932").startswith("Microsoft DiskShadow \u30d0\u30fc\u30b8\u30e7\u30f3 1.0\r\n")
    assert "\u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc ID = %s" % status["shadows"]["vol_d"] in status["log"]
    assert [s["shadow_id"] for s in parse_diskshadow_shadows(status["log"])] == [status["shadows"]["vol_d"]]
