# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_snapshot_set end to end on the controller: the real action plugin, transport, diskshadow files, session
logic, parsers and disk mapping, with a fake connection at the boundary and a Windows host behind it that answers the
session ops of docs/vss-session.md from a small model (runs, shadow copies, writer states)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import re

import boto3
import pytest
from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from moto import mock_aws

from ansible_collections.shadowsnap.ec2.plugins.action.win_vss_snapshot_set import ActionModule
from unit.plugins.action.agent_fakes import FakeAgentHost, FakeConnection, make_action
from unit.plugins.plugin_utils.session_answers import created_text, run_facts, sessions
from unit.plugins.plugin_utils.sql_host import SQL_WRITER, ebs_id, facts, storage, writers_text

TASK_VARS = {"inventory_hostname": "win-sql-01"}
SET_ID = "{5e7a0000-0000-4000-8000-000000000001}"
CAB = b"MSCF\x00\x00\x00\x00 backup components document"

CREATE_LOG = (
    "Microsoft DiskShadow version 1.0\r\nCopyright (C) 2013 Microsoft Corporation\r\n"
    "On computer:  WIN-SQL-01,  11/25/2026 1:37:00 AM\r\n\r\n"
    "-> set context persistent\r\n-> set verbose on\r\n-> set metadata C:\\ProgramData\\shadowsnap\\runs\\x\\backup.cab\r\n"
    "-> writer verify {a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}\r\n{begin}"
    "-> add volume D: alias vol_d\r\n-> add volume L: alias vol_l\r\n-> create\r\n"
    'Component "\\WIN-SQL-01\\master" from writer "SqlServerWriter" is excluded from backup,\r\n'
    "because it requires volume C:\\ which is not in the shadow copy set.\r\n"
    'Component "\\System Files" from writer "System Writer" is excluded from backup,\r\n'
    "because it requires volume C:\\ which is not in the shadow copy set.\r\n"
    'Excluding writer "System Writer", because all of its components have been excluded.\r\n'
    "Alias vol_d for shadow ID {aaaaaaaa-0000-4000-8000-000000000001} set as environment variable.\r\n"
    "Alias vol_l for shadow ID {aaaaaaaa-0000-4000-8000-000000000002} set as environment variable.\r\n"
    "Alias VSS_SHADOW_SET for shadow set ID " + SET_ID + " set as environment variable.\r\n"
    "-> exec C:\\ProgramData\\shadowsnap\\runs\\x\\record.cmd\r\n"
)


class WindowsServer(FakeAgentHost):
    """The read ops from canned answers; the session ops from a model of runs, shadow copies and writer states, answered
    with the raw facts of the agent (session_answers.py).

    ``start`` says what each session_start meets: ``"created"`` (diskshadow creates the set within the wait),
    ``"slow"`` (still starting; created at the next status), ``"refuse"`` (another session runs) or a diskshadow log
    that ends in failure.
    """

    def __init__(self, start=("created",), writer_states=None, host_facts=None, cab=CAB, restart_heals=True,
                 settle_after=None, drop_components=(), clock_offset=0.0):
        self.writer_states = dict(writer_states or {})
        self.settle_after = settle_after
        self.drop_components = tuple(drop_components)
        super().__init__(results={"facts": host_facts or facts(), "storage": storage(), "shadows": {"shadows": []},
                                  "sessions": sessions(runs=LEFTOVERS)})
        self.start = list(start)
        self.runs = {}
        self.shadows = {}
        self.cab = cab
        self.restart_heals = restart_heals
        self.restarted = []
        self.installed = {}
        self.clock_offset = clock_offset
        self.lose_answers = []

    def ops(self):
        return [request["op"] for request in self.requests]

    def respond(self, request):
        op, args = request["op"], request["args"]
        handler = getattr(self, "op_" + op, None) if op not in ("facts", "storage") else None
        if handler is None:
            return super().respond(request)
        try:
            return {"protocol": 1, "op": op, "ok": True, "result": handler(args), "elapsed_ms": 3}
        except AgentFailure as failure:
            return {"protocol": 1, "op": op, "ok": False, "error": failure.error, "elapsed_ms": 3}

    def op_writers(self, args):
        (source,) = args["sources"]
        text = writers_text(states=self.writer_states, drop_components=self.drop_components)
        output = {"command": "diskshadow.exe /s x.dsh", "exit_code": 0, "text": text}
        if self.settle_after is not None:
            self.settle_after -= 1
            if self.settle_after <= 0:
                self.writer_states = {}
        return {"oem_code_page": 437, "outputs": {source: output}}

    def op_shadows(self, args):
        return {"shadows": [{"ID": shadow_id.upper(), "SetID": set_id, "VolumeName": None, "InstallDate": self.installed[shadow_id]}
                            for shadow_id, set_id in self.shadows.items()]}

    def status(self, run_id, **extra):
        run = self.runs.get(run_id)
        if run is None:
            return run_facts(run_id, "missing", **extra)
        created = created_text(run["shadow_set_id"], run["shadows"]) if run["shadow_set_id"] else None
        exit_text = None if run["exit_code"] is None else "%d\r\n" % run["exit_code"]
        release = None if run["release"] is None else run["release"] + "\r\n"
        return run_facts(run_id, run["state"], created=created, exit_text=exit_text, release=release, log=run["log"], **extra)

    def create(self, run):
        aliases = re.findall(r"^echo (vol_\w+)=%\1%", run["files"]["record.cmd"], flags=re.MULTILINE)
        shadows = {alias: "{aaaaaaaa-0000-4000-8000-%012d}" % (index + 1) for index, alias in enumerate(aliases)}
        full = "hold.cmd" in run["files"]
        run.update(state="created" if full else "completed", exit_code=None if full else 0, shadow_set_id=SET_ID, shadows=shadows,
                   log=CREATE_LOG.replace("{begin}", "-> begin backup\r\n" if full else ""))
        installed = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.clock_offset))
        for shadow_id in shadows.values():
            self.shadows[shadow_id] = SET_ID
            self.installed[shadow_id] = installed.strftime("%Y%m%d%H%M%S.%f") + "+000"

    def op_session_start(self, args):
        behaviour = self.start.pop(0) if self.start else "created"
        if behaviour == "refuse":
            raise AgentFailure("another shadowsnap session is running on this host (shadowsnap-ss-other)", "0x80042316")
        run = {"files": args["files"], "state": "starting", "exit_code": None, "shadow_set_id": None, "shadows": {}, "log": "",
               "release": None, "args": args}
        self.runs[args["run_id"]] = run
        if behaviour == "created":
            self.create(run)
        elif behaviour != "slow":
            run.update(state="failed", exit_code=1, log=behaviour)
        return self.status(args["run_id"], cleaned=[])

    def op_session_status(self, args):
        run = self.runs.get(args["run_id"])
        if run is not None and run["state"] == "starting":
            self.create(run)
        return self.status(args["run_id"])

    def op_session_release(self, args):
        run_id = args["run_id"]
        run = self.runs.get(run_id)
        if run is None:
            return self.status(run_id, released_before=False, shadow_copies=[], deleted_shadow_ids=[])
        released_before = run["release"] is not None
        if not released_before:
            run["release"] = args["decision"]
        if run["state"] == "created":
            ok = run["release"] == "ok"
            run.update(state="completed" if ok else "failed", exit_code=0 if ok else 1,
                       log=run["log"] + ("-> end backup\r\n" if ok else "-> exec hold.cmd failed\r\n"))
        copies = [{"ID": shadow_id.upper(), "SetID": set_id.upper()} for shadow_id, set_id in self.shadows.items()]
        present = [shadow_id for shadow_id, set_id in self.shadows.items() if set_id == run["shadow_set_id"]]
        deleted = []
        if args["delete_shadows"]:
            deleted = present
            for shadow_id in deleted:
                del self.shadows[shadow_id]
        return self.status(run_id, released_before=released_before, shadow_copies=copies, deleted_shadow_ids=deleted)

    def op_shadow_delete(self, args):
        deleted = [shadow_id for shadow_id, set_id in self.shadows.items() if set_id == args["shadow_set_id"]]
        for shadow_id in deleted:
            del self.shadows[shadow_id]
        return {"deleted_shadow_ids": deleted}

    def op_service_restart(self, args):
        self.restarted += args["names"]
        if self.restart_heals:
            self.writer_states, self.drop_components = {}, ()
        return {"services": [{"name": name, "display_name": name, "previous_status": "Running", "status": "Running",
                              "restarted_dependents": [], "elapsed_ms": 900} for name in args["names"]]}

    def op_file_read(self, args):
        return {"path": args["path"], "size": len(CAB), "sha256": hashlib.sha256(CAB).hexdigest(),
                "content_base64": base64.b64encode(self.cab).decode("ascii")}

    def answer(self, command, stdin):
        """As the host answers; the answer to an op in ``lose_answers`` is lost on the way back (the op was done)."""
        answered = super().answer(command, stdin)
        op = self.requests[-1]["op"]
        if op in self.lose_answers:
            self.lose_answers.remove(op)
            raise AnsibleConnectionFailure("winrm connection error: ('Connection aborted.', ConnectionResetError(104))")
        return answered


class AgentFailure(Exception):
    def __init__(self, message, hresult=None):
        super().__init__(message)
        self.error = {"message": message, "hresult": hresult, "command": None, "exit_code": None}


# Runs left on the host by earlier sessions: read at 02:00:00, one older than this task's leftover age (its task time
# limit, hold 600 + session 300 + 300 s, plus 600 s), one younger.
LEFTOVERS = [run_facts("ss-20261125T000000-0000dead", "failed", exit_text="1\r\n", created_at="2026-11-25T01:29:59.000Z",
                       created=created_text("{5e7a0000-0000-4000-8000-0000000000de}", {"vol_d": "{aaaaaaaa-0000-4000-8000-0000000000de}"})),
             run_facts("ss-20261125T000000-0000beef", "failed", exit_text="1\r\n", created_at="2026-11-25T01:30:01.000Z")]


def run(host, args=None, check_mode=False, task_vars=None):
    action = make_action(ActionModule, FakeConnection(host), args, check_mode=check_mode)
    return action.run(task_vars=dict(TASK_VARS, **(task_vars or {})))


DATA = {"volumes": ["D:", "L:"], "in_progress_delay": 0}


def test_a_copy_backup_is_two_round_trips_and_returns_what_ec2_snapshot_set_needs():
    host = WindowsServer()
    result = run(host, DATA)
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch", "session_start"]
    assert [item["op"] for item in host.requests[0]["args"]["requests"]] == ["facts", "storage", "writers", "shadows", "sessions"]
    assert host.requests[0]["args"]["requests"][2]["args"] == {"sources": ["diskshadow_detailed"]}
    assert result["round_trips"] == 2
    assert result["changed"] is True
    assert result["session_state"] == "completed" and result["backup_type"] == "copy"
    run_id = result["run_id"]
    assert re.fullmatch(r"ss-\d{8}T\d{6}-[0-9a-f]{8}", run_id)
    start = host.requests[1]["args"]
    assert start["run_dir"] == "C:\\ProgramData\\shadowsnap\\runs\\" + run_id
    assert start["cleanup"] == [{"run_id": "ss-20261125T000000-0000dead", "shadow_set_id": "{5e7a0000-0000-4000-8000-0000000000de}"}]
    assert start["create_folders"] == [] and start["wait_for"] == ["created.txt", "exit.txt"]
    assert sorted(start["files"]) == ["record.cmd", "run.cmd", "snapshot.dsh"]
    assert result["script"] == start["files"]["snapshot.dsh"]
    assert "writer verify %s" % SQL_WRITER[1] in result["script"]
    assert result["shadow_set_id"] == SET_ID
    assert result["shadows"] == {"D:": "{aaaaaaaa-0000-4000-8000-000000000001}", "L:": "{aaaaaaaa-0000-4000-8000-000000000002}"}
    assert result["instance_id"] == "i-0123456789abcdef0"
    assert result["ebs_volume_ids"] == [ebs_id(1), ebs_id(2)]
    assert result["ec2_volume_metadata"] == {
        ebs_id(1): {"paths": ["D:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}"},
        ebs_id(2): {"paths": ["L:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000002}"},
    }
    assert [(entry["path"], entry["alias"], entry["shadow_id"]) for entry in result["volumes"]] == [
        ("D:", "vol_d", "{aaaaaaaa-0000-4000-8000-000000000001}"), ("L:", "vol_l", "{aaaaaaaa-0000-4000-8000-000000000002}")]
    writers = {item["name"]: item for item in result["writers"]}
    assert (writers["SqlServerWriter"]["required"], writers["SqlServerWriter"]["included"]) == (True, True)
    assert writers["SqlServerWriter"]["excluded_components"][0]["component"] == "\\WIN-SQL-01\\master"
    assert (writers["System Writer"]["required"], writers["System Writer"]["included"]) == (False, False)
    assert result["required_writers"] == ["SqlServerWriter"]
    assert result["metadata"] == {"remote_path": "C:\\ProgramData\\shadowsnap\\runs\\%s\\backup.cab" % run_id, "path": None,
                                  "size": None, "sha256": None}
    assert "release_deadline" not in result
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", result["shadows_created_at"])
    assert set(result["timings"]) == {"preflight", "create", "total"}
    assert result["attempts"] == [{"run_id": run_id, "outcome": "completed"}]


def test_a_whole_full_backup_is_four_round_trips_and_sends_backup_complete_at_the_release(tmp_path):
    host = WindowsServer()
    present = run(host, dict(DATA, backup_type="full", fetch_metadata=str(tmp_path / "cabs") + "/"))
    assert not present.get("failed"), present.get("msg")
    assert host.ops() == ["batch", "session_start", "file_read"]
    assert present["session_state"] == "created" and "release_deadline" in present
    assert "begin backup" in present["script"] and "hold.cmd" in host.requests[1]["args"]["files"]
    saved = tmp_path / "cabs" / (present["run_id"] + ".cab")
    assert saved.read_bytes() == CAB
    assert present["metadata"]["path"] == str(saved) and present["metadata"]["sha256"] == hashlib.sha256(CAB).hexdigest()

    completed = run(host, {"state": "completed", "run_id": present["run_id"]})
    assert not completed.get("failed"), completed.get("msg")
    assert host.ops()[-1] == "session_release" and completed["round_trips"] == 1
    assert host.requests[-1]["args"] == {"run_id": present["run_id"], "decision": "ok", "delete_shadows": True, "wait_seconds": 300}
    assert completed["changed"] is True
    assert (completed["backup_type"], completed["backup_complete_sent"], completed["shadows_verified"]) == ("full", True, True)
    assert completed["deleted_shadow_ids"] == list(present["shadows"].values())
    assert host.shadows == {}
    assert present["round_trips"] + completed["round_trips"] == 4

    again = run(host, {"state": "completed", "run_id": present["run_id"]})
    assert not again.get("failed") and again["changed"] is False and again["shadows_verified"] is None


def test_kept_shadows_stay_and_a_missing_shadow_fails_the_completion():
    host = WindowsServer()
    present = run(host, DATA)
    kept = run(host, {"state": "completed", "run_id": present["run_id"], "keep_shadows": True})
    assert kept["kept_shadows"] is True and kept["deleted_shadow_ids"] == [] and len(host.shadows) == 2

    host = WindowsServer()
    present = run(host, DATA)
    host.shadows.pop("{aaaaaaaa-0000-4000-8000-000000000002}")   # the diff area filled up meanwhile
    completed = run(host, {"state": "completed", "run_id": present["run_id"]})
    assert completed["failed"] is True and completed["shadows_verified"] is False
    assert completed["missing_shadow_ids"] == ["{aaaaaaaa-0000-4000-8000-000000000002}"]
    assert "treat this backup as crash-consistent" in completed["msg"]


def test_aborted_and_absent():
    host = WindowsServer()
    present = run(host, dict(DATA, backup_type="full"))
    aborted = run(host, {"state": "aborted", "run_id": present["run_id"]})
    assert not aborted.get("failed"), aborted.get("msg")
    assert host.requests[-1]["args"]["decision"] == "abort" and host.requests[-1]["args"]["delete_shadows"] is True
    assert aborted["session_state"] == "failed" and aborted["backup_complete_sent"] is False
    assert host.shadows == {}
    completed = run(host, {"state": "completed", "run_id": present["run_id"]})
    assert completed["failed"] and "already released with 'abort'" in completed["msg"]

    host = WindowsServer()
    run(host, DATA)
    planned = run(host, {"state": "absent", "shadow_set_id": SET_ID.upper().strip("{}")}, check_mode=True)
    assert host.ops()[-1] == "shadows" and planned["changed"] is True and len(planned["deleted_shadow_ids"]) == 2
    assert len(host.shadows) == 2
    absent = run(host, {"state": "absent", "shadow_set_id": SET_ID})
    assert host.ops()[-1] == "shadow_delete" and absent["changed"] is True and host.shadows == {}
    assert run(host, {"state": "absent", "shadow_set_id": SET_ID})["changed"] is False
    gone = run(host, {"state": "absent", "run_id": "ss-20261125T000000-00000000"})
    assert gone["changed"] is False and gone["session_state"] == "missing"


def test_check_mode_runs_the_preflight_only_and_shows_the_plan():
    host = WindowsServer()
    result = run(host, dict(DATA, backup_type="full"), check_mode=True)
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch"] and result["round_trips"] == 1
    assert result["changed"] is True and result["session_state"] == "planned"
    assert "add volume D: alias vol_d" in result["script"] and "end backup" in result["script"]
    assert result["ebs_volume_ids"] == [ebs_id(1), ebs_id(2)]
    assert result["ec2_volume_metadata"][ebs_id(1)] == {"paths": ["D:\\"], "shadow_id": None}
    for state in ("completed", "aborted"):
        planned = run(host, {"state": state, "run_id": "ss-20261125T000000-00000000"}, check_mode=True)
        assert host.ops()[-1] == "session_status"
    assert planned["changed"] is False


def test_preflight_problems_fail_before_anything_changes():
    host = WindowsServer()
    result = run(host, {"volumes": ["D:", "E:"]})
    assert result["failed"] is True and host.ops() == ["batch"]
    assert result["msg"].startswith("win-sql-01: the shadow set cannot be made safely: ")
    assert "vssadmin add shadowstorage /for=E: /on=E: /maxsize=10%" in result["msg"]
    assert "touches D: in the set and L: outside it" in result["msg"]
    assert len(result["preflight_problems"]) == 2

    client = WindowsServer(host_facts=facts(os_caption="Microsoft Windows 11 Pro", product_type=1, is_server=False))
    result = run(client, DATA)
    assert result["failed"] and "is client Windows" in result["msg"] and result["round_trips"] == 1


def test_the_writers_listing_failing_says_what_the_engine_needs():
    def no_diskshadow(args):
        raise AgentFailure("diskshadow.exe is not on this host (it ships with Windows Server only)")

    host = WindowsServer()
    host.op_writers = no_diskshadow
    result = run(host, DATA)
    assert result["failed"] is True
    assert result["msg"] == ("win-sql-01: the VSS writers could not be listed (diskshadow_detailed): diskshadow.exe is not on "
                             "this host (it ships with Windows Server only); the shadow engine needs Windows Server with "
                             "diskshadow and a working VSS")


def test_a_failed_required_writer_fails_or_gets_its_service_restarted():
    states = {"SqlServerWriter": 7}
    result = run(WindowsServer(writer_states=states), DATA)
    assert result["failed"] is True and result["failed_writers"] == ["SqlServerWriter"]
    assert result["msg"] == (
        "win-sql-01: VSS writers not ready: required writer 'SqlServerWriter' is FAILED_AT_PREPARE_BACKUP [7], last error: "
        "0x00000000 (S_OK); restart the service SQLWriter when no backup is running (or set restart_failed_writers: true)")

    host = WindowsServer(writer_states=states)
    result = run(host, dict(DATA, restart_failed_writers=True))
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch", "service_restart", "writers", "session_start"]
    assert host.restarted == ["SQLWriter"] and result["restarted_services"][0]["name"] == "SQLWriter"
    assert result["round_trips"] == 4 and "restart" in result["timings"]

    host = WindowsServer(writer_states=states, restart_heals=False)
    result = run(host, dict(DATA, restart_failed_writers=True))
    assert result["failed"] and result["msg"].startswith("win-sql-01: VSS writers still not ready after restarting SQLWriter: ")
    assert "session_start" not in host.ops()


def test_a_session_in_progress_is_retried_and_a_slow_one_is_polled():
    host = WindowsServer(start=["refuse", "slow"])
    result = run(host, DATA)
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch", "session_start", "session_start", "session_status"]
    assert [attempt["outcome"] for attempt in result["attempts"]] == ["refused", "completed"]
    assert result["attempts"][0]["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"
    assert host.requests[-1]["args"]["wait_for"] == ["created.txt", "exit.txt"]

    host = WindowsServer(start=["refuse"] * 3)
    result = run(host, dict(DATA, in_progress_retries=2))
    assert result["failed"] is True and result["hresult_name"] == "VSS_E_SNAPSHOT_SET_IN_PROGRESS"
    assert host.ops().count("session_start") == 3 and len(result["attempts"]) == 3


def test_a_diskshadow_failure_is_reported_by_hresult_with_the_log():
    log = ("-> create\r\n\r\nThe last operation failed.\r\n        - Returned HRESULT: 8004231f\r\n"
           "        - Error text: VSS_E_INSUFFICIENT_STORAGE\r\n")
    host = WindowsServer(start=[log])
    result = run(host, DATA)
    assert result["failed"] is True
    assert result["msg"].startswith("win-sql-01: diskshadow failed to create the shadow set of D:, L: (run ss-")
    assert "HRESULT 0x8004231F (VSS_E_INSUFFICIENT_STORAGE): Not enough space for the shadow copy storage" in result["msg"]
    assert (result["hresult"], result["hresult_name"]) == (0x8004231F, "VSS_E_INSUFFICIENT_STORAGE")
    assert result["diskshadow_log"] == log and result["run_id"].startswith("ss-")
    assert result["failure"]["error_text"] == "VSS_E_INSUFFICIENT_STORAGE"


def test_a_damaged_metadata_download_aborts_the_session(tmp_path):
    host = WindowsServer(cab=CAB[:-1] + b"X")
    result = run(host, dict(DATA, backup_type="full", fetch_metadata=str(tmp_path / "x.cab")))
    assert result["failed"] is True and "arrived damaged" in result["msg"]
    assert host.ops()[-2:] == ["file_read", "session_release"]
    assert host.requests[-1]["args"]["decision"] == "abort" and host.shadows == {}
    assert result["session_state"] == "aborted"
    assert not (tmp_path / "x.cab").exists()


def test_options_are_validated():
    with pytest.raises(AnsibleActionFail, match="run_id"):
        run(WindowsServer(), {"state": "completed"})
    with pytest.raises(AnsibleActionFail, match="run_id, shadow_set_id"):
        run(WindowsServer(), {"state": "absent"})
    with pytest.raises(AnsibleActionFail, match="backup_type"):
        run(WindowsServer(), dict(DATA, backup_type="incremental"))
    result = run(WindowsServer(), dict(DATA, session_timeout=0))
    assert result["failed"] and result["msg"] == "win-sql-01: session_timeout must be 1 or more, not 0"
    result = run(WindowsServer(), dict(DATA, in_progress_retries=-1))
    assert result["failed"] and result["msg"] == "win-sql-01: in_progress_retries must be 0 or more, not -1"


def test_a_required_writer_waiting_for_another_backup_is_listed_again_never_restarted():
    host = WindowsServer(writer_states={"SqlServerWriter": 5}, settle_after=1)
    result = run(host, dict(DATA, restart_failed_writers=True))
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch", "writers", "session_start"], "listed again once the other backup ended, not restarted"
    assert host.restarted == [] and "wait" in result["timings"]

    host = WindowsServer(writer_states={"SqlServerWriter": 5})
    result = run(host, dict(DATA, in_progress_retries=2, restart_failed_writers=True))
    assert result["failed"] is True and result["failed_writers"] == ["SqlServerWriter"]
    assert result["msg"] == (
        "win-sql-01: VSS writers not ready after waiting 2 x 0 s: required writer 'SqlServerWriter' is "
        "WAITING_FOR_BACKUP_COMPLETE [5], last error: 0x00000000 (S_OK) (a backup is running or a requester left its "
        "session open: wait, do not restart anything)")
    assert host.ops() == ["batch", "writers", "writers"] and host.restarted == []
    assert "session_start" not in host.ops(), "no shadow set while a required writer is not STABLE"


def test_an_application_writer_without_metadata_fails_the_set_or_is_restarted_or_excluded():
    failed = {"SqlServerWriter": 6}
    result = run(WindowsServer(writer_states=failed, drop_components=["SqlServerWriter"]), DATA)
    assert result["failed"] is True and result["failed_writers"] == ["SqlServerWriter"]
    assert "FAILED_AT_IDENTIFY [6]" in result["msg"] and "the set cannot be application-consistent for it" in result["msg"]

    host = WindowsServer(writer_states=failed, drop_components=["SqlServerWriter"])
    result = run(host, dict(DATA, restart_failed_writers=True))
    assert not result.get("failed"), result.get("msg")
    assert host.ops() == ["batch", "service_restart", "writers", "session_start"] and host.restarted == ["SQLWriter"]
    assert [(item["name"], item["required"], item["rule"]) for item in result["writers"] if item["required"]] == [
        ("SqlServerWriter", True, "component")], "identified again: required per component, as any application writer"

    host = WindowsServer(writer_states=failed, drop_components=["SqlServerWriter"])
    result = run(host, dict(DATA, exclude_writers=["SqlServerWriter"]))
    assert not result.get("failed"), result.get("msg")
    assert "writer exclude %s" % SQL_WRITER[1] in result["script"] and result["required_writers"] == []


# ---------------------------------------------------------------------------------------- the EBS set and its Region


@pytest.fixture(name="ec2_host")
def ec2_host_fixture(monkeypatch):
    """A moto instance in eu-west-1 whose attached volumes are D: and L: of the test host; the machine's Region and
    credentials are kept out (AWS_REGION says us-east-1, where the instance is not)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                     Placement={"AvailabilityZone": "eu-west-1a"})["Instances"][0]
        data = [ec2.create_volume(Size=10, AvailabilityZone="eu-west-1a")["VolumeId"] for dummy in range(2)]
        for device, volume_id in zip(("xvdf", "xvdg"), data):
            ec2.attach_volume(VolumeId=volume_id, InstanceId=instance["InstanceId"], Device=device)
        answers = storage()
        for disk, volume_id in zip(answers["disks"][1:3], data):
            disk["SerialNumber"] = volume_id.replace("-", "") + "_00000001."

        def host(imds=True):
            server = WindowsServer(host_facts=facts(ec2={"instance_id": instance["InstanceId"], "region": "eu-west-1",
                                                         "availability_zone": "eu-west-1a"} if imds else None))
            server.results["storage"] = answers
            return server
        yield host, ec2, instance["InstanceId"], data


def test_the_ebs_set_is_taken_in_the_hosts_region_not_the_environments(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-1"}))
    assert not result.get("failed"), result.get("msg")
    assert sorted(snapshot["volume_id"] for snapshot in result["ebs_set"]["snapshots"]) == sorted(data)
    assert "ebs" in result["timings"]


def test_an_explicit_region_wins_and_must_agree_with_the_host(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host(imds=False)
    result = run(server, dict(DATA, region="eu-west-1", ebs_snapshot_set={"set_id": "sql-2", "instance_id": instance_id}))
    assert not result.get("failed"), result.get("msg")
    assert result["ebs_set"]["instance_id"] == instance_id

    server = host()
    result = run(server, dict(DATA, aws_region="us-west-2", ebs_snapshot_set={"set_id": "sql-3"}))
    assert result["failed"] is True
    assert result["msg"] == ("win-sql-01: the EBS snapshot set cannot be taken, so no shadow set was made: the host says "
                             "(IMDSv2) it runs in eu-west-1, the task says region=us-west-2")
    assert server.ops() == ["batch"], "refused before any shadow set"

    server = host()
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-4", "instance_id": "i-0fffffffffffffff0"}))
    assert result["failed"] is True and f"the host says (IMDSv2) it is {instance_id}" in result["msg"]
    assert server.ops() == ["batch"]


def test_without_imds_the_inventory_names_the_instance_and_its_region(ec2_host):
    host, ec2, instance_id, data = ec2_host
    result = run(host(imds=False), dict(DATA, ebs_snapshot_set={"set_id": "sql-5"}),
                 task_vars={"instance_id": instance_id, "placement": {"region": "eu-west-1"}})
    assert not result.get("failed"), result.get("msg")
    assert result["ebs_set"]["instance_id"] == instance_id, "placement.region, not AWS_REGION (us-east-1)"


def test_a_lost_session_start_answer_aborts_the_session_it_started():
    host = WindowsServer()
    host.lose_answers = ["session_start"]
    result = run(host, dict(DATA, backup_type="full"))
    assert result["failed"] is True
    run_id = host.requests[1]["args"]["run_id"]
    assert result["run_id"] == run_id and host.runs[run_id]["release"] == "abort"
    assert host.ops() == ["batch", "session_start", "session_release"]
    assert f"session {run_id}: session_start failed after it was sent" in result["msg"]
    assert "it was aborted (no BackupComplete, its shadow copies deleted)" in result["msg"]
    assert host.shadows == {} and result["attempts"][-1]["outcome"] == "lost"
    assert result["verified"] is False


def test_a_lost_status_answer_while_waiting_for_the_set_aborts_it_too():
    host = WindowsServer(start=["slow"])
    host.lose_answers = ["session_status"] * 4
    result = run(host, DATA)
    assert result["failed"] is True and result["run_id"] == host.requests[1]["args"]["run_id"]
    assert host.ops()[-1] == "session_release" and host.requests[-1]["args"]["decision"] == "abort"
    assert "session_status failed after it was sent" in result["msg"] and host.shadows == {}


def test_an_abort_after_a_completed_release_says_backup_complete_was_sent():
    host = WindowsServer()
    present = run(host, dict(DATA, backup_type="full"))
    assert run(host, {"state": "completed", "run_id": present["run_id"]})["backup_complete_sent"] is True
    aborted = run(host, {"state": "aborted", "run_id": present["run_id"]})
    assert not aborted.get("failed") and aborted["decision"] == "ok"
    assert aborted["backup_complete_sent"] is True, "BackupComplete went out with the first release"


def test_without_an_ebs_set_nothing_is_verified_and_the_release_is_the_proof():
    result = run(WindowsServer(), DATA)
    assert result["verified"] is False
    assert result["verification"]["failures"][0].startswith("no EBS snapshot set was taken by this task")


def test_the_ebs_set_is_proven_before_the_task_returns(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    result = run(server, dict(DATA, backup_type="full", ebs_snapshot_set={"set_id": "sql-6"}))
    assert not result.get("failed"), result.get("msg")
    assert server.ops() == ["batch", "session_start", "shadows"], "the listing of the proof, before any release"
    assert result["verified"] is True and result["verification"]["failures"] == []
    assert [check["name"] for check in result["verification"]["checks"] if check["ok"]] == [
        "members", "shadow_ids", "states", "order", "shadows_present", "host_clock"]
    timeline = result["verification"]["timeline"]
    assert 0 <= timeline["set_reported"] <= timeline["snapshots_requested"] <= timeline["snapshots_returned"]
    assert result["session_state"] == "created" and "verify" in result["timings"] and result["round_trips"] == 3


def snapshot_tags_of(ec2, data):
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": data}])["Snapshots"]
    return [{tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])} for snapshot in snapshots]


def test_release_when_proven_completes_and_records_the_set_in_the_same_task(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    result = run(server, dict(DATA, backup_type="full", release_when_proven=True,
                              ebs_snapshot_set={"set_id": "sql-12", "awx_job_id": "4711"}))
    assert not result.get("failed"), result.get("msg")
    assert server.ops() == ["batch", "session_start", "shadows", "session_release"], "proof, then the release"
    assert server.requests[-1]["args"]["decision"] == "ok" and server.requests[-1]["args"]["delete_shadows"] is True
    assert result["session_state"] == "completed" and result["backup_complete_sent"] is True and result["changed"]
    assert "-> end backup" in server.runs[result["run_id"]]["log"]
    assert result["ebs_set"]["consistency"] == "application" and "settle" in result["timings"]
    tags = snapshot_tags_of(ec2, data)
    assert len(tags) == 2 and {t["shadowsnap:consistency"] for t in tags} == {"application"}
    assert {t["shadowsnap:awx-job-id"] for t in tags} == {"4711"}


def test_release_when_proven_never_releases_or_records_a_set_that_is_not_proven(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    listing = server.op_shadows

    def deleted_meanwhile(args):
        server.shadows.pop("{aaaaaaaa-0000-4000-8000-000000000002}", None)
        return listing(args)

    server.op_shadows = deleted_meanwhile
    result = run(server, dict(DATA, backup_type="full", release_when_proven=True, ebs_snapshot_set={"set_id": "sql-13"}))
    assert result["failed"] is True and result["session_state"] == "aborted"
    assert [r["args"]["decision"] for r in server.requests if r["op"] == "session_release"] == ["abort"]
    assert {t["shadowsnap:consistency"] for t in snapshot_tags_of(ec2, data)} == {"unverified"}


def test_shadow_copies_gone_before_the_listing_fail_the_proof_and_abort_the_session(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    listing = server.op_shadows

    def deleted_meanwhile(args):
        server.shadows.pop("{aaaaaaaa-0000-4000-8000-000000000002}", None)   # VSS made room in a full diff area
        return listing(args)

    server.op_shadows = deleted_meanwhile
    result = run(server, dict(DATA, backup_type="full", ebs_snapshot_set={"set_id": "sql-7"}))
    assert result["failed"] is True and result["verified"] is False
    assert "was gone when the host listed its shadow copies after CreateSnapshots returned" in result["msg"]
    assert result["msg"].endswith("the session was aborted (no BackupComplete) and its shadow copies deleted")
    assert server.ops()[-1] == "session_release" and server.requests[-1]["args"]["decision"] == "abort"
    assert result["session_state"] == "aborted" and result["ebs_set"]["set_id"] == "sql-7"
    assert "-> end backup" not in server.runs[result["run_id"]]["log"]


def test_a_host_clock_ahead_of_ec2s_fails_the_proof(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    server.clock_offset = 30
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-8"}))
    assert result["failed"] is True and result["verified"] is False
    (failure,) = result["verification"]["failures"]
    assert "the host's clock is ahead of EC2's" in failure


def test_an_existing_set_id_stops_before_any_shadow_set(ec2_host):
    host, ec2, instance_id, data = ec2_host
    first = run(host(), dict(DATA, backup_type="full", ebs_snapshot_set={"set_id": "sql-9"}))
    assert not first.get("failed"), first.get("msg")
    server = host()
    again = run(server, dict(DATA, backup_type="full", ebs_snapshot_set={"set_id": "sql-9"}))
    assert not again.get("failed"), again.get("msg")
    assert server.ops() == ["batch"], "no session, so no shadow set and no BackupComplete"
    assert (again["changed"], again["existing_set"], again["verified"]) == (False, True, False)
    assert again["ebs_set"]["volume_snapshot_map"] == first["ebs_set"]["volume_snapshot_map"]
    assert again["verification"]["failures"] == [
        "the snapshot set sql-9 already exists (completed, consistency unverified): no shadow set was made, nothing was verified"]


def test_the_default_set_id_is_the_collections_one_rule(ec2_host):
    host, ec2, instance_id, data = ec2_host
    result = run(host(), dict(DATA, ebs_snapshot_set={}))
    assert not result.get("failed"), result.get("msg")
    assert re.fullmatch(re.escape(instance_id) + r"-\d{8}T\d{6}Z", result["ebs_set_id"])
    assert result["ebs_set"]["set_id"] == result["ebs_set_id"]


def xen(storage_answer, targets):
    """The storage answer with D: and L: on Xen PV disks at SCSI targets ``targets``, serial numbers unreadable."""
    for disk in storage_answer["disks"][1:3]:
        disk.update(SerialNumber="", FriendlyName="AWS PVDISK", BusType=1)
    storage_answer["disk_drives"] = [{"Index": index, "SCSITargetId": target, "Model": "AWS PVDISK SCSI Disk Device"}
                                     for index, target in zip((1, 2), targets)]
    return storage_answer


def test_xen_devices_are_named_by_the_instances_own_block_device_mapping(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    server.results["storage"] = xen(server.results["storage"], (5, 6))      # xvdf, xvdg: attached in EC2
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-10"}))
    assert not result.get("failed"), result.get("msg")
    assert result["ebs_volume_ids"] == sorted(data) and result["verified"] is True
    assert sorted(snapshot["volume_id"] for snapshot in result["ebs_set"]["snapshots"]) == sorted(data)

    server = host()
    server.results["storage"] = xen(server.results["storage"], (5, 7))      # xvdh: nothing attached there
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-11"}))
    assert result["failed"] is True and server.ops() == ["batch"]
    assert result["msg"] == ("win-sql-01: the EBS snapshot set could not be exactly the shadow set, so no shadow set was "
                             "made: L:: the EBS volume id of its disk (xvdh) is not known: on Xen it comes from the "
                             "instance's block-device mapping, which lists no volume at that device; see win_ebs_disk_info")


def test_the_tag_budget_is_checked_before_the_freeze(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    tags = {"Tag%02d" % number: "x" for number in range(45)}
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-12", "tags": tags}))
    assert result["failed"] is True and "EC2 allows 50" in result["msg"] and "no shadow set was made" in result["msg"]
    assert server.ops() == ["batch"]


def test_check_mode_plans_the_ebs_set_and_creates_nothing(ec2_host):
    host, ec2, instance_id, data = ec2_host
    server = host()
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-13"}), check_mode=True)
    assert not result.get("failed"), result.get("msg")
    assert server.ops() == ["batch"] and result["session_state"] == "planned"
    assert (result["ebs_set_id"], result["ebs_volume_ids"], result["verified"]) == ("sql-13", sorted(data), False)
    assert ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": ["shadowsnap:set-id"]}])["Snapshots"] == []


def test_the_boot_volume_of_the_set_is_shadowed_too(ec2_host):
    host, ec2, instance_id, data = ec2_host
    root = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"][0]
    server = host()
    server.results["storage"]["disks"][0]["SerialNumber"] = root["Ebs"]["VolumeId"].replace("-", "") + "_00000001."
    result = run(server, dict(DATA, ebs_snapshot_set={"set_id": "sql-14", "include_boot": True}))
    assert not result.get("failed"), result.get("msg")
    assert sorted(result["shadows"]) == ["C:", "D:", "L:"] and result["verified"] is True
    members = {snapshot["volume_id"]: snapshot["shadow_id"] for snapshot in result["ebs_set"]["snapshots"]}
    assert members[root["Ebs"]["VolumeId"]] == result["shadows"]["C:"], "the boot volume's snapshot holds its shadow copy"


def test_an_unsafe_session_directory_fails_the_task_and_its_check_mode_before_anything_starts():
    for check_mode in (True, False):
        host = WindowsServer()
        tree = host.results["sessions"]
        tree["folders"][1] = dict(tree["folders"][1], owner="S-1-5-21-1-2-3-1001", owner_name="WIN-SQL-01\\mallory")
        result = run(host, DATA, check_mode=check_mode)
        assert result["failed"] is True and host.ops() == ["batch"]
        assert result["msg"] == (
            "win-sql-01: the session directory is not safe for SYSTEM to run files from, so no session was started: "
            "C:\\ProgramData\\shadowsnap\\runs is owned by WIN-SQL-01\\mallory: remove C:\\ProgramData\\shadowsnap\\runs "
            "and let the agent create it")
