"""The retention side of the lab's AWS half, through the fault proxy as the collection reaches it (boto3 on
``aws_endpoint_url``) and through moto directly (``LabClient.ec2()``).

What these tests show: DescribeSnapshots answers only the owners asked for and pages as EC2 does (moto ignores both);
snapshot locks follow EC2's modes, states and rules; an AMI registered with block-device mappings uses their
snapshots; DeleteSnapshot refuses another account's, a locked and an AMI-used snapshot and logs every answer; and the
seeding calls (clones of a real set at other times, back-dating, loose snapshots) give what the tests ask for.
"""

import datetime

import boto3
import botocore.exceptions
import pytest

from lab.control import LAB_CREDENTIALS

HOST = "win-sql-01"
OTHER_ACCOUNT = "210987654321"
UTC = datetime.timezone.utc


@pytest.fixture(name="ec2")
def ec2_fixture(client):
    """EC2 as the collection reaches it: through the fault proxy."""
    return boto3.client("ec2", region_name=client.state["region"], endpoint_url=client.state["aws_endpoint_url"],
                        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def create_set(ec2, client, set_id="base", created_at="2026-01-01T01:00:00Z"):
    """A set as ec2_snapshot_set makes one: one CreateSnapshots call, tags at creation (enough of the schema here)."""
    instance = client.instance(HOST)
    tags = {"shadowsnap:schema": "1", "shadowsnap:set-id": set_id, "shadowsnap:created-at": created_at,
            "shadowsnap:instance-id": instance["instance_id"], "Owner": "dba"}
    answer = ec2.create_snapshots(
        InstanceSpecification={"InstanceId": instance["instance_id"], "ExcludeBootVolume": True},
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    return sorted(snapshot["SnapshotId"] for snapshot in answer["Snapshots"])


def error_code(raised):
    return raised.value.response["Error"]["Code"]


def tags_of(snapshot):
    return {tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])}


def test_owner_filter_answers_only_the_owners_asked_for(ec2, client):
    mine = create_set(ec2, client)
    theirs = client.clone_set("base", [{"set_id": "shared", "created_at": "2026-01-02T01:00:00Z", "owner_id": OTHER_ACCOUNT}])
    everything = ec2.describe_snapshots()["Snapshots"]
    assert len(everything) > 1000, "moto's AMIs bring other accounts' snapshots"
    assert sorted(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == mine
    listed = ec2.describe_snapshots(OwnerIds=[OTHER_ACCOUNT])["Snapshots"]
    assert sorted(s["SnapshotId"] for s in listed) == sorted(theirs["shared"])
    assert {s["OwnerId"] for s in listed} == {OTHER_ACCOUNT}
    assert len(ec2.describe_snapshots(OwnerIds=["self", OTHER_ACCOUNT])["Snapshots"]) == 6
    schema = [{"Name": "tag-key", "Values": ["shadowsnap:set-id"]}]
    assert len(ec2.describe_snapshots(Filters=schema)["Snapshots"]) == 6, "without OwnerIds EC2 lists what it shares too"
    assert len(client.ec2().describe_snapshots(OwnerIds=["self"], Filters=schema)["Snapshots"]) == 3, "moto direct too"


def test_pages_are_cut_as_ec2_cuts_them_and_survive_deletes_between_pages(ec2, client):
    create_set(ec2, client)
    client.clone_set("base", [{"set_id": "copy-%d" % n, "created_at": "2026-01-0%dT01:00:00Z" % (n + 2)} for n in range(4)])
    owned = sorted(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])
    assert len(owned) == 15

    first = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)
    assert [s["SnapshotId"] for s in first["Snapshots"]] == owned[:5] and first["NextToken"]
    ec2.delete_snapshot(SnapshotId=owned[5])
    second = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5, NextToken=first["NextToken"])
    assert [s["SnapshotId"] for s in second["Snapshots"]] == owned[6:11], "a deleted snapshot does not shift the pages"
    third = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5, NextToken=second["NextToken"])
    assert [s["SnapshotId"] for s in third["Snapshots"]] == owned[11:] and "NextToken" not in third

    paged = ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 5})
    assert sorted(s["SnapshotId"] for s in paged.build_full_result()["Snapshots"]) == owned[:5] + owned[6:]
    assert len(ec2.describe_snapshots(MaxResults=5000)["Snapshots"]) == 1000, "more than 1,000 is cut to 1,000"

    for arguments, code in (({"MaxResults": 4}, "InvalidParameterValue"),
                            ({"MaxResults": 5, "SnapshotIds": owned[:1]}, "InvalidParameterCombination"),
                            ({"MaxResults": 5, "NextToken": "not-a-token"}, "InvalidPaginationToken")):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            ec2.describe_snapshots(OwnerIds=["self"], **arguments)
        assert error_code(raised) == code


def test_locks_follow_ec2s_modes_states_and_rules(ec2, client):
    governance, compliance, cooling = create_set(ec2, client)
    answer = ec2.lock_snapshot(SnapshotId=governance, LockMode="governance", LockDuration=30)
    assert answer["LockState"] == "governance" and answer["LockDuration"] == 30
    assert answer["LockExpiresOn"] - answer["LockCreatedOn"] == datetime.timedelta(days=30)
    ec2.lock_snapshot(SnapshotId=compliance, LockMode="compliance",
                      ExpirationDate=datetime.datetime.now(UTC) + datetime.timedelta(days=2))
    answer = ec2.lock_snapshot(SnapshotId=cooling, LockMode="compliance", CoolOffPeriod=24, LockDuration=7)
    assert answer["LockState"] == "compliance-cooloff" and answer["CoolOffPeriod"] == 24

    states = {lock["SnapshotId"]: lock["LockState"] for lock in ec2.describe_locked_snapshots()["Snapshots"]}
    assert states == {governance: "governance", compliance: "compliance", cooling: "compliance-cooloff"}
    only = ec2.describe_locked_snapshots(Filters=[{"Name": "lock-state", "Values": ["compliance"]}])["Snapshots"]
    assert [lock["SnapshotId"] for lock in only] == [compliance]
    assert [lock["SnapshotId"] for lock in ec2.describe_locked_snapshots(SnapshotIds=[cooling])["Snapshots"]] == [cooling]
    page = ec2.describe_locked_snapshots(MaxResults=5)
    assert len(page["Snapshots"]) == 3 and "NextToken" not in page

    for arguments in ({"SnapshotId": compliance, "LockMode": "governance", "LockDuration": 5},
                      {"SnapshotId": compliance, "LockMode": "compliance", "LockDuration": 1},
                      {"SnapshotId": governance, "LockMode": "governance"},
                      {"SnapshotId": governance, "LockMode": "governance", "CoolOffPeriod": 2, "LockDuration": 1}):
        with pytest.raises(botocore.exceptions.ClientError):
            ec2.lock_snapshot(**arguments)
    assert ec2.lock_snapshot(SnapshotId=compliance, LockMode="compliance", LockDuration=90)["LockDuration"] == 90, \
        "a compliance lock can be extended"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.unlock_snapshot(SnapshotId=compliance)
    assert error_code(raised) == "InvalidParameterValue"

    for snapshot_id in (governance, compliance, cooling):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            ec2.delete_snapshot(SnapshotId=snapshot_id)
        assert error_code(raised) == "InvalidSnapshot.Locked" and snapshot_id in str(raised.value)
    ec2.unlock_snapshot(SnapshotId=governance)
    ec2.unlock_snapshot(SnapshotId=cooling)
    ec2.delete_snapshot(SnapshotId=governance)
    ec2.delete_snapshot(SnapshotId=cooling)
    outcomes = [(d["snapshot_id"], d["outcome"]) for d in client.deletions()]
    assert outcomes == [(governance, "InvalidSnapshot.Locked"), (compliance, "InvalidSnapshot.Locked"),
                        (cooling, "InvalidSnapshot.Locked"), (governance, "deleted"), (cooling, "deleted")]
    assert {d["set_id"] for d in client.deletions()} == {"base"}


def test_an_expired_lock_protects_nothing(ec2, client):
    snapshot_id = create_set(ec2, client)[0]
    ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=1)
    client.ebs(clock_offset_seconds=2 * 86400)
    assert ec2.describe_locked_snapshots()["Snapshots"][0]["LockState"] == "expired"
    ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_an_ami_registered_with_a_sets_snapshot_keeps_it_until_deregistered(ec2, client):
    used, free, dummy = create_set(ec2, client)
    before = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    image_id = ec2.register_image(Name="restore-test", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": used}}])["ImageId"]
    image = ec2.describe_images(Owners=["self"])["Images"]
    assert [i["ImageId"] for i in image] == [image_id]
    assert [m["Ebs"]["SnapshotId"] for m in image[0]["BlockDeviceMappings"]] == [used]
    assert {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]} == before, \
        "no snapshot of moto's own for an AMI registered from snapshots"

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.delete_snapshot(SnapshotId=used)
    assert error_code(raised) == "InvalidSnapshot.InUse"
    assert raised.value.response["Error"]["Message"] == "The snapshot %s is currently in use by %s" % (used, image_id)
    ec2.delete_snapshot(SnapshotId=free)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=used)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.delete_snapshot(SnapshotId=used)
    assert error_code(raised) == "InvalidSnapshot.NotFound", "a second delete"

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.register_image(Name="gone", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": used}}])
    assert error_code(raised) == "InvalidSnapshot.NotFound"


def test_another_accounts_snapshot_is_visible_but_never_deleted(ec2, client):
    create_set(ec2, client)
    theirs = client.clone_set("base", [{"set_id": "shared", "created_at": "2026-01-02T01:00:00Z", "owner_id": OTHER_ACCOUNT}])
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.delete_snapshot(SnapshotId=theirs["shared"][0])
    assert error_code(raised) == "UnauthorizedOperation"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.lock_snapshot(SnapshotId=theirs["shared"][0], LockMode="governance", LockDuration=1)
    assert error_code(raised) == "UnauthorizedOperation"
    assert len(ec2.describe_snapshots(OwnerIds=[OTHER_ACCOUNT])["Snapshots"]) == 3


def test_clones_carry_the_sets_tags_at_other_times_and_backdating_moves_a_set(ec2, client):
    original = create_set(ec2, client)
    made = client.clone_set("base", [
        {"set_id": "old", "created_at": "2025-06-01T01:00:00Z", "tags": {"shadowsnap:hold": "case 4711", "Owner": None}},
        {"set_id": "partial", "created_at": "2025-06-02T01:00:00+02:00", "leave_out": [client.instance(HOST)["volumes"][1]["volume_id"]]},
    ])
    assert len(made["old"]) == 3 and len(made["partial"]) == 2
    source = {s["VolumeId"]: tags_of(s) for s in ec2.describe_snapshots(SnapshotIds=original)["Snapshots"]}
    for snapshot in ec2.describe_snapshots(SnapshotIds=made["old"])["Snapshots"]:
        expected = dict(source[snapshot["VolumeId"]], **{"shadowsnap:set-id": "old", "shadowsnap:hold": "case 4711",
                                                         "shadowsnap:created-at": "2025-06-01T01:00:00Z"})
        del expected["Owner"]
        assert tags_of(snapshot) == expected
        assert snapshot["StartTime"] == datetime.datetime(2025, 6, 1, 1, tzinfo=UTC)
        assert snapshot["State"] == "completed" and snapshot["OwnerId"] == "123456789012"
    partial = ec2.describe_snapshots(SnapshotIds=made["partial"])["Snapshots"]
    assert {tags_of(s)["shadowsnap:created-at"] for s in partial} == {"2025-06-01T23:00:00Z"}, "kept in UTC"

    assert sorted(client.backdate_set("base", "2024-12-31T23:59:59Z")) == original
    for snapshot in ec2.describe_snapshots(SnapshotIds=original)["Snapshots"]:
        assert tags_of(snapshot)["shadowsnap:created-at"] == "2024-12-31T23:59:59Z"
        assert snapshot["StartTime"] == datetime.datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)

    volume_id = client.instance(HOST)["volumes"][1]["volume_id"]
    loose = client.seed_snapshots(volume_id, count=2)
    theirs = client.seed_snapshots(volume_id, tags={"shadowsnap:set-id": "base"}, owner_id=OTHER_ACCOUNT)
    described = {s["SnapshotId"]: s for s in ec2.describe_snapshots(SnapshotIds=loose + theirs)["Snapshots"]}
    assert [described[i].get("Tags", []) for i in loose] == [[], []]
    assert described[theirs[0]]["OwnerId"] == OTHER_ACCOUNT
    with pytest.raises(RuntimeError, match="no snapshot carries the set id nothing"):
        client.clone_set("nothing", [{"set_id": "x", "created_at": "2026-01-01T00:00:00Z"}])


def test_retention_state_is_cleared_by_a_reset(ec2, client):
    snapshot_id = create_set(ec2, client)[0]
    ec2.lock_snapshot(SnapshotId=snapshot_id, LockMode="governance", LockDuration=1)
    with pytest.raises(botocore.exceptions.ClientError):
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    client.reset()
    assert client.deletions() == [] and ec2.describe_locked_snapshots()["Snapshots"] == []
