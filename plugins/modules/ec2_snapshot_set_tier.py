#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_tier
short_description: Move a snapshot set to the EBS archive tier, or bring it back
version_added: 0.1.0
description:
  - With O(storage_tier=archive), archives every snapshot of the set O(set_id) (C(ModifySnapshotTier)). Only a
    complete set whose snapshots no AMI uses is archived, whole. EC2 takes hours to archive a snapshot; a member on its
    way is left to finish, so a re-run after an interruption archives the rest.
  - EC2 bills an archived snapshot for at least 90 days, on its full size (an archived snapshot is a full copy, not an
    increment), and takes up to 72 hours to restore one. Archive sets that are rarely restored and kept for months.
  - With O(storage_tier=standard), brings every archived member back (C(RestoreSnapshotTier)), for
    O(temporary_restore_days) days (EC2 archives it again afterwards) or for good with O(permanent_restore=true) (a
    member restored only for a while is made permanent). A set is usable for a restore only when every member is
    back; ec2_snapshot_set_volumes can also do this itself (its O(shadowsnap.ec2.ec2_snapshot_set_volumes#module:restore_archived)).
  - Only sets owned by this account that carry the collection's tag schema are changed, and with O(instance_id) only
    that instance's sets.
options:
  set_id:
    description: The set to archive or bring back.
    type: str
    required: true
  instance_id:
    description: The instance the set must belong to (a guard against changing another instance's set).
    type: str
  storage_tier:
    description: V(archive) archives the set; V(standard) brings it back.
    type: str
    choices: [archive, standard]
    required: true
  temporary_restore_days:
    description:
      - With O(storage_tier=standard), how many days the set stays restored (1 to 180) before EC2 archives it again.
      - Mutually exclusive with O(permanent_restore).
    type: int
  permanent_restore:
    description:
      - With O(storage_tier=standard), restore the set for good. A set restored permanently before its 90 days in the
        archive is still billed for the rest of them.
    type: bool
    default: false
  wait:
    description:
      - Wait until every member is in O(storage_tier). An archival takes hours and a restore up to 72 hours on EC2.
    type: bool
    default: false
  wait_timeout:
    description: How long to wait, in seconds.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(sts:GetCallerIdentity), C(DescribeSnapshots), C(DescribeImages) (archiving), C(DescribeSnapshotTierStatus),
    C(ModifySnapshotTier) and C(RestoreSnapshotTier); see the IAM policy document in the collection's C(docs/) folder.
  - Supports check mode, which returns the members that would be archived or restored.
  - Verified against the collection's lab (moto behind a fault proxy that answers the archive tier's calls with EC2's
    documented states and limits, in seconds instead of hours), not yet against EC2.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_retention
  - module: shadowsnap.ec2.ec2_snapshot_set_volumes
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Archive last year's year-end set
  shadowsnap.ec2.ec2_snapshot_set_tier:
    set_id: i-0123456789abcdef0-20251231T010000Z
    storage_tier: archive

- name: Bring it back for a week, for an audit restore, and wait
  shadowsnap.ec2.ec2_snapshot_set_tier:
    set_id: i-0123456789abcdef0-20251231T010000Z
    storage_tier: standard
    temporary_restore_days: 7
    wait: true
    wait_timeout: 259200
"""

RETURN = r"""
set_id:
  description: The set.
  returned: always
  type: str
storage_tier:
  description: The set's tier after the task - V(standard), V(archive), the operation in progress when every member
    is at it (V(archival-in-progress)...), or V(mixed).
  returned: always
  type: str
started_snapshot_ids:
  description: The members an archival or a restore was started for (that would be, in check mode).
  returned: always
  type: list
  elements: str
snapshots:
  description: Each member with its state - V(standard), V(archive), or the operation in progress
    (V(archival-in-progress), V(temporary-restore-in-progress), V(permanent-restore-in-progress)).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "state": "archival-in-progress"}]
"""

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_id
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_deletion
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client


def change_tier(module):
    params = module.params
    client = ec2_client(module)
    found = snapshot_sets.find_existing_set(client, params["set_id"])
    if found is None:
        raise set_tiers.TierError("no snapshot set %s in this account and Region" % params["set_id"])
    why_not = set_deletion.refusal(found, get_aws_account_id(module), params["instance_id"])
    if why_not:
        raise set_tiers.TierError("set %s is not changed: %s" % (params["set_id"], why_not))
    statuses = set_tiers.tier_statuses(client, [member["snapshot_id"] for member in found["snapshots"]])
    archive = params["storage_tier"] == set_tiers.ARCHIVE
    if archive:
        refusal = set_tiers.archive_refusal(found, set_deletion.images_by_snapshot(ec2_api.describe_images(client)))
        if refusal:
            raise set_tiers.TierError(refusal)
    days = None if params["permanent_restore"] else params["temporary_restore_days"]
    if module.check_mode:
        standard = [m["snapshot_id"] for m in found["snapshots"] if set_tiers.member_state(m, statuses) == "standard"]
        archived = [m["snapshot_id"] for m in found["snapshots"] if set_tiers.member_state(m, statuses) == set_tiers.ARCHIVE]
        started = standard if archive else archived
    elif archive:
        started = set_tiers.archive_set(client, found, statuses)
    else:
        started = set_tiers.restore_set(client, found, statuses, days)
    if started and not module.check_mode:
        statuses = set_tiers.tier_statuses(client, [member["snapshot_id"] for member in found["snapshots"]])
    if params["wait"] and not module.check_mode:
        statuses = set_tiers.wait_for_tier(client, found, params["storage_tier"], params["wait_timeout"])
    return {
        "changed": bool(started), "set_id": found["set_id"], "started_snapshot_ids": started,
        "storage_tier": set_tiers.set_tier(found, statuses),
        "snapshots": [{"snapshot_id": m["snapshot_id"], "state": set_tiers.member_state(m, statuses)}
                      for m in found["snapshots"]],
    }


def main():
    argument_spec = dict(
        set_id=dict(type="str", required=True),
        instance_id=dict(type="str"),
        storage_tier=dict(type="str", choices=["archive", "standard"], required=True),
        temporary_restore_days=dict(type="int"),
        permanent_restore=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if params["permanent_restore"] and params["temporary_restore_days"] is not None:
        module.fail_json(msg="temporary_restore_days and permanent_restore are mutually exclusive")
    if params["storage_tier"] == "standard" and not params["permanent_restore"] and params["temporary_restore_days"] is None:
        module.fail_json(msg="bringing a set back needs temporary_restore_days (1 to 180) or permanent_restore: true")
    if params["temporary_restore_days"] is not None and not 1 <= params["temporary_restore_days"] <= 180:
        module.fail_json(msg="temporary_restore_days must be between 1 and 180, not %d" % params["temporary_restore_days"])
    try:
        module.exit_json(**change_tier(module))
    except set_tiers.TierError as error:
        module.fail_json(msg=str(error), set_id=params["set_id"])
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)


if __name__ == "__main__":
    main()
