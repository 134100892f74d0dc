#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_drill
short_description: Record the verdict of a recovery drill on a snapshot set
version_added: 0.1.0
description:
  - Tags every member of the set O(set_id) with the result of its latest recovery drill - when it ran, whether it
    passed and the consistency it reached - in one tag, C(shadowsnap:drill) (see the tag schema document in the
    collection's C(docs/) folder). A later drill replaces it, so a set carries one drill verdict at most.
  - The drill itself is the C(drill) mode of the C(shadowsnap.ec2.restore) role (playbook C(shadowsnap.ec2.restore_drill)),
    which calls this module whatever the outcome.
  - Only sets carrying the collection's tag schema are tagged. A set whose members already carry the 50 tags EC2
    allows (and no earlier verdict) is refused, naming how many tags they have - remove a user tag to make room.
options:
  set_id:
    description: The set that was drilled.
    type: str
    required: true
  verdict:
    description: V(passed) when the set was restored and every check passed, else V(failed).
    type: str
    choices: [passed, failed]
    required: true
  consistency:
    description: The consistency the drill reached (V(application) when the embedded shadow copies were reverted).
    type: str
    choices: [application, crash]
    default: crash
  drilled_at:
    description: When the drill ran, in ISO 8601 (V(2026-12-02T02:00:00Z); no offset means UTC). Defaults to now.
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(DescribeSnapshots) and one C(CreateTags) for all members.
  - Supports check mode, which returns the tag that would be written.
  - Verified against the collection's lab (moto behind a fault proxy), not yet against EC2.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: The drill of last night's set passed, application-consistent
  shadowsnap.ec2.ec2_snapshot_set_drill:
    set_id: i-0123456789abcdef0-20261201T010000Z
    verdict: passed
    consistency: application
"""

RETURN = r"""
set_id:
  description: The set.
  returned: always
  type: str
drill:
  description: The verdict recorded - C(at), C(verdict), C(consistency).
  returned: always
  type: dict
  sample: {"at": "2026-12-02T02:00:00Z", "verdict": "passed", "consistency": "application"}
previous:
  description: The verdict the set carried before, if any.
  returned: always
  type: dict
snapshot_ids:
  description: The members tagged (that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_volumes
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client


def record(module, moment):
    params = module.params
    client = ec2_client(module)
    snapshots = snapshot_sets.find_snapshots(client, set_ids=[params["set_id"]])
    if not snapshots:
        raise snapshot_tags.TagSchemaError("no snapshot set %s in this account and Region" % params["set_id"])
    value = snapshot_tags.encode_drill(moment, params["verdict"], params["consistency"])
    tags = dict((s["SnapshotId"], boto3_tag_list_to_ansible_dict(s.get("Tags", []))) for s in snapshots)
    full = sorted(snapshot_id for snapshot_id, own in tags.items()
                  if snapshot_tags.KEY_DRILL not in own and len(own) >= snapshot_tags.MAX_TAGS_PER_SNAPSHOT)
    if full:
        raise snapshot_tags.TagSchemaError(
            "set %s cannot carry the drill's verdict: %s already carry the %d tags EC2 allows; remove a user tag"
            % (params["set_id"], ", ".join(full), snapshot_tags.MAX_TAGS_PER_SNAPSHOT))
    todo = sorted(snapshot_id for snapshot_id, own in tags.items() if own.get(snapshot_tags.KEY_DRILL) != value)
    if todo and not module.check_mode:
        ec2_api.create_tags(client, todo, {snapshot_tags.KEY_DRILL: value})
    previous = [snapshot_tags.decode_drill(own) for own in tags.values()]
    return {"changed": bool(todo), "set_id": params["set_id"], "snapshot_ids": todo,
            "drill": snapshot_tags.decode_drill({snapshot_tags.KEY_DRILL: value}),
            "previous": max((p for p in previous if p), key=lambda p: p["at"] or "", default=None)}


def main():
    argument_spec = dict(
        set_id=dict(type="str", required=True),
        verdict=dict(type="str", required=True, choices=list(snapshot_tags.DRILL_VERDICTS)),
        consistency=dict(type="str", choices=["application", "crash"], default="crash"),
        drilled_at=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    moment = datetime.datetime.now(datetime.timezone.utc)
    if params["drilled_at"]:
        try:
            moment = restore_volumes.parse_point_in_time(params["drilled_at"])
        except restore_volumes.RestoreError:
            module.fail_json(msg="drilled_at must be an ISO 8601 time such as 2026-12-02T02:00:00Z, not %r"
                             % params["drilled_at"], set_id=params["set_id"])
    try:
        module.exit_json(**record(module, moment))
    except snapshot_tags.TagSchemaError as error:
        module.fail_json(msg=str(error), set_id=params["set_id"])
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)


if __name__ == "__main__":
    main()
