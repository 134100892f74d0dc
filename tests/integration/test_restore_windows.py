"""Restore, the Windows side and the role: playbooks/restore.yml through real ansible-playbook runs against the lab.

Proven on the data: the SQL-like host writes its journal during the backup (the EBS snapshots' crash image is not
consistent), writes more afterwards, and an in-place restore of D:+E: leaves live volumes that pass the application
invariant check - because the volumes were reverted to the shadow copies stored in them. After a failure the host is
as it was: the original volumes attached, online at their drive letters, with their content, the services running.
"""

import json

import pytest

from test_backup import SQL, backup, inventory  # noqa: F401 pylint: disable=unused-import
from test_restore_volumes import contents, crash_set, device_map, originals, tags, volumes_of

pytestmark = pytest.mark.integration

RESTORE = "- ansible.builtin.import_playbook: shadowsnap.ec2.restore\n"
WEB = "win-web-01"


def restore(lab, ansible_playbook, inventory, tmp_path, check=False, **variables):
    """(the run, the host's result) of playbooks/restore.yml with its JSON report."""
    report_path = tmp_path / "restore-report.json"
    extra = {"target_hosts": SQL, "restore_set_id": "sql-backup", "restore_volumes": ["D:", "E:"],
             "restore_report_path": str(report_path)}
    extra.update(variables)
    run = ansible_playbook(lab, RESTORE, extra, inventory=inventory, check=check)
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    return run, report


def shadow_backup(lab, ansible_playbook, inventory, tmp_path):
    """A shadow set of D:+E: taken while the application writes lazily (its crash image needs recovery), then more
    transactions: (the set's snapshots by original volume id, the journal before the restore)."""
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0 and report["hosts"][0]["consistency"] == "application", run.stdout
    lab.application_transactions(SQL, count=5)
    snapshots = {s["VolumeId"]: s for s in lab.ec2().describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:shadowsnap:set-id", "Values": ["sql-backup"]}])["Snapshots"]}
    return snapshots, lab.journal_check(SQL)


def live_check(lab, host=SQL):
    return lab.check_consistency({"host": host, "volume": "D:"}, {"host": host, "volume": "E:"})


def host_as_it_was(lab, live, before, devices):
    """The original volumes back at their devices, online at D: and E:, unchanged, SQL Server running."""
    assert device_map(lab) == devices
    assert contents(lab, live.values()) == before
    state = lab.host_state(SQL)
    letters = {v["drive_letter"]: v["volume_ids"] for v in state["volumes"]}
    assert letters["D"] == [live["D:"]] and letters["E"] == [live["E:"]]
    assert {s["Name"]: s["Status"] for s in state["services"]}["MSSQLSERVER"] == "Running"


def test_in_place_restore_of_a_shadow_set_is_application_consistent_only_after_the_revert(
        lab, ansible_playbook, inventory, tmp_path):
    snapshots, journal_before = shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before = contents(lab, [live["D:"], live["E:"]])
    crash_image = lab.check_consistency({"snapshot_id": snapshots[live["D:"]]["SnapshotId"]},
                                        {"snapshot_id": snapshots[live["E:"]]["SnapshotId"]})
    assert crash_image["consistent"] is False, "what the restored volumes hold before the revert fails the check"
    lab.volumes(creating_seconds=0.5, attaching_seconds=0.5, detaching_seconds=0.5)

    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["rolled_back"]) == ("ok", "application", False), result
    assert [s["outcome"] for s in result["shadows"]] == ["reverted", "reverted"]
    assert int(report["counts"]["application"]) == 1
    check = live_check(lab)
    assert check["consistent"] is True, check
    assert check["last_log_lsn"] < journal_before["last_log_lsn"], "the live volumes are back at the backup's point"
    restored = {v["source_volume_id"]: v["volume_id"] for v in result["volumes"]}
    assert device_map(lab)["xvdb"] == restored[live["D:"]] and device_map(lab)["xvdc"] == restored[live["E:"]]
    stored = volumes_of(lab)
    for original, volume_id in restored.items():
        assert tags(stored[volume_id])["shadowsnap:restore:consistency"] == "application"
        assert stored[original]["State"] == "available", "the original is kept"
    assert contents(lab, [live["D:"], live["E:"]]) == before, "the originals were not changed"
    state = lab.host_state(SQL)
    assert {s["Name"]: s["Status"] for s in state["services"]}["MSSQLSERVER"] == "Running"
    reopened = lab.journal_check(SQL)
    assert reopened["consistent"] and reopened["last_log_lsn"] == check["last_log_lsn"], "SQL Server reopened D: and E:"
    assert lab.vss_events(SQL, event="disk_removed_online") == [], "the originals went offline before the detach"


def test_a_crash_set_restored_in_place_is_reported_crash(lab, ansible_playbook, inventory, tmp_path):
    crash_set(lab, ansible_playbook, "sql-crash")
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, restore_set_id="sql-crash")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["shadows"]) == ("ok", "crash", [])


def test_revert_refused_rolls_back_and_says_so_and_a_re_run_reuses_the_volumes(lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    lab.configure_host(SQL, vssadmin_revert="refuse")
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert (result["status"], result["rolled_back"], result["consistency"]) == ("failed", True, "")
    assert "VSS_E_UNSUPPORTED_CONTEXT" in json.dumps(result["shadows"]) and "rolled back" in result["error"]
    host_as_it_was(lab, {"D:": live["D:"], "E:": live["E:"]}, before, devices)

    lab.configure_host(SQL, vssadmin_revert="accept")
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (again,) = report["hosts"]
    assert (again["status"], again["consistency"]) == ("ok", "application"), again
    assert [v["volume_id"] for v in again["volumes"]] == [v["volume_id"] for v in result["volumes"]], "a re-run reuses them"
    assert not any(v["created"] for v in again["volumes"])
    assert live_check(lab)["consistent"] is True


def test_an_embedded_shadow_gone_leaves_crash_consistency_only(lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    lab.configure_host(SQL, shadow_loss_on_attach=True)
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, restore_accept_crash=True)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"]) == ("ok", "crash")
    assert [s["outcome"] for s in result["shadows"]] == ["missing", "missing"]
    stored = volumes_of(lab)
    assert all(tags(stored[v["volume_id"]])["shadowsnap:restore:consistency"] == "crash" for v in result["volumes"])


def test_the_winrm_connection_lost_after_the_swap_rolls_back_to_the_host_as_it_was(lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    lab.host_fault(SQL, "drop_answer", op="shadow_revert", times=1)
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert (result["status"], result["rolled_back"]) == ("failed", True), result
    host_as_it_was(lab, {"D:": live["D:"], "E:": live["E:"]}, before, devices)
    restored = [v["volume_id"] for v in result["volumes"]]
    assert all(volumes_of(lab)[volume_id]["State"] == "available" for volume_id in restored), "kept, not attached"


def test_a_failed_attach_during_the_swap_leaves_the_host_as_it_was(lab, ansible_playbook, inventory, tmp_path):
    crash_set(lab, ansible_playbook, "sql-backup")
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    lab.faults(rules=[{"action": "AttachVolume", "error": "InvalidParameterValue", "count": 1}])
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "nothing was swapped" in result["error"], result
    host_as_it_was(lab, {"D:": live["D:"], "E:": live["E:"]}, before, devices)


def test_alongside_on_another_server_exposes_the_shadow_images_byte_for_byte(lab, ansible_playbook, inventory, tmp_path):
    snapshots, dummy = shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before = contents(lab, [live["D:"], live["E:"]] + [v["volume_id"] for v in lab.instance(WEB)["volumes"]])
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, target_hosts=WEB, restore_mode="alongside",
                          restore_source_instance_id=lab.instance(SQL)["instance_id"],
                          restore_mount_paths={"D:": "S:", "E:": "T:"})
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"]) == ("ok", "application"), result
    assert sorted(d["drive_letter"] for d in result["disks"]) == ["S", "T"]
    for shadow in result["shadows"]:
        assert shadow["outcome"] == "exposed"
        volume = next(v for v in result["volumes"] if v["shadow_id"] == shadow["shadow_id"])
        image = lab.snapshot_content(volume["snapshot_id"], shadow_id=shadow["shadow_id"])["files"]
        assert image
        for path, data in image.items():
            assert lab.read_file_bytes(WEB, shadow["expose_path"] + "\\" + path) == data
    after = contents(lab, [live["D:"], live["E:"]] + [v["volume_id"] for v in lab.instance(WEB)["volumes"]])
    assert after == before, "the live volumes of both servers are untouched"


def test_check_mode_prints_the_plan_and_creates_nothing(lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    volumes = set(volumes_of(lab))
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, check=True)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert result["status"] == "planned" and len(result["plan"]["revert"]) == 2 and len(result["plan"]["detach"]) == 2
    assert set(volumes_of(lab)) == volumes


@pytest.mark.parametrize("variables, expected", [
    ({"restore_set_id": "no-such-set"}, "no-such-set"),
    ({"restore_volumes": ["Q:"]}, "Q:"),
])
def test_bad_inputs_fail_clearly_and_create_nothing(lab, ansible_playbook, inventory, tmp_path, variables, expected):
    crash_set(lab, ansible_playbook, "sql-backup")
    volumes = set(volumes_of(lab))
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, **variables)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and expected in result["error"], result
    assert set(volumes_of(lab)) == volumes


def test_an_unknown_mode_is_refused_by_the_role_before_anything_runs(lab, ansible_playbook, inventory, tmp_path):
    volumes = set(volumes_of(lab))
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, restore_mode="sideways")
    assert run.rc != 0 and "restore_mode" in run.stdout and report is None, "the run ends at the role's argument check"
    assert set(volumes_of(lab)) == volumes
