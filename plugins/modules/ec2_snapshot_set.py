#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set
short_description: Snapshot the EBS volumes of one EC2 instance as one tagged set
version_added: 0.1.0
description:
  - Creates EBS snapshots of one instance's volumes with a single C(CreateSnapshots) call, so the snapshots share one
    point in time (crash-consistent across the volumes) and form one set.
  - Every snapshot of a new set carries the collection's tag schema from the moment it is created - the tags go in the
    C(CreateSnapshots) call itself, with no C(CreateTags) call - the set id, instance id, engine, consistency, policy,
    creation time, collection version, the user's tags, and one tag per member volume with its device name, Windows
    paths and VSS shadow id, and the instance's launch record from the same C(DescribeInstances) answer (AMI, type,
    zone, subnet, private IP, root device, security groups, instance profile, key pair - 1 to 4 tags), for a
    whole-instance restore (M(shadowsnap.ec2.ec2_instance_restore)). See the tag schema document in the collection's
    C(docs/) folder.
  - Returns as soon as the point in time is fixed (snapshots in state V(pending) are fine); O(wait=true) waits for
    V(completed), for a new set and for an existing one found by O(set_id) alike.
  - Idempotent on O(set_id) - when snapshots with that set id exist, nothing is created and the existing set is
    returned.
  - An existing set whose consistency is V(unverified) is settled to the O(consistency) asked for (V(application)
    or V(crash)) with one C(CreateTags) call for all its members; this is how the backup flow records a verified
    set. A settled set never changes again, and a crash-engine set never becomes V(application).
  - Before any API call the module checks the tags it can - user tag keys, the set-level tags, the tag count with the
    volumes O(volume_ids) or O(device_names) name (at least one), and the length of each O(volume_metadata) value. The
    exact count, which depends on how many volumes the instance has and on its launch record, is checked after
    C(DescribeInstances) and before
    C(CreateSnapshots).
  - Before creating anything the module checks the instance and its attachments - a missing or terminated instance, a
    volume that is not attached, an unknown device name or an attachment that is not settled fail with a clear message.
  - With O(state=absent) the whole set O(set_id) is deleted, every member that is still there, and nothing else - see
    O(state).
  - Retries as EC2 documents - jittered backoff on throttling, at least 15 seconds after
    C(SnapshotCreationPerVolumeRateExceeded), growing waits on C(ConcurrentSnapshotLimitExceeded). After a server
    error or a lost connection the request may have been carried out - and EC2's Describe calls are eventually
    consistent - so the set is looked up by its id several times, with growing waits of at least 2 seconds, before a
    new attempt and also after the last one; a set found that way is returned and never created a second time.
options:
  state:
    description:
      - V(present) makes sure the set exists (creates it, or waits for and settles an existing one).
      - V(absent) deletes every snapshot of the set O(set_id) that is still there. Idempotent - a set that is gone
        changes nothing, and a set deleted halfway (an interrupted run) is finished by the next one.
      - With V(absent) only snapshots that carry the set id, belong to O(instance_id) and are owned by this account
        are deleted; a set whose snapshots belong to another instance or account is refused whole, before any delete.
      - A member that an AMI uses (EC2 answers C(InvalidSnapshot.InUse)) or that a snapshot lock protects is skipped
        and reported with EC2's reason (and a warning); it never stops the deletion of the other members. Any other
        failure fails the task after the other members were tried, with what was deleted in the result.
      - In check mode nothing is deleted; the result lists what would be deleted, and the members an AMI or a lock
        would keep are listed as skipped (read with C(DescribeImages) and C(DescribeLockedSnapshots)).
      - A set archived less than 90 days ago is refused, with what deleting it would cost (EC2 bills an archived
        snapshot for at least 90 days), unless O(force_archived_delete).
      - The options that describe a new set are ignored with V(absent).
    type: str
    choices: [present, absent]
    default: present
    version_added: 0.1.0
  instance_id:
    description:
      - The instance whose volumes are snapshotted.
      - With O(state=absent), the instance the set must belong to (a guard against deleting another instance's set).
    type: str
    required: true
  set_id:
    description:
      - The id of the set, shared by all its snapshots. Use a stable value (for example the AWX job id and host) to
        make re-runs idempotent.
      - Generated from the instance id and the current time when not given. Required with O(state=absent).
    type: str
  volumes:
    description:
      - Which attached volumes to include when neither O(volume_ids) nor O(device_names) is given.
      - V(all) includes the boot volume; V(data) leaves it out.
    type: str
    choices: [all, data]
    default: all
  volume_ids:
    description:
      - An explicit subset of the instance's attached volumes, by volume id. May be combined with O(device_names).
      - An empty list is refused (leave it out to choose by O(volumes)).
    type: list
    elements: str
  device_names:
    description:
      - An explicit subset of the instance's attached volumes, by device name (V(/dev/sda1), V(xvdb)).
    type: list
    elements: str
  include_boot:
    description:
      - Add the boot volume to the explicit subset of O(volume_ids) and O(device_names), whatever its device name.
    type: bool
    default: false
  volume_metadata:
    description:
      - Per-volume data recorded in the set's tags, keyed by volume id or device name.
      - Each value may hold C(paths) (Windows drive letters and mount points on that volume) and C(shadow_id) (the
        VSS shadow copy id of that volume, for the shadow engine).
    type: dict
    default: {}
  engine:
    description:
      - The consistency engine that produced the set; recorded in the tags.
    type: str
    choices: [shadow, aws_vss, crash]
    default: crash
  consistency:
    description:
      - The consistency the caller can vouch for. V(unverified) marks a set taken under a VSS shadow set whose
        consistency is not proven yet; the backup flow re-tags it once verified.
      - The V(crash) engine can only produce V(crash) sets.
    type: str
    choices: [application, crash, unverified]
    default: crash
  backup_type:
    description:
      - The VSS backup type (V(copy) or V(full)), recorded in the tags.
    type: str
    choices: [copy, full]
  shadow_set_id:
    description:
      - The VSS shadow copy set id the snapshots embed (shadow engine).
    type: str
  fallback_from:
    description:
      - This crash-consistent set stands in for a failed VSS backup of this engine. It is recorded in the tags
        (C(shadowsnap:fallback-from)) and the task warns, so a fallback is never silent.
      - Only with O(engine=crash).
    type: str
    choices: [shadow, aws_vss]
    version_added: 0.1.0
  fallback_reason:
    description:
      - Why the VSS backup failed, for the warning of O(fallback_from) (not recorded in the tags).
    type: str
    version_added: 0.1.0
  awx_job_id:
    description:
      - The id of the AWX / Automation Controller job that runs the backup, recorded in the tags
        (C(shadowsnap:awx-job-id)) so that a set leads back to its job. Omitted or empty, no tag is written.
    type: str
    version_added: 0.1.0
  policy:
    description:
      - The name of the retention policy the set belongs to; retention only ever acts on sets of its policy.
    type: str
    default: default
  tags:
    description:
      - User tags added to every snapshot of the set. Keys must not start with C(shadowsnap:) or C(aws:).
    type: dict
    default: {}
  description:
    description:
      - The snapshots' description. Defaults to one naming the set and the instance.
    type: str
  wait:
    description:
      - Wait until every snapshot of the set is V(completed), also when the set already exists. A member in state
        V(error), a member missing from the set, or O(wait_timeout) fail the task.
      - An existing set is waited for before it is settled, so a set whose snapshots failed is never tagged
        V(application).
      - Not in check mode.
    type: bool
    default: false
  wait_timeout:
    description:
      - How long to wait for completion (O(wait=true)) and, separately, how long to keep retrying the creation.
    type: int
    default: 900
  force_archived_delete:
    description:
      - With O(state=absent), delete a set archived less than 90 days ago anyway; EC2 still bills the rest of the 90
        days at the archive tier's price.
    type: bool
    default: false
    version_added: 0.1.0
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Snapshots of volumes that are not in the set are never taken; the subset is expressed with C(ExcludeBootVolume)
    and C(ExcludeDataVolumeIds) (at most 40 excluded data volumes).
  - An EC2 snapshot holds at most 50 tags; the schema needs about 10 plus one per member volume, and the rest is left
    for O(tags).
  - Supports check mode - the instance and the selection are checked and the set that would be created is returned;
    with O(state=absent) the snapshots that would be deleted are returned.
  - O(state=absent) calls C(DeleteSnapshot) with jittered retries on throttling (a repeated delete that EC2 answers
    C(InvalidSnapshot.NotFound) counts as done), and C(sts:GetCallerIdentity) for the account guard.
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Crash-consistent set of all volumes of an instance
  shadowsnap.ec2.ec2_snapshot_set:
    instance_id: i-0123456789abcdef0

- name: Data volumes only, idempotent per AWX job, waiting for completion
  shadowsnap.ec2.ec2_snapshot_set:
    instance_id: i-0123456789abcdef0
    set_id: "awx-{{ awx_job_id }}-{{ inventory_hostname }}"
    volumes: data
    policy: daily
    tags:
      Owner: dba-team
    wait: true

- name: Delete a whole set (finishes a set an interrupted run deleted halfway)
  shadowsnap.ec2.ec2_snapshot_set:
    state: absent
    instance_id: i-0123456789abcdef0
    set_id: i-0123456789abcdef0-20261125T013700Z
  register: removed

- name: Snapshot exactly the volumes of a VSS shadow set, recording paths and shadow ids
  shadowsnap.ec2.ec2_snapshot_set:
    instance_id: i-0123456789abcdef0
    device_names: [xvdb, xvdc]
    engine: shadow
    consistency: unverified
    backup_type: copy
    shadow_set_id: "{1f2e3d4c-0000-4000-8000-000000000001}"
    volume_metadata:
      xvdb:
        paths: ['D:\']
        shadow_id: "{aaaaaaaa-0000-4000-8000-000000000002}"
      xvdc:
        paths: ['E:\']
        shadow_id: "{aaaaaaaa-0000-4000-8000-000000000003}"
"""

RETURN = r"""
set_id:
  description: The id of the set.
  returned: always
  type: str
  sample: i-0123456789abcdef0-20261125T013700Z
instance_id:
  description: The instance the set belongs to.
  returned: always
  type: str
  sample: i-0123456789abcdef0
start_time:
  description: The set's point in time (the earliest StartTime of its snapshots). Empty in check mode.
  returned: always
  type: str
  sample: "2026-11-25T01:37:00.123000+00:00"
status:
  description:
    - V(completed), V(pending), V(error) or V(incomplete) (a member is missing), or V(planned) in check mode.
    - With O(state=absent), V(deleted), V(partial) (members were skipped) or V(absent) (no snapshot carries the set
      id); in check mode, what the run would give.
  returned: always
  type: str
  sample: pending
snapshots:
  description: The members of the set.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id (absent in check mode).
      type: str
      sample: snap-0123456789abcdef0
    volume_id:
      description: The volume the snapshot is taken from.
      type: str
      sample: vol-0123456789abcdef0
    device:
      description: The volume's device name on the instance.
      type: str
      sample: xvdb
    paths:
      description: The Windows drive letters and mount points recorded for the volume.
      type: list
      elements: str
      sample: ['D:\']
    shadow_id:
      description: The VSS shadow copy id recorded for the volume.
      type: str
    state:
      description: The snapshot's state.
      type: str
      sample: pending
volume_snapshot_map:
  description: Volume id to snapshot id.
  returned: always
  type: dict
  sample: {"vol-0123456789abcdef0": "snap-0123456789abcdef0"}
tags:
  description: The tags every snapshot of the set carries (before the per-volume tags are decoded).
  returned: always
  type: dict
retries:
  description:
    - Errors met while creating the set and the waits taken before trying again.
    - After a server error or a lost connection, C(lookups) is how many times the set was looked for by its id and
      C(wait_seconds) the sum of the waits before them; an entry V(reconciled) follows when the set was found.
  returned: always
  type: list
  elements: dict
  sample: [{"error": "RequestLimitExceeded", "wait_seconds": 1.3}, {"error": "InternalError", "wait_seconds": 2.2, "lookups": 1},
           {"error": "reconciled", "wait_seconds": 0}]
timings:
  description:
    - Seconds spent checking the instance, creating the set and waiting for completion.
    - With O(state=absent), seconds spent finding the set and deleting it.
  returned: always
  type: dict
  sample: {"preflight": 0.12, "create": 0.31, "wait": 0.0, "total": 0.43}
deleted_snapshot_ids:
  description: The snapshots deleted (in check mode, that would be deleted), by this run or an earlier one whose answer
    was lost.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["snap-0123456789abcdef0"]
  version_added: 0.1.0
skipped_snapshots:
  description: Members left in place, with the reason (an AMI uses it, or a snapshot lock protects it).
  returned: when O(state=absent)
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0fedcba9876543210", "volume_id": "vol-0fedcba9876543210",
            "reason": "in use: InvalidSnapshot.InUse: The snapshot snap-0fedcba9876543210 is currently in use by ami-0123456789abcdef0"}]
  version_added: 0.1.0
"""

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_id
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_deletion
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION


def wait_for_set(client, found, timeout):
    """The set read again once every member is ``completed``; a member in error, a missing member or the timeout
    fail."""
    ec2_api.wait_for_snapshots(client, [member["snapshot_id"] for member in found["snapshots"]], timeout)
    completed = snapshot_sets.find_existing_set(client, found["set_id"])
    if completed is None or completed["missing_volume_ids"]:
        missing = completed["missing_volume_ids"] if completed else [m["volume_id"] for m in found["snapshots"]]
        raise snapshot_sets.SnapshotSetError("set %s is incomplete: volumes %s have no snapshot"
                                             % (found["set_id"], ", ".join(missing)))
    return completed


def planned_result(instance_id, set_id, details, tags):
    snapshots = [
        {"volume_id": volume_id, "device": entry["device"], "paths": entry["paths"], "shadow_id": entry["shadow_id"],
         "state": "planned"}
        for volume_id, entry in details.items()
    ]
    return {"changed": True, "set_id": set_id, "instance_id": instance_id, "status": "planned", "start_time": "",
            "snapshots": snapshots, "volume_snapshot_map": {}, "tags": tags, "retries": []}


def ensure_snapshot_set(module, set_id, now):
    """The task's result: the existing set with this id (waited for, settled), or a new one."""
    params = module.params
    began = time.monotonic()
    timings = {}
    instance_id = params["instance_id"]
    selection = dict((name, params[name]) for name in ("volumes", "volume_ids", "device_names", "include_boot"))
    tag_fields = dict(set_id=set_id, engine=params["engine"], consistency=params["consistency"], created_at=now,
                      version=COLLECTION_VERSION, policy=params["policy"], backup_type=params["backup_type"],
                      shadow_set_id=params["shadow_set_id"], user_tags=params["tags"],
                      fallback_from=params["fallback_from"], job_id=params["awx_job_id"])
    snapshot_sets.check_tags_before_calls(instance_id, selection, params["volume_metadata"], **tag_fields)
    client = ec2_client(module)
    wait = params["wait"] and not module.check_mode

    found = snapshot_sets.find_existing_set(client, set_id, instance_id)
    if found:
        wait_began = time.monotonic()
        if wait:
            found = wait_for_set(client, found, params["wait_timeout"])
        timings["wait"] = round(time.monotonic() - wait_began, 3)
        changed = snapshot_sets.settle_consistency(client, found, params["consistency"], module.check_mode)
        timings["total"] = round(time.monotonic() - began, 3)
        return dict(found, changed=changed, retries=[], timings=timings, tags=found["snapshots"][0]["tags"])

    instance = snapshot_sets.describe_instance(client, instance_id)
    specification, details, tags = snapshot_sets.plan_snapshot_set(instance, selection, params["volume_metadata"],
                                                                   **tag_fields)
    timings["preflight"] = round(time.monotonic() - began, 3)
    if module.check_mode:
        timings["total"] = timings["preflight"]
        return dict(planned_result(instance_id, set_id, details, tags), timings=timings)

    description = params["description"] or "shadowsnap.ec2 set %s of %s (%s)" % (set_id, instance_id, params["consistency"])
    create_began = time.monotonic()
    created, retries = snapshot_sets.create_snapshot_set(
        ec2_client(module, idempotent=False), client, specification, description, tags, set_id,
        timeout=params["wait_timeout"],
    )
    timings["create"] = round(time.monotonic() - create_began, 3)
    result = snapshot_sets.group_sets(created)[0]
    wait_began = time.monotonic()
    if wait:
        result = wait_for_set(client, result, params["wait_timeout"])
    timings["wait"] = round(time.monotonic() - wait_began, 3)
    timings["total"] = round(time.monotonic() - began, 3)
    return dict(result, changed=True, retries=retries, timings=timings, tags=tags)


def remove_snapshot_set(module, set_id):
    """The task's result for ``state: absent``: the set's members deleted, those EC2 refuses skipped with the reason."""
    began = time.monotonic()
    instance_id = module.params["instance_id"]
    client = ec2_client(module)
    result = {"changed": False, "set_id": set_id, "instance_id": instance_id, "deleted_snapshot_ids": [],
              "skipped_snapshots": []}
    found = snapshot_sets.find_existing_set(client, set_id, instance_id)
    if found is None:
        return dict(result, status="absent", timings={"total": round(time.monotonic() - began, 3)})
    why_not = set_deletion.refusal(found, get_aws_account_id(module), instance_id)
    if why_not:
        raise snapshot_sets.SnapshotSetError("set %s is not deleted: %s" % (set_id, why_not))
    archived = [member["snapshot_id"] for member in set_tiers.archived_members(found)]
    if archived and not module.params["force_archived_delete"]:
        early = set_tiers.early_deletions(found, set_tiers.tier_statuses(client, archived),
                                          datetime.datetime.now(datetime.timezone.utc))
        if early:
            raise snapshot_sets.SnapshotSetError(set_tiers.early_deletion_reason(set_id, early))
    found_at = time.monotonic()
    if module.check_mode:
        images = set_deletion.images_by_snapshot(ec2_api.describe_images(client))
        locks = set_deletion.locks_by_snapshot(
            ec2_api.describe_locked_snapshots(client, [member["snapshot_id"] for member in found["snapshots"]]))
        skipped = set_deletion.protected_members(found, images, locks)
        kept = set(entry["snapshot_id"] for entry in skipped)
        deleted = [member["snapshot_id"] for member in found["snapshots"] if member["snapshot_id"] not in kept]
        errors = []
    else:
        outcome = set_deletion.delete_set(set_deletion.DeletePacer().attach(client), found)
        deleted = outcome["deleted_snapshot_ids"] + outcome["already_deleted"]
        skipped, errors = outcome["refused"], outcome["errors"]
    for entry in skipped:
        module.warn("snapshot %s of set %s is kept: %s" % (entry["snapshot_id"], set_id, entry["reason"]))
    status = "deleted" if not skipped and not errors else "partial"
    timings = {"find": round(found_at - began, 3), "delete": round(time.monotonic() - found_at, 3),
               "total": round(time.monotonic() - began, 3)}
    result.update(changed=bool(deleted), status=status, deleted_snapshot_ids=sorted(deleted), skipped_snapshots=skipped,
                  timings=timings)
    if errors:
        module.fail_json(msg="set %s was deleted only in part: %s" % (set_id, "; ".join(e["error"] for e in errors)),
                         errors=errors, **result)
    return result


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        instance_id=dict(type="str", required=True),
        set_id=dict(type="str"),
        volumes=dict(type="str", choices=["all", "data"], default="all"),
        volume_ids=dict(type="list", elements="str"),
        device_names=dict(type="list", elements="str"),
        include_boot=dict(type="bool", default=False),
        volume_metadata=dict(type="dict", default={}),
        engine=dict(type="str", choices=list(snapshot_tags.ENGINES), default="crash"),
        consistency=dict(type="str", choices=list(snapshot_tags.CONSISTENCIES), default="crash"),
        backup_type=dict(type="str", choices=list(snapshot_tags.BACKUP_TYPES)),
        shadow_set_id=dict(type="str"),
        fallback_from=dict(type="str", choices=["shadow", "aws_vss"]),
        awx_job_id=dict(type="str"),
        fallback_reason=dict(type="str"),
        policy=dict(type="str", default="default"),
        tags=dict(type="dict", default={}),
        description=dict(type="str"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=900),
        force_archived_delete=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_if=[("state", "absent", ["set_id"])])
    instance_id = module.params["instance_id"]
    now = datetime.datetime.now(datetime.timezone.utc)
    set_id = module.params["set_id"] or snapshot_tags.default_set_id(instance_id, now)
    try:
        if module.params["state"] == "absent":
            module.exit_json(**remove_snapshot_set(module, set_id))
        result = ensure_snapshot_set(module, set_id, now)
    except (snapshot_sets.SnapshotSetError, snapshot_tags.TagSchemaError) as error:
        module.fail_json(msg=str(error), set_id=set_id, instance_id=instance_id)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    if module.params["fallback_from"]:
        module.warn("set %s of %s is crash-consistent only: it stands in for a failed %s backup (%s)"
                    % (set_id, instance_id, module.params["fallback_from"], module.params["fallback_reason"] or "no reason given"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
