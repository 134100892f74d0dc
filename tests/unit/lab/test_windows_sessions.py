"""Sessions of the shadow engine against the whole lab: the real pywinrm client on a host's WinRM endpoint, EBS
snapshots through the lab's AWS endpoint with boto3, and the control API's helpers that read what a restore would see.

What these tests show: the shadow copy embedded in each EBS snapshot is application-consistent even while the
application writes (the writer flushed it at freeze) and the snapshot's own crash image is not; BackupComplete comes
only after the EBS snapshots exist, never for a copy backup and never on abort; a volume whose diff area lives on
another volume does not carry its shadow copy in its own snapshot; no session thread outlives a reset.
"""

import base64
import datetime
import re
import threading
import time

import pytest
import requests

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow as generator
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import session_host
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_vssadmin_writers
from lab.windows.testing import call_agent_over_winrm

try:
    from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
except ImportError:  # pragma: no cover - the transport is part of the collection
    agent_transport = None

SQL_WRITER_ID = "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"
HOST = "win-sql-01"


def collection_wire():
    """The bootstrap as the shell plugin encodes it (lines stripped, blank ones dropped) and the collection's agent."""
    bootstrap = "\n".join(line.strip() for line in agent_transport.BOOTSTRAP.splitlines() if line.strip())
    return {"bootstrap": bootstrap, "script": agent_transport.agent_script()}


def agent(client, op, args=None):
    """One agent round trip with pywinrm, as the collection's transport sends it; the answer document. A session_start
    creates the folders the host's ``sessions`` answer lacks, as the controller's does."""
    args = dict(args or {})
    if op == "session_start":
        tree = call_agent_over_winrm(client.windows_host(HOST), "sessions", None, **collection_wire())["result"]
        args.setdefault("create_folders", session_host.folders_to_create(tree))
        args.setdefault("wait_for", ["created.txt", "exit.txt"])
    return call_agent_over_winrm(client.windows_host(HOST), op, args, **collection_wire())


def session(client, op, args=None):
    """The run status (session_host.run_status) of a session op's answer; the op must succeed."""
    answer = agent(client, op, args)
    assert answer["ok"], answer
    return session_host.run_status(answer["result"])


def session_files(session_plan):
    """The generated files; run.cmd's exit-code line as cmd.exe needs it (a no-op once the generator writes it so)."""
    files = generator.session_files(session_plan)
    files["run.cmd"] = re.sub(r'^echo %ERRORLEVEL%> (".*")(\r?)$', r">\1 echo %ERRORLEVEL%\2", files["run.cmd"], flags=re.MULTILINE)
    return files


def start(client, run_id, backup_type, volumes=("D:", "E:"), hold=120):
    session_plan = generator.SessionPlan(run_id=run_id, volumes=list(volumes), backup_type=backup_type,
                                         verify_writer_ids=[SQL_WRITER_ID], hold_timeout_seconds=hold)
    status = session(client, "session_start", {"run_id": run_id, "files": session_files(session_plan), "wait_seconds": 30,
                                               "run_dir": session_plan.run_dir(), "time_limit_seconds": hold + 600})
    return session_plan, status


def snapshot_instance(client):
    """CreateSnapshots of the host's data volumes through the lab's AWS endpoint: {drive: snapshot id}, and the moment
    the call returned (the snapshots' point in time is fixed then)."""
    instance = client.instance(HOST)
    drives = {volume["volume_id"]: volume["drive"] for volume in instance["volumes"]}
    answer = client.ec2().create_snapshots(InstanceSpecification={"InstanceId": instance["instance_id"], "ExcludeBootVolume": True})
    returned = datetime.datetime.now(datetime.timezone.utc)
    return {drives[snapshot["VolumeId"]]: snapshot["SnapshotId"] for snapshot in answer["Snapshots"]}, returned


def event_times(client, event):
    return [datetime.datetime.fromisoformat(entry["time"]) for entry in client.vss_events(HOST, event=event)]


def test_full_backup_over_winrm_embeds_a_consistent_shadow_in_each_ebs_snapshot(client):
    client.start_application(HOST, interval=0.002, checkpoint_every=3, torn_pause=0.003)
    time.sleep(0.1)
    session_plan, status = start(client, "ss-e2e-full", "full")
    assert status["state"] == "created" and status["task_running"]
    shadows = status["shadows"]
    text = agent(client, "writers", {"sources": ["vssadmin"]})["result"]["outputs"]["vssadmin"]["text"]
    assert next(w for w in parse_vssadmin_writers(text) if w["name"] == "SqlServerWriter")["state"] == 5
    # the application goes on; then leaves its data page half written, as a crash would find it
    client.stop_application(HOST)
    client.application_transactions(HOST, 2, mode="lazy")
    client.application_transactions(HOST, 1, mode="torn")
    snapshots, taken = snapshot_instance(client)
    assert client.vss_events(HOST, event="BackupComplete") == []
    result = session(client, "session_release", {"run_id": "ss-e2e-full", "decision": "ok", "wait_seconds": 30, "delete_shadows": True})
    assert result["state"] == "completed" and result["exit_code"] == 0
    assert sorted(result["deleted_shadow_ids"]) == sorted(shadows.values())
    completes = client.vss_events(HOST, event="BackupComplete")
    assert [(e["writer"], e["run_id"], e["set_id"]) for e in completes] == [("SqlServerWriter", "ss-e2e-full", status["shadow_set_id"])]
    assert event_times(client, "BackupComplete")[0] > taken, "BackupComplete only after the EBS snapshots exist"
    points = client.snapshot_points(list(snapshots.values()))
    assert datetime.datetime.fromisoformat(completes[0]["lab_time"]) > max(
        datetime.datetime.fromisoformat(point["lab_time"]) for point in points.values()), "on the same clock, sub-second"
    # each volume's snapshot carries its own shadow copy; what a restore sees after reverting to it is consistent
    assert shadows["vol_d"] in client.snapshot_shadow_ids(snapshots["D:"])
    assert shadows["vol_e"] in client.snapshot_shadow_ids(snapshots["E:"])
    reverted = client.check_consistency({"snapshot_id": snapshots["D:"], "shadow_id": shadows["vol_d"]},
                                        {"snapshot_id": snapshots["E:"], "shadow_id": shadows["vol_e"]})
    assert reverted["consistent"] and reverted["reasons"] == [] and reverted["applied_lsn"] > 0
    crash = client.check_consistency({"snapshot_id": snapshots["D:"]}, {"snapshot_id": snapshots["E:"]})
    assert not crash["consistent"] and crash["torn"] and crash["recoverable"]
    frozen = client.snapshot_content(snapshots["D:"], shadows["vol_d"])
    assert "SQLData\\shop.mdf" in frozen["files"] and frozen["shadow_id"] == shadows["vol_d"]
    # deleting the host's shadows afterwards does not touch what the EBS snapshots hold
    assert agent(client, "shadows")["result"]["shadows"] == []
    assert shadows["vol_d"] in client.snapshot_shadow_ids(snapshots["D:"])
    history = client.writer_history(HOST, "SqlServerWriter")["SqlServerWriter"]
    assert [entry["event"] for entry in history][-3:] == ["Thaw", "PostSnapshot", "BackupComplete"]
    cab = agent(client, "file_read", {"path": session_plan.run_dir() + "\\backup.cab"})["result"]
    assert base64.b64decode(cab["content_base64"]).startswith(b"<?xml")


def test_copy_backup_never_sends_backup_complete(client):
    dummy, status = start(client, "ss-e2e-copy", "copy")
    status = session(client, "session_status", {"run_id": "ss-e2e-copy", "wait_seconds": 30, "wait_for": ["exit.txt"]})
    assert status["state"] == "completed" and not status["task_running"] and len(status["shadows"]) == 2
    snapshots, dummy = snapshot_instance(client)
    deleted = agent(client, "shadow_delete", {"shadow_set_id": status["shadow_set_id"]})["result"]["deleted_shadow_ids"]
    assert sorted(deleted) == sorted(status["shadows"].values())
    assert client.vss_events(HOST, event="BackupComplete") == []
    assert [e["writer"] for e in client.vss_events(HOST, event="BackupShutdown")] == ["SqlServerWriter"]
    assert status["shadows"]["vol_e"] in client.snapshot_shadow_ids(snapshots["E:"])
    assert next(w for w in client.host_state(HOST)["writers"] if w["name"] == "SqlServerWriter")["state"] == 1


def test_abort_over_winrm_leaves_no_writer_waiting_and_no_backup_complete(client):
    dummy, status = start(client, "ss-e2e-abort", "full")
    released = session(client, "session_release", {"run_id": "ss-e2e-abort", "decision": "abort", "wait_seconds": 30,
                                                   "delete_shadows": True})
    assert released["state"] == "failed" and released["decision"] == "abort"
    assert sorted(released["deleted_shadow_ids"]) == sorted(status["shadows"].values())
    assert client.vss_events(HOST, event="BackupComplete") == []
    assert [e["writer"] for e in client.vss_events(HOST, event="Abort")] == ["SqlServerWriter"]
    assert all(writer["state"] == 1 for writer in client.host_state(HOST)["writers"])


def test_a_diff_area_on_another_volume_is_not_in_the_volumes_own_snapshot(client):
    client.set_shadow_storage(HOST, "E:", "F:")
    dummy, status = start(client, "ss-e2e-diff", "copy")
    agent(client, "session_status", {"run_id": "ss-e2e-diff", "wait_seconds": 30, "wait_for": ["exit.txt"]})
    snapshots, dummy = snapshot_instance(client)
    shadows = status["shadows"]
    assert shadows["vol_d"] in client.snapshot_shadow_ids(snapshots["D:"])
    assert shadows["vol_e"] not in client.snapshot_shadow_ids(snapshots["E:"]), "E:'s shadow data lives on F:"
    assert shadows["vol_e"] in client.snapshot_shadow_ids(snapshots["F:"])
    with pytest.raises(RuntimeError, match="carries no shadow copy"):
        client.snapshot_content(snapshots["E:"], shadows["vol_e"])


def test_faults_and_events_through_the_control_api(client):
    client.vss_fault(HOST, "writer_fail_at_freeze", writer="SqlServerWriter", error="retryable")
    answer = agent(client, "session_start", {"run_id": "ss-fault", "wait_seconds": 30,
                                             "files": session_files(generator.SessionPlan(run_id="ss-fault", volumes=["D:", "E:"],
                                                                                          verify_writer_ids=[SQL_WRITER_ID]))})
    status = session(client, "session_status", {"run_id": "ss-fault", "wait_seconds": 30, "wait_for": ["exit.txt"]})
    assert answer["ok"] and status["state"] == "failed" and "Returned HRESULT: 800423F3" in status["log"]
    failed = client.vss_events(HOST, event="Freeze", writer="SqlServerWriter")
    assert [(e["state"], e["failed"]) for e in failed] == [(9, True)]
    assert client.clear_vss_faults(HOST) == []
    assert client.sessions(HOST)[0]["run_id"] == "ss-fault"


def test_a_hosts_clock_offset_shows_in_its_event_times_not_in_their_lab_time(client):
    client.configure_host(HOST, clock_offset_seconds=-3600)
    dummy, status = start(client, "ss-skewed", "copy")
    assert session(client, "session_status", {"run_id": "ss-skewed", "wait_seconds": 30, "wait_for": ["exit.txt"]})["state"] == "completed"
    freeze = client.vss_events(HOST, event="Freeze", writer="SqlServerWriter")[0]
    skew = datetime.datetime.fromisoformat(freeze["time"]) - datetime.datetime.fromisoformat(freeze["lab_time"])
    assert skew == datetime.timedelta(hours=-1)
    history = client.writer_history(HOST, "SqlServerWriter")["SqlServerWriter"][-1]
    assert datetime.datetime.fromisoformat(history["time"]) - datetime.datetime.fromisoformat(history["lab_time"]) == skew
    installed = agent(client, "shadows")["result"]["shadows"][0]["InstallDate"]
    behind = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.strptime(installed[:21], "%Y%m%d%H%M%S.%f").replace(
        tzinfo=datetime.timezone.utc)
    assert datetime.timedelta(minutes=59) < behind < datetime.timedelta(minutes=61), "Win32_ShadowCopy on the host's clock"
    assert client.host_state(HOST)["settings"]["clock_offset_seconds"] == -3600
    assert status["shadow_set_id"]


def test_the_answer_to_session_start_is_lost_after_the_host_started_the_session(client):
    armed = client.host_fault(HOST, "drop_answer", op="session_start")
    assert armed == [{"kind": "drop_answer", "op": "session_start", "after": 0, "times": 1, "seen": 0, "fired": 0}]
    assert agent(client, "facts")["ok"], "other ops are answered"
    session_plan = generator.SessionPlan(run_id="ss-lost", volumes=["D:", "E:"], backup_type="full",
                                         verify_writer_ids=[SQL_WRITER_ID], hold_timeout_seconds=120)
    with pytest.raises(requests.exceptions.ConnectionError):
        agent(client, "session_start", {"run_id": "ss-lost", "files": session_files(session_plan), "wait_seconds": 30})
    status = session(client, "session_status", {"run_id": "ss-lost", "wait_for": ["created.txt", "exit.txt"], "wait_seconds": 30})
    assert status["state"] == "created" and status["task_running"], "the host carried the op out"
    assert client.host_state(HOST)["faults"][0]["fired"] == 1
    assert client.host_counters(HOST)["winrm"]["faults_injected"] == 1
    released = session(client, "session_release", {"run_id": "ss-lost", "decision": "abort", "wait_seconds": 30,
                                                   "delete_shadows": True})
    assert released["state"] == "failed" and sorted(released["deleted_shadow_ids"]) == sorted(status["shadows"].values())
    assert client.vss_events(HOST, event="BackupComplete") == []
    client.clear_host_faults(HOST)
    assert client.host_state(HOST)["faults"] == []


def test_reset_stops_every_session_thread(client):
    start(client, "ss-e2e-reset", "full", hold=300)
    assert any(thread.name.startswith("lab-task-") for thread in threading.enumerate())
    client.start_application(HOST)
    client.reset()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith(("lab-task-", "lab-sql-application"))]
    assert session(client, "session_status", {"run_id": "ss-e2e-reset"})["state"] == "missing"
