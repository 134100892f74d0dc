"""ec2_snapshot_set ``state: absent`` against the lab: a whole set deleted, idempotently, and nothing else."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set as module
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    OTHER_ACCOUNT, Module, ModuleFailed, ec2, lab_fixture, lab_process_fixture, make_set, present, register_image_using)


def absent(lab, set_id, host="win-sql-01", check_mode=False):
    task = Module(lab, {"state": "absent", "instance_id": lab.instance(host)["instance_id"], "set_id": set_id},
                  check_mode=check_mode)
    return module.remove_snapshot_set(task, set_id), task.warnings


def test_a_whole_set_is_deleted_and_a_rerun_changes_nothing(lab):
    doomed = make_set(lab, "doomed")
    kept = make_set(lab, "kept")
    result, warnings = absent(lab, "doomed")
    assert (result["changed"], result["status"], result["deleted_snapshot_ids"], result["skipped_snapshots"]) == (True, "deleted", doomed, [])
    assert present(lab, doomed + kept) == kept and warnings == []
    again, dummy = absent(lab, "doomed")
    assert (again["changed"], again["status"], again["deleted_snapshot_ids"]) == (False, "absent", [])
    assert [d["outcome"] for d in lab.deletions()] == ["deleted"] * 3, "the rerun sent no delete"


def test_a_set_deleted_halfway_is_finished(lab):
    members = make_set(lab, "half")
    lab.ec2().delete_snapshot(SnapshotId=members[1])
    result, dummy = absent(lab, "half")
    assert result["changed"] and result["deleted_snapshot_ids"] == sorted(set(members) - {members[1]})
    assert present(lab, members) == []


def test_members_an_ami_or_a_lock_keeps_are_skipped_with_the_reason_and_the_rest_is_deleted(lab):
    members = make_set(lab, "protected")
    client = ec2(lab)
    image_id = register_image_using(lab, members[0])
    client.lock_snapshot(SnapshotId=members[1], LockMode="governance", LockDuration=7)

    planned, dummy = absent(lab, "protected", check_mode=True)
    assert planned["deleted_snapshot_ids"] == [members[2]] and present(lab, members) == members, "check mode deletes nothing"
    predicted = {e["snapshot_id"]: e["reason"] for e in planned["skipped_snapshots"]}
    assert sorted(predicted) == members[:2] and predicted[members[0]] == "in use: backs AMI %s" % image_id
    assert predicted[members[1]].startswith("locked: governance lock until ")

    result, warnings = absent(lab, "protected")
    assert (result["changed"], result["status"], result["deleted_snapshot_ids"]) == (True, "partial", [members[2]])
    reasons = {e["snapshot_id"]: e["reason"] for e in result["skipped_snapshots"]}
    assert "is currently in use by %s" % image_id in reasons[members[0]]
    assert reasons[members[1]].startswith("locked: governance lock until ")
    assert len(warnings) == 2 and all("of set protected is kept" in warning for warning in warnings)
    again, dummy = absent(lab, "protected")
    assert (again["changed"], again["status"], again["deleted_snapshot_ids"]) == (False, "partial", [])
    assert present(lab, members) == members[:2]


def test_another_instances_set_is_refused_and_another_accounts_snapshots_are_never_touched(lab):
    ours = make_set(lab, "base")
    theirs = lab.clone_set("base", [{"set_id": "base", "created_at": "2026-01-01T00:00:00Z", "owner_id": OTHER_ACCOUNT}])
    with pytest.raises(snapshot_sets.SnapshotSetError, match="already belongs to instance"):
        absent(lab, "base", host="win-web-01")
    assert lab.deletions() == []
    result, dummy = absent(lab, "base")
    assert result["deleted_snapshot_ids"] == ours
    assert present(lab, ours) == []
    assert len(lab.ec2().describe_snapshots(OwnerIds=[OTHER_ACCOUNT])["Snapshots"]) == len(theirs["base"]) == 3


def test_any_other_failure_fails_the_task_after_the_other_members_with_what_was_deleted(lab):
    members = make_set(lab, "denied")
    lab.faults(rules=[{"action": "DeleteSnapshot", "error": "UnauthorizedOperation", "count": 1}])
    with pytest.raises(ModuleFailed) as raised:
        absent(lab, "denied")
    result = raised.value.result
    assert result["msg"].startswith("set denied was deleted only in part: could not delete snap-")
    assert "UnauthorizedOperation" in result["msg"] and result["status"] == "partial" and len(result["deleted_snapshot_ids"]) == 2
    assert present(lab, members) == sorted(set(members) - set(result["deleted_snapshot_ids"]))


def test_a_set_whose_members_disagree_or_lack_the_schema_is_refused_whole_before_any_delete(lab):
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "mixed", "created_at": "2026-01-01T00:00:00Z"},
                           {"set_id": "bare", "created_at": "2026-01-01T00:00:00Z"}])
    client = ec2(lab)
    mixed = [member["snapshot_id"] for member in snapshot_sets.find_existing_set(client, "mixed")["snapshots"]]
    client.create_tags(Resources=mixed[-1:], Tags=[{"Key": "shadowsnap:instance-id",
                                                   "Value": lab.instance("win-web-01")["instance_id"]}])
    with pytest.raises(snapshot_sets.SnapshotSetError, match="set mixed is not deleted: its snapshots belong to instances"):
        absent(lab, "mixed")
    bare = [member["snapshot_id"] for member in snapshot_sets.find_existing_set(client, "bare")["snapshots"]]
    client.delete_tags(Resources=bare[-1:], Tags=[{"Key": "shadowsnap:schema"}])
    with pytest.raises(snapshot_sets.SnapshotSetError, match="do not carry the collection's tag schema"):
        absent(lab, "bare")
    assert lab.deletions() == [] and present(lab, mixed + bare) == sorted(mixed + bare)
