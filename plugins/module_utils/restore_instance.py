# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A whole-instance restore's AWS part: a new instance launched from an AMI, stopped, with a set's volumes swapped in.

A Windows root snapshot cannot be registered as an AMI (its billing product code would be lost), so the instance is
launched from the original's AMI (or one given) and its launch volumes are replaced by volumes restored from the set
(``restore_volumes``), root included, on the stopped instance (``volume_swap``). Where the instance goes (zone, subnet,
type, security groups, key pair, instance profile, private IP) comes from the request, else from the original instance
when it still exists, else from the launch record the set carries (docs/tag-schema.md). The original instance is only
read. Each step is planned from what EC2 says now - the instance found by its restore tag, the volumes found by theirs
- so a re-run resumes where an interrupted one stopped. A request that cannot be carried out as asked raises
:class:`RestoreError` before anything is created.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import uuid

from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.restore_volumes import RestoreError
from ansible_collections.shadowsnap.ec2.plugins.module_utils.restore_volumes import restored_consistency
from ansible_collections.shadowsnap.ec2.plugins.module_utils.snapshot_sets import launch_record
from ansible_collections.shadowsnap.ec2.plugins.module_utils.snapshot_sets import normalise_device

# Request option -> launch record field, in the order a plan reports them.
PLACEMENT_OPTIONS = (("image_id", "image_id"), ("instance_type", "instance_type"), ("subnet_id", "subnet_id"),
                     ("security_group_ids", "security_group_ids"), ("key_name", "key_name"),
                     ("iam_instance_profile", "iam_instance_profile"))
REQUIRED = ("image_id", "instance_type", "subnet_id", "security_group_ids")
GONE_STATES = ("shutting-down", "terminated")


def default_restore_id(set_id, subnet_id):
    """A restore of this set into this subnet: a re-run with the same inputs finds the same instance and volumes."""
    return "%s@%s" % (set_id, subnet_id)


def run_token(restore_id):
    """RunInstances' client token for this run (64 characters at most): a lost answer retried within the run gets the
    instance back; a later run finds it by its tag instead, since EC2 keeps a token's instance after it terminated."""
    return hashlib.sha256(("%s/%s" % (restore_id, uuid.uuid4().hex)).encode("utf-8")).hexdigest()[:64]


def read_original(client, instance_id):
    """The original instance's launch record, or None when it is gone (terminated, or no longer listed)."""
    instances = ec2_api.describe_instances(client, [instance_id]) if instance_id else []
    if not instances or instances[0].get("State", {}).get("Name") in GONE_STATES:
        return None
    return launch_record(instances[0])


def resolve_launch(options, original, recorded, set_id):
    """(launch fields, {field: where it came from}) for the new instance: each option given, else the original's,
    else the set's record. RestoreError names what is missing and how to give it."""
    launch, sources = {}, {}
    for option, field in PLACEMENT_OPTIONS:
        for source, values in (("input", options), ("original", original), ("set", recorded)):
            value = (values or {}).get(option if source == "input" else field)
            if value:
                launch[field], sources[field] = value, source
                break
        else:
            launch[field], sources[field] = None, None
    missing = [field for field in REQUIRED if not launch[field]]
    if missing:
        raise RestoreError("%s; give %s" % ("; ".join(filter(None, (
            "the original instance is gone" if original is None else "the original instance has no %s" % ", ".join(
                field for field in missing if not original.get(field)),
            "set %s does not record %s%s" % (set_id, ", ".join(missing), "" if recorded else
                                             " (it was made before sets recorded where their instance was)")))),
            ", ".join(missing)))
    return launch, sources


def check_subnet(client, launch, zone):
    """The zone of the new instance: the subnet's (which must exist, and be in ``zone`` when one is given)."""
    subnets = ec2_api.describe_subnets(client, [launch["subnet_id"]])
    if not subnets:
        raise RestoreError("subnet %s does not exist in this account and Region" % launch["subnet_id"])
    subnet_zone = subnets[0]["AvailabilityZone"]
    if zone and zone != subnet_zone:
        raise RestoreError("availability_zone %s is not the zone of subnet %s (%s); give a subnet of %s"
                           % (zone, launch["subnet_id"], subnet_zone, zone))
    return subnet_zone


def check_image(client, image_id, source):
    """The AMI to launch from; RestoreError when it is gone (a Windows root snapshot cannot be registered instead)."""
    images = ec2_api.describe_images(client, [image_id])
    if not images or images[0].get("State") not in (None, "available"):
        raise RestoreError(
            "AMI %s (%s) %s; give image_id, an AMI of the same Windows Server version (a Windows root snapshot cannot "
            "be registered as an AMI: its billing product code would be lost)" % (
                image_id, {"input": "given", "original": "the original instance's", "set": "recorded in the set"}[source],
                "is %s" % images[0]["State"] if images else "no longer exists"))
    return images[0]


def private_ip(options, original, recorded, launch):
    """The private IP: the one given; else the recorded one when the instance goes back into the recorded subnet and
    the original is gone (its address is free then); else EC2 chooses."""
    if options.get("private_ip_address"):
        return options["private_ip_address"], "input"
    if original is None and recorded and recorded.get("private_ip") and recorded.get("subnet_id") == launch["subnet_id"]:
        return recorded["private_ip"], "set"
    return None, None


def check_root(found, recorded):
    """The set's root member (the member at the recorded root device); RestoreError when there is none: a new
    instance needs the set's root volume."""
    root_device = (recorded or {}).get("root_device_name")
    roots = [m for m in found["snapshots"] if root_device and normalise_device(m["device"]) == normalise_device(root_device)]
    if not roots:
        raise RestoreError("set %s has no root volume%s: a whole-instance restore needs a set taken with the boot volume "
                           "(volumes: all, or include_boot)" % (
                               found["set_id"], " (root device %s)" % root_device if root_device else
                               " recorded (made before sets recorded the root device)"))
    return roots[0]


def launch_parameters(launch, image, ip):
    """RunInstances' parameters; the AMI's own data volumes are left out (NoDevice), as the set's take their places."""
    parameters = {"ImageId": launch["image_id"], "InstanceType": launch["instance_type"],
                  "SubnetId": launch["subnet_id"], "SecurityGroupIds": list(launch["security_group_ids"])}
    if launch["key_name"]:
        parameters["KeyName"] = launch["key_name"]
    if launch["iam_instance_profile"]:
        parameters["IamInstanceProfile"] = {"Name": launch["iam_instance_profile"]}
    if ip:
        parameters["PrivateIpAddress"] = ip
    root = normalise_device(image.get("RootDeviceName"))
    others = [{"DeviceName": m["DeviceName"], "NoDevice": ""} for m in image.get("BlockDeviceMappings") or ()
              if "Ebs" in m and normalise_device(m["DeviceName"]) != root]
    if others:
        parameters["BlockDeviceMappings"] = others
    return parameters


def find_restored_instance(client, restore_id):
    """The instance an earlier run of this restore launched (not terminated), or None; RestoreError for several."""
    filters = [{"Name": "tag:" + snapshot_tags.KEY_RESTORE_ID, "Values": [restore_id]},
               {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    found = ec2_api.find_instances(client, filters)
    if len(found) > 1:
        raise RestoreError("restore %s has several instances (%s); terminate the extra ones and run again"
                           % (restore_id, ", ".join(sorted(i["InstanceId"] for i in found))))
    return found[0] if found else None


def swap_devices(instance, root_member, by_member):
    """Where each restored volume goes on the new instance: its recorded device; the root volume at the new
    instance's root device (the AMI's name for it)."""
    devices = {}
    root_volume = by_member.get(root_member["volume_id"])
    if root_volume and instance.get("RootDeviceName"):
        devices[root_volume["VolumeId"]] = instance["RootDeviceName"]
    return devices


def volume_entry(volume, member, found, root, device):
    """One entry of the result's volume list: what the volume holds now and what it can reach."""
    consistency = restored_consistency(found["engine"], found["consistency"])
    revert = found["engine"] == "shadow" and found["consistency"] == "application"
    return {
        "source_volume_id": member["volume_id"], "volume_id": volume["VolumeId"] if volume else None,
        "snapshot_id": member["snapshot_id"], "device": device, "source_device": member["device"],
        "paths": member["paths"], "shadow_id": member["shadow_id"], "root": root, "consistency": consistency,
        "needs_shadow_revert": revert and not root,
        "reaches": "crash" if root and revert else ("application" if revert else consistency),
    }
