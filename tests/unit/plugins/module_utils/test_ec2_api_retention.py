"""The EC2 calls retention makes, against the lab, which enforces what moto ignores: DescribeSnapshots' owner filter
and pagination, snapshot locks, AMIs registered with a set's snapshots."""

import pytest

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api, snapshot_sets
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    OTHER_ACCOUNT, ec2, lab_fixture, lab_process_fixture, make_set, register_image_using)


def calls(lab, action):
    return lab.counts()["actions"].get(action, {}).get("attempts", 0)


def test_only_this_accounts_schema_snapshots_are_listed_every_page_of_them(lab, monkeypatch):
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "copy-%d" % n, "created_at": "2026-01-01T0%d:00:00Z" % n} for n in range(4)])
    lab.clone_set("base", [{"set_id": "shared", "created_at": "2026-01-02T00:00:00Z", "owner_id": OTHER_ACCOUNT}])
    lab.seed_snapshots(lab.instance("win-sql-01")["volumes"][1]["volume_id"], count=3)
    monkeypatch.setattr(ec2_api, "DESCRIBE_PAGE_SIZE", 5)
    lab.reset_counts()
    listed = snapshot_sets.find_snapshots(ec2(lab))
    assert len(listed) == 15 and {snapshot["OwnerId"] for snapshot in listed} == {"123456789012"}
    assert calls(lab, "DescribeSnapshots") == 3, "three pages of five"
    assert lab.counts()["unfiltered_describes"] == 0
    sets = snapshot_sets.list_sets(ec2(lab))
    assert sorted(found["set_id"] for found in sets) == ["base", "copy-0", "copy-1", "copy-2", "copy-3"]
    assert {found["region"] for found in sets} == {"us-east-1"}
    assert {member["owner_id"] for found in sets for member in found["snapshots"]} == {"123456789012"}


def test_locks_are_read_page_by_page_and_expired_ones_left_out(lab, monkeypatch):
    client = ec2(lab)
    snapshot_ids = make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "copy", "created_at": "2026-01-01T00:00:00Z"}])
    snapshot_ids += sorted(member["snapshot_id"] for member in snapshot_sets.find_existing_set(client, "copy")["snapshots"])
    for snapshot_id in snapshot_ids[:5]:
        client.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=1)
    client.lock_snapshot(SnapshotId=snapshot_ids[5], LockMode="governance", LockDuration=3)
    monkeypatch.setattr(ec2_api, "DESCRIBE_PAGE_SIZE", 5)
    lab.reset_counts()
    assert sorted(lock["SnapshotId"] for lock in ec2_api.describe_locked_snapshots(client)) == sorted(snapshot_ids)
    assert calls(lab, "DescribeLockedSnapshots") == 2
    assert [lock["SnapshotId"] for lock in ec2_api.describe_locked_snapshots(client, snapshot_ids[4:6])] == sorted(snapshot_ids[4:6])
    lab.ebs(clock_offset_seconds=2 * 86400)
    assert [lock["SnapshotId"] for lock in ec2_api.describe_locked_snapshots(client)] == [snapshot_ids[5]]


def test_the_accounts_amis_and_the_snapshots_they_use(lab):
    client = ec2(lab)
    used = make_set(lab, "base")[0]
    image_id = register_image_using(lab, used)
    images = ec2_api.describe_images(client)
    assert [image["ImageId"] for image in images] == [image_id], "only this account's AMIs, not moto's public ones"
    assert [mapping["Ebs"]["SnapshotId"] for mapping in images[0]["BlockDeviceMappings"]] == [used]


def test_a_delete_of_a_snapshot_gone_already_is_no_error_and_a_refusal_is(lab):
    client = ec2(lab)
    snapshot_ids = make_set(lab, "base")
    assert ec2_api.delete_snapshot(client, snapshot_ids[0]) is True
    assert ec2_api.delete_snapshot(client, snapshot_ids[0]) is False
    register_image_using(lab, snapshot_ids[1])
    with pytest.raises(AnsibleEC2Error, match="Failed to delete the snapshot") as raised:
        ec2_api.delete_snapshot(client, snapshot_ids[1])
    assert raised.value.exception.response["Error"]["Code"] == "InvalidSnapshot.InUse"
