"""The thin EC2 volume calls: which are retried (CreateVolume with its client token like a read; attach and detach
only when throttled), and the waiters on the volumes' and the attachments' own states (EC2 stubbed with botocore's
own Stubber; the retry and waiter sleeps are recorded instead of slept)."""

import boto3
import botocore.waiter
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api


@pytest.fixture(name="sleeps")
def sleeps_fixture(monkeypatch):
    sleeps = []
    monkeypatch.setattr(cloud.time, "sleep", sleeps.append)
    monkeypatch.setattr(botocore.waiter.time, "sleep", sleeps.append)
    return sleeps


@pytest.fixture(name="stubbed")
def stubbed_fixture():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber


def volumes(*states, attachment=None):
    return {"Volumes": [{"VolumeId": "vol-%d" % n, "State": state,
                         "Attachments": [{"State": attachment, "InstanceId": "i-1", "Device": "xvdf"}] if attachment else []}
                        for n, state in enumerate(states)]}


def test_create_volume_is_repeated_with_the_same_client_token(stubbed, sleeps):
    client, stubber = stubbed
    expected = {"SnapshotId": "snap-1", "AvailabilityZone": "us-east-1a", "ClientToken": "run-0",
                "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}]}
    stubber.add_client_error("create_volume", "InternalError", http_status_code=500, expected_params=expected)
    stubber.add_client_error("create_volume", "RequestLimitExceeded", http_status_code=503, expected_params=expected)
    stubber.add_response("create_volume", {"VolumeId": "vol-1"}, expected)
    volume = ec2_api.create_volume(client, {"SnapshotId": "snap-1", "AvailabilityZone": "us-east-1a"}, {"k": "v"}, "run-0")
    assert volume["VolumeId"] == "vol-1" and len(sleeps) == 2


def test_attach_and_detach_are_retried_only_when_throttled(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("attach_volume", "RequestLimitExceeded", http_status_code=503)
    stubber.add_response("attach_volume", {"State": "attaching"})
    assert ec2_api.attach_volume(client, "vol-1", "i-1", "xvdf")["State"] == "attaching"
    stubber.add_client_error("detach_volume", "InternalError", http_status_code=500)
    with pytest.raises(AnsibleEC2Error, match="Failed to detach the volume"):
        ec2_api.detach_volume(client, "vol-1", "i-1")
    stubber.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_unknown_volumes_are_no_volumes_and_deleting_one_twice_is_done_once(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_volumes", "InvalidVolume.NotFound")
    assert ec2_api.describe_volumes(client, ["vol-1"]) == []
    stubber.add_client_error("delete_volume", "InvalidVolume.NotFound")
    assert ec2_api.delete_volume(client, "vol-1") is False


def test_attached_means_the_attachment_is_attached_not_the_volume_in_use(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_response("describe_volumes", volumes("in-use", "in-use", attachment="attaching"))
    stubber.add_client_error("describe_volumes", "RequestLimitExceeded")
    stubber.add_response("describe_volumes", {"Volumes": volumes("in-use", attachment="attached")["Volumes"]
                                              + [{"VolumeId": "vol-1", "State": "available", "Attachments": []}]})
    stubber.add_response("describe_volumes", volumes("in-use", "in-use", attachment="attached"))
    ec2_api.wait_for_volumes(client, ["vol-0", "vol-1"], "volumes_attached", 60)
    stubber.assert_no_pending_responses()
    assert sleeps == [ec2_api.VOLUME_WAIT_DELAY] * 3


def test_a_volume_not_listed_yet_is_waited_for_and_one_in_error_fails_the_wait(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("describe_volumes", "InvalidVolume.NotFound")
    stubber.add_response("describe_volumes", volumes("creating", "available"))
    stubber.add_response("describe_volumes", volumes("available", "available"))
    ec2_api.wait_for_volumes(client, ["vol-0", "vol-1"], "volumes_available", 60)
    stubber.add_response("describe_volumes", volumes("creating", "error"))
    with pytest.raises(AnsibleEC2Error, match="volumes vol-1 ended in state error"):
        ec2_api.wait_for_volumes(client, ["vol-0", "vol-1"], "volumes_available", 60)


def test_a_wait_that_times_out_says_what_each_volume_is(stubbed, sleeps):
    client, stubber = stubbed
    for dummy in range(4):
        stubber.add_response("describe_volumes", volumes("in-use", attachment="detaching"))
    with pytest.raises(AnsibleEC2Error, match=r"not available within 6 s \(vol-0 in-use/detaching\)"):
        ec2_api.wait_for_volumes(client, ["vol-0"], "volumes_available", 6)
