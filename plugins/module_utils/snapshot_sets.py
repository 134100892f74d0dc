# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Snapshot sets on EC2: which volumes of an instance a set covers, creating one, and finding and grouping sets.

Shared by ec2_snapshot_set, ec2_snapshot_set_info, ec2_vss_snapshot_set and the action plugins (later restore and
retention), so that every one of them agrees on what a set is, which set an id names and whether it is complete.
AWS errors come out of ``ec2_api`` as ``AnsibleEC2Error``; a request that cannot be carried out as asked raises
:class:`SnapshotSetError`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_CODES

MAX_EXCLUDED_DATA_VOLUMES = 40
# EC2: wait at least 15 s between snapshots of the same volume.
PER_VOLUME_RATE_DELAY = 15.0
SERVER_ERROR_CODES = ("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable")
CAPACITY_CODES = ("SnapshotCreationPerVolumeRateExceeded", "ConcurrentSnapshotLimitExceeded")
# After a lost CreateSnapshots answer: EC2's Describe calls are eventually consistent, so the set is looked for
# several times with growing waits, the first one at least this long (EC2: "starting with a couple of seconds").
RECONCILE_LOOKUPS = 4
RECONCILE_FIRST_WAIT = 2.0
# How long a creation keeps retrying by default, in seconds.
CREATE_TIMEOUT = 900.0
# A placeholder as long as the longest EC2 volume id, for tag checks made before the volumes are known.
PLACEHOLDER_VOLUME = "vol-%017x"
# The launch record's one tag that every instance gets, for tag checks made before DescribeInstances.
PLACEHOLDER_LAUNCH = {"image_id": "ami-%017x" % 0}


class SnapshotSetError(Exception):
    """A request that cannot be carried out as asked; the message says what to change."""


def normalise_device(name):
    """``/dev/xvdb`` and ``xvdb`` name the same device; EC2 reports Windows data volumes either way."""
    name = (name or "").strip()
    return name[len("/dev/"):] if name.startswith("/dev/") else name


def describe_instance(client, instance_id):
    """The instance, or SnapshotSetError when it does not exist or cannot have its volumes snapshotted."""
    instances = ec2_api.describe_instances(client, [instance_id])
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


def launch_record(instance):
    """What a whole-instance restore needs of ``instance`` (a DescribeInstances answer): the fields of
    ``snapshot_tags.launch_tags``. The network fields are the primary network interface's; the instance profile is
    recorded by name (unique in the account, and RunInstances takes it), because its ARN can exceed a tag value."""
    profile_arn = (instance.get("IamInstanceProfile") or {}).get("Arn") or ""
    return {
        "image_id": instance.get("ImageId"),
        "instance_type": instance.get("InstanceType"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "subnet_id": instance.get("SubnetId"),
        "private_ip": instance.get("PrivateIpAddress"),
        "root_device_name": instance.get("RootDeviceName"),
        "security_group_ids": [group["GroupId"] for group in instance.get("SecurityGroups") or () if group.get("GroupId")],
        "iam_instance_profile": profile_arn.rsplit("/", 1)[-1] or None,
        "key_name": instance.get("KeyName"),
    }


def select_volumes(instance, volumes="all", volume_ids=None, device_names=None, include_boot=False):
    """The attached volumes a set covers: an explicit subset (ids and/or device names, plus the boot volume when
    ``include_boot``), else all or all but boot. An explicit empty subset is refused: a caller whose list came out
    empty must not get every volume instead."""
    attached = attached_volumes(instance)
    instance_id = instance["InstanceId"]
    if not attached:
        raise SnapshotSetError("instance %s has no EBS volumes attached" % instance_id)
    if not (volume_ids or device_names) and (volume_ids is not None or device_names is not None):
        raise SnapshotSetError("an empty list of volume ids or device names names no volume of %s; leave both out to "
                               "choose by volumes (all or data)" % instance_id)
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


def check_tags_before_calls(instance_id, selection, volume_metadata, **tag_fields):
    """Whatever of the tag schema and budget can be checked before any API call; TagSchemaError otherwise.

    The exact budget needs the member volumes and the launch record, which only DescribeInstances tells; this check
    counts the members the selection names (at least one), the launch record's one tag every instance gets, and each
    ``volume_metadata`` value on its own, so it refuses only requests that
    :func:`plan_snapshot_set` would refuse too. ``tag_fields`` as for plan_snapshot_set.
    """
    named = max(len(set(selection.get("volume_ids") or ())), len(set(selection.get("device_names") or ())), 1)
    placeholders = dict((PLACEHOLDER_VOLUME % number, {"device": ""}) for number in range(named))
    snapshot_tags.build_set_tags(instance_id=instance_id, volumes=placeholders, launch=PLACEHOLDER_LAUNCH, **tag_fields)
    for entry in (volume_metadata or {}).values():
        snapshot_tags.check_tag_limits({snapshot_tags.volume_key(PLACEHOLDER_VOLUME % 0): snapshot_tags.encode_volume(
            "", (entry or {}).get("paths"), (entry or {}).get("shadow_id"))})


def plan_snapshot_set(instance, selection, volume_metadata, **tag_fields):
    """(InstanceSpecification, per-volume details, tags) of a new set of ``instance``: how every caller plans a set,
    with the instance's launch record from the same DescribeInstances answer.

    ``selection`` holds select_volumes' keyword arguments; ``tag_fields`` build_set_tags' (but the instance and volumes).
    """
    selected, attached = select_volumes(instance, **selection)
    specification = instance_specification(instance["InstanceId"], selected, attached)
    details = volume_details(selected, volume_metadata or {})
    tags = snapshot_tags.build_set_tags(instance_id=instance["InstanceId"], volumes=details,
                                        launch=launch_record(instance), **tag_fields)
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
    return ec2_api.describe_snapshots(client, _set_filters(set_ids, instance_ids, policy, consistency))


def find_existing_set(client, set_id, instance_id=None):
    """The set with this id (as :func:`group_sets` describes it), or None when no snapshot carries the id.

    With ``instance_id``, a set of another instance raises SnapshotSetError: the id is taken.
    """
    snapshots = find_snapshots(client, set_ids=[set_id])
    if not snapshots:
        return None
    found = group_sets(snapshots)[0]
    if instance_id and found["instance_id"] != instance_id:
        raise SnapshotSetError("set id %s already belongs to instance %s, not %s; choose another set_id"
                               % (set_id, found["instance_id"], instance_id))
    return found


def list_sets(client, instance_ids=None, policy=None):
    """This account's sets (as :func:`group_sets` describes them), each with the ``region`` it was listed in."""
    sets = group_sets(find_snapshots(client, instance_ids=instance_ids, policy=policy))
    for found in sets:
        found["region"] = client.meta.region_name
    return sets


def describe_member(snapshot):
    """One snapshot of a set, with its decoded schema data; a DR copy stands for the member volume its tags name."""
    tags = boto3_tag_list_to_ansible_dict(snapshot.get("Tags", []))
    volume_id = snapshot_tags.member_volume_id(tags, snapshot["VolumeId"])
    decoded = snapshot_tags.decode_snapshot(tags, volume_id)
    start = snapshot.get("StartTime")
    return {
        "snapshot_id": snapshot["SnapshotId"],
        "owner_id": snapshot.get("OwnerId"),
        "volume_id": volume_id,
        "volume_size": snapshot.get("VolumeSize"),
        "state": snapshot.get("State"),
        "progress": snapshot.get("Progress"),
        "storage_tier": snapshot.get("StorageTier", "standard"),
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
    pending = [member["snapshot_id"] for member in members if member["state"] in ("pending", "recovering")]
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
        "fallback_from": first["fallback_from"],
        "launch": first["launch"],
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


def settle_consistency(client, found, desired, check_mode):
    """Settle an ``unverified`` set as ``application`` or ``crash`` (one CreateTags call for all its members).

    A set's consistency is settled once: a crash set never becomes application-consistent, and a settled set is not
    changed by a later run.
    """
    current = found["consistency"]
    if desired == current:
        return False
    if current != "unverified" or desired == "unverified":
        raise SnapshotSetError("set %s is %s-consistent; only an unverified set can be settled (asked: %s)"
                               % (found["set_id"], current, desired))
    if desired == "application" and found["engine"] == "crash":
        raise SnapshotSetError("set %s was made by the crash engine and cannot be application-consistent"
                               % found["set_id"])
    if not check_mode:
        ec2_api.create_tags(client, [member["snapshot_id"] for member in found["snapshots"]],
                            {snapshot_tags.KEY_CONSISTENCY: desired})
    found["consistency"] = desired
    for member in found["snapshots"]:
        member["tags"][snapshot_tags.KEY_CONSISTENCY] = desired
    return True


def _retry_delay(code, attempt):
    if code == "SnapshotCreationPerVolumeRateExceeded":
        return PER_VOLUME_RATE_DELAY + random.uniform(0, 5)
    if code == "ConcurrentSnapshotLimitExceeded":
        return min(120.0, 15.0 * (2 ** attempt)) + random.uniform(0, 5)
    return random.uniform(0, min(30.0, 2.0 * (2 ** attempt)))


def _failure(error):
    """(error code, whether the request may have been carried out) of a failed CreateSnapshots, or None when
    trying again cannot help."""
    cause = error.exception
    if isinstance(cause, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return type(cause).__name__, True
    if not isinstance(cause, botocore.exceptions.ClientError):
        return None
    code = cause.response.get("Error", {}).get("Code", "")
    if code in SERVER_ERROR_CODES:
        return code, True
    if code in THROTTLING_CODES or code in CAPACITY_CODES:
        return code, False
    return None


def _look_for_lost_set(read_client, set_id, code, retries, sleep):
    """The snapshots of the set when a lost CreateSnapshots answer did create it, else [].

    Looks RECONCILE_LOOKUPS times, each after a longer wait, because a new set may not be listed at once; a set
    listed with members missing was created, so it is looked for again and, at the end, returned as it is. Adds one
    entry to ``retries`` for the error (waits and lookups), and ``reconciled`` when the set was found.
    """
    entry = {"error": code, "wait_seconds": 0.0, "lookups": 0}
    retries.append(entry)
    found = []
    waited = 0.0
    for lookup in range(RECONCILE_LOOKUPS):
        wait = RECONCILE_FIRST_WAIT * (2 ** lookup) * random.uniform(1.0, 1.25)
        sleep(wait)
        waited += wait
        entry["wait_seconds"] = round(waited, 2)
        entry["lookups"] = lookup + 1
        found = find_snapshots(read_client, set_ids=[set_id])
        if found and not group_sets(found)[0]["missing_volume_ids"]:
            break
    if found:
        retries.append({"error": "reconciled", "wait_seconds": 0})
    return found


def create_snapshot_set(create_client, read_client, specification, description, tags, set_id,
                        max_attempts=8, timeout=CREATE_TIMEOUT, sleep=time.sleep, clock=time.monotonic):
    """One CreateSnapshots call for the set, retried the way EC2 documents, never duplicated.

    Throttling is retried with full-jitter backoff (callers across a fleet spread out instead of retrying together),
    SnapshotCreationPerVolumeRateExceeded after at least 15 s, and ConcurrentSnapshotLimitExceeded with growing waits
    while earlier snapshots complete. After a server error or a lost connection the request may have been carried
    out, so the set is looked up by its id (repeatedly, see :func:`_look_for_lost_set`) before any new attempt, and
    also after the last one. Retries end after ``max_attempts`` attempts or ``timeout`` seconds, whichever comes first;
    ``max_attempts=None`` bounds them by the time alone (a shadow set held for the set: what counts is how long it may
    still be held). A throttling wait is shortened to what is left of ``timeout``. Returns (snapshots, retries) where
    retries lists the error codes met and the waits taken; raises the last AnsibleEC2Error.
    """
    started = clock()
    retries = []
    attempt = 0
    while True:
        try:
            return ec2_api.create_snapshots(create_client, specification, description, tags), retries
        except AnsibleEC2Error as error:
            failure = _failure(error)
            if failure is None:
                raise
            last_error = error
        code, maybe_done = failure
        last_attempt = max_attempts is not None and attempt + 1 >= max_attempts
        if maybe_done:
            existing = _look_for_lost_set(read_client, set_id, code, retries, sleep)
            if existing:
                return existing, retries
            if last_attempt or clock() - started > timeout:
                raise last_error
        else:
            left = timeout - (clock() - started)
            delay = _retry_delay(code, attempt)
            if code in THROTTLING_CODES:
                delay = min(delay, left)
            if last_attempt or left <= 0 or delay > left:
                raise last_error
            retries.append({"error": code, "wait_seconds": round(delay, 2)})
            sleep(delay)
        attempt += 1
