#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_instance_restore
short_description: Restore a whole instance from a snapshot set - the AWS part
version_added: 0.1.0
description:
  - Launches a new instance with every volume of a snapshot set, root included, in the original's place or elsewhere.
    The original instance is only read, never changed.
  - A Windows root snapshot cannot be registered as an AMI (the billing product code of Windows would be lost), so the
    instance is launched from the original's AMI (or O(image_id)), stopped, and its launch volumes are replaced by
    volumes restored from the set (as M(shadowsnap.ec2.ec2_snapshot_set_volumes) restores them) at the devices the set
    recorded, the root volume at the new instance's root device. The launch volumes taken off are deleted. Then the
    instance is started (O(start)).
  - Each of O(availability_zone), O(subnet_id), O(instance_type), O(security_group_ids), O(key_name),
    O(iam_instance_profile) and O(image_id) defaults to the original instance's when it still exists, else to what the
    set recorded at backup time (see the tag schema document in the collection's C(docs/) folder), else it must be
    given; the task fails saying which. O(private_ip_address) defaults to the recorded address only when the instance
    goes back into the recorded subnet and the original is gone.
  - Idempotent by O(restore_id) - the instance and volumes carry it in their tags, so a re-run finds them and
    carries on where an earlier run stopped; C(RunInstances) carries a client token, so a lost answer does not launch
    a second instance. When a step fails, what this run created is removed - the instance it launched is terminated,
    the volumes it created are deleted - and the task fails saying so; nothing an earlier run made is touched.
  - The root volume stays crash-consistent - Windows cannot revert the volume it runs from. For a V(shadow) set, the
    data volumes are application-consistent only once the Windows side has brought them online and reverted each to
    its embedded shadow copy (RV(volumes[].needs_shadow_revert)); the result lists what it needs in RV(windows).
options:
  state:
    description:
      - V(present) restores.
      - V(absent) removes what one run of the restore O(restore_id) created - terminates O(instance_id) and deletes
        O(volume_ids), each only when its tags say restore O(restore_id) made it; anything else is refused before
        anything is removed. For a caller that failed after the restore, such as the C(restore) role on the new
        instance's Windows.
    type: str
    choices: [present, absent]
    default: present
  instance_id:
    description:
      - With O(state=absent), the instance to terminate (the RV(instance_id) of a run that RV(launched) it).
    type: str
  volume_ids:
    description:
      - With O(state=absent), the volumes to delete (the RV(created_volume_ids) of a run).
    type: list
    elements: str
    default: []
  set_id:
    description:
      - The set to restore.
      - Mutually exclusive with O(point_in_time).
    type: str
  source_instance_id:
    description:
      - The instance whose sets are searched when no O(set_id) is given.
    type: str
  point_in_time:
    description:
      - Restore the newest complete set of O(source_instance_id) at or before this time (ISO 8601, UTC without an
        offset). Defaults to now.
    type: str
  require_consistency:
    description:
      - V(application) restores only sets tagged V(application).
    type: str
    choices: [any, application]
    default: any
  restore_id:
    description:
      - Names this restore in the instance's and the volumes' tags. Defaults to V(<set-id>@<subnet-id>).
      - Required with O(state=absent).
    type: str
  image_id:
    description:
      - The AMI to launch from - of the same Windows Server version as the set's root volume. Needed when the
        original's AMI has been deregistered.
    type: str
  instance_type:
    description:
      - The instance type.
    type: str
  availability_zone:
    description:
      - The zone; it must be the zone of the subnet. Without O(subnet_id) it is only checked against the subnet chosen.
    type: str
  subnet_id:
    description:
      - The subnet of the new instance.
    type: str
  security_group_ids:
    description:
      - The security groups of the new instance (of the subnet's VPC).
    type: list
    elements: str
  key_name:
    description:
      - The key pair (to decrypt the Administrator password of an instance from a Windows AMI).
    type: str
  iam_instance_profile:
    description:
      - The name of the instance profile.
    type: str
  private_ip_address:
    description:
      - The primary private IPv4 address, in the subnet's range and free.
    type: str
  volume_type:
    description:
      - The type of the restored volumes. Defaults to EC2's default.
    type: str
    choices: [standard, gp2, gp3, io1, io2, sc1, st1]
  iops:
    description:
      - Provisioned IOPS of the restored volumes (V(gp3), V(io1), V(io2)).
    type: int
  throughput:
    description:
      - Throughput of the restored volumes in MiB/s (V(gp3)).
    type: int
  kms_key_id:
    description:
      - Encrypt the restored volumes with this KMS key.
    type: str
  tags:
    description:
      - User tags for the new instance and its restored volumes. Keys must not start with C(shadowsnap:) or C(aws:).
    type: dict
    default: {}
  start:
    description:
      - Start the instance once the set's volumes are in place. With V(false) it is left stopped, for example to change
        it further before its first boot from the restored root volume.
    type: bool
    default: true
  wait_timeout:
    description:
      - How long to wait for each step (instance states, volumes), in seconds.
    type: int
    default: 900
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode - the set, where the instance goes and from what, and every check are resolved; nothing is
    created, and the result says what would be.
  - An instance cannot be launched stopped - it is launched, left to reach V(running) (its first boot from the AMI is
    then thrown away with its root volume), and stopped.
  - The restored volumes are attached with C(DeleteOnTermination) false, so terminating the instance later keeps them.
  - Only the primary network interface is recreated (subnet, security groups, private IP); other interfaces, Elastic
    IPs, user data and instance attributes are not recorded.
  - Verified against the collection's lab (moto with the EC2 behaviour it lacks added from the EC2 API reference),
    not against real EC2; the Windows side has not run on a real Windows Server.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_volumes
  - module: shadowsnap.ec2.ec2_volume_swap
  - module: shadowsnap.ec2.ec2_snapshot_set_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: The last application-consistent set of a server, as a new server in the DR subnet
  shadowsnap.ec2.ec2_instance_restore:
    source_instance_id: i-0123456789abcdef0
    require_consistency: application
    subnet_id: subnet-0fedcba9876543210
    security_group_ids: [sg-0123456789abcdef0]
    instance_type: m6i.xlarge
  register: restored

- name: Remove what that run created (after a later step failed)
  shadowsnap.ec2.ec2_instance_restore:
    state: absent
    restore_id: "{{ restored.restore_id }}"
    instance_id: "{{ restored.instance_id if restored.launched else omit }}"
    volume_ids: "{{ restored.created_volume_ids }}"

- name: A server that is gone, back in its place (zone, subnet, type, groups, profile, key, IP from the set)
  shadowsnap.ec2.ec2_instance_restore:
    set_id: i-0123456789abcdef0-20261125T013700Z
    restore_id: "rebuild-{{ awx_job_id }}"
"""

RETURN = r"""
instance_id:
  description: The new instance (null in check mode before it is launched).
  returned: always
  type: str
launched:
  description: Whether this run launched the instance (false when an earlier run of the restore did).
  returned: always
  type: bool
restore_id:
  description: The restore id in the instance's and volumes' tags.
  returned: always
  type: str
set_id:
  description: The set restored.
  returned: always
  type: str
source_instance_id:
  description: The instance the set was taken of.
  returned: always
  type: str
engine:
  description: The set's engine.
  returned: always
  type: str
set_consistency:
  description: The set's consistency as tagged.
  returned: always
  type: str
launch:
  description: Where the instance went and from what - image_id, instance_type, availability_zone, subnet_id,
    security_group_ids, key_name, iam_instance_profile, private_ip.
  returned: always
  type: dict
launch_sources:
  description: For each field of RV(launch), where it came from - V(input), V(original) (the original instance as it
    is now), V(set) (the launch record of the set), or null (left to EC2).
  returned: always
  type: dict
  sample: {"image_id": "original", "subnet_id": "input", "private_ip": null}
state:
  description: The instance's state at the end (V(running), V(stopped), or V(planned) in check mode).
  returned: always
  type: str
private_ip_address:
  description: The new instance's primary private IPv4 address - where the Windows side reaches it (null when planned).
  returned: always
  type: str
volumes:
  description: Every volume of the set on the new instance.
  returned: always
  type: list
  elements: dict
  contains:
    source_volume_id:
      description: The original volume.
      type: str
    volume_id:
      description: The restored volume (null in check mode for one still to be created).
      type: str
    snapshot_id:
      description: The snapshot it was created from.
      type: str
    device:
      description: Its device on the new instance.
      type: str
    source_device:
      description: Its device on the original, as recorded.
      type: str
    paths:
      description: The original's drive letters and mount points on it.
      type: list
      elements: str
    shadow_id:
      description: The VSS shadow copy embedded in it (V(shadow) engine).
      type: str
    root:
      description: Whether it is the root volume.
      type: bool
    consistency:
      description: What it holds now (V(crash) for a V(shadow) set's volume).
      type: str
    needs_shadow_revert:
      description: It reaches application consistency once the Windows side reverts it to its shadow copy.
      type: bool
    reaches:
      description: The best it can reach - V(crash) for the root volume of a V(shadow) set (Windows cannot revert the
        volume it runs from), V(application) for its data volumes after the revert.
      type: str
volume_map:
  description: Original volume id to restored volume id.
  returned: always
  type: dict
windows:
  description: What the Windows side does next on the new instance - the data volumes to bring online and revert to
    their shadow copies (volume_id, device, paths, shadow_id); empty when there is nothing to revert.
  returned: always
  type: dict
  sample: {"instance_id": "i-0fedcba9876543210", "revert": [{"volume_id": "vol-1", "device": "xvdb",
           "paths": ["D:\\"], "shadow_id": "{...}"}]}
created_volume_ids:
  description: The volumes this run created.
  returned: always
  type: list
  elements: str
deleted_launch_volume_ids:
  description: The new instance's launch volumes this run took off and deleted, and those an interrupted earlier run
    of the restore had taken off but not deleted (found by their tag).
  returned: always
  type: list
  elements: str
undeleted_launch_volume_ids:
  description: Launch volumes taken off that could not be deleted (delete them by hand).
  returned: always
  type: list
  elements: str
terminated_instance_id:
  description: On failure, the instance this run launched and terminated again; with O(state=absent), O(instance_id)
    once terminated.
  returned: failure, or O(state=absent)
  type: str
deleted_volume_ids:
  description: On failure, the volumes of this run that were deleted again; with O(state=absent), those of
    O(volume_ids) deleted.
  returned: failure, or O(state=absent)
  type: list
  elements: str
timings:
  description: Seconds spent planning, launching, stopping, creating volumes, swapping, starting, and in all.
  returned: always
  type: dict
"""

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_instance
from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_volumes
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils import volume_swap
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION
from ansible_collections.shadowsnap.ec2.plugins.module_utils.snapshot_sets import normalise_device


class RestoreFailed(Exception):
    """A step failed after this run created something; ``cleanup`` says what was removed again and what was not."""

    def __init__(self, error, cleanup):
        super().__init__(str(error))
        self.error = error
        self.cleanup = cleanup


def plan(module, client, now):
    """Everything decided before anything is created: the set, where the instance goes, the volumes."""
    params = module.params
    point = restore_volumes.parse_point_in_time(params["point_in_time"]) if params["point_in_time"] else None
    found, raw = restore_volumes.choose_set(client, set_id=params["set_id"], instance_id=params["source_instance_id"],
                                            point_in_time=point, required=params["require_consistency"])
    restore_volumes.check_tiers(found, found["snapshots"], raw)
    recorded = found["launch"]
    original = restore_instance.read_original(client, found["instance_id"])
    launch, sources = restore_instance.resolve_launch(params, original, recorded, found["set_id"])
    zone = restore_instance.check_subnet(client, launch, params["availability_zone"])
    launch["availability_zone"], sources["availability_zone"] = zone, "input" if params["availability_zone"] else sources["subnet_id"]
    image = restore_instance.check_image(client, launch["image_id"], sources["image_id"])
    launch["private_ip"], sources["private_ip"] = restore_instance.private_ip(params, original, recorded, launch)
    root_member = restore_instance.check_root(found, recorded)
    restore_id = params["restore_id"] or restore_instance.default_restore_id(found["set_id"], launch["subnet_id"])
    planned = restore_volumes.plan_volumes(found, found["snapshots"], zone, restore_id, params, now, COLLECTION_VERSION)
    existing = restore_volumes.find_restored(client, restore_id)
    restore_volumes.check_found(existing, planned, zone, restore_id)
    instance = restore_instance.find_restored_instance(client, restore_id)
    if instance and instance["Placement"]["AvailabilityZone"] != zone:
        raise restore_volumes.RestoreError("restore %s already has instance %s in %s, not %s; give another restore_id"
                                           % (restore_id, instance["InstanceId"], instance["Placement"]["AvailabilityZone"], zone))
    return {"found": found, "launch": launch, "sources": sources, "image": image, "root_member": root_member,
            "restore_id": restore_id, "planned": planned, "existing": existing, "instance": instance}


def ensure_stopped(client, instance_id, timeout):
    """The instance once stopped: a launch still pending is let to run first (EC2 stops only a running instance)."""
    state = ec2_api.describe_instances(client, [instance_id])[0]["State"]["Name"]
    if state == "pending":
        ec2_api.wait_for_instance(client, instance_id, "instances_running", timeout)
        state = "running"
    if state == "running":
        ec2_api.stop_instance(client, instance_id)
    if state != "stopped":
        ec2_api.wait_for_instance(client, instance_id, "instances_stopped", timeout)


def in_place(instance, volumes, devices):
    """Whether every restored volume is attached to the instance at its device."""
    attached = volume_swap.attachments_of(instance)
    for volume_id, volume in volumes.items():
        device = devices.get(volume_id) or volume_swap.restored_data(volume)["device"]
        if attached.get(normalise_device(device), {}).get("volume_id") != volume_id:
            return False
    return True


def carry_out(module, client, prepared, timings, progress):
    """Launch (or find), stop, create the volumes, swap them in, delete the launch volumes, start."""
    params = module.params
    timeout = params["wait_timeout"]
    found, restore_id = prepared["found"], prepared["restore_id"]
    step = time.monotonic()
    instance = prepared["instance"]
    if instance is None:
        tags = snapshot_tags.build_restored_instance_tags(restore_id, found["set_id"], found["instance_id"],
                                                          progress["now"], COLLECTION_VERSION, params["tags"])
        parameters = restore_instance.launch_parameters(prepared["launch"], prepared["image"],
                                                        prepared["launch"]["private_ip"])
        instance = ec2_api.run_instance(client, parameters, tags, {snapshot_tags.KEY_RESTORE_LAUNCH_VOLUME: restore_id},
                                        restore_instance.run_token(restore_id))
        progress["launched"] = instance["InstanceId"]
    instance_id = instance["InstanceId"]
    timings["launch"] = round(time.monotonic() - step, 3)

    step = time.monotonic()
    to_create = [e for e in prepared["planned"] if e["member"]["snapshot_id"] not in prepared["existing"]]
    try:
        created = restore_volumes.create_volumes(client, to_create, restore_volumes.new_run_token())
    except restore_volumes.PartialCreation as partial:
        progress["created"] = [volume["VolumeId"] for volume in partial.created]
        raise partial.error from partial
    progress["created"] = [volume["VolumeId"] for volume in created]
    by_snapshot = dict(prepared["existing"])
    by_snapshot.update((volume["SnapshotId"], volume) for volume in created)
    waiting = progress["created"] + [v["VolumeId"] for v in prepared["existing"].values() if v["State"] == "creating"]
    if waiting:
        ec2_api.wait_for_volumes(client, waiting, "volumes_available", timeout)
    timings["volumes"] = round(time.monotonic() - step, 3)

    by_member = dict((e["member"]["volume_id"], by_snapshot[e["member"]["snapshot_id"]]) for e in prepared["planned"])
    volumes = volume_swap.read_volumes(client, [volume["VolumeId"] for volume in by_member.values()])
    devices = restore_instance.swap_devices(instance, prepared["root_member"], by_member)
    settled = instance_state(client, instance_id) in volume_swap.SETTLED_INSTANCE_STATES
    step = time.monotonic()
    deleted, undeleted = [], {}
    if not settled or not in_place(volume_swap.read_instance(client, instance_id), volumes, devices):
        ensure_stopped(client, instance_id, timeout)
        timings["stop"] = round(time.monotonic() - step, 3)
        step = time.monotonic()
        stopped = volume_swap.read_instance(client, instance_id)
        moves = volume_swap.plan_swap(stopped, volumes, devices, allow_other_source=True)[0]
        volume_swap.carry_out((client, ec2_client(module, idempotent=False)), instance_id, moves, timeout)
        progress["changed"] = True
        deleted, undeleted = delete_launch_volumes(client, [move.out_id for move in moves if move.out_id], restore_id,
                                                   timeout)
        timings["swap"] = round(time.monotonic() - step, 3)
    leftovers = [v["VolumeId"] for v in ec2_api.describe_volumes(client, filters=[
        {"Name": "tag:" + snapshot_tags.KEY_RESTORE_LAUNCH_VOLUME, "Values": [restore_id]},
        {"Name": "status", "Values": ["available"]}]) if v["VolumeId"] not in deleted]
    if leftovers:
        swept, unswept = restore_volumes.delete_volumes(client, leftovers, timeout)
        deleted, undeleted = deleted + swept, dict(undeleted, **unswept)
    step = time.monotonic()
    if params["start"] and instance_state(client, instance_id) != "running":
        ec2_api.start_instance(client, instance_id)
        ec2_api.wait_for_instance(client, instance_id, "instances_running", timeout)
        progress["changed"] = True
    timings["start"] = round(time.monotonic() - step, 3)
    return instance_id, by_member, deleted, undeleted


def delete_launch_volumes(client, volume_ids, restore_id, timeout):
    """Delete the volumes the swap took off that the instance of this restore was launched with (their tag says so);
    anything else is kept and reported. Returns (deleted, {volume id: why not})."""
    kept = {}
    launched = []
    for volume_id, volume in volume_swap.existing_volumes(client, volume_ids).items():
        if volume_swap.tags_of(volume).get(snapshot_tags.KEY_RESTORE_LAUNCH_VOLUME) == restore_id:
            launched.append(volume_id)
        else:
            kept[volume_id] = "not a launch volume of restore %s; kept" % restore_id
    deleted, undeleted = restore_volumes.delete_volumes(client, launched, timeout)
    undeleted.update(kept)
    return deleted, undeleted


def instance_state(client, instance_id):
    return ec2_api.describe_instances(client, [instance_id])[0]["State"]["Name"]


def undo(client, progress, timeout):
    """Remove what this run created: terminate the instance it launched, then delete its volumes (a volume attached
    to that instance comes off when it terminates). Returns what was and was not removed."""
    cleanup = {"terminated_instance_id": None, "deleted_volume_ids": [], "undeleted_volume_ids": {}}
    try:
        if progress["launched"]:
            ec2_api.terminate_instance(client, progress["launched"])
            ec2_api.wait_for_instance(client, progress["launched"], "instances_terminated", timeout)
            cleanup["terminated_instance_id"] = progress["launched"]
        deleted, undeleted = restore_volumes.delete_volumes(client, progress["created"], timeout)
    except AnsibleAWSError as error:
        cleanup["undeleted_volume_ids"] = dict((volume_id, str(error)) for volume_id in progress["created"])
        cleanup["cleanup_error"] = str(error)
        return cleanup
    cleanup["deleted_volume_ids"], cleanup["undeleted_volume_ids"] = deleted, undeleted
    return cleanup


def summary(prepared, instance_id, by_member, described):
    """The result of a run (or a plan): ``described`` is the new instance as EC2 describes it now (None: planned)."""
    found = prepared["found"]
    root_id = prepared["root_member"]["volume_id"]
    volumes = []
    for entry in prepared["planned"]:
        member = entry["member"]
        volume = by_member.get(member["volume_id"])
        root = member["volume_id"] == root_id
        device = (prepared["image"].get("RootDeviceName") or member["device"]) if root else member["device"]
        volumes.append(restore_instance.volume_entry(volume, member, found, root, device))
    revert = [dict((k, v[k]) for k in ("volume_id", "device", "paths", "shadow_id")) for v in volumes
              if v["needs_shadow_revert"]]
    return {
        "instance_id": instance_id, "restore_id": prepared["restore_id"], "set_id": found["set_id"],
        "source_instance_id": found["instance_id"], "engine": found["engine"], "set_consistency": found["consistency"],
        "launch": prepared["launch"], "launch_sources": prepared["sources"],
        "state": described["State"]["Name"] if described else "planned",
        "private_ip_address": described.get("PrivateIpAddress") if described else None, "volumes": volumes,
        "volume_map": dict((v["source_volume_id"], v["volume_id"]) for v in volumes if v["volume_id"]),
        "windows": {"instance_id": instance_id, "revert": revert},
    }


def restore(module, now):
    began = time.monotonic()
    timings = {}
    client = ec2_client(module)
    prepared = plan(module, client, now)
    timings["plan"] = round(time.monotonic() - began, 3)
    if module.check_mode:
        existing = prepared["instance"]
        by_member = dict((e["member"]["volume_id"], prepared["existing"][e["member"]["snapshot_id"]])
                         for e in prepared["planned"] if e["member"]["snapshot_id"] in prepared["existing"])
        timings["total"] = timings["plan"]
        result = summary(prepared, existing["InstanceId"] if existing else None, by_member, existing)
        return dict(result, changed=existing is None or len(by_member) < len(prepared["planned"]),
                    launched=False, created_volume_ids=[], deleted_launch_volume_ids=[],
                    undeleted_launch_volume_ids=[], timings=timings)
    progress = {"now": now, "launched": None, "created": [], "changed": False}
    try:
        instance_id, by_member, deleted, undeleted = carry_out(module, client, prepared, timings, progress)
    except (AnsibleAWSError, volume_swap.SwapError, volume_swap.MoveFailed) as error:
        raise RestoreFailed(error, undo(client, progress, module.params["wait_timeout"])) from error
    timings["total"] = round(time.monotonic() - began, 3)
    result = summary(prepared, instance_id, by_member, ec2_api.describe_instances(client, [instance_id])[0])
    changed = bool(progress["launched"] or progress["created"] or deleted or progress["changed"])
    return dict(result, changed=changed, launched=bool(progress["launched"]), created_volume_ids=progress["created"],
                deleted_launch_volume_ids=deleted, undeleted_launch_volume_ids=sorted(undeleted), timings=timings)


def check_removable(client, restore_id, instance_id, volume_ids):
    """RestoreError, before anything is removed, when the instance or a volume does not carry restore ``restore_id``'s
    tag (it is not what a run of this restore made); the volumes EC2 no longer knows are left out."""
    instances = ec2_api.describe_instances(client, [instance_id]) if instance_id else []
    foreign = [i["InstanceId"] for i in instances if volume_swap.tags_of(i).get(snapshot_tags.KEY_RESTORE_ID) != restore_id]
    volumes = volume_swap.existing_volumes(client, volume_ids) if volume_ids else {}
    foreign += [v for v, volume in volumes.items() if volume_swap.tags_of(volume).get(snapshot_tags.KEY_RESTORE_ID) != restore_id]
    if foreign:
        raise restore_volumes.RestoreError("%s not made by restore %s (its %s tag differs); nothing removed"
                                           % (", ".join(sorted(foreign)), restore_id, snapshot_tags.KEY_RESTORE_ID))
    live = [i["InstanceId"] for i in instances if i["State"]["Name"] != "terminated"]
    return (live[0] if live else None), sorted(volumes)


def remove(module):
    """state=absent: terminate the instance and delete the volumes one run of the restore created."""
    params = module.params
    client = ec2_client(module)
    instance_id, volume_ids = check_removable(client, params["restore_id"], params["instance_id"], params["volume_ids"])
    changed = bool(instance_id or volume_ids)
    if module.check_mode:
        return dict(changed=changed, terminated_instance_id=instance_id, deleted_volume_ids=volume_ids,
                    undeleted_volume_ids=[])
    cleanup = undo(client, {"launched": instance_id, "created": volume_ids}, params["wait_timeout"])
    if cleanup["undeleted_volume_ids"]:
        module.fail_json(msg="restore %s: could NOT delete %s: delete them by hand" % (params["restore_id"], ", ".join(
            "%s, %s" % item for item in sorted(cleanup["undeleted_volume_ids"].items()))), **cleanup)
    return dict(changed=changed, terminated_instance_id=cleanup["terminated_instance_id"],
                deleted_volume_ids=cleanup["deleted_volume_ids"], undeleted_volume_ids=[])


def failure_message(failure):
    cleanup = failure.cleanup
    message = getattr(failure.error, "message", None) or str(failure.error)
    message += " (this run's instance: %s; its volumes deleted: %s" % (
        "terminated " + cleanup["terminated_instance_id"] if cleanup["terminated_instance_id"] else "none launched",
        ", ".join(cleanup["deleted_volume_ids"]) or "none")
    if cleanup["undeleted_volume_ids"]:
        message += "; could NOT delete %s: delete them by hand" % ", ".join(
            "%s, %s" % item for item in sorted(cleanup["undeleted_volume_ids"].items()))
    return message + ")"


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        instance_id=dict(type="str"),
        volume_ids=dict(type="list", elements="str", default=[]),
        set_id=dict(type="str"),
        source_instance_id=dict(type="str"),
        point_in_time=dict(type="str"),
        require_consistency=dict(type="str", choices=["any", "application"], default="any"),
        restore_id=dict(type="str"),
        image_id=dict(type="str"),
        instance_type=dict(type="str"),
        availability_zone=dict(type="str"),
        subnet_id=dict(type="str"),
        security_group_ids=dict(type="list", elements="str"),
        key_name=dict(type="str", no_log=False),
        iam_instance_profile=dict(type="str"),
        private_ip_address=dict(type="str"),
        volume_type=dict(type="str", choices=["standard", "gp2", "gp3", "io1", "io2", "sc1", "st1"]),
        iops=dict(type="int"),
        throughput=dict(type="int"),
        kms_key_id=dict(type="str"),
        tags=dict(type="dict", default={}),
        start=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              mutually_exclusive=[("set_id", "point_in_time")],
                              required_if=[("state", "present", ("set_id", "source_instance_id"), True),
                                           ("state", "absent", ("restore_id",))])
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        result = restore(module, now) if module.params["state"] == "present" else remove(module)
    except (restore_volumes.RestoreError, snapshot_tags.TagSchemaError) as error:
        module.fail_json(msg=str(error), created_volume_ids=[])
    except RestoreFailed as failure:
        extra = dict(terminated_instance_id=failure.cleanup["terminated_instance_id"],
                     deleted_volume_ids=failure.cleanup["deleted_volume_ids"],
                     undeleted_volume_ids=sorted(failure.cleanup["undeleted_volume_ids"]))
        cause = getattr(failure.error, "exception", None)
        if cause is not None:
            module.fail_json_aws(cause, msg=failure_message(failure), **extra)
        module.fail_json(msg=failure_message(failure), **extra)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
