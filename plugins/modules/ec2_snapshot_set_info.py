#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_info
short_description: List snapshot sets made by this collection, with their members and completeness
version_added: 0.1.0
description:
  - Lists snapshot sets, not loose snapshots - each set with its member snapshots, its completeness and the data
    decoded from the collection's tag schema (set id, instance, engine, consistency, policy, paths, shadow ids).
  - A set is V(completed) when every volume named in its membership tags has a snapshot and all of them are
    V(completed); otherwise it is V(pending), V(error) (a member failed) or V(incomplete) (a member is missing).
  - Only snapshots owned by this account that carry the schema are read, filtered by tags on the server side and
    paginated; unfiltered DescribeSnapshots calls are never made.
options:
  instance_ids:
    description:
      - Only sets of these instances.
    type: list
    elements: str
  set_ids:
    description:
      - Only these sets.
    type: list
    elements: str
  policy:
    description:
      - Only sets of this retention policy.
    type: str
  consistency:
    description:
      - Only sets of this consistency.
    type: str
    choices: [application, crash, unverified]
  older_than:
    description:
      - Only sets created longer ago than this, as a number with a unit - V(90m), V(12h), V(7d), V(2w).
    type: str
  newer_than:
    description:
      - Only sets created more recently than this, with the same units as O(older_than).
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: All sets of two instances
  shadowsnap.ec2.ec2_snapshot_set_info:
    instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210]
  register: sets

- name: Application-consistent sets of the daily policy older than a week
  shadowsnap.ec2.ec2_snapshot_set_info:
    policy: daily
    consistency: application
    older_than: 7d
  register: old_sets

- name: Fail when the last backup of a set id is not complete
  shadowsnap.ec2.ec2_snapshot_set_info:
    set_ids: ["{{ backup_set_id }}"]
  register: backup
  failed_when: not backup.sets or not backup.sets[0].complete
"""

RETURN = r"""
sets:
  description: The sets found, sorted by creation time, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    instance_id:
      description: The instance the set was taken from.
      type: str
    engine:
      description: The consistency engine (V(shadow), V(aws_vss), V(crash)).
      type: str
    consistency:
      description: V(application), V(crash) or V(unverified).
      type: str
    backup_type:
      description: The VSS backup type, when recorded.
      type: str
    policy:
      description: The retention policy name.
      type: str
    created_at:
      description: When the set was created (UTC, ISO 8601).
      type: str
    age_seconds:
      description: Seconds since the set was created.
      type: int
    shadow_set_id:
      description: The VSS shadow copy set id embedded in the snapshots, when recorded.
      type: str
    fallback_from:
      description: For a crash-consistent set taken because a VSS backup failed, the engine that failed; else null.
      type: str
      version_added: 0.1.0
    launch:
      description:
        - What a whole-instance restore needs of the instance, as recorded at backup time from C(DescribeInstances)
          (see the tag schema document); null for a set made before it was recorded. A field the instance did not
          have is null - RV(sets[].launch.security_group_ids) also when there were too many to record.
      type: dict
      version_added: 0.1.0
      contains:
        image_id:
          description: The AMI the instance was launched from.
          type: str
        instance_type:
          description: The instance type.
          type: str
        availability_zone:
          description: The availability zone.
          type: str
        subnet_id:
          description: The subnet of the primary network interface.
          type: str
        private_ip:
          description: The primary private IPv4 address.
          type: str
        root_device_name:
          description: The root device name (the device of each member is in its entry of RV(sets[].snapshots)).
          type: str
        security_group_ids:
          description: The security groups of the primary network interface.
          type: list
          elements: str
        iam_instance_profile:
          description: The name of the instance profile.
          type: str
        key_name:
          description: The key pair's name.
          type: str
    status:
      description: V(completed), V(pending), V(error) or V(incomplete).
      type: str
    complete:
      description: Whether every member is present and V(completed).
      type: bool
    volume_count:
      description: The number of volumes in the set.
      type: int
    missing_volume_ids:
      description: Volumes named in the membership tags that have no snapshot.
      type: list
      elements: str
    pending_snapshot_ids:
      description: Members still V(pending).
      type: list
      elements: str
    error_snapshot_ids:
      description: Members in state V(error).
      type: list
      elements: str
    snapshots:
      description: The members, with volume id, device, paths, shadow id, state, progress and start time.
      type: list
      elements: dict
    volume_snapshot_map:
      description: Volume id to snapshot id.
      type: dict
    user_tags:
      description: The user's tags on the set.
      type: dict
"""

import datetime
import re

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text):
    """Seconds in an age such as ``90m``, ``12h``, ``7d`` (a bare number is seconds); None when malformed."""
    match = re.match(r"^\s*(\d+)\s*([smhdw]?)\s*$", text or "")
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str"),
        set_ids=dict(type="list", elements="str"),
        policy=dict(type="str"),
        consistency=dict(type="str", choices=list(snapshot_tags.CONSISTENCIES)),
        older_than=dict(type="str"),
        newer_than=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    bounds = {}
    for name in ("older_than", "newer_than"):
        if params[name] is not None:
            bounds[name] = parse_age(params[name])
            if bounds[name] is None:
                module.fail_json(msg="%s must be a number with an optional unit s, m, h, d or w (for example 7d), not %r"
                                 % (name, params[name]))

    try:
        snapshots = snapshot_sets.find_snapshots(
            ec2_client(module), set_ids=params["set_ids"], instance_ids=params["instance_ids"],
            policy=params["policy"], consistency=params["consistency"],
        )
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)

    now = datetime.datetime.now(datetime.timezone.utc)
    sets = []
    for found in snapshot_sets.group_sets(snapshots):
        created = snapshot_tags.parse_created_at(found["created_at"])
        age = int((now - created).total_seconds()) if created else None
        if age is None and bounds:
            continue
        if "older_than" in bounds and age < bounds["older_than"]:
            continue
        if "newer_than" in bounds and age > bounds["newer_than"]:
            continue
        found["age_seconds"] = age
        sets.append(found)
    sets.sort(key=lambda found: found["created_at"] or "", reverse=True)
    module.exit_json(changed=False, sets=sets)


if __name__ == "__main__":
    main()
