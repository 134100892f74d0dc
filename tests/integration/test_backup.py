"""The backup role through real ansible-playbook runs: VSS over WinRM against the lab's hosts, EBS against moto.

Consistency is proven on the data, not assumed: the lab's SQL-like application keeps writing a journal across D: and
E:, and the invariant checker reads the image inside each EBS snapshot and the shadow copy embedded in it.
"""

import datetime
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import ANSIBLE_PLAYBOOK, COLLECTIONS_PATH

pytestmark = pytest.mark.integration

BACKUP = "- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n"
SQL = "win-sql-01"


def lab_snapshots(lab):
    volume_ids = [v["volume_id"] for instance in lab.state["instances"] for v in instance["volumes"]]
    found = lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"]
    return [dict(s, tags={t["Key"]: t["Value"] for t in s.get("Tags", [])}) for s in found]


@pytest.fixture
def inventory(lab, tmp_path):
    path = tmp_path / "windows.ini"
    lab.write_inventory(str(path))
    return str(path)


def backup(lab, ansible_playbook, inventory, tmp_path, **variables):
    report_path = tmp_path / "report.json"
    extra = {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_report_path": str(report_path),
             "backup_set_id": "sql-backup"}
    extra.update(variables)
    run = ansible_playbook(lab, BACKUP, extra, inventory=inventory)
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    return run, report


def assert_nothing_left_behind(lab, host=SQL):
    state = lab.host_state(host)
    assert state["shadows"] == 0, "no shadow copy is left behind"
    waiting = [w["name"] for w in state["writers"] if w["state_name"].startswith("WAITING")]
    assert waiting == [], "no writer is left waiting"


def assert_failed_cleanly(lab, host=SQL):
    assert_nothing_left_behind(lab, host)
    assert all(s["tags"].get("shadowsnap:consistency") != "application" for s in lab_snapshots(lab)), \
        "no set is tagged application"


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_copy_backup_embeds_a_consistent_image_while_the_crash_image_is_torn(lab, ansible_playbook, inventory, tmp_path):
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"]) == ("ok", "application")
    assert report["counts"] == {"ok": 1, "fallback": 0, "failed": 0}

    snapshots = {s["VolumeId"]: s for s in lab_snapshots(lab)}
    sql = lab.instance(SQL)
    data_volume, log_volume = (next(v["volume_id"] for v in sql["volumes"] if v["drive"] == letter) for letter in ("D:", "E:"))
    assert set(snapshots) == {data_volume, log_volume}, "exactly the shadow set's volumes"
    for snapshot in snapshots.values():
        assert snapshot["tags"]["shadowsnap:consistency"] == "application"
        assert snapshot["tags"]["shadowsnap:engine"] == "shadow"
    shadow = {volume: snapshots[volume]["tags"]["shadowsnap:volume:" + volume].split("shadow=")[1] for volume in snapshots}

    embedded = lab.check_consistency({"snapshot_id": snapshots[data_volume]["SnapshotId"], "shadow_id": shadow[data_volume]},
                                     {"snapshot_id": snapshots[log_volume]["SnapshotId"], "shadow_id": shadow[log_volume]})
    crash = lab.check_consistency({"snapshot_id": snapshots[data_volume]["SnapshotId"]},
                                  {"snapshot_id": snapshots[log_volume]["SnapshotId"]})
    assert embedded["consistent"] is True, embedded["reasons"]
    assert crash["consistent"] is False, "the application kept writing after the freeze: the crash image needs recovery"
    assert crash["last_log_lsn"] > embedded["last_log_lsn"]
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert_nothing_left_behind(lab)


def test_full_backup_sends_backup_complete_only_after_the_ebs_snapshots_exist(lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc == 0, run.stdout
    assert report["hosts"][0]["consistency"] == "application"
    completes = lab.vss_events(SQL, event="BackupComplete", writer="SqlServerWriter")
    assert len(completes) == 1
    first_snapshot = min(s["StartTime"] for s in lab_snapshots(lab))
    assert parse_time(completes[0]["time"]) > first_snapshot
    history = [change["state_name"] for change in lab.writer_history(SQL, "SqlServerWriter")["SqlServerWriter"]]
    assert "WAITING_FOR_BACKUP_COMPLETE" in history and history[-1] == "STABLE"
    assert_nothing_left_behind(lab)


def test_a_writer_failing_at_freeze_leaves_nothing_and_tags_nothing(lab, ansible_playbook, inventory, tmp_path):
    lab.vss_fault(SQL, "writer_fail_at_freeze", writer="SqlServerWriter")
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "SqlServerWriter" in result["error"]
    assert lab_snapshots(lab) == []
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert_failed_cleanly(lab)


def test_the_crash_fallback_is_opt_in_and_never_silent(lab, ansible_playbook, inventory, tmp_path):
    lab.vss_fault(SQL, "writer_fail_at_freeze", writer="SqlServerWriter")
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_fallback="crash")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["fallback"]) == ("fallback", "crash", True)
    assert report["counts"]["fallback"] == 1
    (warning,) = run.result("shadowsnap.ec2.backup : Snapshot the volumes crash-consistently", host=SQL)["warnings"]
    assert "crash-consistent only" in warning and "failed shadow backup" in warning and "SqlServerWriter" in warning
    tags = [s["tags"] for s in lab_snapshots(lab)]
    assert tags and all(t["shadowsnap:consistency"] == "crash" and t["shadowsnap:engine"] == "crash"
                        and t["shadowsnap:fallback-from"] == "shadow" for t in tags)
    assert_failed_cleanly(lab)


@pytest.mark.parametrize("fault, expected", [
    ("required writer missing", "SqlServerWriter"),
    ("diff area on another volume", "shadowstorage"),
])
def test_preflight_refuses_before_any_freeze(lab, ansible_playbook, inventory, tmp_path, fault, expected):
    variables = {}
    if fault == "required writer missing":
        lab.set_writer_state(SQL, "SqlServerWriter", "missing")
        variables["backup_required_writers"] = ["SqlServerWriter"]
    else:
        lab.set_shadow_storage(SQL, "D:", "F:")
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, **variables)
    assert run.rc != 0
    assert expected in report["hosts"][0]["error"]
    assert lab.vss_events(SQL, event="Freeze") == []
    assert lab_snapshots(lab) == []
    assert_failed_cleanly(lab)


def test_create_snapshots_throttled_then_failing_aborts_the_held_session(lab, ansible_playbook, inventory, tmp_path):
    lab.faults(rules=[{"action": "CreateSnapshots", "error": "RequestLimitExceeded", "count": 2},
                      {"action": "CreateSnapshots", "error": "InvalidParameterValue", "count": 1}])
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc != 0
    assert "InvalidParameterValue" in report["hosts"][0]["error"]
    assert lab.counts()["actions"]["CreateSnapshots"]["faults"] == 3
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert lab.vss_events(SQL, event="Abort")
    assert lab_snapshots(lab) == []
    assert_failed_cleanly(lab)


def test_a_connection_dropped_while_the_session_is_held_aborts_it(lab, ansible_playbook, inventory, tmp_path):
    """The release is not idempotent, so a dropped connection is not retried: the session is aborted instead."""
    lab.host_fault(SQL, "drop_connection", action="Command", after=3, times=1)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc != 0
    assert report["hosts"][0]["status"] == "failed"
    assert lab.vss_events(SQL, event="BackupComplete") == []
    tags = [s["tags"] for s in lab_snapshots(lab)]
    assert tags and all(t["shadowsnap:consistency"] == "crash" for t in tags), "snapshots taken under the failed session are settled crash"
    assert_failed_cleanly(lab)


def test_a_controller_that_dies_mid_run_leaves_a_session_that_times_out_and_is_cleaned(lab, ansible_playbook, inventory, tmp_path):
    playbook = tmp_path / "backup.yml"
    playbook.write_text(BACKUP, encoding="utf-8")
    environment = dict(os.environ, **lab.state["environment"])
    environment.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    lab.faults(latency_ms=3000)
    extra = {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_type": "full", "backup_hold_timeout": 4,
             "backup_set_id": "doomed"}
    controller = subprocess.Popen([ANSIBLE_PLAYBOOK, str(playbook), "-i", inventory, "-e", json.dumps(extra)],  # pylint: disable=consider-using-with
                                  env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lab.host_state(SQL)["shadows"] == 0:
            time.sleep(0.2)
        assert lab.host_state(SQL)["shadows"] > 0, "the shadow set was created before the controller died"
        created_at = time.monotonic()
    finally:
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()
    lab.clear_faults()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(w["state_name"].startswith("WAITING") for w in lab.host_state(SQL)["writers"]):
        time.sleep(0.5)
    assert not any(w["state_name"].startswith("WAITING") for w in lab.host_state(SQL)["writers"]), "the hold timed out on the host"
    assert lab.vss_events(SQL, event="BackupComplete") == []

    assert lab.host_state(SQL)["shadows"] > 0, "persistent shadows outlive diskshadow until a later run cleans them"
    time.sleep(max(0.0, created_at + 61 - time.monotonic()))
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_set_id="next-run", backup_leftover_age=60)
    assert run.rc == 0, run.stdout
    assert report["hosts"][0]["consistency"] == "application"
    assert lab.host_state(SQL)["shadows"] == 0, "the next run cleaned the dead run's shadow copies"


def test_the_aws_vss_engine_through_the_role(lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_engine="aws_vss", backup_set_id="sql-aws-vss")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"]) == ("ok", "application")
    tags = [s["tags"] for s in lab_snapshots(lab)]
    assert tags and all(t["shadowsnap:engine"] == "aws_vss" and t["AppConsistent"] == "true" for t in tags)
    assert lab.vss_events(SQL, event="Freeze")
