#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_volumes
short_description: Create EBS volumes from the snapshots of one snapshot set
version_added: 0.1.0
description:
  - Restores volumes from a snapshot set made by this collection - the first step of every restore. Everything it
    needs is read from the set's tags (see the tag schema document in the collection's C(docs/) folder), so it works
    after the original volumes, or the whole instance, are gone.
  - The set is the one O(set_id) names, or the newest complete set of O(source_instance_id) whose point in time is at
    or before O(point_in_time), only among V(application) sets with O(require_consistency=application).
  - The volumes are the set's members that O(volumes) names by drive letter or mount point (the paths recorded in the
    tags), by device name or by original volume id; all members when O(volumes) is empty.
  - The volumes are created in the availability zone of O(instance_id) (or O(availability_zone)), each with the
    collection's restore tags from its C(CreateVolume) call - the restore id, the set, snapshot, original volume and
    instance, device, Windows paths, VSS shadow id, engine, the set's consistency and the volume's own. A re-run with
    the same O(restore_id) finds the volumes it made and creates only those still missing.
  - Everything that can refuse the restore is checked before the first C(CreateVolume) - an unknown, incomplete or
    pending set, a V(crash) or V(unverified) set when application consistency is required, archived snapshots
    (unless O(restore_archived) brings them back), a
    selector that names no volume of the set, a size below a snapshot's, a target in another Region - so a refused
    restore creates nothing. When a C(CreateVolume) or the wait fails, the volumes created by this run are deleted
    (volumes found from an earlier run are kept) and the task fails saying which were deleted.
  - For a set of the V(shadow) engine, a restored volume holds the crash-consistent image with the
    application-consistent VSS shadow copy inside it; its data is application-consistent only once a Windows Server
    has reverted it to that shadow copy or exposed it. The result and the volumes' tags say V(crash) until then
    (RV(needs_shadow_revert)).
  - O(state=absent) deletes the temporary volumes of the restore O(restore_id) - only volumes carrying that restore id
    in the collection's restore tags, never an original. A volume still attached is not detached here (it must be
    taken offline in Windows first, then detached with M(shadowsnap.ec2.ec2_volume_swap) O(state=detached)), so the
    task fails listing it, after deleting the others. So is a volume a swap put in service and took off again (it held live
    data). A re-run with nothing left to delete changes nothing.
options:
  state:
    description:
      - V(present) restores the volumes; V(absent) deletes the volumes of restore O(restore_id) (required then; the
        other options are not used).
    type: str
    choices: [present, absent]
    default: present
    version_added: 0.1.0
  set_id:
    description:
      - The set to restore.
      - Mutually exclusive with O(point_in_time).
    type: str
  source_instance_id:
    description:
      - The instance whose sets are searched when no O(set_id) is given (the instance the backups were taken of).
      - Defaults to O(instance_id).
    type: str
  point_in_time:
    description:
      - Restore the newest complete set of O(source_instance_id) whose point in time (the snapshots' start time) is at
        or before this time, in ISO 8601 (V(2026-11-25T01:37:00Z); no offset means UTC).
      - Defaults to now, that is the newest complete set.
    type: str
  require_consistency:
    description:
      - V(application) refuses a named set that is not V(application), and chooses by O(point_in_time) among
        V(application) sets only. V(unverified) sets count as V(crash).
    type: str
    choices: [any, application]
    default: any
  instance_id:
    description:
      - The instance the volumes are for; they are created in its availability zone.
      - At least one of O(instance_id) and O(availability_zone) is required.
    type: str
  availability_zone:
    description:
      - The availability zone of the new volumes, when there is no target instance yet. With O(instance_id), it must
        be that instance's zone.
    type: str
  volumes:
    description:
      - Which members of the set to restore - drive letters (V(D:)), mount points (V(C:\\Mounts\\Data)), device names
        (V(xvdb)) or original volume ids. Empty means every member.
    type: list
    elements: str
    default: []
  restore_id:
    description:
      - Names this restore in the volumes' tags, so a re-run finds its volumes. Defaults to the set id and the target
        (V(<set-id>@<instance-id or zone>)) - two restores of one set to one target then share their volumes; give a
        new id for fresh volumes.
    type: str
  volume_type:
    description:
      - The type of the new volumes. Defaults to EC2's default.
    type: str
    choices: [standard, gp2, gp3, io1, io2, sc1, st1]
  size:
    description:
      - The size of every new volume in GiB; at least each snapshot's size. Defaults to each snapshot's size.
    type: int
  iops:
    description:
      - Provisioned IOPS (O(volume_type) V(gp3), V(io1) or V(io2); required for V(io1) and V(io2)).
    type: int
  throughput:
    description:
      - Throughput in MiB/s (O(volume_type=gp3) only).
    type: int
  kms_key_id:
    description:
      - Encrypt the new volumes with this KMS key (id, alias or ARN). Without it, volumes from encrypted snapshots are
        encrypted with the snapshots' key and the others follow the account's default.
    type: str
  tags:
    description:
      - User tags added to every new volume. Keys must not start with C(shadowsnap:) or C(aws:).
    type: dict
    default: {}
  wait:
    description:
      - Wait until every volume of the restore is V(available). Not in check mode.
    type: bool
    default: true
  wait_timeout:
    description:
      - How long to wait, in seconds.
    type: int
    default: 900
  restore_archived:
    description:
      - What to do when members to restore are in the EBS archive tier, from which EC2 creates no volume.
      - V(refuse) fails before anything is created, saying how to bring them back.
      - V(temporary) restores them to the standard tier for O(archive_restore_days) days (EC2 archives them again
        afterwards), V(permanent) for good; then the module waits up to O(archive_wait_timeout) seconds for them.
        EC2 takes up to 72 hours. When they are not back in time, the task fails having created nothing and says so;
        run it again (with the same options) once they are back - a re-run never restores a member twice.
    type: str
    choices: [refuse, temporary, permanent]
    default: refuse
  archive_restore_days:
    description: With O(restore_archived=temporary), the days (1 to 180) the members stay restored.
    type: int
    default: 1
  archive_wait_timeout:
    description:
      - With O(restore_archived), how long to wait for the members to be back in the standard tier, in seconds.
        V(0) starts the restore and fails at once, asking for a re-run later.
    type: int
    default: 0
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode - the set, the volumes and the checks are resolved, and the volumes that would be created are
    returned with V(planned) as their state; with O(state=absent), the volumes that would be deleted are returned.
  - New volumes from snapshots load lazily - the first read of each block is slow unless Fast Snapshot Restore is
    enabled for the snapshots in that zone.
  - C(CreateVolume) is sent with a client token, so a request whose answer was lost is repeated without creating a
    second volume.
  - Verified against the collection's lab (moto with the EC2 behaviour it lacks added from the EC2 API reference),
    not against real EC2.
seealso:
  - module: shadowsnap.ec2.ec2_volume_swap
  - module: shadowsnap.ec2.ec2_snapshot_set_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Restore D and E from the last application-consistent set, for an in-place restore
  shadowsnap.ec2.ec2_snapshot_set_volumes:
    instance_id: i-0123456789abcdef0
    require_consistency: application
    volumes: ['D:', 'E:']
    restore_id: "restore-{{ awx_job_id }}"
  register: restored

- name: Delete the volumes of that restore once they are offline in Windows and detached
  shadowsnap.ec2.ec2_snapshot_set_volumes:
    state: absent
    restore_id: "restore-{{ awx_job_id }}"

- name: The set of last night at 02:00, every volume, to a zone (the instance is gone)
  shadowsnap.ec2.ec2_snapshot_set_volumes:
    source_instance_id: i-0123456789abcdef0
    point_in_time: "2026-11-25T02:00:00Z"
    availability_zone: us-east-1b
    volume_type: gp3
    throughput: 250

- name: One set by id, the volume mounted at C:\Mounts\Data, larger and with another key
  shadowsnap.ec2.ec2_snapshot_set_volumes:
    set_id: sql-nightly-2026-11-25
    instance_id: i-0fedcba9876543210
    volumes: ['C:\Mounts\Data']
    size: 500
    kms_key_id: alias/restores
"""

RETURN = r"""
set_id:
  description: The set restored from.
  returned: always
  type: str
  sample: i-0123456789abcdef0-20261125T013700Z
restore_id:
  description: The restore id in the volumes' tags.
  returned: always
  type: str
  sample: i-0123456789abcdef0-20261125T013700Z@i-0123456789abcdef0
source_instance_id:
  description: The instance the set was taken of.
  returned: always
  type: str
instance_id:
  description: The target instance, when one was given.
  returned: always
  type: str
availability_zone:
  description: The zone of the volumes.
  returned: always
  type: str
  sample: us-east-1a
point_in_time:
  description: The set's point in time (the earliest start time of its snapshots).
  returned: always
  type: str
engine:
  description: The engine that made the set (V(shadow), V(aws_vss), V(crash)).
  returned: always
  type: str
set_consistency:
  description: The set's consistency as tagged (V(application), V(crash), V(unverified)).
  returned: always
  type: str
consistency:
  description:
    - What the restored volumes hold now - V(application) only for an V(aws_vss) application set; V(crash) for the
      others, including V(shadow) sets until the embedded shadow copies are reverted or exposed.
  returned: always
  type: str
  sample: crash
needs_shadow_revert:
  description: The volumes reach the set's application consistency only after a revert to (or an expose of) each
    volume's shadow copy on a Windows Server.
  returned: always
  type: bool
volumes:
  description: The restored volumes, in the set's order.
  returned: always
  type: list
  elements: dict
  contains:
    source_volume_id:
      description: The original volume (the snapshot's source).
      type: str
    volume_id:
      description: The restored volume; null in check mode for a volume still to be created.
      type: str
    snapshot_id:
      description: The snapshot it is created from.
      type: str
    device:
      description: The original volume's device name, from the tags.
      type: str
      sample: xvdb
    paths:
      description: The original volume's Windows drive letters and mount points, from the tags.
      type: list
      elements: str
      sample: ['D:\']
    shadow_id:
      description: The VSS shadow copy id embedded in the volume (V(shadow) engine).
      type: str
    set_consistency:
      description: The set's consistency.
      type: str
    consistency:
      description: What this volume holds now (see RV(consistency)).
      type: str
    availability_zone:
      description: The volume's zone.
      type: str
    size:
      description: Size in GiB.
      type: int
    volume_type:
      description: The volume type.
      type: str
    encrypted:
      description: Whether the volume is encrypted.
      type: bool
    kms_key_id:
      description: The KMS key of an encrypted volume.
      type: str
    state:
      description: The volume's state, with its attachment's (V(available), V(in-use/attached)), or V(planned).
      type: str
    attached_to:
      description: The instance the volume is attached to, if any.
      type: str
    created:
      description: Whether this run created the volume (false for one an earlier run of the restore created).
      type: bool
volume_map:
  description: Original volume id to restored volume id.
  returned: always
  type: dict
  sample: {"vol-0123456789abcdef0": "vol-0fedcba9876543210"}
restored_from_archive:
  description: The members that were in the archive tier and were brought back first (would be, in check mode).
  returned: always
  type: list
  elements: str
created_volume_ids:
  description: The volumes this run created (to be created, in check mode - empty then).
  returned: always
  type: list
  elements: str
deleted_volume_ids:
  description: On failure, the volumes of this run that were deleted again; with O(state=absent), the volumes deleted
    (to be deleted, in check mode).
  returned: failure, or state=absent
  type: list
  elements: str
undeleted_volume_ids:
  description: On failure, volumes of this run that could not be deleted (the message says why); delete them by hand.
  returned: failure
  type: list
  elements: str
kept_volume_ids:
  description: With O(state=absent), the volumes of the restore that were not deleted, and why.
  returned: state=absent
  type: dict
  sample: {"vol-0123456789abcdef0": "attached to i-0123456789abcdef0 at xvdf (attached): take it offline and detach it first"}
timings:
  description: Seconds spent planning (set lookup and checks), creating, waiting, and in all.
  returned: always
  type: dict
  sample: {"plan": 0.21, "create": 0.35, "wait": 4.1, "total": 4.66}
"""

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_volumes
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION


class RestoreFailed(Exception):
    """The restore failed after this run created volumes; they were deleted (``deleted``) or could not be."""

    def __init__(self, error, deleted, undeleted):
        super().__init__(str(error))
        self.error = error
        self.deleted = deleted
        self.undeleted = undeleted


def target_zone(client, params, region):
    """The zone of the new volumes: the target instance's, or the one given (in this Region)."""
    restore_volumes.check_zone_in_region(params["availability_zone"], region)
    if not params["instance_id"]:
        return params["availability_zone"]
    instance = restore_volumes.describe_target(client, params["instance_id"], region)
    zone = instance["Placement"]["AvailabilityZone"]
    if params["availability_zone"] and params["availability_zone"] != zone:
        raise restore_volumes.RestoreError(
            "availability_zone %s is not the zone of instance %s (%s); a volume attaches only in its instance's zone"
            % (params["availability_zone"], params["instance_id"], zone))
    return zone


def undo(client, created_ids, error, timeout):
    """Delete this run's volumes after ``error``; raises RestoreFailed saying what was deleted."""
    deleted, undeleted = restore_volumes.delete_volumes(client, created_ids, timeout)
    raise RestoreFailed(error, deleted, undeleted)


def bring_back(module, client, selected):
    """Restore the selected members from the archive tier, then wait for them up to ``archive_wait_timeout``; a
    RestoreError says to run again when they are not back yet (EC2 takes up to 72 hours)."""
    params = module.params
    if module.check_mode:
        return
    statuses = set_tiers.tier_statuses(client, [member["snapshot_id"] for member in selected["snapshots"]])
    days = params["archive_restore_days"] if params["restore_archived"] == "temporary" else None
    set_tiers.restore_set(client, selected, statuses, days)
    try:
        set_tiers.wait_for_tier(client, selected, "standard", params["archive_wait_timeout"])
    except AnsibleAWSError as error:
        raise restore_volumes.RestoreError(
            "the archived snapshots of set %s are being restored to the standard tier (%s, RestoreSnapshotTier sent), "
            "no volume was created: %s" % (selected["set_id"], params["restore_archived"], error.message)) from None


def restore(module, now):
    params = module.params
    began = time.monotonic()
    timings = {}
    client = ec2_client(module)
    zone = target_zone(client, params, module.region)
    point = restore_volumes.parse_point_in_time(params["point_in_time"]) if params["point_in_time"] else None
    found, raw = restore_volumes.choose_set(client, set_id=params["set_id"],
                                            instance_id=params["source_instance_id"] or params["instance_id"],
                                            point_in_time=point, required=params["require_consistency"])
    members = restore_volumes.select_members(found, params["volumes"])
    archived = [m["snapshot_id"] for m in members if raw.get(m["snapshot_id"], {}).get("StorageTier") == set_tiers.ARCHIVE]
    if archived and params["restore_archived"] != "refuse":
        bring_back(module, client, dict(found, snapshots=members))
        if not module.check_mode:
            found, raw = restore_volumes.choose_set(client, set_id=found["set_id"], required=params["require_consistency"])
            members = restore_volumes.select_members(found, params["volumes"])
    if not module.check_mode or params["restore_archived"] == "refuse":
        restore_volumes.check_tiers(found, members, raw)
    restore_id = params["restore_id"] or restore_volumes.default_restore_id(found["set_id"], params["instance_id"] or zone)
    planned = restore_volumes.plan_volumes(found, members, zone, restore_id, params, now, COLLECTION_VERSION)
    existing = restore_volumes.find_restored(client, restore_id)
    restore_volumes.check_found(existing, planned, zone, restore_id)
    to_create = [entry for entry in planned if entry["member"]["snapshot_id"] not in existing]
    timings["plan"] = round(time.monotonic() - began, 3)

    summary = {
        "set_id": found["set_id"], "restore_id": restore_id, "source_instance_id": found["instance_id"],
        "instance_id": params["instance_id"], "availability_zone": zone, "point_in_time": found["start_time"],
        "engine": found["engine"], "set_consistency": found["consistency"],
        "restored_from_archive": archived if params["restore_archived"] != "refuse" else [],
        "consistency": restore_volumes.restored_consistency(found["engine"], found["consistency"]),
        "needs_shadow_revert": found["engine"] == "shadow" and found["consistency"] == "application",
    }
    if module.check_mode:
        volumes = [restore_volumes.describe_restored(existing[e["member"]["snapshot_id"]], e["member"], found, False)
                   if e["member"]["snapshot_id"] in existing else planned_entry(e, found) for e in planned]
        timings["total"] = timings["plan"]
        return dict(summary, changed=bool(to_create), volumes=volumes, created_volume_ids=[], timings=timings,
                    volume_map=dict((v["source_volume_id"], v["volume_id"]) for v in volumes if v["volume_id"]))

    create_began = time.monotonic()
    try:
        created = restore_volumes.create_volumes(client, to_create, restore_volumes.new_run_token())
    except restore_volumes.PartialCreation as partial:
        undo(client, [volume["VolumeId"] for volume in partial.created], partial.error, params["wait_timeout"])
    timings["create"] = round(time.monotonic() - create_began, 3)
    created_ids = [volume["VolumeId"] for volume in created]
    by_snapshot = dict(existing)
    by_snapshot.update((volume["SnapshotId"], volume) for volume in created)

    wait_began = time.monotonic()
    waiting = created_ids + [v["VolumeId"] for v in existing.values() if v["State"] == "creating"]
    if params["wait"] and waiting:
        try:
            ec2_api.wait_for_volumes(client, waiting, "volumes_available", params["wait_timeout"])
        except AnsibleAWSError as error:
            undo(client, created_ids, error, params["wait_timeout"])
    timings["wait"] = round(time.monotonic() - wait_began, 3)
    current = dict((v["VolumeId"], v) for v in ec2_api.describe_volumes(client, [v["VolumeId"] for v in by_snapshot.values()]))
    volumes = []
    for entry in planned:
        volume = by_snapshot[entry["member"]["snapshot_id"]]
        volumes.append(restore_volumes.describe_restored(current.get(volume["VolumeId"], volume), entry["member"], found,
                                                         volume["VolumeId"] in created_ids))
    timings["total"] = round(time.monotonic() - began, 3)
    return dict(summary, changed=bool(created_ids), volumes=volumes, created_volume_ids=created_ids, timings=timings,
                volume_map=dict((v["source_volume_id"], v["volume_id"]) for v in volumes))


def discard(module):
    """state=absent: delete the restore's volumes that are detached; fail listing those kept."""
    params = module.params
    began = time.monotonic()
    client = ec2_client(module)
    deletable, kept = restore_volumes.plan_discard(client, params["restore_id"])
    undeleted = {}
    deleted = deletable
    if deletable and not module.check_mode:
        deleted, undeleted = restore_volumes.delete_volumes(client, deletable, params["wait_timeout"])
    kept.update(undeleted)
    result = dict(changed=bool(deleted), restore_id=params["restore_id"], deleted_volume_ids=deleted,
                  kept_volume_ids=kept, timings={"total": round(time.monotonic() - began, 3)})
    if kept:
        module.fail_json(msg="restore %s: deleted %s; kept %s" % (
            params["restore_id"], ", ".join(deleted) or "nothing",
            "; ".join("%s (%s)" % item for item in sorted(kept.items()))), **result)
    return result


def planned_entry(entry, found):
    """A volume of the check-mode plan: what would be created."""
    member, parameters = entry["member"], entry["parameters"]
    return {
        "source_volume_id": member["volume_id"], "volume_id": None, "snapshot_id": member["snapshot_id"],
        "device": member["device"], "paths": member["paths"], "shadow_id": member["shadow_id"],
        "set_consistency": found["consistency"],
        "consistency": restore_volumes.restored_consistency(found["engine"], found["consistency"]),
        "availability_zone": parameters["AvailabilityZone"], "size": parameters.get("Size", member["volume_size"]),
        "volume_type": parameters.get("VolumeType"), "iops": parameters.get("Iops"),
        "throughput": parameters.get("Throughput"), "encrypted": bool(parameters.get("Encrypted")),
        "kms_key_id": parameters.get("KmsKeyId"), "state": "planned", "attached_to": None, "created": False,
    }


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        set_id=dict(type="str"),
        source_instance_id=dict(type="str"),
        point_in_time=dict(type="str"),
        require_consistency=dict(type="str", choices=["any", "application"], default="any"),
        instance_id=dict(type="str"),
        availability_zone=dict(type="str"),
        volumes=dict(type="list", elements="str", default=[]),
        restore_id=dict(type="str"),
        volume_type=dict(type="str", choices=["standard", "gp2", "gp3", "io1", "io2", "sc1", "st1"]),
        size=dict(type="int"),
        iops=dict(type="int"),
        throughput=dict(type="int"),
        kms_key_id=dict(type="str"),
        tags=dict(type="dict", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
        restore_archived=dict(type="str", choices=["refuse", "temporary", "permanent"], default="refuse"),
        archive_restore_days=dict(type="int", default=1),
        archive_wait_timeout=dict(type="int", default=0),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec, supports_check_mode=True,
        mutually_exclusive=[("set_id", "point_in_time")],
        required_if=[("state", "present", ("instance_id", "availability_zone"), True),
                     ("state", "absent", ("restore_id",))],
    )
    params = module.params
    if params["state"] == "absent":
        try:
            module.exit_json(**discard(module))
        except AnsibleAWSError as error:
            module.fail_json_aws_error(error)
    if not params["set_id"] and not (params["source_instance_id"] or params["instance_id"]):
        module.fail_json(msg="name the set with set_id, or the instance whose sets to search with source_instance_id")
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        result = restore(module, now)
    except (restore_volumes.RestoreError, snapshot_tags.TagSchemaError) as error:
        module.fail_json(msg=str(error), created_volume_ids=[])
    except RestoreFailed as failure:
        message = "%s (deleted the volumes this run created: %s" % (
            getattr(failure.error, "message", None) or str(failure.error), ", ".join(failure.deleted) or "none")
        if failure.undeleted:
            message += "; could NOT delete %s: delete them by hand" % ", ".join(
                "%s, %s" % item for item in sorted(failure.undeleted.items()))
        message += ")"
        extra = dict(deleted_volume_ids=failure.deleted, undeleted_volume_ids=sorted(failure.undeleted))
        cause = getattr(failure.error, "exception", None)
        if cause is not None:
            module.fail_json_aws(cause, msg=message, **extra)
        module.fail_json(msg=message, **extra)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
