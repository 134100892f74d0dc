#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_recycle_bin_rule
short_description: Report whether a Recycle Bin rule covers the collection's snapshots, and create one
version_added: 0.1.0
description:
  - Reads the Region's Recycle Bin retention rules for EBS snapshots and reports, rule by rule, whether it retains the
    collection's snapshots when they are deleted - a tag-level rule on the schema tag (C(shadowsnap:schema)), or a
    Region-level rule without exclusion tags. With such a rule, a set deleted by mistake (or by retention) can be
    restored whole for the rule's retention period with ec2_snapshot_set_undelete.
  - With O(state=present), creates a tag-level rule on the schema tag when no rule covers the snapshots. The rule is
    not locked - a tag-level rule cannot be; lock a Region-level rule in the Recycle Bin console or API when the bin
    must survive an attacker with the account's credentials.
  - Snapshots in the Recycle Bin are billed at the standard snapshot price for as long as the rule keeps them.
options:
  state:
    description: V(reported) only reports; V(present) also creates the collection's rule when none covers.
    type: str
    choices: [reported, present]
    default: reported
  retention_days:
    description: How long the rule created keeps a deleted snapshot (1 to 365 days).
    type: int
    default: 30
  description:
    description: The description of the rule created.
    type: str
    default: Retains deleted snapshots of shadowsnap.ec2 snapshot sets
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(rbin:ListRules), C(rbin:GetRule) and C(rbin:CreateRule); see the IAM policy document in the collection's
    C(docs/) folder.
  - Supports check mode, which reports the rule that would be created.
  - Verified against the collection's lab (a Recycle Bin API answered by the lab's fault proxy from the API
    reference), not yet against AWS.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_undelete
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Make sure deleted sets can be restored for two weeks
  shadowsnap.ec2.ec2_snapshot_recycle_bin_rule:
    state: present
    retention_days: 14
  register: bin

- name: Say which rule covers the sets
  ansible.builtin.debug:
    msg: "{{ bin.rules | map(attribute='why') | list }}"
"""

RETURN = r"""
covered:
  description: Whether a rule retains every deleted snapshot of the collection (after the task).
  returned: always
  type: bool
rules:
  description: Each snapshot retention rule of the Region - C(identifier), C(retention_days), C(covers) and C(why).
  returned: always
  type: list
  elements: dict
  sample: [{"identifier": "a1b2c3d4e5f", "retention_days": 30, "covers": true,
            "why": "tag-level rule a1b2c3d4e5f retains snapshots tagged shadowsnap:schema=1 for 30 days"}]
created_rule:
  description: The rule created (in check mode, that would be), or null.
  returned: always
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import rbin_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import rbin_client


def describe(rule):
    covers, why = rbin_api.coverage(rule)
    return {"identifier": rule["Identifier"], "retention_days": rule["RetentionPeriod"]["RetentionPeriodValue"],
            "covers": covers, "why": why}


def ensure_rule(module):
    params = module.params
    client = rbin_client(module)
    rules = [describe(rule) for rule in rbin_api.snapshot_rules(client)]
    created = None
    if params["state"] == "present" and not any(rule["covers"] for rule in rules):
        if module.check_mode:
            created = {"identifier": None, "retention_days": params["retention_days"], "covers": True,
                       "why": "a tag-level rule on %s=%s would be created" % (
                           rbin_api.SCHEMA_TAG["ResourceTagKey"], rbin_api.SCHEMA_TAG["ResourceTagValue"])}
        else:
            created = describe(rbin_api.create_schema_rule(client, params["retention_days"], params["description"]))
            rules.append(created)
    return {"changed": created is not None, "covered": any(rule["covers"] for rule in rules) or created is not None,
            "rules": rules, "created_rule": created}


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["reported", "present"], default="reported"),
        retention_days=dict(type="int", default=30),
        description=dict(type="str", default="Retains deleted snapshots of shadowsnap.ec2 snapshot sets"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if not 1 <= module.params["retention_days"] <= 365:
        module.fail_json(msg="retention_days must be between 1 and 365, not %d" % module.params["retention_days"])
    try:
        result = ensure_rule(module)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    if not result["covered"]:
        module.warn("no Recycle Bin rule retains the collection's snapshots: a deleted set cannot be restored "
                    "(state: present creates a tag-level rule)")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
