#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_copy
short_description: Copy whole snapshot sets to another Region and/or account (DR copies)
version_added: 0.1.0
description:
  - Copies every member of each set with C(CopySnapshot) into O(destination_region), and with O(destination_role_arn)
    into the account of that role. The copies carry the set's schema tags with the same set id, plus
    C(shadowsnap:copy:*) tags naming the source set, Region, account, snapshot and member volume, so the copy is a
    set in its destination - listed by M(shadowsnap.ec2.ec2_snapshot_set_info), restored by
    M(shadowsnap.ec2.ec2_snapshot_set_volumes) and kept or deleted by M(shadowsnap.ec2.ec2_snapshot_set_retention)
    there, from its tags alone.
  - Idempotent. The destination's copies are found by set id and member volume, so a re-run copies nothing that was
    copied or is being copied, and a run interrupted halfway is finished by the next one. A member whose copy ended
    in state V(error) fails the run, naming the copy to delete.
  - EC2 runs at most 20 concurrent snapshot copies per destination Region. The copies are queued, at most
    O(max_concurrent_copies) in flight (copies still pending from an earlier run count); pending copies are polled
    every O(poll_interval) seconds and the next one starts as one completes. A C(ResourceLimitExceeded) answer
    (copies of other tools hold the cap) puts the member back in the queue.
  - Across accounts, the source snapshots are shared with the destination account (C(createVolumePermission)) and
    copied from there; the share is removed once a set's copies are complete, unless O(keep_shared). A snapshot
    encrypted with the AWS managed key C(aws/ebs) cannot be shared, so a set with such a member is refused before
    anything is shared or copied. A customer managed key must let the destination account use it (key policy).
  - Only complete sets are copied (C(CopySnapshot) copies only V(completed) snapshots).
  - Check mode reads the sets and the destination and returns the plan per member.
  - Verified against the lab (moto behind the collection's fault proxy, which models the 20-copy cap, pending copies,
    the encryption rules and the second account), not against AWS.
options:
  set_ids:
    description:
      - The sets to copy, in the module's Region and account.
    type: list
    elements: str
    required: true
  destination_region:
    description:
      - The Region to copy into; the module's own Region for a copy to another account only.
    type: str
  destination_role_arn:
    description:
      - A role in the destination account, assumed with the module's credentials (STS C(AssumeRole)); the copies are
        made as that role. Without it the copies stay in this account.
    type: str
  destination_role_session_name:
    description:
      - The session name of the assumed role (seen in the destination account's CloudTrail).
    type: str
    default: shadowsnap-dr-copy
  destination_external_id:
    description:
      - The external id the role's trust policy asks for.
    type: str
  kms_key_id:
    description:
      - The KMS key (id, ARN or alias of the destination Region and account) the copies are encrypted with. Without
        it, encrypted members are copied with the destination's default EBS key and unencrypted ones stay
        unencrypted unless O(encrypted).
    type: str
  encrypted:
    description:
      - Encrypt copies of unencrypted members (with O(kms_key_id) or the destination's default EBS key).
    type: bool
    default: false
  policy:
    description:
      - The retention policy name the copies carry (C(shadowsnap:policy)), so that the destination keeps them by a
        policy of its own. Without it, the copies keep the source set's policy.
    type: str
  max_concurrent_copies:
    description:
      - At most this many copies in flight in the destination Region (EC2's cap is 20 unless raised).
    type: int
    default: 20
  poll_interval:
    description:
      - Seconds between two reads of the pending copies.
    type: float
    default: 15
  wait:
    description:
      - Wait until every copy is complete. Without it, the run starts what fits under the cap and returns; the
        remaining members are V(queued) and the next run goes on.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the copies. The run then fails naming the copies still pending (they go on in EC2; a
        re-run waits for them) and the members not started (a re-run copies them).
    type: int
    default: 3600
  keep_shared:
    description:
      - Keep the source snapshots shared with the destination account after their copies are complete.
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Last night's sets to the DR Region, re-encrypted with the DR Region's key
  shadowsnap.ec2.ec2_snapshot_set_copy:
    region: us-east-1
    set_ids: "{{ backup_set_ids }}"
    destination_region: us-west-2
    kms_key_id: alias/dr-backups
    policy: dr-west

- name: The same sets to a vault account (shared, then copied by the vault's role)
  shadowsnap.ec2.ec2_snapshot_set_copy:
    region: us-east-1
    set_ids: "{{ backup_set_ids }}"
    destination_region: eu-west-1
    destination_role_arn: arn:aws:iam::222222222222:role/shadowsnap-dr
    kms_key_id: arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    policy: vault

- name: The vault keeps its copies by its own policy (credentials of the vault's role)
  amazon.aws.sts_assume_role:
    role_arn: arn:aws:iam::222222222222:role/shadowsnap-dr
    role_session_name: shadowsnap-dr-retention
  register: vault

- name: Retention in the vault account and Region
  shadowsnap.ec2.ec2_snapshot_set_retention:
    region: eu-west-1
    access_key: "{{ vault.sts_creds.access_key }}"
    secret_key: "{{ vault.sts_creds.secret_key }}"
    session_token: "{{ vault.sts_creds.session_token }}"
    policy: vault
    keep_daily: 30
    keep_monthly: 12
"""

RETURN = r"""
sets:
  description: One entry per set, with its members.
  returned: always
  type: list
  elements: dict
  contains:
    set_id:
      description: The set id, the same in the destination.
      type: str
    status:
      description:
        - V(copied) (this run copied members), V(present) (every member was already copied), V(pending) (copies
          still running), V(queued) (members not started, without O(wait)), V(error) (a copy failed) or, in check
          mode, V(planned).
      type: str
    members:
      description:
        - Per member - C(source_snapshot_id), C(volume_id), C(device), C(snapshot_id) (the copy), C(action)
          (V(copy), V(copied), V(present), V(pending), V(queued), V(error)), C(state), and the timings of this run
          in seconds since it started - C(queued_at), C(started_at), C(completed_at), C(copy_seconds).
      type: list
      elements: dict
source_region:
  description: The Region the sets were copied from.
  returned: always
  type: str
source_account:
  description: The account the sets were copied from.
  returned: always
  type: str
destination_region:
  description: The Region the copies are in.
  returned: always
  type: str
destination_account:
  description: The account the copies are in.
  returned: always
  type: str
shared_snapshot_ids:
  description: Source snapshots shared with the destination account by this run (cross-account only).
  returned: always
  type: list
  elements: str
unshared_snapshot_ids:
  description: Source snapshots no longer shared because their copies are complete.
  returned: always
  type: list
  elements: str
copies_started:
  description: How many CopySnapshot calls this run made.
  returned: always
  type: int
max_in_flight:
  description: The most copies this run had in flight at once (never above O(max_concurrent_copies)).
  returned: always
  type: int
occupancy:
  description: The share of the cap's slot-seconds kept busy while the run waited (1.0 is the cap full all along).
  returned: always
  type: float
capacity_refusals:
  description: How many times EC2 answered C(ResourceLimitExceeded) (another tool's copies held the cap).
  returned: always
  type: int
elapsed_seconds:
  description: How long the run took.
  returned: always
  type: float
"""

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import aws_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_copy
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule


def set_status(members, check_mode):
    actions = set(member["action"] for member in members)
    states = set(member["state"] for member in members)
    if check_mode:
        return "planned" if actions - {"present"} else "present"
    if "error" in actions or "error" in states:
        return "error"
    if "queued" in actions:
        return "queued"
    if "pending" in states:
        return "pending"
    return "copied" if "copied" in actions else "present"


def shown(entry):
    return dict((key, value) for key, value in entry.items() if key not in ("tags", "encrypted", "volume_size"))


def copy_sets(module):
    params = module.params
    source_region = module.region
    destination_region = params["destination_region"] or source_region
    credentials = None
    if params["destination_role_arn"]:
        credentials = aws_client.assume_role(module, params["destination_role_arn"],
                                             params["destination_role_session_name"], params["destination_external_id"])
    source_account = aws_client.account_id(module)
    destination_account = aws_client.account_id(module, credentials) if credentials else source_account
    if (destination_region, destination_account) == (source_region, source_account):
        raise set_copy.SetCopyError("the destination is the sets' own Region and account (%s, %s); name another "
                                    "destination_region or a destination_role_arn" % (source_region, source_account))
    cross_account = destination_account != source_account
    source = aws_client.ec2_client(module)
    read = aws_client.regional_client(module, "ec2", destination_region, credentials)
    sources = set_copy.source_sets(source, params["set_ids"])
    if cross_account:
        set_copy.check_shareable(aws_client.kms_client(module), sources)
    plan = set_copy.plan_copies(sources, set_copy.destination_copies(read, sources), source_region, source_account,
                                params["policy"])
    result = dict(source_region=source_region, source_account=source_account, destination_region=destination_region,
                  destination_account=destination_account, shared_snapshot_ids=[], unshared_snapshot_ids=[],
                  copies_started=0, max_in_flight=0, occupancy=0.0, capacity_refusals=0, elapsed_seconds=0.0)
    to_copy = [entry for entry in plan if entry["action"] == "copy"]
    if not module.check_mode:
        if cross_account and to_copy:
            result["shared_snapshot_ids"] = set_copy.share_sources(source, to_copy, destination_account)
        queue = set_copy.CopyQueue(
            aws_client.regional_client(module, "ec2", destination_region, credentials, idempotent=False), read,
            source_region, limit=params["max_concurrent_copies"], poll_interval=params["poll_interval"],
            encrypted=params["encrypted"], kms_key_id=params["kms_key_id"])
        queue.run(plan, wait=params["wait"], timeout=params["wait_timeout"])
        result.update(copies_started=sum(1 for entry in plan if entry["action"] == "copied"),
                      max_in_flight=queue.max_in_flight, occupancy=queue.occupancy(),
                      capacity_refusals=queue.capacity_refusals, elapsed_seconds=queue.now())
    sets = []
    for set_id in sorted(sources):
        members = [entry for entry in plan if entry["set_id"] == set_id]
        sets.append({"set_id": set_id, "status": set_status(members, module.check_mode),
                     "members": [shown(entry) for entry in members]})
    if cross_account and not module.check_mode and not params["keep_shared"]:
        done = [entry for found in sets if found["status"] in ("copied", "present")
                for entry in plan if entry["set_id"] == found["set_id"]]
        result["unshared_snapshot_ids"] = set_copy.unshare_sources(source, done, destination_account)
    result["sets"] = sets
    result["changed"] = bool(result["copies_started"] or result["shared_snapshot_ids"]
                             or result["unshared_snapshot_ids"] or (module.check_mode and to_copy))
    failed = [entry for entry in plan if entry["action"] == "error" or entry["state"] == "error"]
    if failed:
        module.fail_json(msg="the copies %s ended in state error; delete them and run again to copy those members"
                         % ", ".join("%s (of %s in set %s)" % (e["snapshot_id"], e["source_snapshot_id"], e["set_id"])
                                     for e in failed), **result)
    late = [entry for entry in plan if params["wait"] and (entry["state"] == "pending" or entry["action"] == "queued")]
    if late:
        module.fail_json(msg="%d members were not copied within %d s (%s); pending copies go on in EC2, run again to "
                         "wait for them and copy the rest" % (len(late), params["wait_timeout"], ", ".join(
                             "%s of %s (%s)" % (e["source_snapshot_id"], e["set_id"], e["snapshot_id"] or "queued")
                             for e in late)), **result)
    return result


def main():
    argument_spec = dict(
        set_ids=dict(type="list", elements="str", required=True),
        destination_region=dict(type="str"),
        destination_role_arn=dict(type="str"),
        destination_role_session_name=dict(type="str", default="shadowsnap-dr-copy"),
        destination_external_id=dict(type="str"),
        kms_key_id=dict(type="str"),
        encrypted=dict(type="bool", default=False),
        policy=dict(type="str"),
        max_concurrent_copies=dict(type="int", default=set_copy.MAX_CONCURRENT_COPIES),
        poll_interval=dict(type="float", default=15.0),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        keep_shared=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not params["set_ids"]:
        module.fail_json(msg="set_ids names no set")
    if params["max_concurrent_copies"] < 1:
        module.fail_json(msg="max_concurrent_copies must be at least 1, not %d" % params["max_concurrent_copies"])
    if params["poll_interval"] <= 0 or params["wait_timeout"] < 0:
        module.fail_json(msg="poll_interval must be above 0 and wait_timeout not negative")
    try:
        module.exit_json(**copy_sets(module))
    except set_copy.SetCopyError as error:
        module.fail_json(msg=str(error))
    except snapshot_tags.TagSchemaError as error:
        module.fail_json(msg="the copies' tags do not fit: %s" % error)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        module.fail_json_aws(error, msg="could not act in the destination account (STS)")


if __name__ == "__main__":
    main()
