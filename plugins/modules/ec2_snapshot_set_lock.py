#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_lock
short_description: Put a snapshot set under a legal hold with EBS snapshot locks, or lift it
version_added: 0.1.0
description:
  - With O(state=locked), locks every snapshot of the set O(set_id) (C(LockSnapshot)) for O(lock_duration_days) or
    until O(lock_expires_on); EC2 refuses to delete a locked snapshot, and retention keeps and reports a locked set.
  - V(governance) locks can be lifted by users allowed C(ec2:UnlockSnapshot); a V(compliance) lock can be lifted by
    nobody, not even the account's root user, once its cooling-off period (O(cool_off_hours)) is over - after that it
    can only be extended. Choose V(compliance) for a hold that must outlast any mistake.
  - Idempotent - a member already locked in O(lock_mode) with the same duration or expiry is left as it is; another
    lock of a member is replaced (EC2 allows it for governance locks and compliance locks still cooling off). A
    compliance lock past its cooling-off period that the request would weaken (governance, or an earlier expiry) is
    refused before any member is changed.
  - With O(state=unlocked), lifts the locks of the set's members (C(UnlockSnapshot)) - governance locks, and compliance
    locks still in their cooling-off period; a compliance lock past it is refused before any member is changed.
  - Only sets owned by this account that carry the collection's tag schema are changed, and with O(instance_id) only
    that instance's sets.
options:
  set_id:
    description: The set to lock or unlock.
    type: str
    required: true
  instance_id:
    description: The instance the set must belong to (a guard against locking another instance's set).
    type: str
  state:
    description: V(locked) puts the set under the lock; V(unlocked) lifts it.
    type: str
    choices: [locked, unlocked]
    default: locked
  lock_mode:
    description: The lock's mode.
    type: str
    choices: [governance, compliance]
    default: governance
  lock_duration_days:
    description:
      - Lock for this many days from now (1 to 36500). Mutually exclusive with O(lock_expires_on); one of them is
        required with O(state=locked).
    type: int
  lock_expires_on:
    description: Lock until this time, in ISO 8601 (V(2027-06-30T00:00:00Z); no offset means UTC).
    type: str
  cool_off_hours:
    description:
      - With O(lock_mode=compliance), the cooling-off period (1 to 72 hours) during which the lock can still be lifted
        or shortened. Without it a compliance lock is final at once.
    type: int
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(sts:GetCallerIdentity), C(DescribeSnapshots), C(DescribeLockedSnapshots), C(LockSnapshot) and
    C(UnlockSnapshot); see the IAM policy document in the collection's C(docs/) folder.
  - Supports check mode, which returns the members that would be locked or unlocked.
  - Verified against the collection's lab (moto behind a fault proxy that answers snapshot locks with EC2's modes,
    states and rules), not yet against EC2.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_retention
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: A legal hold on the set of the night of the incident, until the case is closed
  shadowsnap.ec2.ec2_snapshot_set_lock:
    set_id: i-0123456789abcdef0-20261124T010000Z
    lock_mode: compliance
    cool_off_hours: 24
    lock_expires_on: "2028-01-01T00:00:00Z"

- name: Lift a governance hold
  shadowsnap.ec2.ec2_snapshot_set_lock:
    set_id: i-0123456789abcdef0-20261124T010000Z
    state: unlocked
"""

RETURN = r"""
set_id:
  description: The set.
  returned: always
  type: str
changed_snapshot_ids:
  description: The members locked or unlocked by this run (that would be, in check mode).
  returned: always
  type: list
  elements: str
locks:
  description: Each member's lock after the task - C(snapshot_id), C(state) (V(governance), V(compliance),
    V(compliance-cooloff), or V(unlocked)) and C(expires_on).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "state": "compliance", "expires_on": "2028-01-01T00:00:00Z"}]
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_id
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_deletion
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client

FINAL = "compliance"


class LockRefused(Exception):
    """A lock change EC2 would refuse for a member; nothing was changed."""


def satisfied(lock, params, expires_on):
    """Whether a member's current lock already is the one asked for."""
    if lock is None or lock["LockState"].split("-")[0] != params["lock_mode"]:
        return False
    if params["lock_duration_days"] is not None:
        return lock.get("LockDuration") == params["lock_duration_days"]
    return lock.get("LockExpiresOn").replace(microsecond=0) == expires_on.replace(microsecond=0)


def weakens(lock, params, expires_on, now):
    """Whether the request would weaken a final compliance lock (EC2 only lets it be extended)."""
    if lock is None or lock["LockState"] != FINAL:
        return False
    wanted = expires_on or now + datetime.timedelta(days=params["lock_duration_days"])
    return params["lock_mode"] != FINAL or wanted < lock["LockExpiresOn"]


def parse_expiry(text):
    """An aware datetime from ISO 8601 (``Z``, an offset, or none = UTC); LockRefused when malformed."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise LockRefused("lock_expires_on must be an ISO 8601 time such as 2027-06-30T00:00:00Z, not %r" % text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def describe(member, lock):
    if lock is None:
        return {"snapshot_id": member["snapshot_id"], "state": "unlocked", "expires_on": None}
    return {"snapshot_id": member["snapshot_id"], "state": lock["LockState"],
            "expires_on": snapshot_tags.format_created_at(lock["LockExpiresOn"])}


def change_locks(module):
    params = module.params
    client = ec2_client(module)
    found = snapshot_sets.find_existing_set(client, params["set_id"])
    if found is None:
        raise LockRefused("no snapshot set %s in this account and Region" % params["set_id"])
    why_not = set_deletion.refusal(found, get_aws_account_id(module), params["instance_id"])
    if why_not:
        raise LockRefused("set %s is not changed: %s" % (params["set_id"], why_not))
    members = found["snapshots"]
    locks = dict((lock["SnapshotId"], lock) for lock in ec2_api.describe_locked_snapshots(
        client, [member["snapshot_id"] for member in members]))
    expires_on = parse_expiry(params["lock_expires_on"]) if params["lock_expires_on"] else None
    now = datetime.datetime.now(datetime.timezone.utc)
    if params["state"] == "locked":
        final = [m["snapshot_id"] for m in members if weakens(locks.get(m["snapshot_id"]), params, expires_on, now)]
        if final:
            raise LockRefused("set %s is not changed: %s are under a compliance lock past its cooling-off period, "
                              "which can only be extended (same mode, a later expiry)" % (params["set_id"], ", ".join(final)))
        todo = [m for m in members if not satisfied(locks.get(m["snapshot_id"]), params, expires_on)]
    else:
        final = [m["snapshot_id"] for m in members if (locks.get(m["snapshot_id"]) or {}).get("LockState") == FINAL]
        if final:
            raise LockRefused("set %s is not unlocked: %s are under a compliance lock past its cooling-off period, "
                              "which nobody can lift before it expires" % (params["set_id"], ", ".join(final)))
        todo = [m for m in members if m["snapshot_id"] in locks]
    if not module.check_mode:
        for member in todo:
            if params["state"] == "locked":
                locks[member["snapshot_id"]] = ec2_api.lock_snapshot(
                    client, member["snapshot_id"], params["lock_mode"], params["lock_duration_days"], expires_on,
                    params["cool_off_hours"] if params["lock_mode"] == FINAL else None)
            else:
                ec2_api.unlock_snapshot(client, member["snapshot_id"])
                locks.pop(member["snapshot_id"])
    return {"changed": bool(todo), "set_id": found["set_id"], "changed_snapshot_ids": [m["snapshot_id"] for m in todo],
            "locks": [describe(m, locks.get(m["snapshot_id"])) for m in members]}


def main():
    argument_spec = dict(
        set_id=dict(type="str", required=True),
        instance_id=dict(type="str"),
        state=dict(type="str", choices=["locked", "unlocked"], default="locked"),
        lock_mode=dict(type="str", choices=["governance", "compliance"], default="governance"),
        lock_duration_days=dict(type="int"),
        lock_expires_on=dict(type="str"),
        cool_off_hours=dict(type="int"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              mutually_exclusive=[("lock_duration_days", "lock_expires_on")],
                              required_if=[("state", "locked", ("lock_duration_days", "lock_expires_on"), True)])
    params = module.params
    if params["cool_off_hours"] is not None and (params["lock_mode"] != FINAL or not 1 <= params["cool_off_hours"] <= 72):
        module.fail_json(msg="cool_off_hours (1 to 72) is for lock_mode compliance only")
    if params["lock_duration_days"] is not None and not 1 <= params["lock_duration_days"] <= 36500:
        module.fail_json(msg="lock_duration_days must be between 1 and 36500, not %d" % params["lock_duration_days"])
    try:
        module.exit_json(**change_locks(module))
    except LockRefused as error:
        module.fail_json(msg=str(error), set_id=params["set_id"])
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)


if __name__ == "__main__":
    main()
