"""The EBS side of the lab against the whole lab: the collection's view through the fault proxy (boto3 on
``aws_endpoint_url``) and a test's own view of moto (``LabClient.ec2()``).

What these tests show: each snapshot's point in time is recorded with microseconds on EC2's clock and on the lab's,
one instant for all snapshots of a CreateSnapshots call, beside moto's StartTime cut to the second; EC2's clock can
run ahead of or behind the lab's; DescribeSnapshots is eventually consistent for the collection (for some seconds or
some calls) while a test reading moto sees every snapshot at once; a lost CreateSnapshots answer was carried out.
"""

import datetime
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from lab.control import LAB_CREDENTIALS

HOST = "win-sql-01"


def collection_ec2(client, attempts=1):
    """EC2 as the collection reaches it: through the fault proxy, without botocore's own retries."""
    return boto3.client("ec2", region_name=client.state["region"], endpoint_url=client.state["aws_endpoint_url"],
                        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(retries={"total_max_attempts": attempts, "mode": "standard"}))


def create_set(client, ec2=None):
    instance = client.instance(HOST)
    before = datetime.datetime.now(datetime.timezone.utc)
    answer = (ec2 or collection_ec2(client)).create_snapshots(
        InstanceSpecification={"InstanceId": instance["instance_id"], "ExcludeBootVolume": True})
    after = datetime.datetime.now(datetime.timezone.utc)
    return [snapshot["SnapshotId"] for snapshot in answer["Snapshots"]], before, after


def by_volumes(ec2, client):
    volume_ids = [volume["volume_id"] for volume in client.instance(HOST)["volumes"]]
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"]


def test_points_in_time_have_microseconds_and_one_instant_per_create_snapshots(client):
    snapshot_ids, before, after = create_set(client)
    points = client.snapshot_points(snapshot_ids)
    assert sorted(points) == sorted(snapshot_ids) and len(snapshot_ids) == 3
    assert len({(p["point_in_time"], p["lab_time"]) for p in points.values()}) == 1, "one instant for the whole set"
    record = points[snapshot_ids[0]]
    assert record["action"] == "CreateSnapshots" and record["describe_calls"] == 0
    lab_time = datetime.datetime.fromisoformat(record["lab_time"])
    assert before <= lab_time <= after
    assert record["point_in_time"] == record["lab_time"], "EC2's clock is the lab's unless skewed"
    assert len(record["lab_time"].split(".")[1].split("+")[0]) == 6, "microseconds"
    start_times = {s["SnapshotId"]: s["StartTime"] for s in client.ec2().describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]}
    assert all(start.microsecond == 0 for start in start_times.values()), "moto's StartTime is cut to the second"
    assert start_times[snapshot_ids[0]] == lab_time.replace(microsecond=0)
    assert record["start_time"] == lab_time.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert set(client.snapshot_points()) >= set(snapshot_ids)


def test_ec2_clock_offset_moves_start_time_and_the_point_in_time_but_not_the_lab_time(client):
    assert client.ebs(clock_offset_seconds=-90)["clock_offset_seconds"] == -90
    snapshot_ids, before, after = create_set(client)
    record = client.snapshot_points(snapshot_ids)[snapshot_ids[0]]
    lab_time = datetime.datetime.fromisoformat(record["lab_time"])
    point = datetime.datetime.fromisoformat(record["point_in_time"])
    assert before <= lab_time <= after and point - lab_time == datetime.timedelta(seconds=-90)
    start = client.ec2().describe_snapshots(SnapshotIds=snapshot_ids[:1])["Snapshots"][0]["StartTime"]
    assert start == point.replace(microsecond=0) and start < before


def test_describe_snapshots_is_eventually_consistent_for_the_collection_only(client):
    client.ebs(describe_delay_calls=2)
    ec2 = collection_ec2(client)
    snapshot_ids, dummy, dummy = create_set(client, ec2)
    assert sorted(s["SnapshotId"] for s in by_volumes(client.ec2(), client)) == sorted(snapshot_ids), "a test sees them"
    assert by_volumes(ec2, client) == []
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.describe_snapshots(SnapshotIds=snapshot_ids[:1])
    assert raised.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    assert sorted(s["SnapshotId"] for s in by_volumes(ec2, client)) == sorted(snapshot_ids), "visible on the third call"
    assert client.snapshot_points(snapshot_ids)[snapshot_ids[0]]["describe_calls"] == 2

    client.reset()
    client.ebs(describe_delay_seconds=0.5)
    snapshot_ids, dummy, created = create_set(client, ec2)
    assert by_volumes(ec2, client) == [] and by_volumes(ec2, client) == []
    time.sleep(max(0.0, 0.6 - (datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()))
    assert len(by_volumes(ec2, client)) == len(snapshot_ids)


@pytest.mark.parametrize("lost, expected", [
    ("drop", botocore.exceptions.ConnectionClosedError),
    ("unavailable", "Unavailable"),
    (True, "InternalError"),
])
def test_a_lost_create_snapshots_answer_was_carried_out(client, lost, expected):
    client.faults(rules=[{"action": "CreateSnapshots", "lose_response": lost}])
    instance = client.instance(HOST)
    with pytest.raises(Exception) as raised:
        collection_ec2(client).create_snapshots(InstanceSpecification={"InstanceId": instance["instance_id"],
                                                                       "ExcludeBootVolume": True})
    if isinstance(expected, str):
        assert isinstance(raised.value, botocore.exceptions.ClientError)
        assert raised.value.response["Error"]["Code"] == expected
    else:
        assert isinstance(raised.value, expected)
    assert len(by_volumes(client.ec2(), client)) == 3, "EC2 created the set although the caller saw a failure"
    assert client.counts()["actions"]["CreateSnapshots"]["faults"] == 1
    with pytest.raises(RuntimeError, match="lose_response"):
        client.faults(rules=[{"action": "CreateSnapshots", "lose_response": "later"}])
