"""The archive tier, snapshot locks and the Recycle Bin through real ansible-playbook runs against the lab.

An archived set is refused by a restore with a clear message, or brought back first when asked (the lab restores in
seconds what EC2 restores in up to 72 hours); a set deleted under a Recycle Bin rule is restored from the bin and is
complete again, byte for byte; a set under a legal hold (a compliance lock) is untouched by retention and reported.
"""

import datetime

import pytest

from test_backup import SQL
from test_restore_volumes import create_volume_calls, crash_set, run_module, run_restore, volumes_of
from test_retention import MODULE_TASK, RETENTION

pytestmark = pytest.mark.integration


def archive(lab, ansible_playbook, set_id):
    run, result = run_module("ec2_snapshot_set_tier", lab, ansible_playbook, set_id=set_id, storage_tier="archive",
                             wait=True, wait_timeout=30)
    assert run.rc == 0 and result["storage_tier"] == "archive", run.stdout
    return result


def test_an_archived_set_is_refused_by_a_restore_or_brought_back_first_when_asked(lab, ansible_playbook):
    found = crash_set(lab, ansible_playbook, "sql-archived")
    archive(lab, ansible_playbook, "sql-archived")
    instance_id = lab.instance(SQL)["instance_id"]
    before = set(volumes_of(lab))
    members = sorted(found["volume_snapshot_map"].values())

    run, refused = run_restore(lab, ansible_playbook, expect_failure=True, set_id="sql-archived", instance_id=instance_id)
    assert refused["failed"] and "has archived snapshots" in refused["msg"] and "restore_archived" in refused["msg"]
    lab.tier_settings(restore_seconds=3600)
    for dummy in range(2):
        run, started = run_restore(lab, ansible_playbook, expect_failure=True, set_id="sql-archived",
                                   instance_id=instance_id, restore_archived="temporary", archive_restore_days=2)
        assert started["failed"] and "being restored to the standard tier" in started["msg"], started["msg"]
        assert "up to 72 hours" in started["msg"] and "no volume was created" in started["msg"]
    assert set(volumes_of(lab)) == before and create_volume_calls(lab)["attempts"] == 0
    assert lab.counts()["actions"]["RestoreSnapshotTier"]["ok"] == len(members), "the re-run restored no member twice"

    lab.tier_settings(restore_seconds=0)
    run, restored = run_restore(lab, ansible_playbook, set_id="sql-archived", instance_id=instance_id,
                                restore_archived="temporary", archive_restore_days=2)
    assert run.rc == 0, run.stdout
    assert restored["restored_from_archive"] == [], "the restore another run started had finished"
    for volume in restored["volumes"]:
        assert lab.volume_content(volume["volume_id"])["files"] == lab.snapshot_content(volume["snapshot_id"])["files"]
    assert {v["source_volume_id"] for v in restored["volumes"]} == set(found["volume_snapshot_map"])

    crash_set(lab, ansible_playbook, "sql-archived-2")
    archive(lab, ansible_playbook, "sql-archived-2")
    run, permanent = run_restore(lab, ansible_playbook, set_id="sql-archived-2", instance_id=instance_id,
                                 restore_archived="permanent", archive_wait_timeout=60)
    assert run.rc == 0, run.stdout
    assert len(permanent["restored_from_archive"]) == len(permanent["volumes"]) == len(members)


def test_a_deleted_set_restored_from_the_recycle_bin_is_complete_again(lab, ansible_playbook):
    run, bin_rule = run_module("ec2_snapshot_recycle_bin_rule", lab, ansible_playbook, state="present", retention_days=7)
    assert run.rc == 0 and bin_rule["covered"] and bin_rule["changed"], run.stdout
    found = crash_set(lab, ansible_playbook, "sql-oops")
    contents = {snapshot_id: lab.snapshot_content(snapshot_id)["files"] for snapshot_id in found["volume_snapshot_map"].values()}
    instance_id = lab.instance(SQL)["instance_id"]
    run, deleted = run_module("ec2_snapshot_set", lab, ansible_playbook, state="absent", set_id="sql-oops",
                              instance_id=instance_id)
    assert run.rc == 0 and deleted["status"] == "deleted", run.stdout
    assert {entry["outcome"] for entry in lab.deletions()} == {"recycled"}

    lab.recycle_bin_settings(recover_seconds=3)
    run, undeleted = run_module("ec2_snapshot_set_undelete", lab, ansible_playbook, set_id="sql-oops")
    assert run.rc == 0, run.stdout
    assert undeleted["status"] == "completed" and sorted(undeleted["restored_snapshot_ids"]) == sorted(contents)
    run, info = run_module("ec2_snapshot_set_info", lab, ansible_playbook, set_ids=["sql-oops"])
    restored = info["sets"][0]
    assert restored["complete"] and restored["volume_snapshot_map"] == found["volume_snapshot_map"]
    assert {snapshot_id: lab.snapshot_content(snapshot_id)["files"] for snapshot_id in contents} == contents
    run, volumes = run_restore(lab, ansible_playbook, set_id="sql-oops", instance_id=instance_id)
    assert run.rc == 0 and len(volumes["volumes"]) == len(contents), "restorable from its tags alone"


def test_a_set_under_a_legal_hold_is_untouched_by_retention_and_reported(lab, ansible_playbook, tmp_path):
    held = crash_set(lab, ansible_playbook, "sql-held", policy="nightly")
    newest = crash_set(lab, ansible_playbook, "sql-newest", policy="nightly")
    lab.backdate_set("sql-held", (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=40)).isoformat())
    run, locked = run_module("ec2_snapshot_set_lock", lab, ansible_playbook, set_id="sql-held", lock_mode="compliance",
                             lock_duration_days=30)
    assert run.rc == 0 and {entry["state"] for entry in locked["locks"]} == {"compliance"}, run.stdout

    run = ansible_playbook(lab, RETENTION, {"retention_keep_last": 1, "retention_policy": "nightly",
                                            "retention_report_path": str(tmp_path / "report.json")})
    assert run.rc == 0, run.stdout
    result = run.result(MODULE_TASK)
    kept = dict((entry["set_id"], entry["reasons"]) for entry in result["kept_sets"])
    assert kept["sql-held"][0] == "no rule of the policy keeps it"
    assert sorted(reason.split(" ")[1] for reason in kept["sql-held"] if reason.startswith("locked: ")) == sorted(
        held["volume_snapshot_map"].values())
    assert "sql-newest" in kept and result["deleted_sets"] == [] and lab.deletions() == []
    assert sorted(s["SnapshotId"] for s in lab.ec2().describe_snapshots(OwnerIds=["self"])["Snapshots"]) == sorted(
        list(held["volume_snapshot_map"].values()) + list(newest["volume_snapshot_map"].values()))
