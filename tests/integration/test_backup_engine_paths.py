"""The crash and aws_vss engines of the backup role take exactly the volumes backup_volumes names and record their
Windows paths, so that a restore by drive letter finds them; a host that cannot be read says so in its result.

The SQL-like host has C: (boot), D: (data), E: (log) and F: (backup target); real ansible-playbook runs against
the lab's WinRM host and moto.
"""

import pytest

from test_backup import SQL, backup, inventory, lab_snapshots  # pylint: disable=unused-import  # inventory: the fixture
from test_restore_volumes import run_restore

pytestmark = pytest.mark.integration


def volume_of(lab, drive):
    return next(v["volume_id"] for v in lab.instance(SQL)["volumes"] if v["drive"] == drive)


def paths_tag(snapshot):
    """The paths field of the snapshot's own shadowsnap:volume entry."""
    entry = snapshot["tags"]["shadowsnap:volume:" + snapshot["VolumeId"]]
    return dict(field.split("=", 1) for field in entry.split(";"))["paths"]


@pytest.mark.parametrize("engine", ["crash", "aws_vss"])
def test_exactly_the_named_volumes_are_snapshotted_and_tagged_with_their_drive_letters(
        lab, ansible_playbook, inventory, tmp_path, engine):
    set_id = "sql-paths-" + engine
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_engine=engine, backup_set_id=set_id)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert result["status"] == "ok" and result["paths_recorded"] is True, result
    data, log = volume_of(lab, "D:"), volume_of(lab, "E:")
    snapshots = lab_snapshots(lab)
    assert sorted(s["VolumeId"] for s in snapshots) == sorted([data, log]), "exactly D: and E:, neither C: nor F:"
    assert set(result["snapshots"]) == {data, log}
    assert {s["VolumeId"]: paths_tag(s) for s in snapshots} == {data: "D:\\", log: "E:\\"}
    assert all(s["tags"]["shadowsnap:set-id"] == set_id for s in snapshots)

    restore_run, plan = run_restore(lab, ansible_playbook, check=True, set_id=set_id,
                                    instance_id=lab.instance(SQL)["instance_id"], volumes=["D:"])
    assert restore_run.rc == 0, restore_run.stdout
    assert [v["source_volume_id"] for v in plan["volumes"]] == [data]


def test_volumes_named_by_volume_id_and_device_are_tagged_with_their_paths(lab, ansible_playbook, inventory, tmp_path):
    data = volume_of(lab, "D:")
    log_device = next(v["device"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "E:")
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_engine="crash",
                         backup_volumes=[data, log_device])
    assert run.rc == 0, run.stdout
    snapshots = lab_snapshots(lab)
    assert {s["VolumeId"]: paths_tag(s) for s in snapshots} == {data: "D:\\", volume_of(lab, "E:"): "E:\\"}


def test_the_boot_volume_joins_with_its_path_when_included(lab, ansible_playbook, inventory, tmp_path):
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_engine="crash", backup_include_boot=True)
    assert run.rc == 0, run.stdout
    snapshots = lab_snapshots(lab)
    assert {s["VolumeId"]: paths_tag(s) for s in snapshots} == {
        volume_of(lab, "C:"): "C:\\", volume_of(lab, "D:"): "D:\\", volume_of(lab, "E:"): "E:\\"}


def test_a_fallback_without_winrm_says_that_no_paths_are_recorded_and_which_volumes_it_took(
        lab, ansible_playbook, inventory, tmp_path):
    lab.host_fault(SQL, "drop_connection", times=None)
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_fallback="crash")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["fallback"], result["paths_recorded"]) == ("fallback", True, False), result
    assert "no Windows paths are recorded" in result["volumes_note"]
    assert "every data volume" in result["volumes_note"]
    taken = {volume_of(lab, drive) for drive in ("D:", "E:", "F:")}
    snapshots = lab_snapshots(lab)
    assert set(result["snapshots"]) == taken == {s["VolumeId"] for s in snapshots}
    assert all(paths_tag(s) == "" for s in snapshots)


def test_without_winrm_volumes_named_by_id_or_device_are_still_exactly_what_is_taken(
        lab, ansible_playbook, inventory, tmp_path):
    lab.host_fault(SQL, "drop_connection", times=None)
    data = volume_of(lab, "D:")
    log_device = next(v["device"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "E:")
    run, report = backup(lab, ansible_playbook, inventory, tmp_path, backup_engine="crash",
                         backup_volumes=[data, log_device])
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["paths_recorded"]) == ("ok", False), result
    assert "the volumes named %s, %s" % (data, log_device) in result["volumes_note"]
    snapshots = lab_snapshots(lab)
    assert {s["VolumeId"]: paths_tag(s) for s in snapshots} == {data: "", volume_of(lab, "E:"): ""}
