# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow engine's session (shadow_session.py): the state machine with its bounded waits and retries, the writer
results of a run, and the release verdicts, against a scripted host that answers the session ops."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, shadow_session, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError
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


def status(state, log="", exit_code=None, with_shadows=None):
    """A session_status answer builder; ``with_shadows`` (default: created/completed) fills created.txt's ids."""
    def build(args, host):
        run_id = args["run_id"]
        shadows = with_shadows if with_shadows is not None else state in ("created", "completed")
        answer = {"run_id": run_id, "run_dir": diskshadow.RUN_ROOT + "\\" + run_id, "state": state, "shadow_set_id": None,
                  "shadows": {}, "exit_code": exit_code, "log": log, "log_truncated": False,
                  "task_running": state in ("starting", "created"), "task_state": "Running", "release": None, "cleaned": []}
        if shadows:
            answer.update(shadow_set_id=SET_ID, shadows=shadow_ids(host.files[run_id]))
        return answer
    return build


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


def runner(host, clock=None, **kwargs):
    clock = clock or Clock()
    counter = iter(range(1, 100))
    kwargs.setdefault("run_id_factory", lambda: "ss-20261125T013700-%08x" % next(counter))
    return shadow_session.SessionRunner(host, sleep=clock.sleep, clock=clock, **kwargs), clock


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
    assert args["cleanup_older_than_seconds"] == 1500 + 600
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
    assert "cleanup_older_than_seconds" not in host.requests[0][1]
    assert "hold.cmd" not in host.requests[0][1]["files"]
    assert [args["wait_seconds"] for dummy, args in host.requests] == [120, 120, 120]
    assert all(args["until"] == "created" for op, args in host.requests if op == "session_status")
    assert outcome.status["state"] == "completed"


def test_a_session_that_never_creates_its_set_is_aborted_at_the_timeout():
    host = ScriptedHost(session_start=[status("starting")], session_status=[status("starting")] * 5,
                        session_release=[{"state": "failed", "deleted_shadow_ids": []}])
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
    assert "cleanup_older_than_seconds" in starts[0] and "cleanup_older_than_seconds" not in starts[1]

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
                        session_release=[{"state": "failed", "deleted_shadow_ids": ["{x}"]}])
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
    def incomplete(args, host):
        answer = status("created")(args, host)
        answer["shadows"].pop("vol_l")
        return answer
    host = ScriptedHost(session_start=[incomplete], session_release=[{"state": "failed"}])
    session, dummy = runner(host)
    with pytest.raises(shadow_session.SessionError, match=r"created.txt holds no shadow id for L: \(alias vol_l\)"):
        session.create(data_plan(), "copy", 600)
    assert host.requests[-1][0] == "session_release"


def test_an_unknown_state_is_an_error_and_a_failed_abort_is_kept_not_raised():
    with pytest.raises(shadow_session.SessionError, match="session state 'exploded'"):
        shadow_session.session_state({"state": "exploded"})
    host = ScriptedHost(session_release=[AgentOperationError(host="h", op="session_release", error={"message": "no"})])
    session, dummy = runner(host)
    assert session.abort("ss-1") is None
    assert session.cleanup_errors == ["aborting session ss-1 failed: h: agent op 'session_release' failed: no"]


# ------------------------------------------------------------------------------------------------ release verdicts


def released(state="completed", log="-> create\r\n", **overrides):
    answer = {"run_id": "ss-1", "state": state, "shadow_set_id": SET_ID, "exit_code": 0 if state == "completed" else 1,
              "shadows": {"vol_d": "{AAAAAAAA-0000-4000-8000-000000000001}"}, "log": log, "task_running": state == "created",
              "decision": "ok", "released_before": False, "present_shadow_ids": ["{aaaaaaaa-0000-4000-8000-000000000001}"],
              "deleted_shadow_ids": ["{aaaaaaaa-0000-4000-8000-000000000001}"]}
    answer.update(overrides)
    return answer


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
    missing = {"run_id": "ss-1", "state": "missing"}
    assert not shadow_session.judge_release(missing, "ok", "ss-1").ok
    assert dataclasses.asdict(shadow_session.judge_release(missing, "abort", "ss-1")) == {
        "ok": True, "message": None, "changed": False, "verified": None, "backup_type": "copy", "backup_complete_sent": None,
        "missing_shadow_ids": (), "state": "missing"}
