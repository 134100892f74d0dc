"""Volume selection, set grouping and the CreateSnapshots retry loop (against botocore's own Stubber)."""

import datetime

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets, snapshot_tags

INSTANCE = {
    "InstanceId": "i-1",
    "RootDeviceName": "/dev/sda1",
    "BlockDeviceMappings": [
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-root", "Status": "attached"}},
        {"DeviceName": "xvdb", "Ebs": {"VolumeId": "vol-d", "Status": "attached"}},
        {"DeviceName": "xvdc", "Ebs": {"VolumeId": "vol-e", "Status": "attached"}},
        {"DeviceName": "xvdd", "Ebs": {"VolumeId": "vol-f", "Status": "detaching"}},
    ],
}


def ids(volumes):
    return [volume["volume_id"] for volume in volumes]


def test_explicit_subset_by_id_and_device_keeps_mapping_order():
    selected = snapshot_sets.select_volumes(INSTANCE, volume_ids=["vol-e"], device_names=["/dev/xvdb"])[0]
    assert ids(selected) == ["vol-d", "vol-e"]


def test_subset_is_expressed_as_exclusions():
    selected, attached = snapshot_sets.select_volumes(INSTANCE, device_names=["xvdc"])
    assert snapshot_sets.instance_specification("i-1", selected, attached) == {
        "InstanceId": "i-1", "ExcludeBootVolume": True, "ExcludeDataVolumeIds": ["vol-d", "vol-f"]}
    selected, attached = snapshot_sets.select_volumes(INSTANCE, device_names=["sda1", "xvdb", "xvdc"])
    assert snapshot_sets.instance_specification("i-1", selected, attached) == {
        "InstanceId": "i-1", "ExcludeBootVolume": False, "ExcludeDataVolumeIds": ["vol-f"]}


@pytest.mark.parametrize("kwargs, message", [
    ({"volume_ids": ["vol-x"]}, "volume vol-x is not attached to i-1"),
    ({"device_names": ["xvdz"]}, "no EBS volume is attached to i-1 at device xvdz"),
    ({"device_names": ["xvdd"]}, "is detaching, not attached"),
    ({"volumes": "all"}, "is detaching, not attached"),
])
def test_selection_errors_name_the_problem(kwargs, message):
    with pytest.raises(snapshot_sets.SnapshotSetError, match=message):
        snapshot_sets.select_volumes(INSTANCE, **kwargs)


def test_more_than_forty_exclusions_are_refused_before_any_call():
    mappings = [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-root"}}] + [
        {"DeviceName": "xvd%d" % n, "Ebs": {"VolumeId": "vol-%d" % n}} for n in range(42)]
    instance = {"InstanceId": "i-2", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": mappings}
    selected, attached = snapshot_sets.select_volumes(instance, volume_ids=["vol-0"])
    with pytest.raises(snapshot_sets.SnapshotSetError, match="at most 40"):
        snapshot_sets.instance_specification("i-2", selected, attached)


def snapshot(snapshot_id, volume_id, state, members, set_id="set-1"):
    tags = snapshot_tags.build_set_tags(
        set_id=set_id, instance_id="i-1", engine="crash", consistency="crash",
        created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), version="0.1.0",
        volumes={m: {"device": "dev-" + m} for m in members})
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "State": state, "VolumeSize": 1,
            "StartTime": datetime.datetime(2026, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc),
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


@pytest.mark.parametrize("states, present, status", [
    (["completed", "completed"], ["vol-a", "vol-b"], "completed"),
    (["completed", "pending"], ["vol-a", "vol-b"], "pending"),
    (["error", "pending"], ["vol-a", "vol-b"], "error"),
    (["completed"], ["vol-a"], "incomplete"),
])
def test_set_status_comes_from_members_and_membership(states, present, status):
    snapshots = [snapshot("snap-%d" % n, volume, state, ["vol-a", "vol-b"]) for n, (volume, state) in enumerate(zip(present, states))]
    (found,) = snapshot_sets.group_sets(snapshots)
    assert found["status"] == status
    assert found["complete"] is (status == "completed")
    assert found["volume_count"] == 2
    assert found["missing_volume_ids"] == sorted({"vol-a", "vol-b"} - set(present))


def test_snapshots_of_different_sets_are_grouped_apart():
    sets = snapshot_sets.group_sets([snapshot("snap-1", "vol-a", "completed", ["vol-a"], "s1"),
                                     snapshot("snap-2", "vol-a", "completed", ["vol-a"], "s2")])
    assert [s["set_id"] for s in sets] == ["s1", "s2"]


@pytest.fixture
def stubbed():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber


SPEC = {"InstanceId": "i-1", "ExcludeBootVolume": True}
CREATED = {"Snapshots": [{"SnapshotId": "snap-1", "VolumeId": "vol-d", "State": "pending"}]}


def create(client, sleeps, **kwargs):
    return snapshot_sets.create_snapshot_set(client, client, SPEC, "d", {"k": "v"}, "set-1", sleep=sleeps.append, **kwargs)


def test_per_volume_rate_error_waits_fifteen_seconds_then_succeeds(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "SnapshotCreationPerVolumeRateExceeded")
    stubber.add_response("create_snapshots", CREATED)
    sleeps = []
    snapshots, retries = create(client, sleeps)
    assert snapshots[0]["SnapshotId"] == "snap-1"
    assert sleeps[0] >= 15 and retries[0]["error"] == "SnapshotCreationPerVolumeRateExceeded"


def test_server_error_looks_for_the_set_before_trying_again(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
    stubber.add_response("describe_snapshots", {"Snapshots": [snapshot("snap-9", "vol-d", "pending", ["vol-d"])]})
    sleeps = []
    snapshots, retries = create(client, sleeps)
    assert [s["SnapshotId"] for s in snapshots] == ["snap-9"]
    assert [r["error"] for r in retries] == ["InternalError", "reconciled"]
    stubber.assert_no_pending_responses()


def test_errors_that_retrying_cannot_fix_are_raised_at_once(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "UnauthorizedOperation", http_status_code=403)
    with pytest.raises(Exception, match="UnauthorizedOperation"):
        create(client, [])


def test_retries_stop_at_the_time_budget(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "SnapshotCreationPerVolumeRateExceeded")
    with pytest.raises(Exception, match="SnapshotCreationPerVolumeRateExceeded"):
        create(client, [], timeout=10)


def test_include_boot_adds_the_boot_volume_to_an_explicit_subset():
    selected = snapshot_sets.select_volumes(INSTANCE, volume_ids=["vol-e"], include_boot=True)[0]
    assert ids(selected) == ["vol-root", "vol-e"]
