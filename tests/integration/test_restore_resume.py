"""An in-place restore whose controller is killed mid-way, then run again with the same restore id; and a restore that
fails inside the role while creating its volumes.

The controller is frozen just before a given task of the role (callback_plugins/freeze_at_task.py: every task before
it finished, nothing of it ran) and killed with everything below it, as a crashed controller machine would be. The
re-run resumes from what EC2 (attachments, the volumes' tags) and the host (its record of the services the first
stop found running) say, and ends with the live volumes at the backup's point and consistent, SQL Server running
again, the originals kept unchanged, and nothing attached or online that the result does not list.
"""

import os
import subprocess

import pytest
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.restore_windows import record_name

from conftest import kill_controller, playbook_command
from test_backup import SQL, inventory  # noqa: F401 pylint: disable=unused-import
from test_restore_volumes import contents, create_volume_calls, device_map, originals, tags, volumes_of
from test_restore_windows import RESTORE, live_check, restore, shadow_backup

pytestmark = pytest.mark.integration

CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")
SWAP_TASK = "Swap the restored volumes in at the original devices"
RESTORED_TASK = "Bring the restored disks online, revert them to the shadow copies stored in them"
RESTORE_VARIABLES = {"target_hosts": SQL, "restore_set_id": "sql-backup", "restore_volumes": ["D:", "E:"]}
SERVICE_RECORDS = "C:\\ProgramData\\shadowsnap\\restores\\"
MUTATING = ("CreateVolume", "DeleteVolume", "AttachVolume", "DetachVolume", "CreateTags", "DeleteTags")


def killed_restore(lab, tmp_path, inventory, before_task):
    """A restore whose controller is frozen before ``before_task`` and then killed (SIGKILL, with its workers)."""
    command, environment = playbook_command(lab, tmp_path, RESTORE, RESTORE_VARIABLES, inventory=inventory, environment={
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS, "ANSIBLE_CALLBACKS_ENABLED": "freeze_at_task",
        "SHADOWSNAP_FREEZE_AT_TASK": before_task})
    with subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as controller:
        try:
            dummy, status = os.waitpid(controller.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), "the run ended before %r" % before_task
        finally:
            kill_controller(controller)
            controller.wait(timeout=60)


def services(lab):
    return {s["Name"]: s["Status"] for s in lab.host_state(SQL)["services"]}


def online_volumes(lab):
    """{drive letter: EBS volume ids} of what Windows has online on the SQL host."""
    return {v["drive_letter"]: v["volume_ids"] for v in lab.host_state(SQL)["volumes"] if v.get("drive_letter")}


def restored_volumes(lab):
    return sorted(v["VolumeId"] for v in volumes_of(lab).values() if "shadowsnap:restore:id" in tags(v))


def assert_restored_in_place(lab, result, live, before, devices, journal_before):
    """The host consistent at the backup's point, SQL Server running, the originals kept and unchanged, and attached
    and online exactly what the result lists."""
    assert (result["status"], result["consistency"], result["rolled_back"]) == ("ok", "application", False), result
    check = live_check(lab)
    assert check["consistent"] is True, check
    assert check["last_log_lsn"] < journal_before["last_log_lsn"], "the live volumes are back at the backup's point"
    assert services(lab)["MSSQLSERVER"] == "Running", "the service running before the first run runs again"
    restored = {v["source_volume_id"]: v["volume_id"] for v in result["volumes"]}
    assert restored_volumes(lab) == sorted(restored.values()), "the re-run used the first run's volumes, no more"
    assert device_map(lab) == dict(devices, xvdb=restored[live["D:"]], xvdc=restored[live["E:"]])
    stored = volumes_of(lab)
    assert all(stored[live[drive]]["State"] == "available" for drive in ("D:", "E:")), "the originals are kept"
    assert contents(lab, [live["D:"], live["E:"]]) == before, "the originals were not changed"
    online = online_volumes(lab)
    assert online["D"] == [restored[live["D:"]]] and online["E"] == [restored[live["E:"]]]
    attached = set(device_map(lab).values())
    assert {volume_id for ids in online.values() for volume_id in ids} <= attached, "nothing online that is not attached"
    assert lab.read_file_bytes(SQL, SERVICE_RECORDS + record_name(result["restore_id"]) + ".txt") is None, \
        "the host's record of the stopped services went with their start"


@pytest.mark.parametrize("before_task, at_the_kill", [
    (SWAP_TASK, "services stopped, originals offline, nothing swapped"),
    (RESTORED_TASK, "swapped, not reverted, the services not started"),
])
def test_a_controller_killed_mid_restore_then_a_rerun_ends_restored_and_consistent(
        lab, ansible_playbook, inventory, tmp_path, before_task, at_the_kill):
    dummy, journal_before = shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    assert services(lab)["MSSQLSERVER"] == "Running"

    lab.reset_host_counters(SQL)
    killed_restore(lab, tmp_path, inventory, before_task)
    assert services(lab)["MSSQLSERVER"] == "Stopped", at_the_kill
    attached = lab.counts()["actions"].get("AttachVolume", {}).get("ok", 0)
    assert attached == (0 if before_task == SWAP_TASK else 2), at_the_kill
    assert (device_map(lab)["xvdb"] == live["D:"]) == (before_task == SWAP_TASK), at_the_kill
    assert "shadow_revert" not in lab.host_counters(SQL)["agent"]["ops"], at_the_kill

    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert_restored_in_place(lab, result, live, before, devices, journal_before)
    assert [s["outcome"] for s in result["shadows"]] == ["reverted", "reverted"]
    if before_task == RESTORED_TASK:
        assert_a_rerun_changes_nothing(lab, ansible_playbook, inventory, tmp_path, live, before, devices, journal_before)


def assert_a_rerun_changes_nothing(lab, ansible_playbook, inventory, tmp_path, live, before, devices, journal_before):
    """A re-run after success: reported ok and application, no task changed anything, no EC2 change, SQL Server's
    writer never stopped or restarted."""
    lab.reset_counts()
    writer_history = lab.writer_history(SQL)
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (again,) = report["hosts"]
    assert_restored_in_place(lab, again, live, before, devices, journal_before)
    changed = [task["task"]["name"] for task in run.tasks if task["task"]["name"] != "Write the report"
               and any(host_result.get("changed") for host_result in task["hosts"].values())]
    assert changed == [], "a re-run after success changes nothing"
    assert not any(lab.counts()["actions"].get(action) for action in MUTATING), lab.counts()["actions"]
    assert lab.writer_history(SQL) == writer_history, "SQL Server was not stopped or restarted"


def test_a_rerun_after_a_kill_that_rolls_back_starts_the_services_of_the_first_run(lab, ansible_playbook, inventory, tmp_path):
    """Killed after the swap; the re-run's revert is refused, so it rolls back: the host is as it was before the first
    run, SQL Server included (the re-run found it stopped). A third run restores."""
    dummy, journal_before = shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    killed_restore(lab, tmp_path, inventory, RESTORED_TASK)
    assert services(lab)["MSSQLSERVER"] == "Stopped" and device_map(lab)["xvdb"] != live["D:"], "killed after the swap"

    lab.configure_host(SQL, vssadmin_revert="refuse")
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert (result["status"], result["rolled_back"], result["consistency"]) == ("failed", True, ""), result
    assert device_map(lab) == devices and contents(lab, [live["D:"], live["E:"]]) == before
    assert online_volumes(lab)["D"] == [live["D:"]] and online_volumes(lab)["E"] == [live["E:"]]
    assert services(lab)["MSSQLSERVER"] == "Running", "the rollback started what the first run had stopped"
    assert all(volumes_of(lab)[v["volume_id"]]["State"] == "available" for v in result["volumes"]), "kept, not attached"

    lab.configure_host(SQL, vssadmin_revert="accept")
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (again,) = report["hosts"]
    assert_restored_in_place(lab, again, live, before, devices, journal_before)


def test_create_volume_throttled_then_failing_halfway_fails_the_role_clearly_and_leaves_the_host_untouched(
        lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    live = originals(lab)
    before, devices = contents(lab, [live["D:"], live["E:"]]), device_map(lab)
    volumes_before = set(volumes_of(lab))
    host_before = lab.host_state(SQL)
    lab.volumes(storage_limit_gib=sum(v["Size"] for v in volumes_of(lab).values()) + 120)
    lab.faults(rules=[{"action": "CreateVolume", "error": "RequestLimitExceeded", "count": 2}])
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and result["rolled_back"] is False, result
    assert "VolumeLimitExceeded" in result["error"] and "deleted the volumes this run created" in result["error"]
    calls = create_volume_calls(lab)
    assert calls["throttled"] + calls["faults"] == 2 and calls["ok"] == 1, "D: created after throttling, E: refused"
    assert set(volumes_of(lab)) == volumes_before, "the one volume this run created was deleted, nothing else"
    assert device_map(lab) == devices and contents(lab, [live["D:"], live["E:"]]) == before
    host_after = lab.host_state(SQL)
    assert host_after["volumes"] == host_before["volumes"] and host_after["services"] == host_before["services"]
