# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The EC2 calls the collection makes, one thin function each, with its retry policy and amazon.aws error handler.

Every failure comes out as amazon.aws's ``AnsibleEC2Error`` (the botocore error in ``.exception``), which a module
hands to ``fail_json_aws_error``. Reads and CreateTags (idempotent) retry with jittered backoff, DeleteSnapshot too
and for longer (a repeated delete answers NotFound: already deleted); CreateSnapshots is never retried here: a lost
answer may have created the set, so ``snapshot_sets.create_snapshot_set`` decides.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.waiter import BaseWaiterFactory
from ansible_collections.amazon.aws.plugins.module_utils.waiter import custom_waiter_config
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import DELETE_RETRY
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY

DESCRIBE_PAGE_SIZE = 500
SNAPSHOT_WAIT_DELAY = 5
# The lock states in which EC2 refuses to delete a snapshot (an expired lock protects nothing).
ACTIVE_LOCK_STATES = ("compliance-cooloff", "governance", "compliance")


class InstanceErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"])


class SnapshotErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("InvalidSnapshot.NotFound")


class ImageErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("InvalidAMIID.NotFound")


class Ec2WaiterFactory(BaseWaiterFactory):
    """Waiters that retry throttling and not-yet-visible snapshots (amazon.aws's ``snapshot_completed`` takes a
    throttling answer for success, and botocore's fails on a snapshot id that Describe does not list yet)."""

    @property
    def _waiter_model_data(self):
        return {
            "snapshots_completed": {
                "operation": "DescribeSnapshots",
                "delay": SNAPSHOT_WAIT_DELAY,
                "maxAttempts": 180,
                "acceptors": [
                    {"state": "success", "matcher": "pathAll", "argument": "Snapshots[].State", "expected": "completed"},
                    {"state": "failure", "matcher": "pathAny", "argument": "Snapshots[].State", "expected": "error"},
                    {"state": "retry", "matcher": "error", "expected": "InvalidSnapshot.NotFound"},
                ],
            },
        }


WAITERS = Ec2WaiterFactory()


@InstanceErrorHandler.list_error_handler("describe the instance", [])
@READ_RETRY
def describe_instances(client, instance_ids):
    """The instances (not reservations) with these ids; [] when EC2 knows none of them."""
    paginator = client.get_paginator("describe_instances")
    reservations = paginator.paginate(InstanceIds=list(instance_ids)).build_full_result()["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


@SnapshotErrorHandler.list_error_handler("describe snapshots", [])
@READ_RETRY
def describe_snapshots(client, filters):
    """This account's snapshots matching ``filters``, paginated (EC2 throttles unpaginated DescribeSnapshots harder)."""
    paginator = client.get_paginator("describe_snapshots")
    pages = paginator.paginate(OwnerIds=["self"], Filters=filters, PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE})
    return pages.build_full_result()["Snapshots"]


@SnapshotErrorHandler.common_error_handler("create the snapshots of the instance")
def create_snapshots(client, specification, description, tags):
    """One CreateSnapshots call with ``tags`` on every snapshot it creates; returns its snapshots."""
    tag_specifications = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}]
    response = client.create_snapshots(
        InstanceSpecification=specification, Description=description, TagSpecifications=tag_specifications,
    )
    return response["Snapshots"]


@SnapshotErrorHandler.common_error_handler("tag the snapshots")
@READ_RETRY
def create_tags(client, snapshot_ids, tags):
    """Add or overwrite ``tags`` on the snapshots; repeating it changes nothing, so it is retried like a read."""
    client.create_tags(Resources=sorted(snapshot_ids), Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])


@SnapshotErrorHandler.deletion_error_handler("delete the snapshot")
@DELETE_RETRY
def delete_snapshot(client, snapshot_id):
    """Delete one snapshot: True, or False when EC2 no longer knows it (an earlier attempt whose answer was lost)."""
    client.delete_snapshot(SnapshotId=snapshot_id)
    return True


@ImageErrorHandler.list_error_handler("describe the account's AMIs", [])
@READ_RETRY
def describe_images(client):
    """The AMIs this account owns, disabled and deprecated ones too: EC2 refuses to delete a snapshot any of them uses."""
    paginator = client.get_paginator("describe_images")
    pages = paginator.paginate(Owners=["self"], IncludeDeprecated=True, IncludeDisabled=True,
                               PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE})
    return pages.build_full_result()["Images"]


@SnapshotErrorHandler.list_error_handler("describe the snapshot locks", [])
@READ_RETRY
def describe_locked_snapshots(client, snapshot_ids=None):
    """The locks of this account's snapshots that still protect them (every page; only these snapshots' with
    ``snapshot_ids``). botocore has no paginator for DescribeLockedSnapshots."""
    params = {"Filters": [{"Name": "lock-state", "Values": list(ACTIVE_LOCK_STATES)}]}
    if snapshot_ids:
        params["SnapshotIds"] = sorted(snapshot_ids)
    else:
        params["MaxResults"] = DESCRIBE_PAGE_SIZE
    locks = []
    while True:
        page = client.describe_locked_snapshots(**params)
        locks.extend(page.get("Snapshots", []))
        if not page.get("NextToken"):
            return locks
        params["NextToken"] = page["NextToken"]


@SnapshotErrorHandler.common_error_handler("wait for the snapshots to complete")
def wait_for_snapshots(client, snapshot_ids, timeout):
    """Until every snapshot is ``completed``; a member in state ``error``, or ``timeout`` seconds, raise."""
    try:
        WAITERS.get_waiter(client, "snapshots_completed").wait(
            SnapshotIds=sorted(snapshot_ids), WaiterConfig=custom_waiter_config(timeout, SNAPSHOT_WAIT_DELAY),
        )
    except botocore.exceptions.WaiterError as error:
        answer = error.last_response or {}
        if "Error" in answer:
            raise botocore.exceptions.ClientError(answer, "DescribeSnapshots") from error
        failed = sorted(s["SnapshotId"] for s in answer.get("Snapshots", []) if s.get("State") == "error")
        if failed:
            raise AnsibleEC2Error(message="snapshots %s ended in state error" % ", ".join(failed)) from error
        raise AnsibleEC2Error(message="the snapshots %s did not complete within %d s"
                              % (", ".join(sorted(snapshot_ids)), timeout), exception=error) from error
