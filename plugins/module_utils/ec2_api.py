# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The EC2 calls the collection makes, one thin function each, with its retry policy and amazon.aws error handler.

Every failure comes out as amazon.aws's ``AnsibleEC2Error`` (the botocore error in ``.exception``), which a module
hands to ``fail_json_aws_error``. Reads, CreateTags, DeleteVolume (idempotent) and CreateVolume (made idempotent by its
client token) retry with jittered backoff, and so do RunInstances (its client token too), StopInstances, StartInstances
and TerminateInstances (repeating them changes nothing), DeleteSnapshot too and for longer (a repeated delete answers
NotFound: already deleted); CreateSnapshots is never retried here: a lost answer may have created the set, so
``snapshot_sets.create_snapshot_set`` decides. AttachVolume and DetachVolume are retried only when throttled
(refused before they were carried out); after any other failure their caller reads the volume to learn whether the
request was carried out. CopySnapshot likewise: after a lost answer ``set_copy`` looks for the copy by its tags.
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
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_RETRY

DESCRIBE_PAGE_SIZE = 500
SNAPSHOT_WAIT_DELAY = 5
VOLUME_WAIT_DELAY = 2
INSTANCE_WAIT_DELAY = 5
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


class VolumeErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("InvalidVolume.NotFound")


class Ec2WaiterFactory(BaseWaiterFactory):
    """Waiters that retry throttling and not-yet-visible snapshots and volumes (amazon.aws's ``snapshot_completed``
    takes a throttling answer for success, botocore's fail on an id that Describe does not list yet, and their
    ``volume_in_use`` is satisfied while the attachment is still ``attaching``)."""

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
            "volumes_available": {
                "operation": "DescribeVolumes",
                "delay": VOLUME_WAIT_DELAY,
                "maxAttempts": 450,
                "acceptors": [
                    {"state": "success", "matcher": "pathAll", "argument": "Volumes[].State", "expected": "available"},
                    {"state": "failure", "matcher": "pathAny", "argument": "Volumes[].State", "expected": "error"},
                    {"state": "retry", "matcher": "error", "expected": "InvalidVolume.NotFound"},
                ],
            },
            "volumes_attached": {
                "operation": "DescribeVolumes",
                "delay": VOLUME_WAIT_DELAY,
                "maxAttempts": 450,
                "acceptors": [
                    {"state": "success", "matcher": "path", "expected": True,
                     "argument": "length(Volumes[?Attachments[0].State == 'attached']) == length(Volumes)"},
                    {"state": "failure", "matcher": "pathAny", "argument": "Volumes[].State", "expected": "error"},
                ],
            },
        }


def _instance_waiter(state, failures):
    return {
        "operation": "DescribeInstances",
        "delay": INSTANCE_WAIT_DELAY,
        "maxAttempts": 200,
        "acceptors": [
            {"state": "success", "matcher": "pathAll", "argument": "Reservations[].Instances[].State.Name", "expected": state},
            {"state": "retry", "matcher": "error", "expected": "InvalidInstanceID.NotFound"},
        ] + [{"state": "failure", "matcher": "pathAny", "argument": "Reservations[].Instances[].State.Name",
              "expected": failure} for failure in failures],
    }


class InstanceWaiterFactory(BaseWaiterFactory):
    """Waiters for an instance's state that retry an id DescribeInstances does not list yet and fail at once on a
    state the instance cannot leave for the one waited for."""

    @property
    def _waiter_model_data(self):
        return {
            "instances_running": _instance_waiter("running", ("shutting-down", "terminated", "stopping")),
            "instances_stopped": _instance_waiter("stopped", ("shutting-down", "terminated", "pending")),
            "instances_terminated": _instance_waiter("terminated", ()),
        }


WAITERS = Ec2WaiterFactory()
INSTANCE_WAITERS = InstanceWaiterFactory()


@InstanceErrorHandler.list_error_handler("describe the instance", [])
@READ_RETRY
def describe_instances(client, instance_ids):
    """The instances (not reservations) with these ids; [] when EC2 knows none of them."""
    paginator = client.get_paginator("describe_instances")
    reservations = paginator.paginate(InstanceIds=list(instance_ids)).build_full_result()["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


@InstanceErrorHandler.common_error_handler("launch the instance")
@READ_RETRY
def run_instance(client, parameters, tags, volume_tags, client_token):
    """One RunInstances of one instance with ``tags`` on it and ``volume_tags`` on the volumes it launches with; EC2
    answers a repeat with the same ``client_token`` with the instance the first request launched, so a lost answer is
    retried like a read."""
    tag_specifications = [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in sorted(values.items())]}
                          for kind, values in (("instance", tags), ("volume", volume_tags))]
    response = client.run_instances(MinCount=1, MaxCount=1, ClientToken=client_token,
                                    TagSpecifications=tag_specifications, **parameters)
    return response["Instances"][0]


@InstanceErrorHandler.list_error_handler("describe the instances", [])
@READ_RETRY
def find_instances(client, filters):
    """The instances matching ``filters``, paginated."""
    paginator = client.get_paginator("describe_instances")
    reservations = paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 1000}).build_full_result()
    return [instance for reservation in reservations["Reservations"] for instance in reservation["Instances"]]


@InstanceErrorHandler.common_error_handler("stop the instance")
@READ_RETRY
def stop_instance(client, instance_id):
    """StopInstances; repeating it on a stopping or stopped instance changes nothing."""
    return client.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]


@InstanceErrorHandler.common_error_handler("start the instance")
@READ_RETRY
def start_instance(client, instance_id):
    """StartInstances; repeating it on a pending or running instance changes nothing."""
    return client.start_instances(InstanceIds=[instance_id])["StartingInstances"][0]


@InstanceErrorHandler.deletion_error_handler("terminate the instance")
@READ_RETRY
def terminate_instance(client, instance_id):
    """TerminateInstances; False when EC2 no longer knows the instance."""
    client.terminate_instances(InstanceIds=[instance_id])
    return True


@InstanceErrorHandler.common_error_handler("wait for the instance")
def wait_for_instance(client, instance_id, waiter_name, timeout):
    """Until ``instances_running``, ``instances_stopped`` or ``instances_terminated`` is satisfied; a state the
    instance cannot leave for that one, or ``timeout`` seconds, raise AnsibleEC2Error."""
    try:
        INSTANCE_WAITERS.get_waiter(client, waiter_name).wait(
            InstanceIds=[instance_id], WaiterConfig=custom_waiter_config(timeout, INSTANCE_WAIT_DELAY))
    except botocore.exceptions.WaiterError as error:
        answer = error.last_response or {}
        if "Error" in answer:
            raise botocore.exceptions.ClientError(answer, "DescribeInstances") from error
        states = [i["State"]["Name"] for r in answer.get("Reservations", []) for i in r["Instances"]]
        raise AnsibleEC2Error(message="instance %s is %s, not %s (waited up to %d s)" % (
            instance_id, ", ".join(states) or "not listed", waiter_name.split("_", 1)[1], timeout), exception=error) from error


class ImageErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"])


class SubnetErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleEC2Error

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code(["InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"])


@SubnetErrorHandler.list_error_handler("describe the subnet", [])
@READ_RETRY
def describe_subnets(client, subnet_ids):
    """The subnets with these ids; [] when EC2 knows none of them."""
    return client.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]


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


@ImageErrorHandler.list_error_handler("describe the images", [])
@READ_RETRY
def describe_images(client, image_ids=None):
    """The images with these ids ([] when EC2 knows none of them); without ids, the AMIs this account owns, disabled
    and deprecated ones too: EC2 refuses to delete a snapshot any of them uses."""
    if image_ids:
        return client.describe_images(ImageIds=list(image_ids))["Images"]
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


@SnapshotErrorHandler.common_error_handler("lock the snapshot")
@THROTTLING_RETRY
def lock_snapshot(client, snapshot_id, mode, duration_days=None, expiration_date=None, cool_off_hours=None):
    """LockSnapshot in ``mode`` for ``duration_days`` or until ``expiration_date``; returns the lock."""
    params = {"SnapshotId": snapshot_id, "LockMode": mode}
    if duration_days is not None:
        params["LockDuration"] = duration_days
    if expiration_date is not None:
        params["ExpirationDate"] = expiration_date
    if cool_off_hours:
        params["CoolOffPeriod"] = cool_off_hours
    return client.lock_snapshot(**params)


@SnapshotErrorHandler.common_error_handler("unlock the snapshot")
@THROTTLING_RETRY
def unlock_snapshot(client, snapshot_id):
    client.unlock_snapshot(SnapshotId=snapshot_id)


@SnapshotErrorHandler.list_error_handler("describe the snapshots' storage tiers", [])
@READ_RETRY
def describe_snapshot_tier_status(client, snapshot_ids):
    """DescribeSnapshotTierStatus of these snapshots: their last archival or restore and its state."""
    paginator = client.get_paginator("describe_snapshot_tier_status")
    pages = paginator.paginate(Filters=[{"Name": "snapshot-id", "Values": sorted(snapshot_ids)}],
                               PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE})
    return pages.build_full_result()["SnapshotTierStatuses"]


@SnapshotErrorHandler.common_error_handler("archive the snapshot")
@THROTTLING_RETRY
def archive_snapshot(client, snapshot_id):
    """ModifySnapshotTier to the archive tier; EC2 archives it in the hours that follow."""
    return client.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")


@SnapshotErrorHandler.common_error_handler("restore the snapshot from the archive tier")
@THROTTLING_RETRY
def restore_snapshot_tier(client, snapshot_id, temporary_days=None):
    """RestoreSnapshotTier: for ``temporary_days`` (then EC2 archives it again), or permanently when None."""
    if temporary_days is None:
        return client.restore_snapshot_tier(SnapshotId=snapshot_id, PermanentRestore=True)
    return client.restore_snapshot_tier(SnapshotId=snapshot_id, TemporaryRestoreDays=temporary_days)


@SnapshotErrorHandler.list_error_handler("list the snapshots in the Recycle Bin", [])
@READ_RETRY
def list_snapshots_in_recycle_bin(client):
    """Every snapshot of this account in the Recycle Bin (EC2 lists them without tags)."""
    paginator = client.get_paginator("list_snapshots_in_recycle_bin")
    return paginator.paginate(PaginationConfig={"PageSize": DESCRIBE_PAGE_SIZE}).build_full_result()["Snapshots"]


@SnapshotErrorHandler.common_error_handler("restore the snapshot from the Recycle Bin")
@THROTTLING_RETRY
def restore_snapshot_from_recycle_bin(client, snapshot_id):
    return client.restore_snapshot_from_recycle_bin(SnapshotId=snapshot_id)


@SnapshotErrorHandler.common_error_handler("copy the snapshot")
@THROTTLING_RETRY
def copy_snapshot(client, source_region, source_snapshot_id, description, tags, encrypted=False, kms_key_id=None):
    """One CopySnapshot into the client's Region, with ``tags`` on the copy (EC2 copies no tags). Retried only when
    throttled: CopySnapshot has no client token, so after a lost answer the caller looks for the copy by its tags."""
    arguments = {
        "SourceRegion": source_region, "SourceSnapshotId": source_snapshot_id, "Description": description,
        "TagSpecifications": [{"ResourceType": "snapshot",
                               "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}],
    }
    if encrypted or kms_key_id:
        arguments["Encrypted"] = True
    if kms_key_id:
        arguments["KmsKeyId"] = kms_key_id
    return client.copy_snapshot(**arguments)["SnapshotId"]


@SnapshotErrorHandler.common_error_handler("change who may create volumes from the snapshot")
@READ_RETRY
def share_snapshot(client, snapshot_id, account_ids, share=True):
    """Add (or, with ``share=False``, remove) the accounts' createVolumePermission; repeating it changes nothing."""
    client.modify_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add" if share else "remove",
        UserIds=sorted(account_ids))


@SnapshotErrorHandler.list_error_handler("read who may create volumes from the snapshot", [])
@READ_RETRY
def snapshot_shared_with(client, snapshot_id):
    """The account ids the snapshot is shared with (createVolumePermission); [] when EC2 no longer knows it."""
    answer = client.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    return sorted(p["UserId"] for p in answer.get("CreateVolumePermissions", []) if "UserId" in p)


def _wait(client, waiter_name, kind, ids, timeout, delay, timed_out):
    """Run a waiter over the ``kind`` (Snapshots, Volumes) with these ids. An error answer is raised as EC2's error,
    an item in state ``error`` or the timeout as AnsibleEC2Error (``timed_out(last items)`` says what was waited for)."""
    single = kind[:-1]
    try:
        WAITERS.get_waiter(client, waiter_name).wait(
            WaiterConfig=custom_waiter_config(timeout, delay), **{single + "Ids": sorted(ids)})
    except botocore.exceptions.WaiterError as error:
        answer = error.last_response or {}
        if "Error" in answer:
            raise botocore.exceptions.ClientError(answer, "Describe" + kind) from error
        failed = sorted(item[single + "Id"] for item in answer.get(kind, []) if item.get("State") == "error")
        if failed:
            raise AnsibleEC2Error(message="%s %s ended in state error" % (kind.lower(), ", ".join(failed))) from error
        raise AnsibleEC2Error(message=timed_out(answer.get(kind, [])), exception=error) from error


@SnapshotErrorHandler.common_error_handler("wait for the snapshots to complete")
def wait_for_snapshots(client, snapshot_ids, timeout):
    """Until every snapshot is ``completed``; a member in state ``error``, or ``timeout`` seconds, raise."""
    _wait(client, "snapshots_completed", "Snapshots", snapshot_ids, timeout, SNAPSHOT_WAIT_DELAY,
          lambda dummy: "the snapshots %s did not complete within %d s" % (", ".join(sorted(snapshot_ids)), timeout))


@VolumeErrorHandler.list_error_handler("describe the volumes", [])
@READ_RETRY
def describe_volumes(client, volume_ids=None, filters=None):
    """Volumes by id and/or filters, paginated; [] when EC2 knows none of the ids."""
    arguments = {"Filters": list(filters or [])}
    if volume_ids:
        arguments["VolumeIds"] = sorted(volume_ids)
    else:
        arguments["PaginationConfig"] = {"PageSize": DESCRIBE_PAGE_SIZE}
    return client.get_paginator("describe_volumes").paginate(**arguments).build_full_result()["Volumes"]


@VolumeErrorHandler.common_error_handler("create the volume")
@READ_RETRY
def create_volume(client, parameters, tags, client_token):
    """One CreateVolume with ``tags`` on the new volume; EC2 answers a repeat with the same ``client_token`` with the
    volume the first request created, so a lost answer is retried like a read. ``parameters`` holds SnapshotId,
    AvailabilityZone and the optional VolumeType, Size, Iops, Throughput, Encrypted, KmsKeyId."""
    tag_specifications = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}]
    return client.create_volume(TagSpecifications=tag_specifications, ClientToken=client_token, **parameters)


@VolumeErrorHandler.deletion_error_handler("delete the volume")
@READ_RETRY
def delete_volume(client, volume_id):
    """DeleteVolume; False when the volume no longer exists (deleting twice is done once)."""
    client.delete_volume(VolumeId=volume_id)
    return True


@VolumeErrorHandler.common_error_handler("attach the volume")
@THROTTLING_RETRY
def attach_volume(client, volume_id, instance_id, device):
    return client.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)


@VolumeErrorHandler.common_error_handler("detach the volume")
@THROTTLING_RETRY
def detach_volume(client, volume_id, instance_id):
    return client.detach_volume(VolumeId=volume_id, InstanceId=instance_id)


@VolumeErrorHandler.common_error_handler("tag the volumes")
@READ_RETRY
def tag_volumes(client, volume_ids, tags):
    """Add or overwrite ``tags`` on the volumes; repeating it changes nothing, so it is retried like a read."""
    client.create_tags(Resources=sorted(volume_ids), Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])


@VolumeErrorHandler.common_error_handler("wait for the volumes")
def wait_for_volumes(client, volume_ids, waiter_name, timeout):
    """Until the waiter ``volumes_available`` or ``volumes_attached`` is satisfied for every volume; a volume in
    state ``error``, or ``timeout`` seconds, raise."""
    _wait(client, waiter_name, "Volumes", volume_ids, timeout, VOLUME_WAIT_DELAY,
          lambda volumes: "the volumes were not %s within %d s (%s)" % (
              waiter_name.split("_", 1)[1], timeout,
              ", ".join("%s %s" % (v["VolumeId"], volume_state(v)) for v in volumes) or "not listed"))


def error_code(error):
    """The EC2 error code of an AnsibleEC2Error (None for a lost connection or a timeout)."""
    response = getattr(error.exception, "response", None) or {}
    return response.get("Error", {}).get("Code")


def volume_state(volume):
    """A volume's state with its attachment's: ``available``, ``creating``, ``in-use/attaching``..."""
    attachments = volume.get("Attachments") or []
    return volume.get("State", "unknown") + ("/" + attachments[0]["State"] if attachments else "")
