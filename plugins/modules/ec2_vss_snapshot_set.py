#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_vss_snapshot_set
short_description: Snapshot an EC2 Windows instance with AWS's own VSS path and tag the set
version_added: 0.1.0
description:
  - The C(aws_vss) engine. Runs the AWS-owned SSM document C(AWSEC2-CreateVssSnapshot) on one instance from the
    controller; AWS's requester and provider on the instance (AwsVssComponents) freeze the VSS writers and call
    C(CreateSnapshots) inside the 10 second window VSS allows.
  - Waits for the command (a waiter polling C(GetCommandInvocation) every 2 seconds, bounded by O(wait_timeout)), finds
    the snapshots the document created, and adds the collection's tag schema to all of them with one C(CreateTags)
    call - the document creates the snapshots on the instance, so their schema tags cannot go on at creation. The
    schema includes the instance's launch record from the module's C(DescribeInstances) answer, for a whole-instance
    restore.
  - The set is tagged V(application) only when every snapshot carries AWS's verdict C(AppConsistent=true) and
    O(no_writers) is false; anything else is tagged V(crash), reported, and warned about. Nothing is claimed that AWS
    did not report.
  - The snapshots are found by the snapshot-set id in their C(AwsVssConfig) tag when it holds one, else by the
    command's time window and the instance's volumes (C(AwsVssConfig) present, no schema tags yet).
  - Idempotent on O(set_id) - when snapshots with that set id exist, no command is sent and the set is returned.
  - Reserved tags and the tag count with one volume are checked before any API call; the exact count, which depends on
    how many volumes the instance has and on its launch record, after C(DescribeInstances) and before the command is
    sent.
  - C(SendCommand) is retried only when it was throttled - a command whose answer was lost may be running, and a
    second one would take a second VSS snapshot set.
options:
  instance_id:
    description:
      - The instance to snapshot. It must be a managed instance of Systems Manager (SSM agent online).
    type: str
    required: true
  set_id:
    description:
      - The id of the set. Use a stable value to make re-runs idempotent.
      - Generated from the instance id and the current time when not given.
    type: str
  exclude_boot_volume:
    description:
      - Leave the boot volume out. The document snapshots all attached EBS volumes, or all but the boot volume;
        there is no other choice.
    type: bool
    default: false
  volume_ids:
    description:
      - The members of the set, by EBS volume id (the boot volume too unless O(exclude_boot_volume)).
      - The document can only snapshot every attached volume or all but the boot volume, so it runs over all of them
        (all but boot when the set leaves the boot volume out); its snapshots of the volumes not named here are
        deleted as soon as it ends (RV(discarded_snapshots)), and only the named volumes form the set.
      - Left out (and O(device_names) too), the set is every volume the document snapshots.
    type: list
    elements: str
    version_added: 0.1.0
  device_names:
    description:
      - Members of the set by device name (V(/dev/sda1), V(xvdb)), as O(volume_ids); the two may be combined.
    type: list
    elements: str
    version_added: 0.1.0
  volume_metadata:
    description:
      - Per-volume data recorded in the set's tags, keyed by volume id or device name, as
        M(shadowsnap.ec2.ec2_snapshot_set) takes it - C(paths), the Windows drive letters and mount points on that
        volume (what a restore by drive letter finds).
    type: dict
    default: {}
    version_added: 0.1.0
  copy_only:
    description:
      - Ask for a VSS copy backup (the document's C(CopyOnly=True)).
      - The document's own default is a FULL backup, which tells SQL Server a full backup happened and changes its
        differential base; this module defaults to a copy backup so that it never breaks a native backup chain.
    type: bool
    default: true
  no_writers:
    description:
      - Leave the application writers out (the document's C(NoWriters=True)).
      - The snapshots are then not application-consistent; the set is tagged V(crash) and a warning says so, whatever
        C(AppConsistent) tag AWS writes.
    type: bool
    default: false
  policy:
    description:
      - The name of the retention policy the set belongs to.
    type: str
    default: default
  awx_job_id:
    description:
      - The id of the AWX / Automation Controller job that runs the backup, recorded in the tags
        (C(shadowsnap:awx-job-id)) so that a set leads back to its job. Omitted or empty, no tag is written.
    type: str
    version_added: 0.1.0
  tags:
    description:
      - User tags added to every snapshot of the set. Keys must not start with C(shadowsnap:) or C(aws:), and must
        not be one of the tags the document reserves (C(Device), C(AppConsistent), C(AwsVssConfig)).
    type: dict
    default: {}
  execution_timeout:
    description:
      - The document's C(executionTimeout) in seconds (the time the snapshot step may take on the instance).
      - The document's default applies when not given.
    type: int
  wait_timeout:
    description:
      - How long to wait for the command to reach a terminal status, in seconds.
    type: int
    default: 900
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Prerequisites on the instance - the SSM agent, the AwsVssComponents package, and an instance profile with the
    C(AWSEC2VssSnapshotPolicy) managed policy. t2, t3 and t3a nano and micro instances are not supported.
  - The snapshots exist without the schema tags between the end of the document and the C(CreateTags) call; a run
    that fails in between leaves them untagged (find them by their C(AwsVssConfig) tag).
  - Supports check mode - the instance and its Systems Manager status are checked; nothing is sent or created.
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Application-consistent set of all volumes through AWS VSS (copy backup)
  shadowsnap.ec2.ec2_vss_snapshot_set:
    instance_id: i-0123456789abcdef0
    set_id: "awx-{{ awx_job_id }}-{{ inventory_hostname }}"
    policy: daily
  register: vss_set

- name: The EBS volumes of D and E only, tagged with their drive letters (the other snapshots are discarded)
  shadowsnap.ec2.ec2_vss_snapshot_set:
    instance_id: i-0123456789abcdef0
    exclude_boot_volume: true
    volume_ids: [vol-0aac1b2c3d4e5f607, vol-0bbd2c3d4e5f60718]
    volume_metadata:
      vol-0aac1b2c3d4e5f607: {paths: ['D:\']}
      vol-0bbd2c3d4e5f60718: {paths: ['E:\']}

- name: Data volumes only, a full backup (SQL Server records it)
  shadowsnap.ec2.ec2_vss_snapshot_set:
    instance_id: i-0123456789abcdef0
    exclude_boot_volume: true
    copy_only: false
"""

RETURN = r"""
set_id:
  description: The id of the set.
  returned: always
  type: str
  sample: i-0123456789abcdef0-20261125T013700Z
instance_id:
  description: The instance the set belongs to.
  returned: always
  type: str
  sample: i-0123456789abcdef0
command_id:
  description: The SSM command that ran the document (empty when an existing set was returned, or in check mode).
  returned: always
  type: str
  sample: 0b2d6c1e-5a4f-4d8e-9c7b-1a2b3c4d5e6f
app_consistent:
  description: AWS's verdict - true when every snapshot carries C(AppConsistent=true).
  returned: success
  type: bool
aws_vss_config:
  description: The C(AwsVssConfig) tag AWS wrote on the snapshots.
  returned: success
  type: str
discarded_snapshots:
  description: The document's snapshots of volumes outside O(volume_ids), deleted (snapshot id to volume id).
  returned: when a command ran
  type: dict
  version_added: 0.1.0
vss_set_id:
  description: The VSS snapshot-set id read from C(AwsVssConfig) (null when it holds none).
  returned: when a command ran
  type: str
consistency:
  description: The consistency the set is tagged with (V(application) or V(crash)).
  returned: success
  type: str
  sample: application
status:
  description: V(completed), V(pending), V(error), V(incomplete), or V(planned) in check mode.
  returned: always
  type: str
  sample: pending
snapshots:
  description: The members of the set (as M(shadowsnap.ec2.ec2_snapshot_set) returns them).
  returned: always
  type: list
  elements: dict
volume_snapshot_map:
  description: Volume id to snapshot id.
  returned: always
  type: dict
tags:
  description: The schema tags added to every snapshot of the set.
  returned: always
  type: dict
invocation_status:
  description: The command's terminal status and output on the instance.
  returned: when a command ran
  type: dict
  sample: {"status": "Success", "status_details": "Success", "output": "..."}
timings:
  description: Seconds spent checking, running the command, finding and tagging the snapshots.
  returned: always
  type: dict
"""

import datetime
import re
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ssm_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ssm_client
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION

DOCUMENT_NAME = "AWSEC2-CreateVssSnapshot"
RESERVED_AWS_TAGS = ("Device", "AppConsistent", "AwsVssConfig")
# The document adds Name (empty unless given) and its three reserved tags to every snapshot.
DOCUMENT_TAG_COUNT = 4
UNSUPPORTED_TYPES = ("t2.nano", "t2.micro", "t3.nano", "t3.micro", "t3a.nano", "t3a.micro")
# Clock skew between the controller, SSM and EC2 tolerated when the command's time window is used.
WINDOW_SLACK = datetime.timedelta(seconds=60)
SET_ID_PATTERN = re.compile(r"snapshot.?set.?id\W+(\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                            r"[0-9a-fA-F]{12}\}?)", re.IGNORECASE)


class VssCommandError(Exception):
    """The command or its snapshots cannot give a set; the message says why, ``fields`` go into the result."""

    def __init__(self, message, **fields):
        super().__init__(message)
        self.fields = fields


def vss_set_id(config):
    """The VSS snapshot-set id inside an ``AwsVssConfig`` tag value, or None."""
    match = SET_ID_PATTERN.search(config or "")
    return match.group(1).strip("{}").lower() if match else None


def document_parameters(exclude_boot_volume, copy_only, no_writers, execution_timeout, description):
    parameters = {
        "ExcludeBootVolume": ["True" if exclude_boot_volume else "False"],
        "CopyOnly": ["True" if copy_only else "False"],
        "NoWriters": ["True" if no_writers else "False"],
        "CreateAmi": ["False"],
        "description": [description],
    }
    if execution_timeout:
        parameters["executionTimeout"] = [str(execution_timeout)]
    return parameters


def verdict(members, no_writers):
    """(app_consistent, consistency): AWS's verdict, and the consistency the set may claim."""
    app_consistent = bool(members) and all(tags.get("AppConsistent", "").lower() == "true" for tags in members)
    return app_consistent, "application" if app_consistent and not no_writers else "crash"


def check_managed(ssm, instance_id):
    information = ssm_api.describe_instance_information(ssm, instance_id)
    if not information:
        raise VssCommandError("instance %s is not a managed instance of Systems Manager in this Region (is the SSM agent "
                              "running, and does its instance profile allow Systems Manager?)" % instance_id)
    if information.get("PingStatus") != "Online":
        raise VssCommandError("the SSM agent of %s is %s, not Online" % (instance_id, information.get("PingStatus")))
    if information.get("PlatformType") not in (None, "Windows"):
        raise VssCommandError("instance %s runs %s; AWSEC2-CreateVssSnapshot needs Windows"
                              % (instance_id, information["PlatformType"]))


def check_tag_budget(set_id, instance_id, now, volumes, params, launch=None):
    """The schema tags plus the document's own must fit EC2's limit on every snapshot."""
    budget = snapshot_tags.build_set_tags(
        set_id=set_id, instance_id=instance_id, engine="aws_vss", consistency="application", created_at=now,
        version=COLLECTION_VERSION, volumes=volumes, policy=params["policy"], backup_type="full",
        user_tags=params["tags"], launch=launch, job_id=params["awx_job_id"])
    if len(budget) + DOCUMENT_TAG_COUNT > snapshot_tags.MAX_TAGS_PER_SNAPSHOT:
        raise VssCommandError("the set needs %d tags per snapshot (%d of them written by AWSEC2-CreateVssSnapshot); "
                              "EC2 allows %d. Pass fewer user tags."
                              % (len(budget) + DOCUMENT_TAG_COUNT, DOCUMENT_TAG_COUNT, snapshot_tags.MAX_TAGS_PER_SNAPSHOT))


def wait_for_command(ssm, command_id, instance_id, timeout):
    """The command's invocation once it reached a terminal status; VssCommandError after ``timeout`` seconds."""
    invocation = ssm_api.wait_for_command(ssm, command_id, instance_id, timeout) or {}
    if invocation.get("Status") not in ssm_api.TERMINAL_STATUSES:
        raise VssCommandError("command %s on %s is still %s after %d s (it may still create snapshots; look for "
                              "them by their AwsVssConfig tag)"
                              % (command_id, instance_id, invocation.get("Status") or "not listed", timeout),
                              command_id=command_id)
    return invocation


def find_document_snapshots(client, volume_ids, requested_at):
    """The snapshots the command created.

    Candidates are this account's snapshots of the instance's volumes with an ``AwsVssConfig`` tag and no schema tags,
    started in the command's time window. When their ``AwsVssConfig`` holds a snapshot-set id, the candidates of one
    set id are the set (two sets in the window are ambiguous); otherwise all candidates are.
    """
    filters = [{"Name": "volume-id", "Values": list(volume_ids)}, {"Name": "tag-key", "Values": ["AwsVssConfig"]}]
    since = requested_at - WINDOW_SLACK
    candidates = []
    for snapshot in ec2_api.describe_snapshots(client, filters):
        tags = boto3_tag_list_to_ansible_dict(snapshot.get("Tags", []))
        start = snapshot.get("StartTime")
        if snapshot_tags.KEY_SET_ID in tags or (start is not None and start < since):
            continue
        candidates.append((snapshot, tags))
    by_set = {}
    for snapshot, tags in candidates:
        by_set.setdefault(vss_set_id(tags.get("AwsVssConfig")), []).append((snapshot, tags))
    keyed = [key for key in by_set if key]
    if len(keyed) > 1:
        raise VssCommandError("the command's time window holds %d VSS snapshot sets of these volumes (%s); another "
                              "requester ran at the same time" % (len(keyed), ", ".join(sorted(keyed))))
    if keyed:
        return keyed[0], by_set[keyed[0]]
    return None, candidates


def planned_result(instance_id, set_id, volumes):
    snapshots = [{"volume_id": v["volume_id"], "device": v["device"], "paths": [], "shadow_id": None, "state": "planned"}
                 for v in volumes]
    return {"changed": True, "set_id": set_id, "instance_id": instance_id, "status": "planned", "command_id": "",
            "snapshots": snapshots, "volume_snapshot_map": {}, "tags": {}}


def existing_result(found, no_writers, timings):
    members = found["snapshots"]
    app_consistent = verdict([member["tags"] for member in members], no_writers)[0]
    return dict(found, changed=False, command_id="", app_consistent=app_consistent,
                aws_vss_config=members[0]["tags"].get("AwsVssConfig", ""), timings=timings,
                tags=dict((k, v) for k, v in members[0]["tags"].items() if k.startswith(snapshot_tags.PREFIX)))


def discard_unchosen(client, command_id, found, chosen):
    """The members of ``found`` whose volume is in ``chosen``, and the others, deleted ({snapshot id: volume id})."""
    unchosen = dict((snapshot["SnapshotId"], snapshot["VolumeId"]) for snapshot, tags in found
                    if snapshot["VolumeId"] not in chosen)
    for snapshot_id in sorted(unchosen):
        try:
            ec2_api.delete_snapshot(client, snapshot_id)
        except AnsibleAWSError as error:
            raise VssCommandError("could not delete %s, the document's snapshot of %s (not in the set): %s; nothing was "
                                  "tagged" % (snapshot_id, unchosen[snapshot_id], error), command_id=command_id) from error
    return [(snapshot, tags) for snapshot, tags in found if snapshot["VolumeId"] in chosen], unchosen


def tag_command_snapshots(module, client, command_id, requested_at, instance, plan, set_id, now):
    """(result fields, warnings) once the document succeeded: its snapshots found, those outside the set deleted, the
    set's given the schema tags. ``plan`` is (the set's volumes, the document's volumes, all attached volumes)."""
    params = module.params
    instance_id = params["instance_id"]
    selected, covered, attached = plan
    vss_set, found = find_document_snapshots(client, [v["volume_id"] for v in attached], requested_at)
    found_volumes = set(snapshot["VolumeId"] for snapshot, tags in found)
    expected = set(v["volume_id"] for v in covered)
    if found_volumes != expected or len(found) != len(expected):
        raise VssCommandError(
            "command %s succeeded but the snapshots found (%s) do not match the volumes it snapshots (%s); nothing "
            "was tagged" % (command_id, ", ".join(sorted(s["SnapshotId"] + " of " + s["VolumeId"] for s, t in found))
                            or "none", ", ".join(sorted(expected))), command_id=command_id)
    details = snapshot_sets.volume_details(selected, params["volume_metadata"])
    members, discarded = discard_unchosen(client, command_id, found, details)
    app_consistent, consistency = verdict([tags for snapshot, tags in members], params["no_writers"])
    volumes = dict((snapshot["VolumeId"], dict(details[snapshot["VolumeId"]],
                                               device=tags.get("Device") or details[snapshot["VolumeId"]]["device"]))
                   for snapshot, tags in members)
    set_tags = snapshot_tags.build_set_tags(
        set_id=set_id, instance_id=instance_id, engine="aws_vss", consistency=consistency, created_at=now,
        version=COLLECTION_VERSION, volumes=volumes, policy=params["policy"],
        backup_type="copy" if params["copy_only"] else "full", user_tags=params["tags"],
        launch=snapshot_sets.launch_record(instance), job_id=params["awx_job_id"])
    ec2_api.create_tags(client, [snapshot["SnapshotId"] for snapshot, tags in members], set_tags)
    tagged = snapshot_sets.find_snapshots(client, set_ids=[set_id])
    warnings = []
    if params["no_writers"]:
        warnings.append("set %s was taken with no_writers: the application writers were left out, so it is tagged "
                        "crash whatever AWS's AppConsistent tag says" % set_id)
    elif not app_consistent:
        warnings.append("AWS did not report set %s as application-consistent (AppConsistent is not true on every "
                        "snapshot); it is tagged crash" % set_id)
    result = dict(snapshot_sets.group_sets(tagged)[0], app_consistent=app_consistent, vss_set_id=vss_set,
                  discarded_snapshots=discarded,
                  aws_vss_config=members[0][1].get("AwsVssConfig", ""), tags=set_tags)
    return result, warnings


def ensure_vss_set(module, set_id, now):
    """(the task's result, warnings): the existing set with this id, or the set a new command created."""
    params = module.params
    began = time.monotonic()
    timings = {}
    instance_id = params["instance_id"]
    reserved = sorted(set(params["tags"]) & set(RESERVED_AWS_TAGS))
    if reserved:
        raise VssCommandError("tags %s are reserved by AWSEC2-CreateVssSnapshot and cannot be given" % ", ".join(reserved))
    check_tag_budget(set_id, instance_id, now, {snapshot_sets.PLACEHOLDER_VOLUME % 0: {"device": ""}}, params)
    client = ec2_client(module)
    ssm = ssm_client(module)

    found = snapshot_sets.find_existing_set(client, set_id, instance_id)
    if found:
        timings["total"] = round(time.monotonic() - began, 3)
        return existing_result(found, params["no_writers"], timings), []

    instance = snapshot_sets.describe_instance(client, instance_id)
    if instance.get("InstanceType") in UNSUPPORTED_TYPES:
        raise VssCommandError("instance type %s of %s is not supported by AWS VSS (t2, t3 and t3a nano and micro are "
                              "not); use the shadow engine" % (instance["InstanceType"], instance_id))
    selected, attached = snapshot_sets.select_volumes(
        instance, "data" if params["exclude_boot_volume"] else "all", volume_ids=params["volume_ids"],
        device_names=params["device_names"], include_boot=not params["exclude_boot_volume"])
    exclude_boot = not any(volume["boot"] for volume in selected)
    covered = snapshot_sets.select_volumes(instance, "data" if exclude_boot else "all")[0]
    details = snapshot_sets.volume_details(selected, params["volume_metadata"])
    check_managed(ssm, instance_id)
    check_tag_budget(set_id, instance_id, now, details, params, snapshot_sets.launch_record(instance))
    timings["preflight"] = round(time.monotonic() - began, 3)
    if module.check_mode:
        timings["total"] = timings["preflight"]
        return dict(planned_result(instance_id, set_id, selected), timings=timings), []

    description = "shadowsnap.ec2 set %s of %s (aws_vss)" % (set_id, instance_id)
    parameters = document_parameters(exclude_boot, params["copy_only"], params["no_writers"],
                                     params["execution_timeout"], description)
    command_began = time.monotonic()
    command = ssm_api.send_command(ssm_client(module, idempotent=False), DOCUMENT_NAME, instance_id, parameters,
                                   ("shadowsnap.ec2 %s" % set_id)[:100])
    command_id = command["CommandId"]
    try:
        invocation = wait_for_command(ssm, command_id, instance_id, params["wait_timeout"])
        timings["command"] = round(time.monotonic() - command_began, 3)
        invocation_status = {"status": invocation.get("Status"), "status_details": invocation.get("StatusDetails"),
                             "output": invocation.get("StandardOutputContent", ""),
                             "error_output": invocation.get("StandardErrorContent", "")}
        if invocation["Status"] != "Success":
            raise VssCommandError("%s failed on %s: %s (%s). Output: %s" % (
                DOCUMENT_NAME, instance_id, invocation["Status"], invocation.get("StatusDetails"),
                (invocation.get("StandardOutputContent") or invocation.get("StandardErrorContent") or "").strip()),
                command_id=command_id, invocation_status=invocation_status)
        tag_began = time.monotonic()
        result, warnings = tag_command_snapshots(module, client, command_id, command.get("RequestedDateTime") or now,
                                                 instance, (selected, covered, attached), set_id, now)
    except AnsibleAWSError as error:
        raise VssCommandError("%s; command %s was sent, so its snapshots may exist without the schema tags (find them by "
                              "their AwsVssConfig tag)" % (error, command_id), command_id=command_id) from error
    timings["tag"] = round(time.monotonic() - tag_began, 3)
    timings["total"] = round(time.monotonic() - began, 3)
    return dict(result, changed=True, command_id=command_id, invocation_status=invocation_status, timings=timings), warnings


def main():
    argument_spec = dict(
        instance_id=dict(type="str", required=True),
        set_id=dict(type="str"),
        exclude_boot_volume=dict(type="bool", default=False),
        volume_ids=dict(type="list", elements="str"),
        device_names=dict(type="list", elements="str"),
        volume_metadata=dict(type="dict", default={}),
        copy_only=dict(type="bool", default=True),
        no_writers=dict(type="bool", default=False),
        policy=dict(type="str", default="default"),
        tags=dict(type="dict", default={}),
        awx_job_id=dict(type="str"),
        execution_timeout=dict(type="int"),
        wait_timeout=dict(type="int", default=900),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    instance_id = module.params["instance_id"]
    now = datetime.datetime.now(datetime.timezone.utc)
    set_id = module.params["set_id"] or snapshot_tags.default_set_id(instance_id, now)
    try:
        result, warnings = ensure_vss_set(module, set_id, now)
    except VssCommandError as error:
        module.fail_json(msg=str(error), set_id=set_id, instance_id=instance_id, **error.fields)
    except (snapshot_sets.SnapshotSetError, snapshot_tags.TagSchemaError) as error:
        module.fail_json(msg=str(error), set_id=set_id, instance_id=instance_id)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
