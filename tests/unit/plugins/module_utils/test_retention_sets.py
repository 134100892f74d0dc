"""The safety rules around a retention plan of snapshot sets, on summaries built by snapshot_sets itself."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import retention, snapshot_sets, snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.set_retention import plan_set_retention

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "eu-west-1"
VOLUMES = {"vol-root": {"device": "/dev/sda1"}, "vol-data": {"device": "xvdb", "paths": ["D:\\"]}}


def days_ago(days, hours=0):
    return NOW - datetime.timedelta(days=days, hours=hours)


def described(set_id, created_at, instance_id="i-1", consistency="application", policy="daily", owner=ACCOUNT,
              state="completed", schema=snapshot_tags.SCHEMA_VERSION, extra_tags=None):
    """The DescribeSnapshots entries of one set, tagged by the schema module as ec2_snapshot_set tags them."""
    tags = snapshot_tags.build_set_tags(
        set_id=set_id, instance_id=instance_id, engine="shadow", consistency=consistency, created_at=created_at,
        version="0.1.0", volumes=VOLUMES, policy=policy)
    tags[snapshot_tags.KEY_SCHEMA] = schema
    snapshots = []
    for volume_id in sorted(VOLUMES):
        member_tags = dict(tags, **(extra_tags or {}).get(volume_id, {}))
        snapshots.append({
            "SnapshotId": "snap-%s-%s" % (set_id, volume_id[len("vol-"):]), "VolumeId": volume_id, "State": state,
            "OwnerId": owner, "StartTime": created_at, "VolumeSize": 30,
            "Tags": [{"Key": key, "Value": value} for key, value in sorted(member_tags.items())],
        })
    return snapshots


def summaries(*described_sets, region=REGION):
    """Set summaries as the retention module hands them over: grouped by snapshot_sets, with owner and Region."""
    snapshots = [snapshot for entries in described_sets for snapshot in entries]
    owners = dict((snapshot["SnapshotId"], snapshot["OwnerId"]) for snapshot in snapshots)
    grouped = snapshot_sets.group_sets(snapshots)
    for summary in grouped:
        summary["region"] = region
        for member in summary["snapshots"]:
            member["owner_id"] = owners[member["snapshot_id"]]
    return grouped


def plan(sets, policy, **kwargs):
    arguments = dict(now=NOW, account_id=ACCOUNT, region=REGION)
    arguments.update(kwargs)
    result = plan_set_retention(sets, policy, **arguments)
    planned = [entry["set_id"] for part in ("keep", "delete", "skipped") for entry in result[part]]
    assert sorted(planned) == sorted(summary["set_id"] for summary in sets)
    return result


def decisions(result):
    return dict((entry["set_id"], (part, entry["reasons"])) for part in ("keep", "delete", "skipped") for entry in result[part])


def nightly(count, instance_id="i-1", consistency="application", policy="daily", first=1):
    return [described("%s-%s-%02d" % (instance_id, policy, day), days_ago(day), instance_id=instance_id,
                      consistency=consistency, policy=policy) for day in range(first, first + count)]


def test_rules_decide_on_complete_sets_and_every_decision_has_reasons():
    result = plan(summaries(*nightly(5)), {"keep_last": 2})
    assert decisions(result) == {
        "i-1-daily-01": ("keep", ["last snapshot", "newest complete application set of i-1"]),
        "i-1-daily-02": ("keep", ["last snapshot"]),
        "i-1-daily-03": ("delete", ["no rule of the policy keeps it"]),
        "i-1-daily-04": ("delete", ["no rule of the policy keeps it"]),
        "i-1-daily-05": ("delete", ["no rule of the policy keeps it"]),
    }
    deleted = result["delete"][0]
    assert deleted["snapshot_ids"] == ["snap-i-1-daily-03-data", "snap-i-1-daily-03-root"]
    assert (deleted["instance_id"], deleted["policy"], deleted["status"], deleted["consistency"]) == (
        "i-1", "daily", "completed", "application")
    assert deleted["created_at"] == "2026-06-27T12:00:00Z"


def test_sets_are_planned_per_instance():
    result = plan(summaries(*(nightly(3, "i-1") + nightly(3, "i-2"))), {"keep_last": 1})
    assert sorted(entry["set_id"] for entry in result["keep"]) == ["i-1-daily-01", "i-2-daily-01"]


def test_sets_are_planned_per_policy_and_other_policies_can_be_left_alone():
    sets = summaries(*(nightly(3, policy="daily") + nightly(3, policy="monthly")))
    result = plan(sets, {"keep_last": 1})
    assert sorted(entry["set_id"] for entry in result["keep"]) == ["i-1-daily-01", "i-1-monthly-01"]
    only_daily = decisions(plan(sets, {"keep_last": 1}, policy_name="daily"))
    assert only_daily["i-1-monthly-02"] == ("skipped", ["skipped: policy monthly, not daily"])
    assert only_daily["i-1-daily-02"][0] == "delete"


def test_only_sets_of_this_account_and_region_that_carry_the_schema_are_touched():
    foreign = summaries(described("foreign", days_ago(30), owner="210987654321"))
    elsewhere = summaries(described("elsewhere", days_ago(30)), region="us-east-1")
    unknown_region = summaries(described("unknown-region", days_ago(30)))
    del unknown_region[0]["region"]
    unknown_owner = summaries(described("unknown-owner", days_ago(30)))
    del unknown_owner[0]["snapshots"][0]["owner_id"]
    newer_schema = summaries(described("newer-schema", days_ago(30), schema="2"))
    no_created_at = summaries(described("no-created-at", days_ago(30), extra_tags={
        "vol-root": {snapshot_tags.KEY_CREATED_AT: "yesterday"}, "vol-data": {snapshot_tags.KEY_CREATED_AT: "yesterday"}}))
    untagged = summaries(described("untagged", days_ago(30)))
    del untagged[0]["snapshots"][1]["tags"][snapshot_tags.KEY_SCHEMA]
    sets = summaries(*nightly(2)) + foreign + elsewhere + unknown_region + unknown_owner + newer_schema + no_created_at + untagged
    result = decisions(plan(sets, {"keep_last": 1}))
    assert result["foreign"] == ("skipped", ["skipped: snapshots owned by account 210987654321, not %s" % ACCOUNT])
    assert result["elsewhere"] == ("skipped", ["skipped: in Region us-east-1, not eu-west-1"])
    assert result["unknown-region"] == ("skipped", ["skipped: in Region (unknown), not eu-west-1"])
    assert result["unknown-owner"] == ("skipped", ["skipped: snapshots owned by account (unknown), not %s" % ACCOUNT])
    assert result["newer-schema"] == ("skipped", ["skipped: tag schema version 2, not 1, which this collection reads"])
    assert result["no-created-at"] == ("skipped", ["skipped: created-at tag 'yesterday' is missing or malformed"])
    assert result["untagged"] == ("skipped", ["skipped: snapshots snap-untagged-data do not carry the collection's tag schema"])
    assert result["i-1-daily-02"][0] == "delete"


def test_the_newest_complete_application_set_is_kept_when_the_rules_would_delete_it():
    # The last two nights fell back to crash consistency.
    sets = summaries(*(nightly(2, consistency="crash") + nightly(3, consistency="application", first=3)))
    result = decisions(plan(sets, {"keep_last": 1}))
    assert result["i-1-daily-01"] == ("keep", ["last snapshot"])
    assert result["i-1-daily-02"] == ("delete", ["no rule of the policy keeps it"])
    assert result["i-1-daily-03"] == ("keep", ["no rule of the policy keeps it", "newest complete application set of i-1"])
    assert result["i-1-daily-04"][0] == result["i-1-daily-05"][0] == "delete"


def test_an_incomplete_or_unverified_set_is_never_the_newest_complete_application_set():
    damaged = described("damaged", days_ago(2))[1:]  # its vol-root member is gone
    mixed = described("mixed", days_ago(3), extra_tags={"vol-data": {snapshot_tags.KEY_CONSISTENCY: "unverified"}})
    sets = summaries(described("crash", days_ago(1), consistency="crash"), damaged, mixed, described("good", days_ago(4)))
    result = decisions(plan(sets, {"keep_last": 1}))
    assert result["good"] == ("keep", ["no rule of the policy keeps it", "newest complete application set of i-1"])
    assert result["damaged"][0] == result["mixed"][0] == "delete"


@pytest.mark.parametrize("tags, reason", [
    ({snapshot_tags.KEY_HOLD: "case 4711"}, "held: shadowsnap:hold on snap-i-1-daily-04-data (case 4711)"),
    ({snapshot_tags.KEY_HOLD: ""}, "held: shadowsnap:hold on snap-i-1-daily-04-data"),
])
def test_a_hold_tag_on_any_member_keeps_the_whole_set(tags, reason):
    sets = nightly(3) + [described("i-1-daily-04", days_ago(4), extra_tags={"vol-data": tags})]
    result = decisions(plan(summaries(*sets), {"keep_last": 1}))
    assert result["i-1-daily-04"] == ("keep", ["no rule of the policy keeps it", reason])
    assert result["i-1-daily-03"] == result["i-1-daily-02"] == ("delete", ["no rule of the policy keeps it"])


def test_a_snapshot_lock_keeps_the_whole_set():
    locks = {"snap-i-1-daily-03-root": "compliance mode until 2027-01-01T00:00:00Z"}
    result = decisions(plan(summaries(*nightly(4)), {"keep_last": 1}, locked_snapshots=locks))
    assert result["i-1-daily-03"] == ("keep", [
        "no rule of the policy keeps it", "locked: snap-i-1-daily-03-root (compliance mode until 2027-01-01T00:00:00Z)"])
    assert result["i-1-daily-04"][0] == "delete"


def test_a_set_whose_snapshot_an_ami_uses_is_kept_and_reported():
    images = {"snap-i-1-daily-02-root": ["ami-0b", "ami-0a"], "snap-i-1-daily-04-data": "ami-0c"}
    result = decisions(plan(summaries(*nightly(4)), {"keep_last": 1}, image_snapshots=images))
    assert result["i-1-daily-02"] == ("keep", ["no rule of the policy keeps it", "in use: snap-i-1-daily-02-root backs AMI ami-0a, ami-0b"])
    assert result["i-1-daily-04"] == ("keep", ["no rule of the policy keeps it", "in use: snap-i-1-daily-04-data backs AMI ami-0c"])
    assert result["i-1-daily-03"][0] == "delete"


def test_protections_are_reported_on_sets_the_rules_keep_too_and_do_not_change_the_slots():
    sets = summaries(*nightly(4))
    plain = decisions(plan(sets, {"keep_daily": 2}))
    held = decisions(plan(sets, {"keep_daily": 2}, locked_snapshots={"snap-i-1-daily-01-root": None,
                                                                     "snap-i-1-daily-04-root": None}))
    assert held["i-1-daily-01"] == ("keep", plain["i-1-daily-01"][1] + ["locked: snap-i-1-daily-01-root"])
    assert held["i-1-daily-04"] == ("keep", ["no rule of the policy keeps it", "locked: snap-i-1-daily-04-root"])
    assert held["i-1-daily-02"] == plain["i-1-daily-02"] and held["i-1-daily-03"] == plain["i-1-daily-03"]


def test_young_unverified_sets_are_kept_and_fill_no_slot():
    sets = summaries(
        described("running", days_ago(0, hours=2), consistency="unverified"),
        described("today", days_ago(0, hours=5)),
        described("yesterday", days_ago(1, hours=5)),
        described("old-unverified", days_ago(3), consistency="unverified"),
    )
    result = decisions(plan(sets, {"keep_daily": 1}))
    assert result["running"] == ("keep", ["unverified and younger than 1d: its backup may still be running; fills no slot"])
    assert result["today"] == ("keep", ["daily snapshot", "newest complete application set of i-1"])
    # An old unverified set is treated like a crash set: it takes part in the rules.
    assert result["old-unverified"] == ("delete", ["no rule of the policy keeps it"])
    assert decisions(plan(sets, {"keep_daily": 3}))["old-unverified"] == ("keep", ["daily snapshot"])


def test_the_age_under_which_a_backup_may_still_run_is_configurable():
    sets = summaries(described("running", days_ago(0, hours=2), consistency="unverified"), *nightly(2))
    result = decisions(plan(sets, {"keep_last": 1}, min_age=datetime.timedelta(hours=1, minutes=30)))
    assert result["running"] == ("keep", ["last snapshot"])
    result = decisions(plan(sets, {"keep_last": 1}, min_age=datetime.timedelta(hours=3, minutes=5)))
    assert result["running"] == ("keep", ["unverified and younger than 3h5min: its backup may still be running; fills no slot"])


def test_incomplete_sets_never_fill_a_slot_and_are_deleted_whole():
    broken = described("i-1-daily-01", days_ago(1))[1:]
    result = plan(summaries(broken, *nightly(3, first=2)), {"keep_last": 1})
    assert decisions(result)["i-1-daily-01"] == ("delete", [
        "incomplete: volumes vol-data have no snapshot left (an interrupted deletion or a lost snapshot); fills no slot"])
    assert [entry["set_id"] for entry in result["keep"]] == ["i-1-daily-02"]
    assert result["delete"][0]["snapshot_ids"] == ["snap-i-1-daily-01-root"]
    assert result["delete"][0]["status"] == "incomplete"


def test_an_interrupted_deletion_is_finished_by_the_next_run_and_nothing_else_changes():
    sets = nightly(6)
    policy = {"keep_last": 2, "keep_weekly": 1}
    first = plan(summaries(*sets), policy)
    planned = [entry["set_id"] for entry in first["delete"]]
    assert planned == ["i-1-daily-03", "i-1-daily-04", "i-1-daily-05", "i-1-daily-06"]
    # The run died after deleting all of set 03, and one member of set 05.
    gone = set(first["delete"][0]["snapshot_ids"]) | {first["delete"][2]["snapshot_ids"][0]}
    left = [[snapshot for snapshot in entries if snapshot["SnapshotId"] not in gone] for entries in sets]
    second = plan(summaries(*[entries for entries in left if entries]), policy)
    assert [entry["set_id"] for entry in second["keep"]] == [entry["set_id"] for entry in first["keep"]]
    assert [entry["set_id"] for entry in second["delete"]] == ["i-1-daily-04", "i-1-daily-05", "i-1-daily-06"]
    finishing = second["delete"][1]
    assert finishing["status"] == "incomplete" and finishing["snapshot_ids"] == [first["delete"][2]["snapshot_ids"][1]]
    assert finishing["reasons"][0].startswith("incomplete: volumes vol-data have no snapshot left")


def test_a_partly_deleted_set_is_never_taken_for_a_complete_one_even_when_it_is_the_newest():
    sets = [described("i-1-daily-01", days_ago(1))[:1]] + nightly(2, first=2)
    result = decisions(plan(summaries(*sets), {"keep_last": 1}))
    assert result["i-1-daily-01"][0] == "delete"
    assert result["i-1-daily-02"] == ("keep", ["last snapshot", "newest complete application set of i-1"])


def test_young_incomplete_sets_are_kept_until_their_backup_cannot_be_running():
    young = described("young", days_ago(0, hours=1))[1:]
    result = decisions(plan(summaries(young, *nightly(2)), {"keep_last": 1}))
    assert result["young"] == ("keep", [
        "incomplete: volumes vol-data have no snapshot left (an interrupted deletion or a lost snapshot); fills no slot",
        "younger than 1d: its backup may still be running"])
    assert result["i-1-daily-01"] == ("keep", ["last snapshot", "newest complete application set of i-1"])


def test_failed_sets_fill_no_slot_and_are_deleted_once_old():
    failed = described("failed", days_ago(1, hours=1), state="error")
    result = decisions(plan(summaries(failed, *nightly(2, first=2)), {"keep_last": 1}))
    assert result["failed"] == ("delete", [
        "failed: snapshots snap-failed-root, snap-failed-data are in state error; fills no slot"])
    assert result["i-1-daily-02"] == ("keep", ["last snapshot", "newest complete application set of i-1"])


def test_pending_sets_are_kept_and_fill_no_slot():
    pending = described("pending", days_ago(3), state="pending")
    result = decisions(plan(summaries(pending, *nightly(1, first=4)), {"keep_last": 1}))
    assert result["pending"] == ("keep", [
        "pending: snapshots snap-pending-root, snap-pending-data are still being created; fills no slot",
        "kept: a set still being created is never deleted"])
    assert result["i-1-daily-04"] == ("keep", ["last snapshot", "newest complete application set of i-1"])


def test_an_empty_policy_is_refused_even_without_sets():
    with pytest.raises(retention.RetentionPolicyError, match="keeps nothing"):
        plan_set_retention([], {"keep_daily": 0}, now=NOW, account_id=ACCOUNT, region=REGION)


@pytest.mark.parametrize("account_id, region", [(None, REGION), (ACCOUNT, None), ("", "")])
def test_the_account_and_region_are_required(account_id, region):
    with pytest.raises(retention.RetentionPolicyError, match="account id and the Region"):
        plan_set_retention(summaries(*nightly(1)), {"keep_last": 1}, now=NOW, account_id=account_id, region=region)


def test_calendar_rules_follow_the_policy_time_zone_through_the_safety_layer():
    # 23:30 and 22:30 UTC on 28 June are 29 June in Tokyo.
    sets = summaries(
        described("late", datetime.datetime(2026, 6, 28, 23, 30, tzinfo=UTC)),
        described("earlier", datetime.datetime(2026, 6, 28, 14, 30, tzinfo=UTC)),
        described("day-before", datetime.datetime(2026, 6, 27, 14, 30, tzinfo=UTC)),
    )
    assert [entry["set_id"] for entry in plan(sets, {"keep_daily": 2})["keep"]] == ["late", "day-before"]
    assert [entry["set_id"] for entry in plan(sets, {"keep_daily": 2, "time_zone": "Asia/Tokyo"})["keep"]] == [
        "late", "earlier"]
