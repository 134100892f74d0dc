"""The archive tier and the Recycle Bin of the lab's AWS half, through the fault proxy as the collection reaches them.

What these tests show: ModifySnapshotTier, RestoreSnapshotTier and DescribeSnapshotTierStatus go through EC2's
documented states and refuse what EC2 refuses (a pending snapshot, one an AMI uses, an archived one twice, the 26th
archived snapshot of a volume); an archived snapshot makes no volume; a temporary restore goes back to the archive when
it expires. The rbin service keeps rules with the API's validation; a deleted snapshot that a rule retains goes into
the bin (gone from DescribeSnapshots, listed by ListSnapshotsInRecycleBin) and comes back with its id and tags.
"""

import datetime

import boto3
import botocore.exceptions
import pytest

from lab.control import LAB_CREDENTIALS
from unit.lab.test_aws_retention import create_set, error_code, tags_of

UTC = datetime.timezone.utc


def connect(client, service):
    return boto3.client(service, region_name=client.state["region"], endpoint_url=client.state["aws_endpoint_url"],
                        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(name="ec2")
def ec2_fixture(client):
    return connect(client, "ec2")


@pytest.fixture(name="rbin")
def rbin_fixture(client):
    return connect(client, "rbin")


def tier_of(ec2, snapshot_id):
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["StorageTier"]


def status_of(ec2, snapshot_id):
    statuses = ec2.describe_snapshot_tier_status(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])
    return statuses["SnapshotTierStatuses"][0]


def refused(call, **arguments):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**arguments)
    return error_code(raised)


def test_archival_and_restores_go_through_the_documented_states(ec2, client):
    snapshot_id = create_set(ec2, client)[0]
    client.tier_settings(archive_seconds=3600, restore_seconds=3600)
    answer = ec2.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")
    assert answer["SnapshotId"] == snapshot_id and answer["TieringStartTime"]
    assert status_of(ec2, snapshot_id)["LastTieringOperationStatus"] == "archival-in-progress"
    assert tier_of(ec2, snapshot_id) == "standard", "in the standard tier until the archival completes"
    assert refused(ec2.modify_snapshot_tier, SnapshotId=snapshot_id, StorageTier="archive") == "IncorrectState"
    client.tier_settings(archive_seconds=0)
    status = status_of(ec2, snapshot_id)
    assert status["LastTieringOperationStatus"] == "archival-completed" and status["StorageTier"] == "archive"
    assert status["ArchivalCompleteTime"] and tags_of(status)["shadowsnap:set-id"] == "base"
    assert tier_of(ec2, snapshot_id) == "archive"
    zone = client.instance("win-sql-01")["availability_zone"]
    assert refused(ec2.create_volume, SnapshotId=snapshot_id, AvailabilityZone=zone) == "IncorrectState"

    assert refused(ec2.restore_snapshot_tier, SnapshotId=snapshot_id) == "InvalidParameterCombination"
    assert refused(ec2.restore_snapshot_tier, SnapshotId=snapshot_id, TemporaryRestoreDays=181) == "InvalidParameterValue"
    answer = ec2.restore_snapshot_tier(SnapshotId=snapshot_id, TemporaryRestoreDays=2)
    assert answer["RestoreDuration"] == 2 and answer["IsPermanentRestore"] is False
    assert status_of(ec2, snapshot_id)["LastTieringOperationStatus"] == "temporary-restore-in-progress"
    assert tier_of(ec2, snapshot_id) == "archive"
    client.tier_settings(restore_seconds=0)
    status = status_of(ec2, snapshot_id)
    assert status["LastTieringOperationStatus"] == "temporary-restore-completed" and status["StorageTier"] == "standard"
    assert status["RestoreExpiryTime"] - datetime.datetime.now(UTC) > datetime.timedelta(days=1, hours=23)
    ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=zone)

    client.ebs(clock_offset_seconds=3 * 86400)
    assert tier_of(ec2, snapshot_id) == "archive", "a temporary restore is archived again when it expires"
    ec2.restore_snapshot_tier(SnapshotId=snapshot_id, PermanentRestore=True)
    status = status_of(ec2, snapshot_id)
    assert status["LastTieringOperationStatus"] == "permanent-restore-completed" and status["StorageTier"] == "standard"
    assert refused(ec2.restore_snapshot_tier, SnapshotId=snapshot_id, PermanentRestore=True) == "IncorrectState"


def test_a_temporary_restore_can_be_extended_or_made_permanent(ec2, client):
    snapshot_id = create_set(ec2, client)[0]
    ec2.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")
    ec2.restore_snapshot_tier(SnapshotId=snapshot_id, TemporaryRestoreDays=1)
    ec2.restore_snapshot_tier(SnapshotId=snapshot_id, TemporaryRestoreDays=30)
    assert status_of(ec2, snapshot_id)["RestoreExpiryTime"] - datetime.datetime.now(UTC) > datetime.timedelta(days=29)
    ec2.restore_snapshot_tier(SnapshotId=snapshot_id, PermanentRestore=True)
    status = status_of(ec2, snapshot_id)
    assert status["LastTieringOperationStatus"] == "permanent-restore-completed" and "RestoreExpiryTime" not in status


def test_archival_refuses_what_ec2_refuses(ec2, client):
    used, other, dummy = create_set(ec2, client)
    ec2.register_image(Name="uses-it", RootDeviceName="/dev/sda1",
                       BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": used}}])
    assert refused(ec2.modify_snapshot_tier, SnapshotId=used, StorageTier="archive") == "InvalidSnapshot.InUse"
    assert refused(ec2.modify_snapshot_tier, SnapshotId=other, StorageTier="standard") == "InvalidParameterValue"
    client.ebs(pending_seconds=30, per_volume_interval=0)
    pending = ec2.create_snapshot(VolumeId=client.instance("win-sql-01")["volumes"][1]["volume_id"])["SnapshotId"]
    assert refused(ec2.modify_snapshot_tier, SnapshotId=pending, StorageTier="archive") == "IncorrectState"
    client.ebs(pending_seconds=0)

    volume_id = ec2.describe_snapshots(SnapshotIds=[other])["Snapshots"][0]["VolumeId"]
    for snapshot_id in client.seed_snapshots(volume_id, count=25):
        ec2.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")
    assert refused(ec2.modify_snapshot_tier, SnapshotId=other, StorageTier="archive") == "ResourceLimitExceeded"
    listed = ec2.get_paginator("describe_snapshot_tier_status").paginate(PaginationConfig={"PageSize": 5})
    assert len(listed.build_full_result()["SnapshotTierStatuses"]) == 25


def test_a_rule_moves_a_deleted_snapshot_into_the_bin_and_it_comes_back_whole(ec2, rbin, client):
    mine = create_set(ec2, client)
    loose = client.seed_snapshots(client.instance("win-sql-01")["volumes"][1]["volume_id"])
    rule = rbin.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 7,
                                                                          "RetentionPeriodUnit": "DAYS"},
                            ResourceTags=[{"ResourceTagKey": "shadowsnap:schema", "ResourceTagValue": "1"}])
    assert rbin.get_rule(Identifier=rule["Identifier"])["Status"] == "available"
    listed = rbin.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"]
    assert [r["Identifier"] for r in listed] == [rule["Identifier"]] and "ResourceTags" not in listed[0]
    before = {s["SnapshotId"]: s for s in ec2.describe_snapshots(SnapshotIds=mine)["Snapshots"]}

    for snapshot_id in mine + loose:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert [d["outcome"] for d in client.deletions()] == ["recycled"] * 3 + ["deleted"], "the loose one is untagged"
    assert not [s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["SnapshotId"] in mine]
    binned = ec2.list_snapshots_in_recycle_bin()["Snapshots"]
    assert sorted(s["SnapshotId"] for s in binned) == sorted(mine)
    assert binned[0]["RecycleBinExitTime"] - binned[0]["RecycleBinEnterTime"] == datetime.timedelta(days=7)
    zone = client.instance("win-sql-01")["availability_zone"]
    assert refused(ec2.create_volume, SnapshotId=mine[0], AvailabilityZone=zone) == "InvalidSnapshot.NotFound"

    client.recycle_bin_settings(recover_seconds=3600)
    answer = ec2.restore_snapshot_from_recycle_bin(SnapshotId=mine[0])
    assert answer["State"] == "recovering"
    assert ec2.describe_snapshots(SnapshotIds=[mine[0]])["Snapshots"][0]["State"] == "recovering"
    client.recycle_bin_settings(recover_seconds=0)
    for snapshot_id in mine[1:]:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=snapshot_id)
    after = {s["SnapshotId"]: s for s in ec2.describe_snapshots(SnapshotIds=mine)["Snapshots"]}
    assert {i: tags_of(s) for i, s in after.items()} == {i: tags_of(s) for i, s in before.items()}
    assert {s["State"] for s in after.values()} == {"completed"}
    assert ec2.list_snapshots_in_recycle_bin()["Snapshots"] == []
    assert refused(ec2.restore_snapshot_from_recycle_bin, SnapshotId=loose[0]) == "InvalidSnapshot.NotFound"
    assert client.counts()["actions"]["CreateRule"]["ok"] == 1, "rbin calls pass the proxy and are counted"


def test_rbin_rules_validate_as_the_api_does_and_the_bin_expires(ec2, rbin, client):
    days = {"RetentionPeriodValue": 1, "RetentionPeriodUnit": "DAYS"}
    for arguments in ({"RetentionPeriod": dict(days, RetentionPeriodValue=366)},
                      {"RetentionPeriod": days, "ResourceTags": [{"ResourceTagKey": "a"}],
                       "ExcludeResourceTags": [{"ResourceTagKey": "b"}]},
                      {"RetentionPeriod": days, "ResourceTags": [{"ResourceTagKey": "a"}],
                       "LockConfiguration": {"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}}}):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            rbin.create_rule(ResourceType="EBS_SNAPSHOT", **arguments)
        assert error_code(raised) == "ValidationException"
    region = rbin.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod=days,
                              ExcludeResourceTags=[{"ResourceTagKey": "scratch"}],
                              LockConfiguration={"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}})
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        rbin.delete_rule(Identifier=region["Identifier"])
    assert error_code(raised) == "ConflictException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        rbin.get_rule(Identifier="nosuchrule00")
    assert error_code(raised) == "ResourceNotFoundException"

    volume_id = client.instance("win-sql-01")["volumes"][1]["volume_id"]
    kept, scratch = client.seed_snapshots(volume_id), client.seed_snapshots(volume_id, tags={"scratch": "yes"})
    ec2.delete_snapshot(SnapshotId=kept[0])
    ec2.delete_snapshot(SnapshotId=scratch[0])
    assert [s["SnapshotId"] for s in ec2.list_snapshots_in_recycle_bin()["Snapshots"]] == kept, \
        "a Region-level rule retains all but the excluded"
    client.ebs(clock_offset_seconds=2 * 86400)
    assert ec2.list_snapshots_in_recycle_bin()["Snapshots"] == [], "deleted for good after its retention"
    client.reset()
    assert rbin.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"] == []
