"""Restore planning from a set's tags: choosing the set, the volumes and the CreateVolume requests, and every refusal
before a volume exists (sets built from real snapshot tags, EC2 stubbed with botocore's own Stubber)."""

import datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_volumes, snapshot_sets, snapshot_tags

CREATED = datetime.datetime(2026, 11, 25, 1, 37, tzinfo=datetime.timezone.utc)
MEMBERS = {
    "vol-d": {"device": "xvdb", "paths": ["D:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}"},
    "vol-e": {"device": "xvdc", "paths": ["E:\\", "C:\\Mounts\\Logs"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000002}"},
    "vol-f": {"device": "xvdd", "paths": ["F:\\"], "shadow_id": None},
}


def raw_snapshots(set_id="set-1", engine="shadow", consistency="application", start=CREATED, states=None,
                  members=None, tier=None):
    members = members or MEMBERS
    tags = snapshot_tags.build_set_tags(set_id, "i-1", engine, consistency, start, "0.2.0", members)
    return [
        {"SnapshotId": "snap-%s" % volume_id[4:], "VolumeId": volume_id, "VolumeSize": 100, "State": (states or {}).get(
            volume_id, "completed"), "StartTime": start, "StorageTier": (tier or {}).get(volume_id, "standard"),
         "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        for volume_id in sorted(members)
    ]


def summary(**options):
    snapshots = raw_snapshots(**options)
    return snapshot_sets.group_sets(snapshots)[0], dict((s["SnapshotId"], s) for s in snapshots)


@pytest.fixture(name="stubbed")
def stubbed_fixture():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stubber:
        yield client, stubber


@pytest.mark.parametrize("selectors, expected", [
    ([], ["vol-d", "vol-e", "vol-f"]),
    (["d:"], ["vol-d"]),
    (["E:\\", "D"], ["vol-d", "vol-e"]),
    (["c:/mounts/logs/"], ["vol-e"]),
    (["/dev/xvdd"], ["vol-f"]),
    (["/dev/xvdb", "vol-f"], ["vol-d", "vol-f"]),
    (["D:", "vol-d"], ["vol-d"]),
])
def test_volumes_are_chosen_by_drive_mount_point_device_or_volume(selectors, expected):
    found, dummy = summary()
    assert [m["volume_id"] for m in restore_volumes.select_members(found, selectors)] == expected


@pytest.mark.parametrize("selector, message", [
    ("G:", r"drive letter or mount point G: is not in set set-1 \(its volumes: vol-d at xvdb \(D:\\\)"),
    ("xvdq", "device xvdq is not in set set-1"),
    ("vol-x", "volume vol-x is not in set set-1"),
])
def test_a_selector_that_names_no_member_is_refused_naming_what_the_set_has(selector, message):
    found, dummy = summary()
    with pytest.raises(restore_volumes.RestoreError, match=message):
        restore_volumes.select_members(found, ["D:", selector])


@pytest.mark.parametrize("engine, consistency, expected", [
    ("shadow", "application", "crash"),
    ("aws_vss", "application", "application"),
    ("crash", "crash", "crash"),
    ("shadow", "unverified", "crash"),
    ("aws_vss", "unverified", "crash"),
])
def test_a_restored_volume_is_application_consistent_only_without_a_shadow_to_revert(engine, consistency, expected):
    assert restore_volumes.restored_consistency(engine, consistency) == expected


def test_a_named_set_must_be_complete_and_of_the_required_consistency(stubbed):
    client, stubber = stubbed
    crash = raw_snapshots(engine="crash", consistency="crash")
    stubber.add_response("describe_snapshots", {"Snapshots": crash})
    with pytest.raises(restore_volumes.RestoreError, match="crash-consistent .* application consistency is required"):
        restore_volumes.choose_set(client, set_id="set-1", required="application")
    stubber.add_response("describe_snapshots", {"Snapshots": raw_snapshots(engine="shadow", consistency="unverified")})
    with pytest.raises(restore_volumes.RestoreError, match="unverified-consistent"):
        restore_volumes.choose_set(client, set_id="set-1", required="application")
    stubber.add_response("describe_snapshots", {"Snapshots": crash[1:]})
    with pytest.raises(restore_volumes.RestoreError, match="set set-1 is incomplete: volumes vol-d have no snapshot"):
        restore_volumes.choose_set(client, set_id="set-1")
    stubber.add_response("describe_snapshots", {"Snapshots": raw_snapshots(states={"vol-e": "pending"})})
    with pytest.raises(restore_volumes.RestoreError, match="not complete yet .*snap-e are pending"):
        restore_volumes.choose_set(client, set_id="set-1")
    stubber.add_response("describe_snapshots", {"Snapshots": raw_snapshots(states={"vol-e": "error"})})
    with pytest.raises(restore_volumes.RestoreError, match="snapshots snap-e failed"):
        restore_volumes.choose_set(client, set_id="set-1")
    stubber.add_response("describe_snapshots", {"Snapshots": []})
    with pytest.raises(restore_volumes.RestoreError, match="no snapshot set set-1"):
        restore_volumes.choose_set(client, set_id="set-1")


def test_the_newest_complete_set_at_or_before_the_point_in_time_is_chosen(stubbed):
    client, stubber = stubbed
    hour = datetime.timedelta(hours=1)
    older = raw_snapshots("older", start=CREATED - hour, members={"vol-d": MEMBERS["vol-d"]})
    newer = raw_snapshots("newer", engine="crash", consistency="crash", start=CREATED, members={"vol-d": MEMBERS["vol-d"]})
    broken = raw_snapshots("broken", start=CREATED + hour, states={"vol-d": "error"}, members={"vol-d": MEMBERS["vol-d"]})
    later = raw_snapshots("later", start=CREATED + 2 * hour, members={"vol-d": MEMBERS["vol-d"]})
    every = older + newer + broken + later
    filters = {"OwnerIds": ["self"], "Filters": ANY, "MaxResults": ANY}
    stubber.add_response("describe_snapshots", {"Snapshots": every}, filters)
    found, raw = restore_volumes.choose_set(client, instance_id="i-1", point_in_time=CREATED + hour + hour / 2)
    assert found["set_id"] == "newer" and list(raw) == [newer[0]["SnapshotId"]]
    stubber.add_response("describe_snapshots", {"Snapshots": every}, filters)
    found, dummy = restore_volumes.choose_set(client, instance_id="i-1", point_in_time=CREATED)
    assert found["set_id"] == "newer", "at the point in time counts"
    stubber.add_response("describe_snapshots", {"Snapshots": older + broken + later}, filters)
    found, dummy = restore_volumes.choose_set(client, instance_id="i-1", point_in_time=CREATED + hour,
                                              required="application")
    assert found["set_id"] == "older"
    stubber.add_response("describe_snapshots", {"Snapshots": every}, filters)
    with pytest.raises(restore_volumes.RestoreError, match="i-1 has no complete set at or before 2026-11-24T00:37:00Z"):
        restore_volumes.choose_set(client, instance_id="i-1", point_in_time=CREATED - 25 * hour)


def test_the_application_filter_is_asked_of_ec2(stubbed):
    client, stubber = stubbed
    expected = {"OwnerIds": ["self"], "MaxResults": 500, "Filters": [
        {"Name": "tag-key", "Values": [snapshot_tags.KEY_SET_ID]},
        {"Name": "tag:" + snapshot_tags.KEY_INSTANCE_ID, "Values": ["i-1"]},
        {"Name": "tag:" + snapshot_tags.KEY_CONSISTENCY, "Values": ["application"]}]}
    stubber.add_response("describe_snapshots", {"Snapshots": raw_snapshots()}, expected)
    assert restore_volumes.choose_set(client, instance_id="i-1", required="application")[0]["set_id"] == "set-1"


def test_archived_snapshots_are_refused_saying_how_to_bring_them_back():
    found, raw = summary(tier={"vol-e": "archive"})
    restore_volumes.check_tiers(found, restore_volumes.select_members(found, ["D:"]), raw)
    with pytest.raises(restore_volumes.RestoreError, match="archived snapshots \\(snap-e\\).*restore-snapshot-tier"):
        restore_volumes.check_tiers(found, found["snapshots"], raw)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T01:37:00Z", CREATED),
    ("2026-11-25T02:37:00+01:00", CREATED),
    ("2026-11-25T01:37:00", CREATED),
])
def test_points_in_time_are_iso_8601_in_utc(text, expected):
    assert restore_volumes.parse_point_in_time(text) == expected


def test_a_malformed_point_in_time_is_refused():
    with pytest.raises(restore_volumes.RestoreError, match="ISO 8601"):
        restore_volumes.parse_point_in_time("yesterday")


@pytest.mark.parametrize("zone, region, refused", [
    ("us-east-1a", "us-east-1", False),
    ("us-east-1-bos-1a", "us-east-1", False),
    ("eu-west-1a", "us-east-1", True),
    ("us-east-11a", "us-east-1", True),
])
def test_a_zone_of_another_region_is_refused(zone, region, refused):
    if refused:
        with pytest.raises(restore_volumes.RestoreError, match="is not in Region %s" % region):
            restore_volumes.check_zone_in_region(zone, region)
    else:
        restore_volumes.check_zone_in_region(zone, region)


@pytest.mark.parametrize("options, message", [
    ({"throughput": 250}, "throughput is only for volume_type gp3"),
    ({"volume_type": "gp2", "iops": 4000}, "iops is only for"),
    ({"volume_type": "io2"}, "volume_type io2 needs iops"),
])
def test_volume_options_ec2_would_refuse_halfway_are_refused_first(options, message):
    with pytest.raises(restore_volumes.RestoreError, match=message):
        restore_volumes.volume_parameters(options)


def test_the_plan_carries_the_options_and_the_restore_tags():
    found, dummy = summary()
    members = restore_volumes.select_members(found, ["E:"])
    options = {"volume_type": "gp3", "iops": 6000, "throughput": 250, "kms_key_id": "alias/restores", "size": 200,
               "tags": {"Owner": "dba"}}
    (entry,) = restore_volumes.plan_volumes(found, members, "us-east-1a", "set-1@i-1", options, CREATED, "0.2.0")
    assert entry["parameters"] == {"SnapshotId": "snap-e", "AvailabilityZone": "us-east-1a", "Size": 200,
                                   "VolumeType": "gp3", "Iops": 6000, "Throughput": 250, "KmsKeyId": "alias/restores",
                                   "Encrypted": True}
    decoded = snapshot_tags.decode_restored_volume(entry["tags"])
    assert decoded == {"restore_id": "set-1@i-1", "set_id": "set-1", "snapshot_id": "snap-e", "source_instance_id": "i-1",
                       "source_volume_id": "vol-e", "device": "xvdc", "paths": ["E:\\", "C:\\Mounts\\Logs"],
                       "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000002}", "engine": "shadow",
                       "set_consistency": "application", "consistency": "crash", "created_at": "2026-11-25T01:37:00Z"}
    assert entry["tags"]["Owner"] == "dba"


def test_a_size_below_a_snapshot_and_reserved_user_tags_are_refused():
    found, dummy = summary()
    with pytest.raises(restore_volumes.RestoreError, match=r"size 60 GiB is smaller than .*vol-d \(100 GiB\)"):
        restore_volumes.plan_volumes(found, found["snapshots"], "us-east-1a", "r", {"size": 60}, CREATED, "0.2.0")
    with pytest.raises(snapshot_tags.TagSchemaError, match="reserved prefix"):
        restore_volumes.plan_volumes(found, found["snapshots"], "us-east-1a", "r", {"tags": {"shadowsnap:x": "1"}},
                                     CREATED, "0.2.0")


def restored_volume(volume_id, snapshot_id, zone="us-east-1a", state="available"):
    found, dummy = summary()
    member = next(m for m in found["snapshots"] if m["snapshot_id"] == snapshot_id)
    (entry,) = restore_volumes.plan_volumes(found, [member], zone, "r", {}, CREATED, "0.2.0")
    return {"VolumeId": volume_id, "SnapshotId": snapshot_id, "AvailabilityZone": zone, "State": state,
            "Tags": [{"Key": k, "Value": v} for k, v in entry["tags"].items()]}


def test_an_earlier_run_is_found_by_its_restore_id_and_must_fit_this_one(stubbed):
    client, stubber = stubbed
    found, dummy = summary()
    planned = restore_volumes.plan_volumes(found, found["snapshots"], "us-east-1a", "r", {}, CREATED, "0.2.0")
    earlier = [restored_volume("vol-1", "snap-d"), restored_volume("vol-2", "snap-e", state="deleting")]
    stubber.add_response("describe_volumes", {"Volumes": earlier}, {
        "Filters": [{"Name": "tag:" + snapshot_tags.KEY_RESTORE_ID, "Values": ["r"]}], "MaxResults": 500})
    existing = restore_volumes.find_restored(client, "r")
    assert {snapshot: volume["VolumeId"] for snapshot, volume in existing.items()} == {"snap-d": "vol-1"}
    restore_volumes.check_found(existing, planned, "us-east-1a", "r")
    with pytest.raises(restore_volumes.RestoreError, match="already has volume vol-1 in us-east-1a, not us-east-1b"):
        restore_volumes.check_found(existing, planned, "us-east-1b", "r")
    broken = {"snap-d": restored_volume("vol-1", "snap-d", state="error")}
    with pytest.raises(restore_volumes.RestoreError, match="vol-1 of restore r is in state error"):
        restore_volumes.check_found(broken, planned, "us-east-1a", "r")
    duplicated = [restored_volume("vol-1", "snap-d"), restored_volume("vol-3", "snap-d")]
    stubber.add_response("describe_volumes", {"Volumes": duplicated})
    with pytest.raises(restore_volumes.RestoreError, match="several volumes from one snapshot \\(snap-d: vol-1, vol-3\\)"):
        restore_volumes.find_restored(client, "r")


def test_a_failed_create_keeps_what_was_created_for_the_caller_to_delete(stubbed):
    client, stubber = stubbed
    found, dummy = summary()
    planned = restore_volumes.plan_volumes(found, found["snapshots"], "us-east-1a", "r", {}, CREATED, "0.2.0")
    stubber.add_response("create_volume", {"VolumeId": "vol-1", "SnapshotId": "snap-d"},
                         {"SnapshotId": "snap-d", "AvailabilityZone": "us-east-1a", "ClientToken": "run-0",
                          "TagSpecifications": ANY})
    stubber.add_client_error("create_volume", "VolumeLimitExceeded", "You have exceeded your maximum gp2 storage limit")
    with pytest.raises(restore_volumes.PartialCreation) as raised:
        restore_volumes.create_volumes(client, planned, "run")
    assert [v["VolumeId"] for v in raised.value.created] == ["vol-1"]
    assert "VolumeLimitExceeded" in str(raised.value.error.exception)


def test_deleting_waits_for_a_creating_volume_and_reports_what_it_could_not_delete(stubbed, monkeypatch):
    client, stubber = stubbed
    monkeypatch.setattr("botocore.waiter.time.sleep", lambda seconds: None)
    stubber.add_response("delete_volume", {}, {"VolumeId": "vol-1"})
    stubber.add_client_error("delete_volume", "IncorrectState", "The volume 'vol-2' is 'creating'")
    stubber.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-2", "State": "available"}]})
    stubber.add_response("delete_volume", {}, {"VolumeId": "vol-2"})
    assert restore_volumes.delete_volumes(client, ["vol-1", "vol-2"], 60) == (["vol-1", "vol-2"], {})
    stubber.add_client_error("delete_volume", "IncorrectState", "creating")
    stubber.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-3", "State": "error"}]})
    stubber.add_client_error("delete_volume", "UnauthorizedOperation", "not allowed")
    deleted, failed = restore_volumes.delete_volumes(client, ["vol-3"], 60)
    assert deleted == [] and "not allowed" in failed["vol-3"]


def test_discarding_a_restore_deletes_only_its_detached_volumes_and_says_why_it_keeps_the_others(stubbed):
    client, stubber = stubbed
    attached = restored_volume("vol-2", "snap-e", state="in-use")
    attached["Attachments"] = [{"InstanceId": "i-9", "Device": "xvdf", "State": "attached"}]
    served = restored_volume("vol-3", "snap-f")
    served["Tags"].append({"Key": snapshot_tags.KEY_REPLACED_ON, "Value": "i-1"})
    other = restored_volume("vol-4", "snap-d")
    other["Tags"] = [t if t["Key"] != snapshot_tags.KEY_RESTORE_ID else dict(t, Value="r-other") for t in other["Tags"]]
    untagged = {"VolumeId": "vol-5", "State": "available", "Tags": []}
    stubber.add_response("describe_volumes", {"Volumes": [
        restored_volume("vol-1", "snap-d"), attached, served, other, untagged,
        restored_volume("vol-6", "snap-d", state="deleting")]}, {
        "Filters": [{"Name": "tag:" + snapshot_tags.KEY_RESTORE_ID, "Values": ["r"]}], "MaxResults": 500})
    deletable, kept = restore_volumes.plan_discard(client, "r")
    assert deletable == ["vol-1"]
    assert sorted(kept) == ["vol-2", "vol-3"]
    assert "attached to i-9 at xvdf" in kept["vol-2"] and "detach it first" in kept["vol-2"]
    assert "held live data" in kept["vol-3"]
