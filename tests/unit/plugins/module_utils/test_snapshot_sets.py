"""Volume selection, set grouping, finding a set by id, the tag checks before any call and the CreateSnapshots retry
loop with its lookups after a lost answer (EC2 stubbed with botocore's own Stubber)."""

import datetime

import boto3
import botocore.config
import botocore.exceptions
import pytest
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
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
    ({"volume_ids": []}, "an empty list of volume ids or device names names no volume of i-1"),
    ({"volume_ids": [], "device_names": []}, "an empty list of volume ids or device names names no volume of i-1"),
    ({"device_names": [], "include_boot": True}, "an empty list of volume ids or device names names no volume of i-1"),
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


# A lost CreateSnapshots answer: EC2's Describe calls are eventually consistent, so the set is looked for repeatedly.

TWO_MEMBERS = ["vol-d", "vol-e"]


def listed(*volume_ids):
    return {"Snapshots": [snapshot("snap-%s" % v, v, "pending", TWO_MEMBERS) for v in volume_ids]}


def test_a_lost_answer_is_looked_for_with_growing_waits_until_the_set_is_listed(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
    for answer in ({"Snapshots": []}, {"Snapshots": []}, listed("vol-d", "vol-e")):
        stubber.add_response("describe_snapshots", answer)
    sleeps = []
    snapshots, retries = create(client, sleeps)
    stubber.assert_no_pending_responses()  # and no second CreateSnapshots: none is stubbed
    assert sorted(s["VolumeId"] for s in snapshots) == TWO_MEMBERS
    assert [r["error"] for r in retries] == ["InternalError", "reconciled"]
    assert retries[0]["lookups"] == 3 and retries[0]["wait_seconds"] == pytest.approx(sum(sleeps), abs=0.01)
    assert len(sleeps) == 3
    for lookup, wait in enumerate(sleeps):
        assert wait >= snapshot_sets.RECONCILE_FIRST_WAIT * 2 ** lookup


def test_the_set_is_looked_for_after_the_last_attempt_too(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "ServiceUnavailable", http_status_code=503)
    stubber.add_response("describe_snapshots", {"Snapshots": []})
    stubber.add_response("describe_snapshots", listed("vol-d", "vol-e"))
    snapshots, retries = create(client, [], max_attempts=1)
    assert len(snapshots) == 2 and retries[-1]["error"] == "reconciled"
    stubber.assert_no_pending_responses()


def test_a_set_never_listed_is_created_again_only_while_attempts_remain(stubbed):
    client, stubber = stubbed
    for dummy in range(2):
        stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
        for lookup in range(snapshot_sets.RECONCILE_LOOKUPS):
            stubber.add_response("describe_snapshots", {"Snapshots": []})
    sleeps = []
    with pytest.raises(AnsibleEC2Error, match="InternalError"):
        create(client, sleeps, max_attempts=2)
    stubber.assert_no_pending_responses()
    assert len(sleeps) == 2 * snapshot_sets.RECONCILE_LOOKUPS
    assert all(wait >= snapshot_sets.RECONCILE_FIRST_WAIT for wait in sleeps)


def test_a_partly_listed_set_is_waited_for_and_never_created_again(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
    stubber.add_response("describe_snapshots", listed("vol-d"))
    stubber.add_response("describe_snapshots", listed("vol-d", "vol-e"))
    snapshots, retries = create(client, [])
    assert len(snapshots) == 2
    assert [r["error"] for r in retries] == ["InternalError", "reconciled"] and retries[0]["lookups"] == 2


def test_a_set_still_partly_listed_after_every_lookup_is_returned_as_it_is(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "InternalError", http_status_code=500)
    for lookup in range(snapshot_sets.RECONCILE_LOOKUPS):
        stubber.add_response("describe_snapshots", listed("vol-d"))
    snapshots, retries = create(client, [])
    stubber.assert_no_pending_responses()
    (found,) = snapshot_sets.group_sets(snapshots)
    assert found["status"] == "incomplete" and found["missing_volume_ids"] == ["vol-e"]
    assert retries[-1]["error"] == "reconciled"


def test_a_timeout_after_the_request_was_sent_is_looked_up_before_anything_else(stubbed):
    read_client, stubber = stubbed
    create_client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                                 config=botocore.config.Config(retries={"total_max_attempts": 1}))

    def answer_lost(**kwargs):
        raise botocore.exceptions.ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com")

    create_client.meta.events.register("before-send.ec2.CreateSnapshots", answer_lost)
    stubber.add_response("describe_snapshots", listed("vol-d", "vol-e"))
    snapshots, retries = snapshot_sets.create_snapshot_set(create_client, read_client, SPEC, "d", {"k": "v"}, "set-1",
                                                           sleep=[].append)
    assert len(snapshots) == 2
    assert [r["error"] for r in retries] == ["ReadTimeoutError", "reconciled"]


def test_throttling_is_not_looked_up_it_was_never_carried_out(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshots", "RequestLimitExceeded")
    stubber.add_response("create_snapshots", CREATED)
    snapshots, retries = create(client, [])
    assert [r["error"] for r in retries] == ["RequestLimitExceeded"]
    stubber.assert_no_pending_responses()


def test_an_existing_set_is_found_by_its_id_and_must_belong_to_the_instance(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", {"Snapshots": []})
    assert snapshot_sets.find_existing_set(client, "set-1", "i-1") is None
    stubber.add_response("describe_snapshots", listed("vol-d", "vol-e"),
                         {"OwnerIds": ["self"], "MaxResults": 500, "Filters": [
                             {"Name": "tag-key", "Values": ["shadowsnap:set-id"]},
                             {"Name": "tag:shadowsnap:set-id", "Values": ["set-1"]}]})
    found = snapshot_sets.find_existing_set(client, "set-1", "i-1")
    assert found["set_id"] == "set-1" and sorted(found["volume_snapshot_map"]) == TWO_MEMBERS
    stubber.add_response("describe_snapshots", listed("vol-d", "vol-e"))
    with pytest.raises(snapshot_sets.SnapshotSetError, match="set id set-1 already belongs to instance i-1, not i-2"):
        snapshot_sets.find_existing_set(client, "set-1", "i-2")


# What of the tag budget is known before any API call.

TAG_FIELDS = dict(set_id="set-1", engine="crash", consistency="crash", version="0.1.0", policy="default",
                  created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))


def user_tags(count):
    return {"Tag%02d" % n: "x" for n in range(count)}


def test_the_tag_check_before_calls_refuses_what_the_plan_refuses():
    selection = {"device_names": ["xvdb", "xvdc"]}
    with pytest.raises(snapshot_tags.TagSchemaError, match="EC2 allows 50"):
        snapshot_sets.check_tags_before_calls("i-1", selection, {}, user_tags=user_tags(41), **TAG_FIELDS)
    with pytest.raises(snapshot_tags.TagSchemaError, match="EC2 allows 50"):
        snapshot_sets.plan_snapshot_set(INSTANCE, selection, {}, user_tags=user_tags(41), **TAG_FIELDS)


def test_the_tag_check_before_calls_accepts_what_the_plan_accepts():
    """40 user tags, 8 set-level tags, the launch record (an instance with no security group, profile or key pair: one
    tag) and one member: 50. A volume named by id and by device counts once."""
    selection = {"volume_ids": ["vol-d"], "device_names": ["xvdb"]}
    snapshot_sets.check_tags_before_calls("i-1", selection, {}, user_tags=user_tags(40), **TAG_FIELDS)
    tags = snapshot_sets.plan_snapshot_set(INSTANCE, selection, {}, user_tags=user_tags(40), **TAG_FIELDS)[2]
    assert len(tags) == snapshot_tags.MAX_TAGS_PER_SNAPSHOT


@pytest.mark.parametrize("problem, fields, metadata, message", [
    ("reserved prefix", {"user_tags": {"shadowsnap:x": "1"}}, {}, "reserved prefix"),
    ("crash engine", {"consistency": "application"}, {}, "crash engine cannot produce"),
    ("long paths", {}, {"xvdb": {"paths": ["D:\\" + "x" * 300]}}, "EC2 allows 256"),
])
def test_the_tag_check_before_calls_sees_bad_values(problem, fields, metadata, message):
    with pytest.raises(snapshot_tags.TagSchemaError, match=message):
        snapshot_sets.check_tags_before_calls("i-1", {"device_names": ["xvdb"]}, metadata, **dict(TAG_FIELDS, **fields))


class FakeClock:
    """time.monotonic and time.sleep of a run whose sleeps take exactly as long as asked."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def test_without_an_attempt_count_throttling_is_retried_for_as_long_as_the_time_allows(stubbed):
    client, stubber = stubbed
    for dummy in range(12):
        stubber.add_client_error("create_snapshots", "RequestLimitExceeded", http_status_code=503)
    stubber.add_response("create_snapshots", CREATED)
    fake = FakeClock()
    snapshots, retries = snapshot_sets.create_snapshot_set(client, client, SPEC, "d", {"k": "v"}, "set-1", max_attempts=None,
                                                           timeout=3600, sleep=fake.sleep, clock=fake.clock)
    stubber.assert_no_pending_responses()
    assert snapshots[0]["SnapshotId"] == "snap-1"
    assert [r["error"] for r in retries] == ["RequestLimitExceeded"] * 12, "more than the default 8 attempts"
    assert all(0 <= wait <= 30 for wait in fake.sleeps)


def test_without_an_attempt_count_throttling_gives_up_when_the_time_is_spent_never_sleeping_past_it(stubbed):
    client, stubber = stubbed
    for dummy in range(200):
        stubber.add_client_error("create_snapshots", "RequestLimitExceeded", http_status_code=503)
    fake = FakeClock()
    with pytest.raises(AnsibleEC2Error, match="RequestLimitExceeded"):
        snapshot_sets.create_snapshot_set(client, client, SPEC, "d", {"k": "v"}, "set-1", max_attempts=None, timeout=45,
                                          sleep=fake.sleep, clock=fake.clock)
    assert fake.now <= 45, "no wait goes past the budget"
    assert len(fake.sleeps) > 2


def test_a_throttling_wait_is_cut_to_what_is_left_of_the_time(stubbed, monkeypatch):
    client, stubber = stubbed
    monkeypatch.setattr(snapshot_sets.random, "uniform", lambda low, high: high)
    stubber.add_client_error("create_snapshots", "RequestLimitExceeded", http_status_code=503)
    stubber.add_response("create_snapshots", CREATED)
    fake = FakeClock()
    dummy, retries = snapshot_sets.create_snapshot_set(client, client, SPEC, "d", {"k": "v"}, "set-1", max_attempts=None,
                                                       timeout=1.5, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [1.5] and retries == [{"error": "RequestLimitExceeded", "wait_seconds": 1.5}]
