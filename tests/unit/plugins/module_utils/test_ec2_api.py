"""The thin EC2 calls: amazon.aws's error types, which calls are retried, and the snapshot waiter's answers (EC2
stubbed with botocore's own Stubber; the retry and waiter sleeps are recorded instead of slept)."""

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


@pytest.fixture
def stubbed():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber


def snapshots(*states):
    return {"Snapshots": [{"SnapshotId": "snap-%d" % n, "VolumeId": "vol-%d" % n, "State": state}
                          for n, state in enumerate(states)]}


def test_an_unknown_instance_is_no_instance_not_an_error(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("describe_instances", "InvalidInstanceID.NotFound")
    assert ec2_api.describe_instances(client, ["i-0123456789abcdef0"]) == []


def test_failures_are_amazon_aws_errors_that_say_what_failed(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("describe_instances", "UnauthorizedOperation", "You are not authorized")
    with pytest.raises(AnsibleEC2Error, match="Failed to describe the instance") as raised:
        ec2_api.describe_instances(client, ["i-0123456789abcdef0"])
    assert raised.value.exception.response["Error"]["Code"] == "UnauthorizedOperation"


def test_reads_and_create_tags_are_retried_with_backoff(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("describe_snapshots", "RequestLimitExceeded")
    stubber.add_response("describe_snapshots", snapshots("pending"))
    assert len(ec2_api.describe_snapshots(client, [])) == 1
    stubber.add_client_error("create_tags", "RequestLimitExceeded")
    stubber.add_client_error("create_tags", "InternalError", http_status_code=500)
    stubber.add_response("create_tags", {})
    ec2_api.create_tags(client, ["snap-1"], {"k": "v"})
    stubber.assert_no_pending_responses()
    assert len(sleeps) == 3


def test_create_snapshots_is_never_retried_here(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
    with pytest.raises(AnsibleEC2Error, match="Failed to create the snapshots of the instance"):
        ec2_api.create_snapshots(client, {"InstanceId": "i-1"}, "d", {"k": "v"})
    assert sleeps == []


def test_a_throttled_or_not_yet_listed_answer_does_not_end_the_wait(stubbed, sleeps):
    """amazon.aws's snapshot_completed waiter would return at the throttled answer; botocore's would fail on the
    snapshot EC2 does not list yet."""
    client, stubber = stubbed
    stubber.add_client_error("describe_snapshots", "InvalidSnapshot.NotFound")
    stubber.add_client_error("describe_snapshots", "RequestLimitExceeded")
    stubber.add_response("describe_snapshots", snapshots("pending", "completed"))
    stubber.add_response("describe_snapshots", snapshots("completed", "completed"))
    ec2_api.wait_for_snapshots(client, ["snap-0", "snap-1"], 60)
    stubber.assert_no_pending_responses()
    assert sleeps == [ec2_api.SNAPSHOT_WAIT_DELAY] * 3


def test_a_member_in_error_ends_the_wait_and_is_named(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", snapshots("completed", "error"))
    with pytest.raises(AnsibleEC2Error, match="snapshots snap-1 ended in state error"):
        ec2_api.wait_for_snapshots(client, ["snap-0", "snap-1"], 60)


def test_the_wait_is_bounded(stubbed, sleeps):
    client, stubber = stubbed
    for dummy in range(20):
        stubber.add_response("describe_snapshots", snapshots("pending"))
    with pytest.raises(AnsibleEC2Error, match="the snapshots snap-0 did not complete within 30 s"):
        ec2_api.wait_for_snapshots(client, ["snap-0"], 30)
    assert 30 <= sum(sleeps) <= 35


def test_an_error_the_waiter_cannot_wait_out_is_reported_as_the_aws_error(stubbed, sleeps):
    client, stubber = stubbed
    stubber.add_client_error("describe_snapshots", "UnauthorizedOperation", "You are not authorized")
    with pytest.raises(AnsibleEC2Error, match="Failed to wait for the snapshots to complete.*UnauthorizedOperation"):
        ec2_api.wait_for_snapshots(client, ["snap-0"], 30)
