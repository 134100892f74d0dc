"""The backup role through real ansible-playbook runs: VSS over WinRM against the lab's hosts, EBS against moto.

Consistency is proven on the data, not assumed: the lab's SQL-like application keeps writing a journal across D: and
E:, and the invariant checker reads the image inside each EBS snapshot and the shadow copy embedded in it. Orders are
read on the lab's own clock (``lab_time`` of the EBS points in time and of the VSS events, to the microsecond), never
on moto's StartTime, which is cut to the second.
"""

import datetime
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import ANSIBLE_PLAYBOOK, COLLECTIONS_PATH, kill_controller
from lab.topology import sql_default_install_topology

pytestmark = pytest.mark.integration

BACKUP = "- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n"
SQL = "win-sql-01"
SHADOW_TASK = ("shadowsnap.ec2.backup : Create the VSS shadow copy set, snapshot exactly its EBS volumes as one set, "
               "prove it, complete and record it")


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


def failed_backup(lab, ansible_playbook, inventory, tmp_path, expected, **variables):
    """A backup that fails, its host's result saying ``expected``: (the run, the host's result)."""
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, **variables)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and expected in result["error"], result
    return run, result


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


def points_in_time(lab, snapshots):
    """The lab's record of each snapshot's point in time (``lab_time`` on the lab's clock, microseconds), by volume."""
    points = lab.snapshot_points([s["SnapshotId"] for s in snapshots])
    return {s["VolumeId"]: parse_time(points[s["SnapshotId"]]["lab_time"]) for s in snapshots}


def data_and_log_volumes(lab, host=SQL):
    volumes = lab.instance(host)["volumes"]
    return tuple(next(v["volume_id"] for v in volumes if v["drive"] == letter) for letter in ("D:", "E:"))


def assert_embedded_image_is_consistent(lab, snapshots):
    """The shadow copies inside the EBS snapshots of D: and E: hold the database as the freeze left it."""
    data_volume, log_volume = data_and_log_volumes(lab)
    assert set(snapshots) == {data_volume, log_volume}, "exactly the shadow set's volumes"
    shadow = {volume: snapshots[volume]["tags"]["shadowsnap:volume:" + volume].split("shadow=")[1] for volume in snapshots}
    embedded = lab.check_consistency({"snapshot_id": snapshots[data_volume]["SnapshotId"], "shadow_id": shadow[data_volume]},
                                     {"snapshot_id": snapshots[log_volume]["SnapshotId"], "shadow_id": shadow[log_volume]})
    assert embedded["consistent"] is True, embedded["reasons"]
    return embedded


def run_in_background(lab, inventory, tmp_path, playbook, extra):
    """ansible-playbook on a playbook of its own (the backup under test keeps running meanwhile)."""
    path = tmp_path / "background.yml"
    path.write_text(playbook, encoding="utf-8")
    environment = dict(os.environ, **lab.state["environment"])
    environment.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_LOCAL_TEMP=str(tmp_path / "background-tmp"))
    return subprocess.run([ANSIBLE_PLAYBOOK, str(path), "-i", inventory, "-e", json.dumps(extra)], env=environment,
                          capture_output=True, text=True, timeout=300, check=False)


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
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0, run.stdout
    assert report["hosts"][0]["consistency"] == "application"
    completes = lab.vss_events(SQL, event="BackupComplete", writer="SqlServerWriter")
    assert len(completes) == 1
    first_snapshot = min(s["StartTime"] for s in lab_snapshots(lab))
    assert parse_time(completes[0]["time"]) > first_snapshot
    points = points_in_time(lab, lab_snapshots(lab))
    assert parse_time(completes[0]["lab_time"]) > max(points.values()), "BackupComplete after every EBS point in time"
    history = [change["state_name"] for change in lab.writer_history(SQL, "SqlServerWriter")["SqlServerWriter"]]
    assert "WAITING_FOR_BACKUP_COMPLETE" in history and history[-1] == "STABLE"
    snapshots = {s["VolumeId"]: s for s in lab_snapshots(lab)}
    assert {s["tags"]["shadowsnap:backup-type"] for s in snapshots.values()} == {"full"}
    assert_embedded_image_is_consistent(lab, snapshots)
    assert_nothing_left_behind(lab)


def test_sql_server_as_setup_installs_it_backs_up_d_and_e_without_c(lab, ansible_playbook, tmp_path):
    """master, model and msdb stay on C:; the writer is verified by the database on D: and E:, not as a whole."""
    lab.reset(topology=sql_default_install_topology())
    inventory = str(tmp_path / "default-install.ini")
    lab.write_inventory(inventory)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc == 0, run.stdout
    assert (report["hosts"][0]["status"], report["hosts"][0]["consistency"]) == ("ok", "application")
    shadow_task = run.result(SHADOW_TASK, host=SQL)
    verifies = [line for line in shadow_task["script"].splitlines() if line.startswith("writer verify")]
    assert verifies and all(line.endswith(":\\WIN-SQL-01\\shop") for line in verifies), verifies
    excluded = {item["component"] for item in shadow_task["excluded_components"] if item["writer"] == "SqlServerWriter"}
    assert excluded == {"\\WIN-SQL-01\\master", "\\WIN-SQL-01\\model", "\\WIN-SQL-01\\msdb"}
    assert shadow_task["verified"] is True
    boot = next(v["volume_id"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "C:")
    snapshots = {s["VolumeId"]: s for s in lab_snapshots(lab)}
    assert boot not in snapshots
    assert_embedded_image_is_consistent(lab, snapshots)
    assert len(lab.vss_events(SQL, event="BackupComplete", writer="SqlServerWriter")) == 1
    assert_nothing_left_behind(lab)


def test_a_required_writer_that_vanishes_after_the_preflight_fails_the_set(lab, ansible_playbook, inventory, tmp_path):
    """writer verify: without it diskshadow would make the set without SqlServerWriter, a crash image of the database."""
    lab.vss_fault(SQL, "writer_vanishes", writer="SqlServerWriter")
    failed_backup(lab, ansible_playbook, inventory, tmp_path, "VSS_E_OBJECT_NOT_FOUND", backup_type="full")
    assert lab.vss_events(SQL, event="WriterVanished")
    assert lab.vss_events(SQL, event="SnapshotSetCreated") == []
    assert lab_snapshots(lab) == []
    assert_failed_cleanly(lab)


def test_shadow_copies_deleted_before_the_ebs_point_in_time_fail_the_proof(lab, ansible_playbook, inventory, tmp_path):
    """The first CreateSnapshots meets SnapshotCreationPerVolumeRateExceeded (a retry after at least 15 s); meanwhile
    another admin deletes the shadow copies. The snapshots then hold none, and the set is settled crash."""
    lab.faults(rules=[{"action": "CreateSnapshots", "error": "SnapshotCreationPerVolumeRateExceeded", "count": 1}])
    deleted = {}

    def delete_the_shadow_copies():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and lab.counts()["actions"].get("CreateSnapshots", {}).get("faults", 0) == 0:
            time.sleep(0.1)
        (created,) = lab.vss_events(SQL, event="SnapshotSetCreated")
        deleted["run"] = run_in_background(lab, inventory, tmp_path, """
- hosts: "{{ target }}"
  gather_facts: false
  tasks:
    - name: Delete the shadow copies of the set
      shadowsnap.ec2.win_vss_snapshot_set:
        state: absent
        shadow_set_id: "{{ shadow_set_id }}"
""", {"target": SQL, "shadow_set_id": created["set_id"]})
        deleted["host_shadows"] = lab.host_state(SQL)["shadows"]
        deleted["faults"] = lab.counts()["actions"]["CreateSnapshots"]

    deleter = threading.Thread(target=delete_the_shadow_copies)
    deleter.start()
    try:
        failed_backup(lab, ansible_playbook, inventory, tmp_path, "was gone when the host listed its shadow copies")
    finally:
        deleter.join()
    assert deleted["run"].returncode == 0, deleted["run"].stdout
    assert deleted["host_shadows"] == 0 and deleted["faults"].get("ok", 0) == 0, "deleted before the EBS point in time"
    snapshots = lab_snapshots(lab)
    assert snapshots and all(s["tags"]["shadowsnap:consistency"] == "crash" for s in snapshots)
    assert all(lab.snapshot_shadow_ids(s["SnapshotId"]) == [] for s in snapshots), "the snapshots hold no shadow copy"
    assert_nothing_left_behind(lab)


def test_the_release_fails_when_shadow_copies_vanished_before_the_ebs_snapshots(lab, ansible_playbook, inventory, tmp_path):
    """The three-task flow of docs/engines.md: only the release can tell that the shadow copies were gone."""
    run = ansible_playbook(lab, """
- hosts: "{{ target }}"
  gather_facts: false
  tasks:
    - name: Create the shadow copy set
      shadowsnap.ec2.win_vss_snapshot_set:
        volumes: ["D:", "E:"]
      register: shadow

    - name: VSS deletes the shadow copies (a diff area that filled up)
      shadowsnap.ec2.win_vss_snapshot_set:
        state: absent
        shadow_set_id: "{{ shadow.shadow_set_id }}"

    - name: Snapshot exactly those EBS volumes
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ shadow.instance_id }}"
        volume_ids: "{{ shadow.ebs_volume_ids }}"
        engine: shadow
        consistency: unverified
        shadow_set_id: "{{ shadow.shadow_set_id }}"
        volume_metadata: "{{ shadow.ec2_volume_metadata }}"
      delegate_to: localhost

    - name: Release the session
      shadowsnap.ec2.win_vss_snapshot_set:
        state: completed
        run_id: "{{ shadow.run_id }}"
      ignore_errors: true
""", {"target": SQL}, inventory=inventory)
    assert run.rc == 0, run.stdout
    present = run.result("Create the shadow copy set", host=SQL)
    assert present["verified"] is False and present["verification"]["failures"]
    released = run.result("Release the session", host=SQL)
    assert released["failed"] is True and released["shadows_verified"] is False
    assert sorted(released["missing_shadow_ids"]) == sorted(present["shadows"].values())
    assert "treat this backup as crash-consistent" in released["msg"]


@pytest.mark.parametrize("ec2_offset, host_offset", [(-30, -30), (30, 30), (0, -30)],
                         ids=["controller-30s-ahead", "controller-30s-behind", "host-30s-behind-ec2"])
def test_a_skewed_controller_clock_changes_nothing(lab, ansible_playbook, inventory, tmp_path, ec2_offset, host_offset):
    """The proof rests on the order of the plugin's calls and on the host's clock against EC2's, not on the
    controller's: EC2 and the host both off by the same amount is a controller skewed the other way."""
    lab.ebs(clock_offset_seconds=ec2_offset)
    lab.configure_host(SQL, clock_offset_seconds=host_offset)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_type="full")
    assert run.rc == 0, run.stdout
    assert (report["hosts"][0]["status"], report["hosts"][0]["consistency"]) == ("ok", "application")
    (complete,) = lab.vss_events(SQL, event="BackupComplete", writer="SqlServerWriter")
    assert parse_time(complete["lab_time"]) > max(points_in_time(lab, lab_snapshots(lab)).values())
    assert_nothing_left_behind(lab)


def test_a_failed_proof_aborts_a_full_backup_before_backup_complete(lab, ansible_playbook, inventory, tmp_path):
    """The host's clock 30 s ahead of EC2's: every snapshot seems to start before its shadow copy, beyond the
    tolerance. Not proven, so the session is aborted: no BackupComplete, the set settled crash."""
    lab.configure_host(SQL, clock_offset_seconds=30)
    failed_backup(lab, ansible_playbook, inventory, tmp_path, "the host's clock is ahead of EC2's", backup_type="full")
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert lab.vss_events(SQL, event="Abort")
    snapshots = lab_snapshots(lab)
    assert snapshots and all(s["tags"]["shadowsnap:consistency"] == "crash" for s in snapshots)
    assert_nothing_left_behind(lab)


def test_a_lost_session_start_answer_aborts_the_session(lab, ansible_playbook, inventory, tmp_path):
    lab.host_fault(SQL, "drop_answer", op="session_start")
    run, result = failed_backup(lab, ansible_playbook, inventory, tmp_path, "session_start failed after it was sent",
                                backup_type="full")
    shadow_task = run.result(SHADOW_TASK, host=SQL)
    assert shadow_task["run_id"].startswith("ss-") and shadow_task["run_id"] in result["error"]
    assert lab.vss_events(SQL, event="SnapshotSetCreated"), "the host started the session whose answer was lost"
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert lab_snapshots(lab) == []
    assert_failed_cleanly(lab)


def test_a_lost_create_snapshots_answer_makes_one_set_not_two(lab, ansible_playbook, inventory, tmp_path):
    """EC2 carried the call out and the answer was lost; DescribeSnapshots does not list the new set at first."""
    lab.ebs(describe_delay_calls=1)
    lab.faults(rules=[{"action": "CreateSnapshots", "lose_response": True, "count": 1}])
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    assert (report["hosts"][0]["status"], report["hosts"][0]["consistency"]) == ("ok", "application")
    creates = lab.counts()["actions"]["CreateSnapshots"]
    assert (creates["attempts"], creates["faults"]) == (1, 1), "never a second CreateSnapshots"
    found = lab_snapshots(lab)
    snapshots = {s["VolumeId"]: s for s in found}
    assert len(found) == 2, "one snapshot per volume: one set"
    points = lab.snapshot_points([s["SnapshotId"] for s in found])
    assert all(point["action"] == "CreateSnapshots" and point["describe_calls"] >= 1 for point in points.values()), points
    shadow_task = run.result(SHADOW_TASK, host=SQL)
    assert [retry["error"] for retry in shadow_task["ebs_set"]["retries"]][-1] == "reconciled"
    assert_embedded_image_is_consistent(lab, snapshots)
    assert_nothing_left_behind(lab)


def test_the_boot_volume_in_the_set_is_shadowed_too(lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_include_boot=True)
    assert run.rc == 0, run.stdout
    assert (report["hosts"][0]["status"], report["hosts"][0]["consistency"]) == ("ok", "application")
    boot = next(v["volume_id"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "C:")
    snapshots = {s["VolumeId"]: s for s in lab_snapshots(lab)}
    assert boot in snapshots
    for volume_id, snapshot in snapshots.items():
        shadow_id = snapshot["tags"]["shadowsnap:volume:" + volume_id].split("shadow=")[1]
        assert shadow_id in lab.snapshot_shadow_ids(snapshot["SnapshotId"]), f"{volume_id} carries its shadow copy"
    assert_nothing_left_behind(lab)


@pytest.mark.parametrize("engine", ["shadow", "crash", "aws_vss"])
def test_check_mode_plans_and_creates_nothing(lab, ansible_playbook, inventory, tmp_path, engine):
    report_path = tmp_path / "report.json"
    run = ansible_playbook(lab, BACKUP, {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_engine": engine,
                                         "backup_report_path": str(report_path)}, check=True, inventory=inventory)
    assert run.rc == 0, run.stdout
    result = run.result("shadowsnap.ec2.backup : Keep the result in the fact cache (AWX shows it with the host's facts)",
                        host=SQL)["ansible_facts"]["backup_result"]
    assert result["status"] == "planned", result
    plan = result["plan"]
    data_volume, log_volume = data_and_log_volumes(lab)
    boot = next(v["volume_id"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "C:")
    assert plan["engine"] == engine and plan["set_id"] == result["set_id"] and plan["devices"]
    assert {data_volume, log_volume} <= set(plan["ebs_volume_ids"]) and boot not in plan["ebs_volume_ids"]
    if engine == "shadow":
        assert (plan["volumes"], plan["required_writers"]) == (["D:", "E:"], ["SqlServerWriter"])
        assert set(plan["ebs_volume_ids"]) == {data_volume, log_volume} and "SqlServerWriter" in plan["writers"]
    assert lab_snapshots(lab) == []
    assert lab.vss_events(SQL, event="Freeze") == [] and lab.host_state(SQL)["shadows"] == 0
    assert lab.counts()["actions"].get("CreateSnapshots", {}).get("attempts", 0) == 0
    assert lab.counts()["actions"].get("SendCommand", {}).get("attempts", 0) == 0


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


def test_the_in_session_create_snapshots_retries_end_within_the_hold(lab, ansible_playbook, inventory, tmp_path):
    """A 60 s hold less the 60 s kept for the proof and the release leaves no time to retry a throttled creation."""
    lab.faults(rules=[{"action": "CreateSnapshots", "error": "RequestLimitExceeded", "count": 20}])
    failed_backup(lab, ansible_playbook, inventory, tmp_path, "RequestLimitExceeded", backup_type="full",
                  backup_hold_timeout=60)
    assert lab.counts()["actions"]["CreateSnapshots"]["faults"] == 1, "one attempt, no retry beyond the hold"
    assert lab.vss_events(SQL, event="BackupComplete") == []
    assert lab_snapshots(lab) == []
    assert_failed_cleanly(lab)


def test_a_connection_dropped_while_the_session_is_held_aborts_it(lab, ansible_playbook, inventory, tmp_path):
    """The release is not idempotent, so a dropped connection is not retried: the session is aborted instead. The
    fourth command is the release (pre-flight, session_start, the listing of the proof, the release)."""
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
        kill_controller(controller)
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
