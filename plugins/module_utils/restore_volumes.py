# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Restoring volumes from a snapshot set: which set, which of its volumes, and the volumes to create, from the tags.

Everything a restore needs is read from the set's tags (docs/tag-schema.md), so it works after the original volumes
or instance are gone. Every check that can refuse a restore runs before the first CreateVolume; the volumes carry the
``shadowsnap:restore:*`` tags from their CreateVolume call, so a re-run with the same restore id finds them instead
of creating more. A request that cannot be carried out as asked raises :class:`RestoreError`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import uuid

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags

IOPS_VOLUME_TYPES = ("gp3", "io1", "io2")
# States of a restored volume a re-run cannot use; it says so instead of creating a second one.
UNUSABLE_STATES = ("error",)
GONE_STATES = ("deleting", "deleted")
ARCHIVE_TIER = "archive"


class RestoreError(Exception):
    """A restore that cannot be carried out as asked; the message says what to change. Nothing was created."""


def restored_consistency(engine, set_consistency):
    """What a restored volume's data is when created: a ``shadow`` set's volume is the crash-consistent image with
    the application-consistent shadow copy inside it, so it is ``crash`` until that shadow copy is reverted or exposed;
    an ``aws_vss`` application set's volume is consistent as it is; ``unverified`` counts as ``crash``."""
    if set_consistency == "application" and engine != "shadow":
        return "application"
    return "crash"


def parse_point_in_time(text):
    """A UTC datetime from ISO 8601 (``2026-11-25T01:37:00Z``, an offset, or naive = UTC); RestoreError if malformed."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise RestoreError("point_in_time must be an ISO 8601 time such as 2026-11-25T01:37:00Z, not %r" % (text,)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def check_zone_in_region(zone, region):
    """An availability zone name belongs to the Region it starts with (``us-east-1a``, and Local Zones such as
    ``us-east-1-bos-1a``, to ``us-east-1``)."""
    if zone and region and not (zone.startswith(region) and re.fullmatch(r"[a-z]|-[a-z0-9-]+", zone[len(region):])):
        raise RestoreError(
            "availability zone %s is not in Region %s, where the set is: volumes are created in the set's Region; "
            "copy the set to the other Region first, or name a zone of %s" % (zone, region, region))


def describe_target(client, instance_id, region):
    """The target instance, or RestoreError when this Region has no such instance or it is going away."""
    instances = ec2_api.describe_instances(client, [instance_id])
    if not instances:
        raise RestoreError(
            "instance %s does not exist in Region %s, where the set is: a restore creates volumes in the set's "
            "Region; copy the set to the instance's Region first" % (instance_id, region))
    instance = instances[0]
    state = instance.get("State", {}).get("Name")
    if state in ("terminated", "shutting-down"):
        raise RestoreError("instance %s is %s; restore to another instance or name an availability_zone"
                           % (instance_id, state))
    return instance


# ------------------------------------------------------------------------------------------------ choosing the set
def _start_time(found):
    text = found.get("start_time")
    if hasattr(text, "isoformat"):
        return text.astimezone(datetime.timezone.utc)
    if text:
        return parse_point_in_time(text)
    return snapshot_tags.parse_created_at(found.get("created_at"))


def _require_consistency(found, required):
    if required == "application" and found["consistency"] != "application":
        raise RestoreError(
            "set %s is %s-consistent (engine %s) and application consistency is required; choose an application set "
            "or allow any consistency" % (found["set_id"], found["consistency"], found["engine"]))


def _require_complete(found):
    if found["status"] == "completed":
        return
    if found["status"] == "pending":
        raise RestoreError("set %s is not complete yet (snapshots %s are pending): wait for it and run again"
                           % (found["set_id"], ", ".join(found["pending_snapshot_ids"])))
    if found["status"] == "error":
        raise RestoreError("set %s cannot be restored: snapshots %s failed (state error)"
                           % (found["set_id"], ", ".join(found["error_snapshot_ids"])))
    raise RestoreError("set %s is incomplete: volumes %s have no snapshot, so it is not one point in time of the "
                       "instance; choose another set" % (found["set_id"], ", ".join(found["missing_volume_ids"])))


def choose_set(client, set_id=None, instance_id=None, point_in_time=None, required="any"):
    """(set summary as snapshot_sets.group_sets gives it, {snapshot id: raw snapshot}) of the set to restore: the one
    named, or the newest complete set of ``instance_id`` whose point in time is at or before ``point_in_time``
    (only ``application`` sets when ``required`` says so)."""
    if set_id:
        snapshots = snapshot_sets.find_snapshots(client, set_ids=[set_id])
        if not snapshots:
            raise RestoreError("no snapshot set %s in this account and Region" % set_id)
        found = snapshot_sets.group_sets(snapshots)[0]
        _require_consistency(found, required)
        _require_complete(found)
        return found, dict((snapshot["SnapshotId"], snapshot) for snapshot in snapshots)
    limit = point_in_time or datetime.datetime.now(datetime.timezone.utc)
    consistency = "application" if required == "application" else None
    snapshots = snapshot_sets.find_snapshots(client, instance_ids=[instance_id], consistency=consistency)
    sets = snapshot_sets.group_sets(snapshots)
    candidates = [found for found in sets if found["complete"] and _start_time(found) and _start_time(found) <= limit]
    if not candidates:
        raise RestoreError(
            "instance %s has no complete %sset at or before %s (%d sets found in all)"
            % (instance_id, "application-consistent " if consistency else "", limit.strftime("%Y-%m-%dT%H:%M:%SZ"),
               len(sets)))
    chosen = max(candidates, key=_start_time)
    members = set(member["snapshot_id"] for member in chosen["snapshots"])
    return chosen, dict((s["SnapshotId"], s) for s in snapshots if s["SnapshotId"] in members)


# ------------------------------------------------------------------------------------------------ choosing volumes
def _path_key(path):
    """``d:``, ``D:\\``, ``D`` name drive D:; mount points compare without case or a trailing backslash."""
    text = path.strip().replace("/", "\\").rstrip("\\").lower()
    return text + ":" if re.fullmatch(r"[a-z]", text) else text


def _describe_members(found):
    return "; ".join("%s at %s (%s)" % (m["volume_id"], m["device"] or "?", ", ".join(m["paths"]) or "no paths")
                     for m in found["snapshots"])


def select_members(found, selectors):
    """The set's members the selectors name (drive letters or mount points from the tags' paths, device names,
    source volume ids), in the set's order; all members when there is none. RestoreError names a selector that
    matches no member, or more than one."""
    members = found["snapshots"]
    if not selectors:
        return list(members)
    chosen = []
    for selector in selectors:
        if selector.startswith("vol-"):
            matches = [m for m in members if m["volume_id"] == selector]
            what = "volume"
        elif ":" in selector or "\\" in selector or re.fullmatch(r"[A-Za-z]", selector):
            matches = [m for m in members if _path_key(selector) in [_path_key(path) for path in m["paths"]]]
            what = "drive letter or mount point"
        else:
            device = snapshot_sets.normalise_device(selector)
            matches = [m for m in members if snapshot_sets.normalise_device(m["device"]) == device]
            what = "device"
        if len(matches) != 1:
            raise RestoreError("%s %s is %s set %s (its volumes: %s)" % (
                what, selector, "not in" if not matches else "ambiguous in", found["set_id"], _describe_members(found)))
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return [member for member in members if member in chosen]


def check_tiers(found, members, raw):
    """RestoreError for members in the archive tier, saying how to bring them back."""
    archived = [m["snapshot_id"] for m in members if raw.get(m["snapshot_id"], {}).get("StorageTier") == ARCHIVE_TIER]
    if archived:
        raise RestoreError(
            "set %s has archived snapshots (%s), which EC2 cannot create volumes from. Bring them back to the standard "
            "tier first - restore_archived (temporary or permanent) does it in this task, as do "
            "shadowsnap.ec2.ec2_snapshot_set_tier and aws ec2 restore-snapshot-tier; EC2 takes up to 72 hours - then "
            "run again" % (found["set_id"], ", ".join(archived)))


# ------------------------------------------------------------------------------------------------ the volumes
def default_restore_id(set_id, target):
    """A restore of this set to this instance (or zone): a re-run with the same inputs finds the same volumes."""
    return "%s@%s" % (set_id, target)


def volume_parameters(options):
    """CreateVolume's optional parameters from the module's, checked where EC2 would refuse them halfway."""
    volume_type = options.get("volume_type")
    if options.get("throughput") and volume_type != "gp3":
        raise RestoreError("throughput is only for volume_type gp3")
    if options.get("iops") and volume_type not in IOPS_VOLUME_TYPES:
        raise RestoreError("iops is only for volume_type %s" % ", ".join(IOPS_VOLUME_TYPES))
    if volume_type in ("io1", "io2") and not options.get("iops"):
        raise RestoreError("volume_type %s needs iops" % volume_type)
    parameters = {}
    for option, parameter in (("volume_type", "VolumeType"), ("iops", "Iops"), ("throughput", "Throughput"),
                              ("kms_key_id", "KmsKeyId")):
        if options.get(option):
            parameters[parameter] = options[option]
    if options.get("kms_key_id"):
        parameters["Encrypted"] = True
    return parameters


def plan_volumes(found, members, zone, restore_id, options, created_at, version):
    """One entry per member: the CreateVolume parameters, the tags, and what the result reports about it."""
    size = options.get("size")
    too_small = [m for m in members if size and m["volume_size"] and size < m["volume_size"]]
    if too_small:
        raise RestoreError("size %d GiB is smaller than the snapshots of %s; EC2 needs at least their size"
                           % (size, ", ".join("%s (%d GiB)" % (m["volume_id"], m["volume_size"]) for m in too_small)))
    common = volume_parameters(options)
    consistency = restored_consistency(found["engine"], found["consistency"])
    planned = []
    for member in members:
        parameters = dict(common, SnapshotId=member["snapshot_id"], AvailabilityZone=zone)
        if size:
            parameters["Size"] = size
        tags = snapshot_tags.build_restored_volume_tags(
            restore_id=restore_id, set_id=found["set_id"], snapshot_id=member["snapshot_id"],
            source_instance_id=found["instance_id"], source_volume_id=member["volume_id"], device=member["device"],
            paths=member["paths"], shadow_id=member["shadow_id"], engine=found["engine"],
            set_consistency=found["consistency"], consistency=consistency, created_at=created_at, version=version,
            user_tags=options.get("tags"))
        planned.append({"member": member, "parameters": parameters, "tags": tags})
    return planned


def find_restored(client, restore_id):
    """{snapshot id: volume} of the volumes an earlier run of this restore created (and that still exist)."""
    found = {}
    filters = [{"Name": "tag:" + snapshot_tags.KEY_RESTORE_ID, "Values": [restore_id]}]
    for volume in ec2_api.describe_volumes(client, filters=filters):
        if volume.get("State") in GONE_STATES:
            continue
        restored = snapshot_tags.decode_restored_volume(boto3_tag_list_to_ansible_dict(volume.get("Tags", [])))
        if restored and restored["snapshot_id"]:
            found.setdefault(restored["snapshot_id"], []).append(volume)
    duplicated = dict((snapshot_id, volumes) for snapshot_id, volumes in found.items() if len(volumes) > 1)
    if duplicated:
        listed = "; ".join("%s: %s" % (snapshot_id, ", ".join(v["VolumeId"] for v in volumes))
                           for snapshot_id, volumes in sorted(duplicated.items()))
        raise RestoreError("restore %s has several volumes from one snapshot (%s); delete the extra ones and run again"
                           % (restore_id, listed))
    return dict((snapshot_id, volumes[0]) for snapshot_id, volumes in found.items())


def check_found(found_volumes, planned, zone, restore_id):
    """RestoreError for an earlier volume of this restore that cannot stand for its member here."""
    for entry in planned:
        volume = found_volumes.get(entry["member"]["snapshot_id"])
        if volume is None:
            continue
        if volume["AvailabilityZone"] != zone:
            raise RestoreError("restore %s already has volume %s in %s, not %s; give another restore_id for a restore "
                               "to %s" % (restore_id, volume["VolumeId"], volume["AvailabilityZone"], zone, zone))
        if volume["State"] in UNUSABLE_STATES:
            raise RestoreError("volume %s of restore %s is in state %s; delete it and run again"
                               % (volume["VolumeId"], restore_id, volume["State"]))


def create_volumes(client, planned, run_token):
    """CreateVolume for each planned entry, in order; returns the volumes created, and on a failure raises
    (error, the volumes created before it) as :class:`PartialCreation` so the caller can delete exactly those."""
    created = []
    for index, entry in enumerate(planned):
        token = "%s-%d" % (run_token, index)
        try:
            created.append(ec2_api.create_volume(client, entry["parameters"], entry["tags"], token))
        except AnsibleEC2Error as error:
            raise PartialCreation(error, created) from error
    return created


class PartialCreation(Exception):
    """CreateVolume failed after ``created`` were made; ``error`` is the failure."""

    def __init__(self, error, created):
        super().__init__(str(error))
        self.error = error
        self.created = created


def new_run_token():
    """The prefix of this run's CreateVolume client tokens (64 characters at most with the index)."""
    return uuid.uuid4().hex


def _delete(client, volume_id):
    """True when deleted (or already gone), False while EC2 refuses it in its current state (``creating``)."""
    try:
        ec2_api.delete_volume(client, volume_id)
        return True
    except AnsibleEC2Error as error:
        if ec2_api.error_code(error) == "IncorrectState":
            return False
        raise


def delete_volumes(client, volume_ids, timeout):
    """Delete the volumes; those still ``creating`` once they are available (or in error). Returns
    (deleted, {volume id: why it could not be deleted})."""
    waiting = [volume_id for volume_id in volume_ids if not _delete(client, volume_id)]
    failed = {}
    if waiting:
        try:
            ec2_api.wait_for_volumes(client, waiting, "volumes_available", timeout)
        except AnsibleEC2Error as error:
            failed.update((volume_id, str(error)) for volume_id in waiting)
        for volume_id in waiting:
            try:
                if _delete(client, volume_id):
                    failed.pop(volume_id, None)
            except AnsibleEC2Error as error:
                failed[volume_id] = str(error)
    return [volume_id for volume_id in volume_ids if volume_id not in failed], failed


def describe_restored(volume, member, found, created):
    """One entry of the result's volume list."""
    attachments = volume.get("Attachments") or []
    return {
        "source_volume_id": member["volume_id"],
        "volume_id": volume["VolumeId"],
        "snapshot_id": member["snapshot_id"],
        "device": member["device"],
        "paths": member["paths"],
        "shadow_id": member["shadow_id"],
        "set_consistency": found["consistency"],
        "consistency": restored_consistency(found["engine"], found["consistency"]),
        "availability_zone": volume.get("AvailabilityZone"),
        "size": volume.get("Size"),
        "volume_type": volume.get("VolumeType"),
        "iops": volume.get("Iops"),
        "throughput": volume.get("Throughput"),
        "encrypted": volume.get("Encrypted", False),
        "kms_key_id": volume.get("KmsKeyId"),
        "state": ec2_api.volume_state(volume),
        "attached_to": attachments[0].get("InstanceId") if attachments else None,
        "created": created,
    }


# ------------------------------------------------------------------------------------------------ discarding a restore
def plan_discard(client, restore_id):
    """(volumes to delete, {volume id: why it is kept}) of restore ``restore_id``: only volumes carrying its restore
    tags. One attached to an instance is kept (it must be taken offline in Windows and detached first), and so is one
    a swap put in service and took off again (``shadowsnap:replaced-on``): it held live data."""
    deletable, kept = [], {}
    filters = [{"Name": "tag:" + snapshot_tags.KEY_RESTORE_ID, "Values": [restore_id]}]
    for volume in ec2_api.describe_volumes(client, filters=filters):
        tags = boto3_tag_list_to_ansible_dict(volume.get("Tags", []))
        restored = snapshot_tags.decode_restored_volume(tags)
        if volume.get("State") in GONE_STATES or not restored or restored["restore_id"] != restore_id:
            continue
        attachments = [a for a in volume.get("Attachments") or [] if a.get("State") != "detached"]
        if attachments:
            kept[volume["VolumeId"]] = "attached to %s at %s (%s): take it offline and detach it first" % (
                attachments[0].get("InstanceId"), attachments[0].get("Device"), attachments[0].get("State"))
        elif tags.get(snapshot_tags.KEY_REPLACED_ON):
            kept[volume["VolumeId"]] = ("a swap put it in service on %s and took it off again: it held live data, "
                                        "delete it by hand if it is not needed" % tags[snapshot_tags.KEY_REPLACED_ON])
        else:
            deletable.append(volume["VolumeId"])
    return sorted(deletable), kept
