#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_volume_swap
short_description: Attach, detach or swap in restored EBS volumes, roll a swap back, clean up after it
version_added: 0.1.0
description:
  - Moves volumes restored by M(shadowsnap.ec2.ec2_snapshot_set_volumes) on one instance. Every run plans from what
    EC2 says now - the instance's block-device mapping and the volumes' states and tags - so a re-run after an
    interruption resumes where it stopped, and a run with nothing left to do changes nothing.
  - O(state=attached) attaches the restored volumes O(volume_ids) at the devices O(devices) gives, or at free devices
    (V(xvdf) to V(xvdz)), beside the instance's own volumes - a restore alongside.
  - O(state=detached) detaches restored volumes from the instance. A volume that no longer exists is reported
    unchanged, so a cleanup that stopped halfway can be run again.
  - O(state=swapped) puts each restored volume where its original was - at the device recorded in its tags, or the
    one O(devices) gives - in place of whatever is attached there. Before detaching anything it tags each volume it
    takes off with what replaces it (C(shadowsnap:replaced-by:<volume-id>) and C(shadowsnap:replaced-on)); the
    volumes taken off are kept, never deleted.
  - O(state=rolled_back) undoes the newest swap of each device of the instance (only the swaps that put in
    O(volume_ids), when given), from those tags - the replacement comes off and the volume it replaced goes back.
  - O(state=cleaned) deletes what swaps and rollbacks on the instance took off - only while a volume of that device's
    swaps is attached there - and the given restored volumes that are available. It deletes nothing unless
    O(confirm_delete=true); without it, it fails listing what it would delete.
  - When an attach or detach fails after the run changed something, the run puts back what it changed (the reverse
    moves) and fails saying so. Volumes must be taken offline in Windows before they are detached from a running
    instance; this module does not talk to Windows.
  - The root volume of a running instance is never detached (EC2 refuses it); stop the instance to swap it.
options:
  instance_id:
    description:
      - The instance whose volumes are moved.
    type: str
    required: true
  state:
    description:
      - What to do; see the description.
    type: str
    choices: [attached, detached, swapped, rolled_back, cleaned]
    required: true
  volume_ids:
    description:
      - The restored volumes to attach, detach or swap in (required for those states).
      - For O(state=rolled_back) and O(state=cleaned), only the swaps that put in these volumes, and (cleanup) these
        volumes themselves when they are available; all swaps on the instance when empty.
    type: list
    elements: str
    default: []
  devices:
    description:
      - Device names by volume id, for O(state=attached) (else free devices are used) and O(state=swapped) (else the
        device recorded in the volume's restore tags).
    type: dict
    default: {}
  allow_other_source:
    description:
      - Allow O(state=swapped) to put in volumes restored from a set of another instance (for example into a
        replacement instance). By default a swap refuses them, so no server gets another server's disk by mistake.
    type: bool
    default: false
  confirm_delete:
    description:
      - Required for O(state=cleaned) to delete anything.
    type: bool
    default: false
  wait_timeout:
    description:
      - How long to wait for each set of detachments and attachments, in seconds.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports check mode - the moves (or deletions) that would be made are returned in RV(moves) (RV(deleted_volume_ids)).
  - Only volumes restored by this collection (carrying its C(shadowsnap:restore:id) tag) are attached, detached or
    swapped in; a swap may take off any volume but the root of a running instance.
  - Waits on the attachments' own states (V(attaching) to V(attached), V(detaching) to V(available)).
  - An attach or detach whose answer is lost is checked against the volume's state before it is sent again.
  - Verified against the collection's lab (moto with the EC2 behaviour it lacks added from the EC2 API reference),
    not against real EC2.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_volumes
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Restore D and E in place (the volumes taken offline in Windows first)
  shadowsnap.ec2.ec2_volume_swap:
    instance_id: i-0123456789abcdef0
    state: swapped
    volume_ids: "{{ restored.volumes | map(attribute='volume_id') }}"

- name: Put the original volumes back
  shadowsnap.ec2.ec2_volume_swap:
    instance_id: i-0123456789abcdef0
    state: rolled_back

- name: Attach a restored volume beside the live ones, at a free device
  shadowsnap.ec2.ec2_volume_swap:
    instance_id: i-0123456789abcdef0
    state: attached
    volume_ids: ["{{ restored.volume_map['vol-0123456789abcdef0'] }}"]

- name: After the restore was checked, delete the volumes it replaced
  shadowsnap.ec2.ec2_volume_swap:
    instance_id: i-0123456789abcdef0
    state: cleaned
    confirm_delete: true
"""

RETURN = r"""
instance_id:
  description: The instance.
  returned: always
  type: str
state:
  description: The state asked for.
  returned: always
  type: str
moves:
  description: The moves made (or, in check mode, that would be made), one per device.
  returned: always
  type: list
  elements: dict
  contains:
    device:
      description: The device name.
      type: str
      sample: xvdb
    detach:
      description: The volume taken off the device, or null.
      type: str
    attach:
      description: The volume put on the device, or null.
      type: str
    action:
      description: V(attach), V(detach), V(swap) or V(roll back).
      type: str
unchanged:
  description: Volumes already where the state asked for them (with O(state=detached), C(gone=true) for one that no
    longer exists).
  returned: always
  type: list
  elements: dict
  sample: [{"device": "xvdb", "volume_id": "vol-0123456789abcdef0"}]
attachments:
  description: The instance's EBS volumes after the run, by device.
  returned: always
  type: list
  elements: dict
  sample: [{"device": "xvdb", "volume_id": "vol-0123456789abcdef0", "status": "attached"}]
deleted_volume_ids:
  description: For O(state=cleaned), the volumes deleted (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
kept_volume_ids:
  description: For O(state=cleaned), volumes of the instance's swaps that are not deleted, with why.
  returned: always
  type: dict
undone:
  description: On failure, whether the run put back what it had changed.
  returned: failure
  type: bool
timings:
  description: Seconds spent planning, moving (or deleting), and in all.
  returned: always
  type: dict
  sample: {"plan": 0.1, "move": 8.2, "total": 8.3}
"""

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import volume_swap
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client

NEEDS_VOLUMES = ("attached", "detached", "swapped")


def attachment_list(client, instance_id):
    instance = volume_swap.read_instance(client, instance_id)
    return [dict(entry) for dummy, entry in sorted(volume_swap.attachments_of(instance).items())]


def plan(client, params, instance):
    """(moves, unchanged) for the state asked for."""
    state = params["state"]
    if state in NEEDS_VOLUMES:
        if state == "detached":
            found = volume_swap.existing_volumes(client, params["volume_ids"])
            return volume_swap.plan_detach(instance, found, sorted(set(params["volume_ids"]) - set(found)))
        volumes = volume_swap.read_volumes(client, params["volume_ids"])
        if state == "attached":
            return volume_swap.plan_attach(instance, volumes, params["devices"])
        return volume_swap.plan_swap(instance, volumes, params["devices"], params["allow_other_source"])
    entries = volume_swap.replaced_on(client, instance["InstanceId"])
    return volume_swap.plan_rollback(instance, entries, params["volume_ids"])


def clean(module, client, instance, began):
    params = module.params
    entries = volume_swap.replaced_on(client, instance["InstanceId"])
    wanted = set(params["volume_ids"]) | set(entry["volume_id"] for entry in entries)
    known = volume_swap.existing_volumes(client, sorted(wanted))
    missing = sorted(set(params["volume_ids"]) - set(known))
    if missing:
        raise volume_swap.SwapError("volumes %s do not exist in this account and Region" % ", ".join(missing))
    deletable, kept = volume_swap.plan_cleanup(instance, entries, known, params["volume_ids"])
    timings = {"plan": round(time.monotonic() - began, 3)}
    result = dict(instance_id=instance["InstanceId"], state="cleaned", moves=[], unchanged=[], kept_volume_ids=kept)
    if deletable and not params["confirm_delete"] and not module.check_mode:
        module.fail_json(msg="cleanup would delete %s; set confirm_delete: true to delete them" % ", ".join(deletable),
                         deleted_volume_ids=[], would_delete_volume_ids=deletable, **result)
    deleted = deletable if module.check_mode else volume_swap.delete_replaced(client, deletable)
    timings["move"] = round(time.monotonic() - began - timings["plan"], 3)
    timings["total"] = round(time.monotonic() - began, 3)
    return dict(result, changed=bool(deleted), deleted_volume_ids=deleted, timings=timings,
                attachments=attachment_list(client, instance["InstanceId"]))


def run(module):
    params = module.params
    began = time.monotonic()
    if params["state"] in NEEDS_VOLUMES and not params["volume_ids"]:
        raise volume_swap.SwapError("state %s needs volume_ids" % params["state"])
    client = ec2_client(module)
    instance = volume_swap.read_instance(client, params["instance_id"])
    if params["state"] == "cleaned":
        return clean(module, client, instance, began)
    moves, unchanged = plan(client, params, instance)
    timings = {"plan": round(time.monotonic() - began, 3)}
    result = dict(instance_id=params["instance_id"], state=params["state"], moves=[m.describe() for m in moves],
                  unchanged=unchanged, deleted_volume_ids=[], kept_volume_ids={})
    if module.check_mode or not moves:
        timings["total"] = timings["plan"]
        return dict(result, changed=bool(moves), timings=timings,
                    attachments=[dict(e) for dummy, e in sorted(volume_swap.attachments_of(instance).items())])
    if params["state"] == "swapped":
        current_tags = dict((volume_id, volume_swap.tags_of(volume))
                            for volume_id, volume in volume_swap.existing_volumes(
                                client, [m.out_id for m in moves if m.out_id]).items())
        volume_swap.tag_replaced(client, moves, params["instance_id"], datetime.datetime.now(datetime.timezone.utc),
                                 current_tags)
    move_began = time.monotonic()
    try:
        volume_swap.carry_out((client, ec2_client(module, idempotent=False)), params["instance_id"], moves,
                              params["wait_timeout"])
    except volume_swap.MoveFailed as failure:
        fail_move(module, client, failure, result)
    timings["move"] = round(time.monotonic() - move_began, 3)
    timings["total"] = round(time.monotonic() - began, 3)
    return dict(result, changed=True, timings=timings, attachments=attachment_list(client, params["instance_id"]))


def fail_move(module, client, failure, result):
    if failure.undone:
        outcome = "put back what this run had changed"
    elif failure.undo_error is not None:
        outcome = "could NOT put back what this run had changed (%s): check the attachments below" % (
            getattr(failure.undo_error, "message", None) or failure.undo_error)
    else:
        outcome = "nothing was changed"
    message = "%s (%s)" % (getattr(failure.error, "message", None) or failure.error, outcome)
    result = dict(result, undone=failure.undone, attachments=attachment_list(client, result["instance_id"]))
    cause = getattr(failure.error, "exception", None)
    if cause is not None:
        module.fail_json_aws(cause, msg=message, **result)
    module.fail_json(msg=message, **result)


def main():
    argument_spec = dict(
        instance_id=dict(type="str", required=True),
        state=dict(type="str", required=True, choices=["attached", "detached", "swapped", "rolled_back", "cleaned"]),
        volume_ids=dict(type="list", elements="str", default=[]),
        devices=dict(type="dict", default={}),
        allow_other_source=dict(type="bool", default=False),
        confirm_delete=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run(module)
    except volume_swap.SwapError as error:
        module.fail_json(msg=str(error), instance_id=module.params["instance_id"], state=module.params["state"])
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
