"""ec2_snapshot_set_retention's flow against the lab: the plan read from EC2 (sets, AMIs, locks), check mode, whole-set
deletes, EC2's refusals during the deletes, an empty policy refused before any call. The keep rules and the safety
rules themselves are tested in tests/unit/plugins/module_utils (test_retention.py, test_retention_sets.py); the GFS
fleet through ansible-playbook in tests/integration/test_retention.py."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import retention
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set_retention as module
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    OTHER_ACCOUNT, UTC, Module, ModuleFailed, ec2, lab_fixture, lab_process_fixture, make_set, present, register_image_using)

DEFAULTS = dict(instance_ids=None, policy=None, time_zone="UTC", min_age_hours=24, max_concurrency=4, delete_rate=50.0,
                delete_burst=100, archive_after_days=None, archive_keep_standard=None, force_archived_delete=False,
                **dict((key, None if key.startswith("keep_within") else 0) for key in retention.POLICY_KEYS))


def run(lab, check_mode=False, **params):
    task = Module(lab, dict(DEFAULTS, **params), check_mode=check_mode)
    return module.run_retention(task), task.warnings


def daily_history(lab, days, host="win-sql-01", prefix="night"):
    """A real set of ``host`` for today and clones of it for the ``days`` days before, at 01:00 UTC."""
    today = datetime.datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)
    make_set(lab, "%s-00" % prefix, host=host, created_at=today)
    lab.clone_set("%s-00" % prefix, [{"set_id": "%s-%02d" % (prefix, day),
                                      "created_at": (today - datetime.timedelta(days=day)).isoformat()}
                                     for day in range(1, days + 1)])


def snapshot_ids(entries):
    return sorted(snapshot_id for entry in entries for snapshot_id in entry["snapshot_ids"])


def test_check_mode_returns_the_plan_with_every_reason_and_deletes_nothing(lab):
    daily_history(lab, 9)
    result, dummy = run(lab, check_mode=True, keep_last=3)
    assert [entry["set_id"] for entry in result["kept_sets"]] == ["night-00", "night-01", "night-02"]
    assert result["kept_sets"][0]["reasons"] == ["last snapshot"]
    assert sorted(entry["set_id"] for entry in result["deleted_sets"]) == ["night-%02d" % day for day in range(3, 10)]
    assert all(entry["reasons"] == ["no rule of the policy keeps it"] for entry in result["deleted_sets"])
    assert result["changed"] is True and result["counts"]["snapshots_deleted"] == 0
    assert lab.deletions() == [] and "DeleteSnapshot" not in lab.counts()["actions"]
    assert (result["account_id"], result["region"]) == ("123456789012", "us-east-1")


def test_the_planned_sets_are_deleted_whole_and_a_rerun_deletes_nothing(lab):
    daily_history(lab, 9)
    daily_history(lab, 2, host="win-web-01", prefix="web")
    planned, dummy = run(lab, check_mode=True, keep_last=3)
    result, warnings = run(lab, keep_last=3)
    assert sorted(entry["set_id"] for entry in planned["deleted_sets"]) == ["night-%02d" % day for day in range(3, 10)]
    assert [entry["set_id"] for entry in result["deleted_sets"]] == ["night-%02d" % day for day in range(9, 2, -1)], \
        "the planned sets, oldest first"
    assert present(lab, snapshot_ids(result["deleted_sets"])) == [] and warnings == []
    assert present(lab, snapshot_ids(result["kept_sets"])) == snapshot_ids(result["kept_sets"])
    assert {entry["set_id"] for entry in result["kept_sets"]} >= {"web-00", "web-01", "web-02"}, "planned per instance"
    assert result["counts"] == {"kept": 6, "deleted": 7, "archived": 0, "skipped": 0, "snapshots_deleted": 21}
    assert result["pacing"]["throttled"] == 0 and result["pacing"]["attempts"] == 21
    again, dummy = run(lab, keep_last=3)
    assert again["changed"] is False and again["deleted_sets"] == [] and len(again["kept_sets"]) == 6


def test_only_the_instances_and_the_policy_asked_for_are_planned(lab):
    daily_history(lab, 4)
    daily_history(lab, 4, host="win-web-01", prefix="web")
    instance_id = lab.instance("win-web-01")["instance_id"]
    result, dummy = run(lab, check_mode=True, keep_last=1, instance_ids=[instance_id])
    assert {entry["instance_id"] for entry in result["kept_sets"] + result["deleted_sets"]} == {instance_id}
    result, dummy = run(lab, check_mode=True, keep_last=1, policy="weekly")
    assert result["kept_sets"] == [] and result["deleted_sets"] == []


def test_protected_and_foreign_sets_are_kept_or_skipped_and_reported(lab):
    daily_history(lab, 6)
    client = ec2(lab)
    members = dict((entry["set_id"], entry["snapshot_ids"]) for entry in run(lab, check_mode=True, keep_last=1)[0]["deleted_sets"])
    client.create_tags(Resources=members["night-02"][:1], Tags=[{"Key": "shadowsnap:hold", "Value": "case 4711"}])
    client.lock_snapshot(SnapshotId=members["night-03"][0], LockMode="compliance", LockDuration=30)
    image_id = register_image_using(lab, members["night-04"][0])
    lab.clone_set("night-05", [{"set_id": "old-schema", "created_at": "2025-01-01T00:00:00Z", "tags": {"shadowsnap:schema": "0"}},
                               {"set_id": "theirs", "created_at": "2025-01-01T00:00:00Z", "owner_id": OTHER_ACCOUNT}])
    lab.seed_snapshots(lab.instance("win-sql-01")["volumes"][1]["volume_id"], count=2)

    result, dummy = run(lab, keep_last=1)
    reasons = dict((entry["set_id"], entry["reasons"]) for entry in result["kept_sets"] + result["skipped_sets"])
    assert reasons["night-02"] == ["no rule of the policy keeps it", "held: shadowsnap:hold on %s (case 4711)" % members["night-02"][0]]
    assert reasons["night-03"][-1].startswith("locked: %s (compliance lock until " % members["night-03"][0])
    assert reasons["night-04"][-1] == "in use: %s backs AMI %s" % (members["night-04"][0], image_id)
    assert reasons["old-schema"] == ["skipped: tag schema version 0, not 1, which this collection reads"]
    assert "theirs" not in reasons, "another account's snapshots are never listed"
    assert sorted(entry["set_id"] for entry in result["deleted_sets"]) == ["night-01", "night-05", "night-06"]
    assert present(lab, members["night-02"] + members["night-03"] + members["night-04"]) == sorted(
        members["night-02"] + members["night-03"] + members["night-04"])
    assert len(lab.ec2().describe_snapshots(OwnerIds=[OTHER_ACCOUNT])["Snapshots"]) == 3
    assert {d["outcome"] for d in lab.deletions()} == {"deleted"}, "no protected snapshot was even tried"


def test_a_refusal_during_the_deletes_skips_that_set_and_another_failure_fails_the_task_after_all_sets(lab):
    daily_history(lab, 4)
    lab.faults(rules=[{"action": "DeleteSnapshot", "error": "InvalidSnapshot.InUse", "count": 1}])
    result, warnings = run(lab, keep_last=1, max_concurrency=1)
    assert [entry["set_id"] for entry in result["skipped_sets"]] == ["night-04"], "the oldest set is deleted first"
    skipped = result["skipped_sets"][0]
    assert len(skipped["refused"]) == 1 and len(skipped["deleted_snapshot_ids"]) == 2
    assert skipped["reasons"][-1].startswith("not deleted whole: %s in use: InvalidSnapshot.InUse" % skipped["refused"][0]["snapshot_id"])
    assert [entry["set_id"] for entry in result["deleted_sets"]] == ["night-03", "night-02", "night-01"]
    assert warnings == ["set night-04 was not deleted whole: %s in use: InvalidSnapshot.InUse: InvalidSnapshot.InUse"
                        % skipped["refused"][0]["snapshot_id"]]

    lab.faults(rules=[{"action": "DeleteSnapshot", "error": "UnauthorizedOperation", "count": 1}])
    daily_history(lab, 3, prefix="more")
    with pytest.raises(ModuleFailed) as raised:
        run(lab, keep_last=1, instance_ids=[lab.instance("win-sql-01")["instance_id"]])
    failed = raised.value.result
    assert failed["msg"].startswith("retention could not delete every planned set: could not delete snap-")
    assert failed["counts"]["snapshots_deleted"] > 0 and failed["skipped_sets"][-1]["errors"]


def test_an_empty_policy_is_refused_before_any_call(lab):
    daily_history(lab, 2)
    lab.reset_counts()
    with pytest.raises(retention.RetentionPolicyError, match="keeps nothing"):
        run(lab)
    with pytest.raises(retention.RetentionPolicyError, match="not of the form"):
        run(lab, keep_within="1w")
    assert lab.counts()["actions"] == {}
