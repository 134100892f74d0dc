# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow engine's session (shadow_session.py): the state machine with its bounded waits and retries, the session
directory it refuses, the leftover runs it cleans, the writer results of a run, and the release verdicts, against a
scripted host that answers the session ops with raw facts (session_answers.py)."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, session_host, shadow_session, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError
from unit.plugins.plugin_utils.session_answers import (
    ROOT,
    created_text,
    folder,
    fresh_host_sessions,
    run_facts,
    sessions,
)
from unit.plugins.plugin_utils.sql_host import (
    SQL_WRITER,
    plan,
    writers,
)


def test_writer_results_say_included_or_excluded_and_why():
    result = plan(volumes=["D:", "L:"], exclude_writers=["Registry Writer"])
    log = ("-> create\r\n"
           'Component "\\System Files" from writer "System Writer" is excluded from backup,\r\n'
           "because it requires volume C:\\ which is not in the shadow copy set.\r\n"
           'Excluding writer "System Writer", because all of its components have been excluded.\r\n')
    results = {item["name"]: item for item in shadow_session.writer_results(result, writers(), log)}
    assert set(results) == {"SqlServerWriter", "System Writer", "Registry Writer"}
    log_only = {item["name"]: item for item in shadow_session.writer_results(
        plan(volumes=["D:", "L:"]), writers(), log.replace("System Files", "TasksStore").replace('"System Writer"', '"Task Scheduler Writer"', 1))}
    assert (log_only["Task Scheduler Writer"]["included"], log_only["Task Scheduler Writer"]["reason"]) == (
        False, "none of its components is on the set's volumes")
    assert results["SqlServerWriter"] == {
        "name": "SqlServerWriter", "writer_id": SQL_WRITER[1], "state_name": "STABLE", "required": True, "rule": "component",
        "included": True, "reason": "writer verify: diskshadow fails rather than drop it", "included_components": [],
        "excluded_components": []}
    assert (results["System Writer"]["included"], results["System Writer"]["reason"]) == (
        False, 'Excluding writer "System Writer", because all of its components have been excluded.')
    assert results["System Writer"]["excluded_components"][0]["volume"] == "C:\\"
    assert (results["Registry Writer"]["included"], results["Registry Writer"]["reason"]) == (False, "writer exclude (exclude_writers)")


# ------------------------------------------------------------------------------------------------ the state machine


SET_ID = "{11111111-2222-4333-8444-555555555555}"


def shadow_ids(files: dict) -> dict:
    """alias -> shadow id for every alias record.cmd echoes (what diskshadow puts in its environment)."""
    aliases = re.findall(r"^echo (vol_\w+)=%\1%", files["record.cmd"], flags=re.MULTILINE)
    return {alias: "{aaaaaaaa-0000-4000-8000-%012d}" % (index + 1) for index, alias in enumerate(aliases)}


class ScriptedHost:
    """``send`` for a SessionRunner: each op answers from its queue (a dict built from the request, or an exception)."""

    def __init__(self, **queues):
        self.queues = {op: list(items) for op, items in queues.items()}
        self.requests = []
        self.files = {}

    def __call__(self, op, args):
        self.requests.append((op, copy.deepcopy(args)))
        if op == "session_start":
            self.files[args["run_id"]] = args["files"]
        item = self.queues[op].pop(0)
        if isinstance(item, BaseException):
            raise item
        return item(args, self) if callable(item) else item


def status(state, log="", exit_code=None, with_shadows=None, drop_alias=None):
    """A session_start/session_status answer builder: the raw facts of a host whose run is in ``state``;
    ``with_shadows`` (default: created/completed) writes created.txt with the ids of every alias (but ``drop_alias``)."""
    def build(args, host):
        run_id = args["run_id"]
        shadows = with_shadows if with_shadows is not None else state in ("created", "completed")
        recorded = {alias: shadow_id for alias, shadow_id in shadow_ids(host.files[run_id]).items() if alias != drop_alias}
        return run_facts(run_id, state, created=created_text(SET_ID, recorded) if shadows else None, log=log,
                         exit_text=None if exit_code is None else "%d\r\n" % exit_code, cleaned=[])
    return build


def aborted(args, host):
    return run_facts(args["run_id"], "failed", exit_text="1\r\n", released_before=False, shadow_copies=[], deleted_shadow_ids=[])


def refused(hresult="0x80042316"):
    return AgentOperationError(host="win-sql-01", op="session_start", error={
        "message": "another shadowsnap session is running on this host (shadowsnap-ss-x)", "hresult": hresult})


class Clock:
    def __init__(self, step=0.0):
        self.now = 1000.0
        self.step = step
        self.sleeps = []

    def __call__(self):
        self.now += self.step
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Runner:  # pylint: disable=too-few-public-methods
    """A SessionRunner whose ``create`` gets the ``sessions`` answer of a host with a safe tree unless told otherwise."""

    def __init__(self, session):
        self.session = session
        self.attempts = session.attempts
        self.cleanup_errors = session.cleanup_errors
        self.abort = session.abort

    def create(self, *args, tree=None, **kwargs):
        return self.session.create(*args, sessions=sessions() if tree is None else tree, **kwargs)


def runner(host, clock=None, **kwargs):
    clock = clock or Clock()
    counter = iter(range(1, 100))
    kwargs.setdefault("run_id_factory", lambda: "ss-20261125T013700-%08x" % next(counter))
    return Runner(shadow_session.SessionRunner(host, sleep=clock.sleep, clock=clock, **kwargs)), clock


def data_plan():
    return plan(volumes=["D:", "L:"])


def test_a_session_that_creates_its_set_within_the_first_wait_costs_one_request():
    host = ScriptedHost(session_start=[status("created")])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "full", 900)
    ((op, args),) = host.requests
    assert op == "session_start"
    assert args["run_id"] == "ss-20261125T013700-00000001"
    assert args["run_dir"] == "C:\\ProgramData\\shadowsnap\\runs\\ss-20261125T013700-00000001"
    assert args["wait_seconds"] == 120 and args["time_limit_seconds"] == 900 + 300 + 300
    assert args["wait_for"] == ["created.txt", "exit.txt"] and args["create_folders"] == []
    assert "cleanup" not in args, "no leftover run on the host"
    assert sorted(args["files"]) == ["hold.cmd", "record.cmd", "run.cmd", "snapshot.dsh"]
    assert "writer verify %s" % SQL_WRITER[1] in args["files"]["snapshot.dsh"]
    assert "rem shadowsnap-hold protocol=1 timeout=900" in args["files"]["hold.cmd"]
    assert outcome.shadow_set_id == SET_ID
    assert outcome.shadows == {"D:": "{aaaaaaaa-0000-4000-8000-000000000001}", "L:": "{aaaaaaaa-0000-4000-8000-000000000002}"}
    assert outcome.attempts == [{"run_id": "ss-20261125T013700-00000001", "outcome": "created"}]
    assert clock.sleeps == []


def test_a_slow_session_is_polled_until_created_with_bounded_waits():
    host = ScriptedHost(session_start=[status("starting")], session_status=[status("starting"), status("completed", exit_code=0)])
    session, dummy = runner(host, Clock(step=50), session_timeout=400)
    outcome = session.create(data_plan(), "copy", 600, cleanup=False)
    assert [op for op, dummy in host.requests] == ["session_start", "session_status", "session_status"]
    assert "hold.cmd" not in host.requests[0][1]["files"]
    assert [args["wait_seconds"] for dummy, args in host.requests] == [120, 120, 120]
    assert all(args["wait_for"] == ["created.txt", "exit.txt"] for op, args in host.requests if op == "session_status")
    assert outcome.status["state"] == "completed"


def test_a_session_that_never_creates_its_set_is_aborted_at_the_timeout():
    host = ScriptedHost(session_start=[status("starting")], session_status=[status("starting")] * 5,
                        session_release=[aborted])
    session, dummy = runner(host, Clock(step=40), session_timeout=100)
    with pytest.raises(shadow_session.SessionError, match=r"did not create the shadow set of D:, L: within session_timeout \(100 s\)"):
        session.create(data_plan(), "copy", 600)
    ops = [op for op, dummy in host.requests]
    assert ops[0] == "session_start" and ops[-1] == "session_release"
    assert host.requests[-1][1] == {"run_id": "ss-20261125T013700-00000001", "decision": "abort", "wait_seconds": 60, "delete_shadows": True}


def test_a_set_in_progress_is_retried_as_microsoft_advises_then_gives_up():
    host = ScriptedHost(session_start=[refused(), refused(), status("created")])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS] * 2
    assert [attempt["outcome"] for attempt in outcome.attempts] == ["refused", "refused", "created"]
    assert outcome.attempts[0]["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"
    starts = [args for op, args in host.requests if op == "session_start"]
    assert len({args["run_id"] for args in starts}) == 3, "every attempt is a new run"

    host = ScriptedHost(session_start=[refused()] * 3)
    session, clock = runner(host, policy=shadow_session.RetryPolicy(in_progress_retries=2, in_progress_delay=5))
    with pytest.raises(AgentOperationError, match="VSS_E_SNAPSHOT_SET_IN_PROGRESS"):
        session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [5, 5] and len(session.attempts) == 3


def test_an_agent_error_that_is_not_in_progress_is_not_retried():
    host = ScriptedHost(session_start=[refused("0x80070005")])
    session, clock = runner(host)
    with pytest.raises(AgentOperationError, match="E_ACCESSDENIED"):
        session.create(data_plan(), "copy", 600)
    assert clock.sleeps == []


FAILED_LOG = ("-> create\r\n"
              'Component "\\WIN-SQL-01\\Sales" from writer "SqlServerWriter" is excluded from backup,\r\n'
              "because it requires volume L:\\ which is not in the shadow copy set.\r\n"
              'Excluding writer "SqlServerWriter", because all of its components have been excluded.\r\n'
              "\r\nThe last operation failed.\r\n        - Returned HRESULT: 800423f0\r\n"
              "        - Error text: VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT\r\n")


def test_a_diskshadow_failure_names_the_hresult_the_advice_and_the_dropped_required_writer():
    host = ScriptedHost(session_start=[status("failed", log=FAILED_LOG, exit_code=1)])
    session, clock = runner(host)
    with pytest.raises(shadow_session.SessionError) as raised:
        session.create(data_plan(), "copy", 600)
    assert str(raised.value) == (
        "diskshadow failed to create the shadow set of D:, L: (run ss-20261125T013700-00000001): HRESULT 0x800423F0 "
        "(VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT): The shadow copy set holds only some of the volumes a selected writer "
        "component needs. Add every volume the writer's components touch to the set (see the writer's component volumes).; "
        "required writers left out by diskshadow: Excluding writer \"SqlServerWriter\", because all of its components have "
        "been excluded.")
    assert raised.value.hresult == 0x800423F0 and raised.value.run_id == "ss-20261125T013700-00000001"
    assert [op for op, dummy in host.requests] == ["session_start"], "no shadows were recorded: nothing to abort"
    assert clock.sleeps == []


def test_a_session_that_failed_after_creating_shadows_is_cleaned_up_and_in_progress_failures_are_retried():
    log = "-> create\r\nThe last operation failed.\r\n        - Returned HRESULT: 80042316\r\n        - Error text: VSS_E_SNAPSHOT_SET_IN_PROGRESS\r\n"
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1, with_shadows=True), status("created")],
                        session_release=[aborted])
    session, clock = runner(host)
    outcome = session.create(data_plan(), "copy", 600)
    assert [op for op, dummy in host.requests] == ["session_start", "session_release", "session_start"]
    assert clock.sleeps == [60]
    assert outcome.attempts[0]["outcome"] == "failed" and outcome.attempts[0]["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"


def test_transient_writer_errors_are_retried_only_when_asked():
    log = "-> create\r\nThe last operation failed.\r\n        - Returned HRESULT: 800423f3\r\n        - Error text: VSS_E_WRITERERROR_RETRYABLE\r\n"
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1)])
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError, match="Wait about 10 minutes and retry"):
        session.create(data_plan(), "copy", 600)
    host = ScriptedHost(session_start=[status("failed", log=log, exit_code=1), status("created")])
    session, clock = runner(host, policy=shadow_session.RetryPolicy(writer_error_retries=1))
    session.create(data_plan(), "copy", 600)
    assert clock.sleeps == [vss.WRITER_RETRY_AFTER_SECONDS]


def test_a_stopped_task_without_hresult_reports_the_log_tail():
    host = ScriptedHost(session_start=[status("failed", log="-> create\r\nsomething odd\r\n")])
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError, match=r"exit code None without creating.*log tail: -> create \| something odd"):
        session.create(data_plan(), "copy", 600)


def test_an_incomplete_created_record_aborts_the_session():
    host = ScriptedHost(session_start=[status("created", drop_alias="vol_l")], session_release=[aborted])
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError, match=r"created.txt holds no shadow id for L: \(alias vol_l\)"):
        session.create(data_plan(), "copy", 600)
    assert host.requests[-1][0] == "session_release"


def test_a_failed_abort_is_kept_not_raised():
    host = ScriptedHost(session_release=[AgentOperationError(host="h", op="session_release", error={"message": "no"})])
    session, dummy = runner(host)
    assert session.abort("ss-1") is None
    assert session.cleanup_errors == ["aborting session ss-1 failed: h: agent op 'session_release' failed: no"]


# ------------------------------------------------------------------------------------------------ release verdicts


SHADOW_D = "{aaaaaaaa-0000-4000-8000-000000000001}"


def released(state="completed", log="-> create\r\n", *, exit_code=1, decision="ok", released_before=False,
             present_shadow_ids=(SHADOW_D,), deleted_shadow_ids=(SHADOW_D,)):
    """The status of a session_release answer: the raw facts of a host whose run recorded one shadow of SET_ID (as
    diskshadow spells it, upper case), with those of ``present_shadow_ids`` still there (beside another set's)."""
    copies = [{"ID": shadow_id.upper(), "SetID": SET_ID.upper()} for shadow_id in present_shadow_ids]
    copies.append({"ID": "{BBBBBBBB-0000-4000-8000-000000000001}", "SetID": "{CCCCCCCC-0000-4000-8000-000000000001}"})
    answer = run_facts("ss-1", state, created=created_text(SET_ID, {"vol_d": SHADOW_D.upper()}), log=log,
                       exit_text="%d\r\n" % exit_code if state == "failed" and exit_code is not None else None,
                       release=decision + "\r\n", released_before=released_before, shadow_copies=copies,
                       deleted_shadow_ids=list(deleted_shadow_ids))
    return session_host.run_status(answer)


def test_a_copy_release_verifies_the_shadows_were_there():
    verdict = shadow_session.judge_release(released(), "ok", "ss-1")
    assert dataclasses.asdict(verdict) == {"ok": True, "message": None, "changed": True, "verified": True,
                                           "backup_type": "copy", "backup_complete_sent": None, "missing_shadow_ids": (),
                                           "state": "completed"}


def test_a_full_release_sends_backup_complete_or_says_it_did_not():
    log = "-> begin backup\r\n-> create\r\n-> exec hold.cmd\r\n-> end backup\r\n"
    assert shadow_session.judge_release(released(log=log), "ok", "ss-1").backup_complete_sent is True
    verdict = shadow_session.judge_release(released("failed", log=log), "ok", "ss-1")
    assert not verdict.ok and verdict.backup_complete_sent is False
    assert verdict.message == ("session ss-1: diskshadow ended with exit code 1 before or at the release; BackupComplete "
                               "was not sent (did the hold time out before the release?)")
    stopped = shadow_session.judge_release(released("failed", log=log, exit_code=None), "ok", "ss-1")
    assert "no exit code (its task ended without writing exit.txt" in stopped.message
    verdict = shadow_session.judge_release(released("created", log=log, deleted_shadow_ids=[]), "ok", "ss-1")
    assert not verdict.ok and "end backup still running" in verdict.message


def test_a_shadow_gone_before_the_release_means_crash_consistent():
    verdict = shadow_session.judge_release(released(present_shadow_ids=[]), "ok", "ss-1")
    assert not verdict.ok and verdict.verified is False
    assert verdict.missing_shadow_ids == ("{aaaaaaaa-0000-4000-8000-000000000001}",)
    assert "treat this backup as crash-consistent" in verdict.message


def test_release_is_idempotent_and_refuses_to_complete_an_aborted_session():
    again = shadow_session.judge_release(released(released_before=True, present_shadow_ids=[], deleted_shadow_ids=[]), "ok", "ss-1")
    assert again.ok and not again.changed and again.verified is None
    verdict = shadow_session.judge_release(released(decision="abort", released_before=True), "ok", "ss-1")
    assert not verdict.ok and verdict.message == "session ss-1 was already released with 'abort': it cannot be completed"
    assert shadow_session.judge_release(released("failed", decision="abort"), "abort", "ss-1").ok
    missing = session_host.run_status(run_facts("ss-1", "missing", released_before=False, shadow_copies=[], deleted_shadow_ids=[]))
    assert missing["state"] == "missing" and missing["present_shadow_ids"] == [] and missing["decision"] is None
    assert not shadow_session.judge_release(missing, "ok", "ss-1").ok
    assert dataclasses.asdict(shadow_session.judge_release(missing, "abort", "ss-1")) == {
        "ok": True, "message": None, "changed": False, "verified": None, "backup_type": "copy", "backup_complete_sent": None,
        "missing_shadow_ids": (), "state": "missing"}


# ------------------------------------------------------------------------------------------------ the session directory


USER = "S-1-5-21-1-2-3-1001"


@pytest.mark.parametrize("tree, found", [
    (sessions([folder(ROOT, USER, owner_name="WIN-SQL-01\\mallory"), folder(diskshadow.RUN_ROOT, USER)]),
     "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\mallory: remove C:\\ProgramData\\shadowsnap and let the agent "
     "create it"),
    (sessions([folder(ROOT, USER, attributes="Directory, ReparsePoint", link_type="Junction",
                      link_target="C:\\Users\\Public\\shadowsnap")]),
     "is a junction to C:\\Users\\Public\\shadowsnap"),
    (sessions([folder(ROOT), folder(diskshadow.RUN_ROOT, aces=[(USER, "WIN-SQL-01\\mallory", "Modify", "Allow")])]),
     "C:\\ProgramData\\shadowsnap\\runs has an explicit Allow entry for WIN-SQL-01\\mallory (Modify)"),
])
def test_nothing_starts_on_a_session_directory_that_is_not_safe(tree, found):
    host = ScriptedHost()
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError) as raised:
        session.create(data_plan(), "copy", 600, tree=tree)
    assert str(raised.value).startswith("the session directory is not safe for SYSTEM to run files from, so no session "
                                        "was started: ")
    assert found in str(raised.value)
    assert raised.value.details["session_directory_problems"]
    assert host.requests == [], "not one request: nothing is created on the host"


def test_the_agent_creates_the_folders_a_fresh_host_lacks_and_a_refused_start_looks_again():
    tree = fresh_host_sessions()
    host = ScriptedHost(session_start=[refused(), status("created")], sessions=[sessions()])
    session, dummy = runner(host)
    session.create(data_plan(), "copy", 600, tree=tree)
    assert [op for op, dummy in host.requests] == ["session_start", "sessions", "session_start"]
    first, second = (args for op, args in host.requests if op == "session_start")
    assert first["create_folders"] == [ROOT, diskshadow.RUN_ROOT]
    assert second["create_folders"] == [], "another session made them meanwhile: the facts were read again"

    retryable = "-> create\r\nThe last operation failed.\r\n        - Returned HRESULT: 800423f3\r\n"
    host = ScriptedHost(session_start=[status("failed", log=retryable, exit_code=1), status("created")])
    session, dummy = runner(host, policy=shadow_session.RetryPolicy(writer_error_retries=1))
    session.create(data_plan(), "copy", 600, tree=fresh_host_sessions())
    assert [args["create_folders"] for dummy, args in host.requests] == [[ROOT, diskshadow.RUN_ROOT], []], \
        "an answered start made them: the next attempt does not ask again"


def test_a_tree_made_unsafe_while_the_start_was_refused_is_refused_too():
    unsafe = sessions([folder(ROOT, USER), folder(diskshadow.RUN_ROOT, USER)])
    host = ScriptedHost(session_start=[refused()], sessions=[unsafe])
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError, match="is owned by S-1-5-21-1-2-3-1001"):
        session.create(data_plan(), "copy", 600, tree=fresh_host_sessions())
    assert [op for op, dummy in host.requests] == ["session_start", "sessions"]


def leftover(run_id, created_at, state="failed", release=None, **options):
    return run_facts(run_id, state, created=created_text(SET_ID, {"vol_d": "{AAAAAAAA-0000-4000-8000-000000000009}"}),
                     exit_text="1\r\n" if state == "failed" else None, release=release, created_at=created_at, **options)


def test_the_first_start_cleans_the_runs_the_controller_found_left_over():
    # read_at 02:00:00; the task time limit is 900 + 300 + 300 s, leftovers are 600 s older than that (2100 s)
    runs = [leftover("ss-old", "2026-11-25T01:24:59.000Z"), leftover("ss-young", "2026-11-25T01:25:01.000Z"),
            leftover("ss-released", "2026-11-25T00:00:00.000Z", state="completed", release="ok\r\n")]
    host = ScriptedHost(session_start=[refused(), status("created")])
    session, dummy = runner(host)
    session.create(data_plan(), "full", 900, tree=sessions(runs=runs))
    first, second = (args for op, args in host.requests if op == "session_start")
    assert first["cleanup"] == [{"run_id": "ss-old", "shadow_set_id": SET_ID},
                                {"run_id": "ss-released", "shadow_set_id": None}]
    assert "cleanup" not in second, "the first start cleaned them"
    host = ScriptedHost(session_start=[status("created")])
    session, dummy = runner(host)
    session.create(data_plan(), "full", 900, cleanup=False, tree=sessions(runs=runs))
    assert "cleanup" not in host.requests[0][1]
