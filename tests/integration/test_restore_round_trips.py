"""What an in-place restore costs, counted by the lab: WinRM round trips per host and mutating EC2 calls per volume,
through playbooks/restore.yml (the figures docs/benchmarks/restore.md measures at scale), and a stop of the services
that fails before the swap: nothing taken offline, nothing swapped, the services started again."""

import pytest

from test_backup import SQL, backup, inventory  # noqa: F401 pylint: disable=unused-import
from test_restore_volumes import device_map, originals
from test_restore_windows import restore

pytestmark = pytest.mark.integration

READS = ("Describe", "Get", "List")


def test_an_in_place_restore_of_two_volumes_takes_five_round_trips_and_four_mutating_calls_per_volume(
        lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0 and report["hosts"][0]["consistency"] == "application", run.stdout
    lab.reset_counts()
    lab.reset_host_counters()
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"]) == ("ok", "application"), result
    agent = lab.host_counters()[SQL]["agent"]
    assert agent["round_trips"] == 5, agent
    actions = {action: entry["attempts"] for action, entry in lab.counts()["actions"].items()}
    mutating = {action: count for action, count in actions.items() if not action.startswith(READS)}
    assert mutating == {"CreateVolume": 2, "DetachVolume": 2, "AttachVolume": 2, "CreateTags": 2}, mutating


def test_a_stop_that_fails_before_the_swap_changes_nothing(lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0, run.stdout
    live, devices = originals(lab), device_map(lab)
    lab.replay(SQL, "service_set", error={"message": "Access is denied.", "hresult": "0x80070005"})
    run, report = restore(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "nothing was swapped" in result["error"], result
    assert "no volume was taken offline" in result["error"]
    assert device_map(lab) == devices
    state = lab.host_state(SQL)
    letters = {v["drive_letter"]: v["volume_ids"] for v in state["volumes"]}
    assert letters["D"] == [live["D:"]] and letters["E"] == [live["E:"]]
    assert lab.host_counters()[SQL]["agent"]["ops"].get("disk_offline", 0) == 0
