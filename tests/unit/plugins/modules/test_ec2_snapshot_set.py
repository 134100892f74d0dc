"""ec2_snapshot_set's flow on an existing set: waited for before it is settled, nothing called before the tag checks.

EC2 is botocore's Stubber, which also enforces the order of the calls; ``Module`` stands in for amazon.aws's
AnsibleAWSModule (params, check mode, and the client it would build).
"""

import datetime

import boto3
import botocore.waiter
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set as module

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
PARAMS = dict(instance_id="i-1", set_id="set-1", volumes="all", volume_ids=None, device_names=None, include_boot=False,
              volume_metadata={}, engine="shadow", consistency="application", backup_type="copy", shadow_set_id=None,
              fallback_from=None, awx_job_id=None, policy="default", tags={}, description=None, wait=True, wait_timeout=60)


class Module:
    def __init__(self, client, check_mode=False, **params):
        self.params = dict(PARAMS, **params)
        self.check_mode = check_mode
        self._client = client

    def client(self, service, **kwargs):
        return self._client


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setattr(botocore.waiter.time, "sleep", lambda seconds: None)
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber


def member(volume_id, state):
    tags = snapshot_tags.build_set_tags(set_id="set-1", instance_id="i-1", engine="shadow", consistency="unverified",
                                        created_at=NOW, version="0.1.0", volumes={"vol-d": {}, "vol-e": {}})
    return {"SnapshotId": "snap-" + volume_id, "VolumeId": volume_id, "State": state, "StartTime": NOW,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def listing(*states):
    return {"Snapshots": [member(volume, state) for volume, state in zip(("vol-d", "vol-e"), states)]}


def test_an_existing_set_is_waited_for_then_settled(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", listing("pending", "pending"))
    stubber.add_response("describe_snapshots", listing("completed", "completed"), {"SnapshotIds": ["snap-vol-d", "snap-vol-e"]})
    stubber.add_response("describe_snapshots", listing("completed", "completed"))
    stubber.add_response("create_tags", {}, {"Resources": ["snap-vol-d", "snap-vol-e"],
                                             "Tags": [{"Key": "shadowsnap:consistency", "Value": "application"}]})
    result = module.ensure_snapshot_set(Module(client), "set-1", NOW)
    stubber.assert_no_pending_responses()
    assert result["status"] == "completed" and result["consistency"] == "application" and result["changed"] is True


def test_a_set_with_a_failed_member_is_never_settled(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", listing("pending", "pending"))
    stubber.add_response("describe_snapshots", listing("completed", "error"))
    with pytest.raises(AnsibleEC2Error, match="snapshots snap-vol-e ended in state error"):
        module.ensure_snapshot_set(Module(client), "set-1", NOW)
    stubber.assert_no_pending_responses()


def test_check_mode_does_not_wait(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", listing("pending", "pending"))
    result = module.ensure_snapshot_set(Module(client, check_mode=True), "set-1", NOW)
    stubber.assert_no_pending_responses()
    assert result["status"] == "pending" and result["changed"] is True


def test_tags_over_budget_fail_before_any_call(stubbed):
    client, stubber = stubbed
    with pytest.raises(snapshot_tags.TagSchemaError, match="EC2 allows 50"):
        module.ensure_snapshot_set(Module(client, tags={"Tag%02d" % n: "x" for n in range(45)}), "set-1", NOW)
