"""The DR-copy side of the lab's AWS half, through the fault proxy as the collection reaches it.

What these tests show: a copy stays ``pending`` for the lab's copy duration; the per-destination cap answers
``ResourceLimitExceeded`` and frees a slot as a copy completes (the lab counts the most in flight); a copy reports
the arbitrary VolumeId EC2 gives copies and holds its source's content; encryption follows ``Encrypted`` and
``KmsKeyId`` with the destination's keys (the seeded volumes, hence their sets, are encrypted with aws/ebs); another
account copies only what was shared with it; and a snapshot
encrypted with aws/ebs cannot be shared, nor an encrypted one made public.
"""

import time

import boto3
import botocore.exceptions
import pytest

from lab.control import LAB_CREDENTIALS

from test_aws_retention import HOST, create_set, error_code

DR_REGION = "us-west-2"
VAULT_ACCOUNT = "222222222222"


def aws(client, service, region=None, credentials=None):
    keys = credentials or {"aws_access_key_id": LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           "aws_secret_access_key": LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    return boto3.client(service, region_name=region or client.state["region"],
                        endpoint_url=client.state["aws_endpoint_url"], **keys)


def vault_credentials(client):
    answer = aws(client, "sts").assume_role(RoleArn="arn:aws:iam::%s:role/dr" % VAULT_ACCOUNT, RoleSessionName="lab-test")
    credentials = answer["Credentials"]
    return {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


def copy(ec2, snapshot_id, region="us-east-1", **extra):
    return ec2.copy_snapshot(SourceRegion=region, SourceSnapshotId=snapshot_id, **extra)["SnapshotId"]


def state_of(ec2, snapshot_id):
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def test_a_copy_is_pending_for_the_copy_duration_then_completed_with_an_arbitrary_volume_id(client):
    source = create_set(aws(client, "ec2"), client)[0]
    client.copy_settings(copy_seconds=1.0)
    dr = aws(client, "ec2", DR_REGION)
    copied = copy(dr, source, Description="dr")
    assert state_of(dr, copied)["State"] == "pending"
    time.sleep(1.1)
    snapshot = state_of(dr, copied)
    assert (snapshot["State"], snapshot["Progress"], snapshot["VolumeId"]) == ("completed", "100%", "vol-ffffffff")
    assert client.copies()["copies"][0]["source_snapshot_id"] == source


def test_the_cap_refuses_one_copy_more_per_destination_and_frees_a_slot_as_a_copy_completes(client):
    sources = create_set(aws(client, "ec2"), client)
    client.copy_settings(copy_seconds=0.8, max_concurrent_copies=2)
    dr = aws(client, "ec2", DR_REGION)
    first = [copy(dr, sources[0]), copy(dr, sources[1])]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        copy(dr, sources[0])
    assert error_code(refused) == "ResourceLimitExceeded"
    copy(aws(client, "ec2", "eu-west-1"), sources[0])
    time.sleep(0.9)
    copy(dr, sources[0])
    seen = client.copies()
    assert seen["max_in_flight"] == {"123456789012/us-west-2": 2, "123456789012/eu-west-1": 1}
    assert len(seen["refused"]) == 1 and all(state_of(dr, s)["State"] == "completed" for s in first)


def plain_snapshot(client):
    """A snapshot of an unencrypted volume (the lab's seeded volumes are encrypted with aws/ebs)."""
    ec2 = aws(client, "ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone=client.instance(HOST)["availability_zone"])
    return ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]


def test_encryption_follows_encrypted_and_the_destination_key(client):
    source = plain_snapshot(client)
    dr = aws(client, "ec2", DR_REGION)
    plain = state_of(dr, copy(dr, source))
    assert not plain["Encrypted"]
    seeded = state_of(dr, copy(dr, create_set(aws(client, "ec2"), client)[0]))
    assert seeded["Encrypted"] and seeded["KmsKeyId"].startswith("arn:aws:kms:%s:" % DR_REGION)
    default = state_of(dr, copy(dr, source, Encrypted=True))
    kms = aws(client, "kms", DR_REGION)
    assert default["Encrypted"]
    assert kms.describe_key(KeyId=default["KmsKeyId"])["KeyMetadata"]["KeyManager"] == "AWS"
    key = kms.create_key(Description="dr")["KeyMetadata"]
    keyed = state_of(dr, copy(dr, source, Encrypted=True, KmsKeyId=key["Arn"]))
    assert keyed["KmsKeyId"] == key["Arn"]
    east_key = aws(client, "kms").create_key(Description="east")["KeyMetadata"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as wrong_region:
        copy(dr, source, Encrypted=True, KmsKeyId=east_key)
    assert error_code(wrong_region) == "InvalidParameterValue"


def test_another_account_copies_only_what_was_shared_with_it(client):
    ec2 = aws(client, "ec2")
    create_set(ec2, client, set_id="cmk")
    source = client.encrypt_set("cmk", aws(client, "kms").create_key(Description="cmk")["KeyMetadata"]["Arn"])[0]
    vault = aws(client, "ec2", DR_REGION, vault_credentials(client))
    with pytest.raises(botocore.exceptions.ClientError) as hidden:
        copy(vault, source)
    assert error_code(hidden) == "InvalidSnapshot.NotFound"
    ec2.modify_snapshot_attribute(SnapshotId=source, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[VAULT_ACCOUNT])
    copied = copy(vault, source)
    assert state_of(vault, copied)["OwnerId"] == VAULT_ACCOUNT
    assert client.copies()["copies"][0]["account_id"] == VAULT_ACCOUNT


def test_an_aws_managed_key_snapshot_cannot_be_shared_nor_an_encrypted_one_made_public(client):
    ec2 = aws(client, "ec2")
    client.ebs(per_volume_interval=0)
    create_set(ec2, client, set_id="secret")
    source = client.encrypt_set("secret")[0]
    snapshot = state_of(ec2, source)
    assert snapshot["Encrypted"] and ":key/" in snapshot["KmsKeyId"]
    for permission in ({"UserIds": [VAULT_ACCOUNT]}, {"GroupNames": ["all"]}):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            ec2.modify_snapshot_attribute(SnapshotId=source, Attribute="createVolumePermission", OperationType="add",
                                          **permission)
        assert error_code(refused) == "InvalidParameterValue"
    key = aws(client, "kms").create_key(Description="cmk")["KeyMetadata"]["Arn"]
    create_set(ec2, client, set_id="cmk", created_at="2026-01-02T01:00:00Z")
    shareable = client.encrypt_set("cmk", key)[0]
    ec2.modify_snapshot_attribute(SnapshotId=shareable, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[VAULT_ACCOUNT])
    assert state_of(ec2, shareable)["KmsKeyId"] == key
