"""The archive tier of whole sets against the lab: ec2_snapshot_set_tier (archive, bring back, refusals, check mode),
ec2_snapshot_set ``state: absent`` and ec2_snapshot_set_retention refusing to delete a set archived less than 90 days
ago unless forced, and retention's archive rule."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set as set_module
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set_tier as module
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    UTC, Module, ec2, lab_fixture, lab_process_fixture, make_set, present, register_image_using)
from unit.plugins.modules.test_ec2_snapshot_set_retention import daily_history, run as run_retention

DEFAULTS = dict(instance_id=None, temporary_restore_days=None, permanent_restore=False, wait=False, wait_timeout=60)


def change(lab, set_id, storage_tier, check_mode=False, **params):
    return module.change_tier(Module(lab, dict(DEFAULTS, set_id=set_id, storage_tier=storage_tier, **params),
                                     check_mode=check_mode))


def tiers(lab, snapshot_ids):
    listed = lab.ec2().describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
    return dict((snapshot["SnapshotId"], snapshot["StorageTier"]) for snapshot in listed)


def test_a_set_is_archived_whole_and_a_rerun_changes_nothing(lab):
    members = make_set(lab, "yearly")
    planned = change(lab, "yearly", "archive", check_mode=True)
    assert sorted(planned["started_snapshot_ids"]) == members and set(tiers(lab, members).values()) == {"standard"}
    lab.tier_settings(archive_seconds=30)
    result = change(lab, "yearly", "archive")
    assert result["changed"] and sorted(result["started_snapshot_ids"]) == members
    assert result["storage_tier"] == "archival-in-progress"
    assert {entry["state"] for entry in result["snapshots"]} == {"archival-in-progress"}
    again = change(lab, "yearly", "archive")
    assert again["changed"] is False and again["started_snapshot_ids"] == [], "members on their way are left to finish"


def test_an_archived_set_is_brought_back_for_a_while_or_for_good_and_waited_for(lab):
    members = make_set(lab, "audit")
    change(lab, "audit", "archive")
    assert set(tiers(lab, members).values()) == {"archive"}
    lab.tier_settings(restore_seconds=1)
    result = change(lab, "audit", "standard", temporary_restore_days=7, wait=True, wait_timeout=30)
    assert result["changed"] and result["storage_tier"] == "standard" and sorted(result["started_snapshot_ids"]) == members
    statuses = set_tiers.tier_statuses(ec2(lab), members)
    assert {s["LastTieringOperationStatus"] for s in statuses.values()} == {"temporary-restore-completed"}
    assert change(lab, "audit", "standard", temporary_restore_days=7)["changed"] is False
    permanent = change(lab, "audit", "standard", permanent_restore=True)
    assert sorted(permanent["started_snapshot_ids"]) == members, "a temporary restore is made permanent"
    statuses = set_tiers.tier_statuses(ec2(lab), members)
    assert {s["LastTieringOperationStatus"] for s in statuses.values()} == {"permanent-restore-completed"}


def test_a_wait_that_runs_out_says_what_is_on_its_way_and_that_ec2_takes_up_to_72_hours(lab):
    make_set(lab, "slow")
    change(lab, "slow", "archive")
    lab.tier_settings(restore_seconds=60)
    with pytest.raises(Exception, match="not in the standard tier after 0 s .*temporary-restore-in-progress.*72 hours"):
        change(lab, "slow", "standard", temporary_restore_days=1, wait=True, wait_timeout=0)


def test_incomplete_and_ami_used_sets_are_refused_before_any_change(lab):
    members = make_set(lab, "half")
    lab.ec2().delete_snapshot(SnapshotId=members[0])
    with pytest.raises(set_tiers.TierError, match="set half is incomplete; only complete sets are archived"):
        change(lab, "half", "archive")
    used = make_set(lab, "used")
    register_image_using(lab, used[1])
    with pytest.raises(set_tiers.TierError, match="snapshots an AMI uses \\(%s\\)" % used[1]):
        change(lab, "used", "archive")
    with pytest.raises(set_tiers.TierError, match="belong to instances"):
        change(lab, "used", "archive", instance_id="i-0000000000000000f")
    assert set(tiers(lab, used + members[1:]).values()) == {"standard"}
    assert "ModifySnapshotTier" not in lab.counts()["actions"]


def absent(lab, set_id, **params):
    task = Module(lab, dict({"state": "absent", "instance_id": lab.instance("win-sql-01")["instance_id"],
                             "set_id": set_id, "force_archived_delete": False}, **params))
    return set_module.remove_snapshot_set(task, set_id)


def test_deleting_a_set_archived_less_than_90_days_ago_is_refused_with_the_cost_unless_forced(lab):
    members = make_set(lab, "young")
    for snapshot_id in members:
        lab.set_snapshot_tier(snapshot_id, "archive", (datetime.datetime.now(UTC) - datetime.timedelta(days=30)).isoformat())
    with pytest.raises(snapshot_sets.SnapshotSetError) as raised:
        absent(lab, "young")
    message = str(raised.value)
    assert "archived less than 90 days ago" in message and "%s 30 days, 60 days still billed" % members[0] in message
    assert "force_archived_delete" in message and present(lab, members) == members
    assert sorted(absent(lab, "young", force_archived_delete=True)["deleted_snapshot_ids"]) == members

    old = make_set(lab, "old")
    for snapshot_id in old:
        lab.set_snapshot_tier(snapshot_id, "archive", (datetime.datetime.now(UTC) - datetime.timedelta(days=91)).isoformat())
    assert absent(lab, "old")["deleted_snapshot_ids"] == old, "past its 90 days an archived set goes like any other"


def test_retention_archives_kept_sets_by_count_and_age_and_holds_young_archived_deletions(lab):
    daily_history(lab, 6)
    planned, dummy = run_retention(lab, check_mode=True, keep_last=5, archive_keep_standard=2, archive_after_days=3)
    now = datetime.datetime.now(UTC)
    old_enough = [entry["set_id"] for entry in planned["kept_sets"][2:]
                  if now - datetime.datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00"))
                  >= datetime.timedelta(days=3)]
    assert "night-04" in old_enough, "daily_history's sets are at 01:00: night-04 is at least 3 days old"
    assert [entry["set_id"] for entry in planned["archived_sets"]] == old_enough
    assert planned["archived_sets"][-1]["reasons"][-2:] == [
        "archived: older than 3 days", "archived: beyond the newest 2 complete sets kept in the standard tier"]
    assert planned["archived_sets"][-1]["started_snapshot_ids"] == [] and "ModifySnapshotTier" not in lab.counts()["actions"]

    result, dummy = run_retention(lab, keep_last=5, archive_keep_standard=2)
    assert sorted(entry["set_id"] for entry in result["deleted_sets"]) == ["night-05", "night-06"]
    assert [entry["set_id"] for entry in result["archived_sets"]] == ["night-02", "night-03", "night-04"]
    archived = [snapshot_id for entry in result["archived_sets"] for snapshot_id in entry["started_snapshot_ids"]]
    assert set(tiers(lab, archived).values()) == {"archive"} and result["counts"]["archived"] == 3
    assert run_retention(lab, keep_last=5, archive_keep_standard=2)[0]["archived_sets"] == [], "a rerun archives nothing"

    result, warnings = run_retention(lab, keep_last=2)
    assert result["deleted_sets"] == [] and result["changed"] is False
    held = dict((entry["set_id"], entry["reasons"][-1]) for entry in result["skipped_sets"])
    assert sorted(held) == ["night-02", "night-03", "night-04"]
    assert held["night-02"].startswith("not deleted: set night-02 was archived less than 90 days ago")
    assert len(warnings) == 3 and present(lab, archived) == sorted(archived)
    forced, dummy = run_retention(lab, keep_last=2, force_archived_delete=True)
    assert sorted(entry["set_id"] for entry in forced["deleted_sets"]) == ["night-02", "night-03", "night-04"]
