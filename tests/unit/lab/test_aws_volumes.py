"""The lab's EBS volumes against the whole lab, through the fault proxy as the collection reaches it: CreateVolume,
AttachVolume and DetachVolume answer what EC2 answers (codes and messages as users report them, docs/lab.md), with
``creating``, ``attaching`` and ``detaching`` lasting as configured, and what each instance has attached readable by
the Windows side (attachments, events, listeners)."""

import time

import botocore.exceptions
import pytest

from test_aws_ebs import collection_ec2

HOST = "win-sql-01"


@pytest.fixture(name="ec2")
def ec2_fixture(client):
    return collection_ec2(client)


@pytest.fixture(name="snapshot")
def snapshot_fixture(client, ec2):
    """A completed snapshot of the SQL host's D: (its content is the host's seeded D:)."""
    instance = client.instance(HOST)
    volume_id = next(v["volume_id"] for v in instance["volumes"] if v["drive"] == "D:")
    return ec2.create_snapshot(VolumeId=volume_id)


def error_of(call, **arguments):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**arguments)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def zone(client):
    return client.instance(HOST)["availability_zone"]


def state(ec2, volume_id):
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    return volume["State"], [a["State"] for a in volume["Attachments"]]


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_volume_from_a_snapshot_holds_its_content_and_key_and_is_creating_for_a_while(client, ec2, snapshot):
    client.volumes(creating_seconds=3)
    volume = ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client),
                               TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert volume["State"] == "creating" and volume["Size"] == snapshot["VolumeSize"]
    assert state(ec2, volume["VolumeId"]) == ("creating", [])
    assert wait_for(lambda: state(ec2, volume["VolumeId"])[0] == "available")
    described = ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]
    assert described["Encrypted"] and described["KmsKeyId"], "a snapshot of an encrypted volume carries its key"
    created = ec2.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"][0]
    assert created["KmsKeyId"] == described["KmsKeyId"] and created["Tags"] == [{"Key": "k", "Value": "v"}]
    assert client.volume_content(volume["VolumeId"])["files"] == client.snapshot_content(
        snapshot["SnapshotId"], include_system=True)["files"]
    other = ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client), Encrypted=True,
                              KmsKeyId="alias/restores")
    assert other["KmsKeyId"] == "alias/restores", "a key given replaces the snapshot's"


@pytest.mark.parametrize("arguments, code, message", [
    ({"Size": 10}, "InvalidParameterValue", "Volume of size 10GB is smaller than snapshot"),
    ({"AvailabilityZone": "us-east-1x"}, "InvalidZone.NotFound", "The zone 'us-east-1x' does not exist."),
    ({"AvailabilityZone": "eu-west-1a"}, "InvalidZone.NotFound", "The zone 'eu-west-1a' does not exist."),
])
def test_create_volume_refuses_what_ec2_refuses(client, ec2, snapshot, arguments, code, message):
    request = dict({"SnapshotId": snapshot["SnapshotId"], "AvailabilityZone": zone(client)}, **arguments)
    assert error_of(ec2.create_volume, **request)[0] == code
    assert message in error_of(ec2.create_volume, **request)[1]


def test_archived_and_pending_snapshots_and_the_storage_quota_refuse_a_volume(client, ec2, snapshot):
    client.set_snapshot_tier(snapshot["SnapshotId"], "archive")
    assert ec2.describe_snapshots(SnapshotIds=[snapshot["SnapshotId"]])["Snapshots"][0]["StorageTier"] == "archive"
    code, message = error_of(ec2.create_volume, SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client))
    assert code == "IncorrectState" and "RestoreSnapshotTier" in message
    client.set_snapshot_tier(snapshot["SnapshotId"], "standard")

    used = sum(v["Size"] for v in client.ec2().describe_volumes()["Volumes"])
    client.volumes(storage_limit_gib=used + snapshot["VolumeSize"])
    ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client))
    code, message = error_of(ec2.create_volume, SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client))
    assert code == "VolumeLimitExceeded" and "storage limit" in message

    client.ebs(pending_seconds=30, per_volume_interval=0)
    pending = ec2.create_snapshot(VolumeId=snapshot["VolumeId"])
    code, message = error_of(ec2.create_volume, SnapshotId=pending["SnapshotId"], AvailabilityZone=zone(client))
    assert (code, message) == ("IncorrectState", "Snapshot is in invalid state - pending")


def test_a_repeated_client_token_answers_the_first_volume(client, ec2, snapshot):
    request = {"SnapshotId": snapshot["SnapshotId"], "AvailabilityZone": zone(client), "ClientToken": "restore-1-0"}
    first = ec2.create_volume(**request)
    assert ec2.create_volume(**request)["VolumeId"] == first["VolumeId"]
    assert len([v for v in client.ec2().describe_volumes()["Volumes"] if v.get("SnapshotId") == snapshot["SnapshotId"]]) == 1
    assert error_of(ec2.create_volume, **dict(request, Size=500))[0] == "IdempotentParameterMismatch"


@pytest.fixture(name="heard")
def heard_fixture(lab):
    """What a listener of the lab's volume events hears during the test."""
    heard = []
    lab.volumes.subscribe(heard.append)
    yield heard
    lab.volumes.unsubscribe(heard.append)


def test_attach_goes_through_attaching_and_answers_what_ec2_answers(client, ec2, snapshot, heard):
    instance = client.instance(HOST)
    client.volumes(creating_seconds=3, attaching_seconds=8)
    volume_id = ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone(client))["VolumeId"]
    attach = {"VolumeId": volume_id, "InstanceId": instance["instance_id"]}
    assert error_of(ec2.attach_volume, Device="xvdf", **attach) == ("IncorrectState", "%s is not 'available'." % volume_id)
    assert wait_for(lambda: state(ec2, volume_id)[0] == "available")
    for device in ("xvdb", "/dev/xvdb", "/dev/sda1"):
        code, message = error_of(ec2.attach_volume, Device=device, **attach)
        assert code == "InvalidParameterValue" and "Attachment point %s is already in use" % device in message
    elsewhere = ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone="us-east-1b")["VolumeId"]
    assert wait_for(lambda: state(ec2, elsewhere)[0] == "available")
    assert error_of(ec2.attach_volume, VolumeId=elsewhere, InstanceId=instance["instance_id"], Device="xvdf") == (
        "InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'"
        % (elsewhere, instance["instance_id"]))

    assert ec2.attach_volume(Device="xvdf", **attach)["State"] == "attaching"
    assert state(ec2, volume_id) == ("in-use", ["attaching"])
    mapping = ec2.describe_instances(InstanceIds=[instance["instance_id"]])["Reservations"][0]["Instances"][0]
    assert {m["DeviceName"]: m["Ebs"]["Status"] for m in mapping["BlockDeviceMappings"]}["xvdf"] == "attaching"
    assert error_of(ec2.attach_volume, Device="xvdg", **attach) == (
        "VolumeInUse", "%s is already attached to an instance" % volume_id)
    assert client.attachment_events() == [] and heard == []
    assert wait_for(lambda: state(ec2, volume_id) == ("in-use", ["attached"]))
    assert wait_for(lambda: heard), "the timer finishes the attachment and tells the listeners"
    (event,) = client.attachment_events(instance["instance_id"])
    assert (event["event"], event["volume_id"], event["device"]) == ("attached", volume_id, "xvdf") and heard == [event]
    attached = {a["device"]: a for a in client.attachments(instance["instance_id"])[instance["instance_id"]]}
    assert attached["xvdf"] == {"device": "xvdf", "volume_id": volume_id, "root": False, "state": "attached"}
    assert attached["/dev/sda1"]["root"] is True


def test_detach_goes_through_detaching_and_the_root_of_a_running_instance_stays(client, ec2):
    instance = client.instance(HOST)
    data = next(v["volume_id"] for v in instance["volumes"] if v["drive"] == "F:")
    root = next(v["volume_id"] for v in instance["volumes"] if v["device"] == "/dev/sda1")
    assert error_of(ec2.detach_volume, VolumeId=root) == (
        "IncorrectState", "Unable to detach root volume '%s' from instance '%s'" % (root, instance["instance_id"]))
    client.volumes(detaching_seconds=5)
    assert ec2.detach_volume(VolumeId=data, InstanceId=instance["instance_id"])["State"] == "detaching"
    assert state(ec2, data) == ("in-use", ["detaching"])
    assert error_of(ec2.detach_volume, VolumeId=data)[0] == "IncorrectState"
    assert "xvdd" in {a["device"] for a in client.attachments(instance["instance_id"])[instance["instance_id"]]}
    assert wait_for(lambda: state(ec2, data) == ("available", []))
    assert "xvdd" not in {a["device"] for a in client.attachments(instance["instance_id"])[instance["instance_id"]]}
    assert [e["event"] for e in client.attachment_events(instance["instance_id"])] == ["detached"]
    assert error_of(ec2.detach_volume, VolumeId=data) == ("IncorrectState", "Volume '%s' is in the 'available' state." % data)

    ec2.stop_instances(InstanceIds=[instance["instance_id"]])
    client.volumes(detaching_seconds=0)
    assert ec2.detach_volume(VolumeId=root)["VolumeId"] == root, "a stopped instance's root volume detaches"
    assert state(ec2, root) == ("available", [])
