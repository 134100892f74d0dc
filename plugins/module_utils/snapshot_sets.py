# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Snapshot sets on EC2: which volumes of an instance a set covers, creating one, and finding and grouping sets.

Shared by ec2_snapshot_set, ec2_snapshot_set_info and (later) restore and retention, so that every one of them
agrees on what a set is and whether it is complete.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY

MAX_EXCLUDED_DATA_VOLUMES = 40
# EC2: wait at least 15 s between snapshots of the same volume.
PER_VOLUME_RATE_DELAY = 15.0
THROTTLING_CODES = ("RequestLimitExceeded", "Throttling", "ThrottlingException")
SERVER_ERROR_CODES = ("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable")
DESCRIBE_PAGE_SIZE = 500


class SnapshotSetError(Exception):
    """A request that cannot be carried out as asked; the message says what to change."""


def normalise_device(name):
    """``/dev/xvdb`` and ``xvdb`` name the same device; EC2 reports Windows data volumes either way."""
    name = (name or "").strip()
    return name[len("/dev/"):] if name.startswith("/dev/") else name


def describe_instance(client, instance_id):
    """The instance, or SnapshotSetError when it does not exist or cannot have its volumes snapshotted."""
    try:
        reservations = client.describe_instances(InstanceIds=[instance_id], aws_retry=True)["Reservations"]
    except is_boto3_error_code(["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"]):
        raise SnapshotSetError("instance %s does not exist in this account and Region" % instance_id)
    instances = [instance for reservation in reservations for instance in reservation["Instances"]]
    if not instances:
        raise SnapshotSetError("instance %s does not exist in this account and Region" % instance_id)
    instance = instances[0]
    state = instance.get("State", {}).get("Name")
    if state in ("terminated", "shutting-down"):
        raise SnapshotSetError("instance %s is %s; its volumes can no longer be snapshotted as a set" % (instance_id, state))
    return instance


def attached_volumes(instance):
    """The instance's EBS volumes as [{device, volume_id, status, boot}], in block-device-mapping order."""
    root = normalise_device(instance.get("RootDeviceName"))
    return [
        {
            "device": mapping["DeviceName"],
            "volume_id": mapping["Ebs"]["VolumeId"],
            "status": mapping["Ebs"].get("Status", "attached"),
            "boot": normalise_device(mapping["DeviceName"]) == root,
        }
        for mapping in instance.get("BlockDeviceMappings", [])
        if "Ebs" in mapping
    ]


def select_volumes(instance, volumes="all", volume_ids=None, device_names=None, include_boot=False):
    """The attached volumes a set covers: an explicit subset (ids and/or device names, plus the boot volume when
    ``include_boot``), else all or all but boot."""
    attached = attached_volumes(instance)
    instance_id = instance["InstanceId"]
    if not attached:
        raise SnapshotSetError("instance %s has no EBS volumes attached" % instance_id)
    if volume_ids or device_names:
        selected = []
        by_id = dict((volume["volume_id"], volume) for volume in attached)
        by_device = dict((normalise_device(volume["device"]), volume) for volume in attached)
        for volume_id in volume_ids or ():
            if volume_id not in by_id:
                raise SnapshotSetError(
                    "volume %s is not attached to %s (attached: %s)"
                    % (volume_id, instance_id, ", ".join("%s at %s" % (v["volume_id"], v["device"]) for v in attached))
                )
            selected.append(by_id[volume_id])
        for device in device_names or ():
            if normalise_device(device) not in by_device:
                raise SnapshotSetError(
                    "no EBS volume is attached to %s at device %s (devices: %s)"
                    % (instance_id, device, ", ".join(v["device"] for v in attached))
                )
            selected.append(by_device[normalise_device(device)])
        selected = [volume for volume in attached if volume in selected or (include_boot and volume["boot"])]
    elif volumes == "data":
        selected = [volume for volume in attached if not volume["boot"]]
    else:
        selected = list(attached)
    if not selected:
        raise SnapshotSetError("instance %s has no data volumes to snapshot (only its boot volume)" % instance_id)
    for volume in selected:
        if volume["status"] != "attached":
            raise SnapshotSetError(
                "volume %s at %s on %s is %s, not attached; retry when the attachment has settled"
                % (volume["volume_id"], volume["device"], instance_id, volume["status"])
            )
    return selected, attached


def volume_details(selected, metadata):
    """Per-volume tag data for the selected volumes; ``metadata`` keys may be volume ids or device names."""
    known = set()
    details = {}
    for volume in selected:
        entry = {"device": volume["device"], "paths": [], "shadow_id": None}
        for key in (volume["volume_id"], volume["device"], normalise_device(volume["device"])):
            if key in metadata:
                known.add(key)
                entry["paths"] = list(metadata[key].get("paths") or [])
                entry["shadow_id"] = metadata[key].get("shadow_id")
        details[volume["volume_id"]] = entry
    unknown = sorted(set(metadata) - known)
    if unknown:
        raise SnapshotSetError(
            "volume_metadata names volumes that are not in the set: %s" % ", ".join(unknown)
        )
    return details


def instance_specification(instance_id, selected, attached):
    """CreateSnapshots' InstanceSpecification that covers exactly ``selected``."""
    chosen = set(volume["volume_id"] for volume in selected)
    excluded = [v["volume_id"] for v in attached if not v["boot"] and v["volume_id"] not in chosen]
    if len(excluded) > MAX_EXCLUDED_DATA_VOLUMES:
        raise SnapshotSetError(
            "the selection leaves out %d data volumes of %s; CreateSnapshots can exclude at most %d"
            % (len(excluded), instance_id, MAX_EXCLUDED_DATA_VOLUMES)
        )
    specification = {"InstanceId": instance_id, "ExcludeBootVolume": not any(v["boot"] for v in selected)}
    if excluded:
        specification["ExcludeDataVolumeIds"] = excluded
    return specification


def plan_snapshot_set(instance, selection, volume_metadata, **tag_fields):
    """(InstanceSpecification, per-volume details, tags) of a new set of ``instance``: how every caller plans a set.

    ``selection`` holds select_volumes' keyword arguments; ``tag_fields`` build_set_tags' (but the instance and volumes).
    """
    selected, attached = select_volumes(instance, **selection)
    specification = instance_specification(instance["InstanceId"], selected, attached)
    details = volume_details(selected, volume_metadata or {})
    tags = snapshot_tags.build_set_tags(instance_id=instance["InstanceId"], volumes=details, **tag_fields)
    return specification, details, tags


def _set_filters(set_ids=None, instance_ids=None, policy=None, consistency=None):
    filters = [{"Name": "tag-key", "Values": [snapshot_tags.KEY_SET_ID]}]
    for key, values in (
        (snapshot_tags.KEY_SET_ID, set_ids),
        (snapshot_tags.KEY_INSTANCE_ID, instance_ids),
        (snapshot_tags.KEY_POLICY, [policy] if policy else None),
        (snapshot_tags.KEY_CONSISTENCY, [consistency] if consistency else None),
    ):
        if values:
            filters.append({"Name": "tag:" + key, "Values": list(values)})
    return filters


def find_snapshots(client, set_ids=None, instance_ids=None, policy=None, consistency=None):
    """Snapshots of this account that carry the schema, filtered server-side by tags, paginated."""
    return _describe_snapshot_pages(client, _set_filters(set_ids, instance_ids, policy, consistency))


@READ_RETRY
def _describe_snapshot_pages(client, filters):
    paginator = client.get_paginator("describe_snapshots")
    pages = paginator.paginate(OwnerIds=["self"], Filters=filters, PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE})
    return pages.build_full_result()["Snapshots"]


def describe_member(snapshot):
    """One snapshot of a set, with its decoded schema data."""
    tags = boto3_tag_list_to_ansible_dict(snapshot.get("Tags", []))
    decoded = snapshot_tags.decode_snapshot(tags, snapshot["VolumeId"])
    start = snapshot.get("StartTime")
    return {
        "snapshot_id": snapshot["SnapshotId"],
        "volume_id": snapshot["VolumeId"],
        "volume_size": snapshot.get("VolumeSize"),
        "state": snapshot.get("State"),
        "progress": snapshot.get("Progress"),
        "start_time": start.isoformat() if hasattr(start, "isoformat") else start,
        "device": decoded["device"],
        "paths": decoded["paths"],
        "shadow_id": decoded["shadow_id"],
        "tags": tags,
        "_decoded": decoded,
    }


def group_sets(snapshots):
    """Group snapshots into sets and judge each set's completeness from its members and the membership tags."""
    grouped = {}
    for snapshot in snapshots:
        member = describe_member(snapshot)
        set_id = member["_decoded"]["set_id"]
        if set_id:
            grouped.setdefault(set_id, []).append(member)
    return [summarise_set(set_id, members) for set_id, members in sorted(grouped.items())]


def summarise_set(set_id, members):
    members = sorted(members, key=lambda member: (member["device"] or "", member["volume_id"]))
    first = members[0]["_decoded"]
    expected = set()
    for member in members:
        expected.update(member["_decoded"]["member_volume_ids"])
    present = set(member["volume_id"] for member in members)
    missing = sorted(expected - present)
    pending = [member["snapshot_id"] for member in members if member["state"] == "pending"]
    failed = [member["snapshot_id"] for member in members if member["state"] == "error"]
    if failed:
        status = "error"
    elif missing:
        status = "incomplete"
    elif pending:
        status = "pending"
    else:
        status = "completed"
    for member in members:
        member.pop("_decoded")
    return {
        "set_id": set_id,
        "instance_id": first["instance_id"],
        "engine": first["engine"],
        "consistency": first["consistency"],
        "backup_type": first["backup_type"],
        "policy": first["policy"],
        "created_at": first["created_at"],
        "collection_version": first["version"],
        "shadow_set_id": first["shadow_set_id"],
        "user_tags": first["user_tags"],
        "status": status,
        "complete": status == "completed",
        "volume_count": len(expected | present),
        "pending_snapshot_ids": pending,
        "error_snapshot_ids": failed,
        "missing_volume_ids": missing,
        "snapshots": members,
        "volume_snapshot_map": dict((member["volume_id"], member["snapshot_id"]) for member in members),
        "start_time": min(member["start_time"] for member in members) if members else None,
    }


def _retry_delay(code, attempt):
    if code == "SnapshotCreationPerVolumeRateExceeded":
        return PER_VOLUME_RATE_DELAY + random.uniform(0, 5)
    if code == "ConcurrentSnapshotLimitExceeded":
        return min(120.0, 15.0 * (2 ** attempt)) + random.uniform(0, 5)
    return random.uniform(0, min(30.0, 2.0 * (2 ** attempt)))


def create_snapshot_set(create_client, read_client, specification, description, tags, set_id,
                        max_attempts=8, timeout=900.0, sleep=time.sleep, clock=time.monotonic):
    """One CreateSnapshots call for the set, retried the way EC2 documents, never duplicated.

    Throttling is retried with jittered backoff, SnapshotCreationPerVolumeRateExceeded after at least 15 s, and
    ConcurrentSnapshotLimitExceeded with growing waits while earlier snapshots complete. After a server error or a
    lost connection the request may have been carried out, so the set is looked up by its id before any new attempt.
    Returns (snapshots, retries) where retries lists the error codes met and the waits taken.
    """
    tag_specifications = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}]
    started = clock()
    retries = []
    for attempt in range(max_attempts):
        try:
            response = create_client.create_snapshots(
                InstanceSpecification=specification, Description=description, TagSpecifications=tag_specifications,
            )
            return response["Snapshots"], retries
        except botocore.exceptions.ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            retryable = code in THROTTLING_CODES or code in SERVER_ERROR_CODES or code in (
                "SnapshotCreationPerVolumeRateExceeded", "ConcurrentSnapshotLimitExceeded")
            if not retryable:
                raise
            maybe_done = code in SERVER_ERROR_CODES
            last_error = error
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as error:
            code = type(error).__name__
            maybe_done = True
            last_error = error
        delay = _retry_delay(code, attempt)
        if attempt + 1 >= max_attempts or clock() - started + delay > timeout:
            raise last_error
        retries.append({"error": code, "wait_seconds": round(delay, 2)})
        sleep(delay)
        if maybe_done:
            existing = find_snapshots(read_client, set_ids=[set_id])
            if existing:
                retries.append({"error": "reconciled", "wait_seconds": 0})
                return existing, retries
    raise last_error
