# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 for the action plugins against moto's in-process EC2: a taken set id is known before any VSS work, the shadow
engine's set is planned (tag budget included) before the shadow set exists, and failures come out as one error type."""

from __future__ import annotations

import boto3
import botocore.awsrequest
import pytest
from moto import mock_aws

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import action_ec2

REGION = "eu-west-1"
PLUGIN = "shadowsnap.ec2.win_vss_snapshot_set"
SHADOW = "{11111111-2222-4333-8444-555555555555}"


@pytest.fixture(name="ec2")
def ec2_fixture(monkeypatch):
    """Two instances, each with a data volume at xvdf, in moto; no endpoint or region from the machine."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    with mock_aws():
        client = boto3.client("ec2", region_name=REGION)
        image = client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        group = client.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        instances = {}
        for name in ("sql", "web"):
            instance = client.run_instances(ImageId=image, MinCount=1, MaxCount=1, SecurityGroupIds=[group],
                                            Placement={"AvailabilityZone": REGION + "a"})["Instances"][0]
            data = client.create_volume(Size=10, AvailabilityZone=REGION + "a")["VolumeId"]
            client.attach_volume(VolumeId=data, InstanceId=instance["InstanceId"], Device="xvdf")
            instances[name] = {"instance_id": instance["InstanceId"], "data": data}
        yield client, instances


def our_snapshots(client):
    return [s for s in client.describe_snapshots(OwnerIds=["self"])["Snapshots"]
            if any(t["Key"] == "shadowsnap:set-id" for t in s.get("Tags", []))]


def request(volume_id, **overrides):
    return dict({"volume_ids": [volume_id], "include_boot": False, "policy": "daily", "backup_type": "copy",
                 "shadow_set_id": SHADOW, "tags": {}, "volume_metadata": {volume_id: {"paths": ["D:\\"]}}}, **overrides)


def test_a_free_set_id_is_none_and_a_taken_one_is_the_set_before_any_vss_work(ec2):
    client, instances = ec2
    sql = instances["sql"]
    reader = action_ec2.ec2_client({}, PLUGIN, REGION)
    assert action_ec2.existing_snapshot_set(reader, "sql-1", sql["instance_id"]) is None
    assert action_ec2.existing_snapshot_set(reader, "sql-1") is None

    prepared = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"], "sql-1")
    assert prepared["existing"] is None
    created = action_ec2.create_shadow_snapshot_set(
        prepared, request(sql["data"], volume_metadata={sql["data"]: {"paths": ["D:\\"], "shadow_id": "{S-D}"}}))
    assert created["changed"] is True and list(created["volume_snapshot_map"]) == [sql["data"]]

    existing = action_ec2.existing_snapshot_set(reader, "sql-1", sql["instance_id"])
    assert existing["changed"] is False
    assert existing["volume_snapshot_map"] == created["volume_snapshot_map"]
    assert existing["consistency"] == "unverified" and existing["engine"] == "shadow"
    assert existing["tags"]["shadowsnap:shadow-set-id"] == SHADOW
    assert action_ec2.existing_snapshot_set(reader, "sql-1")["set_id"] == "sql-1"
    with pytest.raises(action_ec2.Ec2LookupError, match="already belongs to instance %s" % sql["instance_id"]):
        action_ec2.existing_snapshot_set(reader, "sql-1", instances["web"]["instance_id"])


def test_a_prepared_existing_set_is_returned_without_a_second_create(ec2):
    client, instances = ec2
    sql = instances["sql"]
    first = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"], "sql-2")
    action_ec2.create_shadow_snapshot_set(first, request(sql["data"]))
    again = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"], "sql-2")
    assert again["existing"]["set_id"] == "sql-2"
    assert action_ec2.create_shadow_snapshot_set(again, request(sql["data"]))["changed"] is False
    assert len(our_snapshots(client)) == 1


def test_the_tag_budget_is_checked_before_the_shadow_set_exists(ec2):
    client, instances = ec2
    sql = instances["sql"]
    prepared = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"], "sql-3")
    # 10 set-level tags, a member, the launch record and its security group: 37 user tags fit.
    fits = request(sql["data"], shadow_set_id=None, tags={"Tag%02d" % n: "x" for n in range(37)})
    action_ec2.check_shadow_snapshot_set(prepared, fits)
    too_many = dict(fits, tags={"Tag%02d" % n: "x" for n in range(38)})
    with pytest.raises(action_ec2.Ec2LookupError, match="EC2 allows 50"):
        action_ec2.check_shadow_snapshot_set(prepared, too_many)
    long_paths = request(sql["data"], volume_metadata={sql["data"]: {"paths": ["D:\\" + "x" * 200]}})
    with pytest.raises(action_ec2.Ec2LookupError, match="EC2 allows 256"):
        action_ec2.check_shadow_snapshot_set(prepared, long_paths)
    with pytest.raises(action_ec2.Ec2LookupError, match="is not attached"):
        action_ec2.check_shadow_snapshot_set(prepared, request(instances["web"]["data"]))
    assert our_snapshots(client) == []
    created = action_ec2.create_shadow_snapshot_set(
        prepared, dict(fits, shadow_set_id=SHADOW,
                       volume_metadata={sql["data"]: {"paths": ["D:\\"], "shadow_id": SHADOW}}))
    assert len(created["tags"]) == 50


def test_an_unknown_instance_is_one_clear_error(ec2):
    reader = action_ec2.ec2_client({}, PLUGIN, REGION)
    with pytest.raises(action_ec2.Ec2LookupError, match="instance i-0123456789abcdef0 does not exist"):
        action_ec2.instance_attachments(reader, "i-0123456789abcdef0")
    with pytest.raises(action_ec2.Ec2LookupError, match="instance i-0123456789abcdef0 does not exist"):
        action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, "i-0123456789abcdef0", "x-1")


def test_no_volume_is_never_read_as_every_volume(ec2):
    client, instances = ec2
    sql = instances["sql"]
    prepared = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"])
    assert prepared["set_id"].startswith(sql["instance_id"] + "-"), "the default set id: instance and UTC time"
    for call in (action_ec2.check_shadow_snapshot_set, action_ec2.create_shadow_snapshot_set):
        with pytest.raises(action_ec2.Ec2LookupError, match="no EBS volume id is known for the shadow set's volumes"):
            call(prepared, request(sql["data"], volume_ids=[], volume_metadata={}))
    assert our_snapshots(client) == []


def test_the_in_session_creation_is_retried_past_any_attempt_count_while_its_time_lasts(ec2, monkeypatch):
    """Twelve throttled CreateSnapshots (the module's own limit is 8 attempts) and then one that EC2 admits."""
    client, instances = ec2
    sql = instances["sql"]
    monkeypatch.setattr(action_ec2.snapshot_sets.random, "uniform", lambda low, high: 0.0)
    prepared = action_ec2.prepare_shadow_snapshot_set({}, PLUGIN, REGION, sql["instance_id"], "sql-throttled")
    refusals = iter(range(12))

    def throttled(**kwargs):
        """Answers before the request is sent, as EC2 answers an empty token bucket: nothing is carried out."""
        if next(refusals, None) is None:
            return None
        error = {"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."},
                 "ResponseMetadata": {"HTTPStatusCode": 503}}
        return botocore.awsrequest.AWSResponse("https://ec2", 503, {}, None), error

    prepared["create_client"].meta.events.register("before-call.ec2.CreateSnapshots", throttled)
    created = action_ec2.create_shadow_snapshot_set(prepared, request(sql["data"], timeout=300))
    assert created["changed"] is True and len(our_snapshots(client)) == 1
    assert [retry["error"] for retry in created["retries"]] == ["RequestLimitExceeded"] * 12
