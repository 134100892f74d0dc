#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_undelete
short_description: Restore a deleted snapshot set from the Recycle Bin, whole
version_added: 0.1.0
description:
  - Restores the deleted snapshots of the set O(set_id) from the Recycle Bin (C(RestoreSnapshotFromRecycleBin)) and
    waits until the set is complete again - every member listed with its tags, none still V(recovering). A snapshot
    keeps its id, tags and data in the bin, so the restored set is the set it was, restorable from its tags alone.
  - EC2 lists snapshots in the Recycle Bin without their tags. The members are the snapshots O(snapshot_ids) names (a
    retention report or a C(state=absent) result lists them), or, without it, the snapshots in the bin whose
    description names the set - the description ec2_snapshot_set gives a set when none is chosen.
  - A snapshot is in the bin only when a retention rule retained it (see ec2_snapshot_recycle_bin_rule) and only for
    the rule's retention period. A set with members that are no longer anywhere is reported as incomplete and the task
    fails, saying which volumes have no snapshot; the members it restored stay restored.
options:
  set_id:
    description: The set to restore.
    type: str
    required: true
  snapshot_ids:
    description: The set's snapshot ids, when the snapshots do not carry the default description.
    type: list
    elements: str
  wait:
    description: Wait until the restored members are no longer V(recovering).
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(ListSnapshotsInRecycleBin), C(RestoreSnapshotFromRecycleBin) and C(DescribeSnapshots); see the IAM policy
    document in the collection's C(docs/) folder.
  - Supports check mode, which returns the snapshots that would be restored.
  - Verified against the collection's lab (its DeleteSnapshot moves snapshots that a rule retains into a bin, as the
    Recycle Bin documentation describes), not yet against AWS.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_recycle_bin_rule
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Bring back a set deleted by mistake
  shadowsnap.ec2.ec2_snapshot_set_undelete:
    set_id: i-0123456789abcdef0-20261124T010000Z

- name: Bring back a set that retention deleted, by the ids in its report
  shadowsnap.ec2.ec2_snapshot_set_undelete:
    set_id: "{{ item.set_id }}"
    snapshot_ids: "{{ item.snapshot_ids }}"
  loop: "{{ (lookup('file', 'retention-report.json') | from_json).deleted_sets }}"
"""

RETURN = r"""
set_id:
  description: The set.
  returned: always
  type: str
restored_snapshot_ids:
  description: The snapshots restored from the bin by this run (that would be, in check mode).
  returned: always
  type: list
  elements: str
status:
  description: The set's status after the task - V(completed), V(pending) (members still recovering), V(incomplete).
  returned: always
  type: str
missing_volume_ids:
  description: The set's volumes that still have no snapshot.
  returned: always
  type: list
  elements: str
"""

import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client

WAIT_DELAY = 2


def binned_members(binned, set_id, snapshot_ids):
    """The snapshots in the bin that belong to the set: those named, or those whose description names the set."""
    if snapshot_ids:
        return [entry for entry in binned if entry["SnapshotId"] in snapshot_ids]
    return [entry for entry in binned if set_id in (entry.get("Description") or "").split()]


def undelete(module):
    params = module.params
    client = ec2_client(module)
    members = binned_members(ec2_api.list_snapshots_in_recycle_bin(client), params["set_id"], params["snapshot_ids"])
    restored = sorted(entry["SnapshotId"] for entry in members)
    if not restored and snapshot_sets.find_existing_set(client, params["set_id"]) is None:
        raise snapshot_sets.SnapshotSetError(
            "no snapshot of set %s is in the Recycle Bin or in the account: %s" % (params["set_id"], (
                "none of %s is in the bin" % ", ".join(params["snapshot_ids"]) if params["snapshot_ids"] else
                "no snapshot in the bin has a description naming the set; give snapshot_ids")))
    if module.check_mode:
        return {"changed": bool(restored), "set_id": params["set_id"], "restored_snapshot_ids": restored,
                "status": "planned", "missing_volume_ids": []}
    for snapshot_id in restored:
        ec2_api.restore_snapshot_from_recycle_bin(client, snapshot_id)
    deadline = time.monotonic() + (params["wait_timeout"] if params["wait"] else 0)
    while True:
        found = snapshot_sets.find_existing_set(client, params["set_id"])
        listed = set(member["snapshot_id"] for member in found["snapshots"]) if found else set()
        settled = found is not None and found["status"] != "pending" and set(restored) <= listed
        if settled or time.monotonic() + WAIT_DELAY > deadline:
            break
        time.sleep(WAIT_DELAY)
    result = {"changed": bool(restored), "set_id": params["set_id"], "restored_snapshot_ids": restored,
              "status": found["status"] if found else "incomplete",
              "missing_volume_ids": found["missing_volume_ids"] if found else []}
    if result["status"] in ("incomplete", "error"):
        module.fail_json(msg="set %s is not complete after the restore from the Recycle Bin: volumes %s have no "
                         "snapshot (deleted for good, or never retained by a rule)" % (
                             params["set_id"], ", ".join(result["missing_volume_ids"]) or "(unknown)"), **result)
    return result


def main():
    argument_spec = dict(
        set_id=dict(type="str", required=True),
        snapshot_ids=dict(type="list", elements="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        module.exit_json(**undelete(module))
    except snapshot_sets.SnapshotSetError as error:
        module.fail_json(msg=str(error), set_id=module.params["set_id"])
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)


if __name__ == "__main__":
    main()
