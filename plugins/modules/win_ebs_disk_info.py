#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_ebs_disk_info.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_ebs_disk_info
short_description: Map the volumes of a Windows EC2 instance to its EBS volumes and cross-check them with EC2
version_added: 0.1.0
description:
  - Tells, for every Windows volume of a host, its drive letter and mount points, file system, size, the disks it lives
    on, the EBS volumes and EC2 device names behind them, whether instance store is involved, its dynamic-disk or
    Storage Spaces membership, and its VSS shadow storage.
  - Reads the host with one round trip of the collection's agent (a PowerShell script sent with the request, nothing
    is installed) - C(Get-Disk), C(Get-Partition), C(Get-Volume), C(Win32_DiskDrive), C(Win32_ShadowStorage), storage
    pools, and the instance identity from IMDSv2.
  - On Nitro instances the NVMe serial number of a disk carries its EBS volume id. On Xen instances (AWS PV driver) the
    SCSI target id gives the device name and the instance's block-device mapping gives the volume attached there.
  - Cross-checks both ways - every EBS volume EC2 lists as attached must be a disk Windows sees, and every EBS disk
    Windows sees must be attached - and fails naming the volume, the device and the side that is missing it.
  - The block-device mapping comes from O(block_device_mappings) when given (no AWS call), else from one
    DescribeInstances call made on the controller with the usual amazon.aws options and environment variables.
options:
  instance_id:
    description:
      - The EC2 instance id of the host.
      - By default the host tells it (IMDSv2); then this option, when set, must agree.
      - Without IMDS, this option, else the host variable C(instance_id) (as set by the amazon.aws.aws_ec2 inventory).
    type: str
  block_device_mappings:
    description:
      - The instance's block-device mapping, to cross-check against without calling EC2.
      - The C(block_device_mappings) list of an instance from M(amazon.aws.ec2_instance_info) (C(device_name),
        C(ebs.volume_id), C(ebs.status)), boto3's C(BlockDeviceMappings) (C(DeviceName), C(Ebs.VolumeId)), or items
        with C(device) and C(volume_id).
    type: list
    elements: dict
  fail_on_mismatch:
    description:
      - Fail when Windows and EC2 disagree (a volume attached but not seen, a disk seen but not attached, an EBS disk
        whose volume id cannot be told).
      - With V(false) the task reports the disagreement in RV(cross_check) and succeeds.
    type: bool
    default: true
  select_volumes:
    description:
      - Drive letters, mount points, EBS volume ids or device names to resolve into the EBS volumes that hold them,
        returned as RV(ebs_selection) (what the backup role's C(crash) and C(aws_vss) engines snapshot and tag).
      - A name that is not on the host, or a Windows volume not wholly on EBS volumes with a known id, fails the task.
    type: list
    elements: str
    version_added: 0.1.0
  include_boot:
    description:
      - Add the EBS volumes of the boot and system volumes to RV(ebs_selection).
    type: bool
    default: false
    version_added: 0.1.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
  - shadowsnap.ec2.windows_agent.region
  - amazon.aws.common.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: The plugin only reads; it runs in check mode as it does otherwise.
  diff_mode:
    support: none
    details: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later on Amazon EC2 (Nitro or Xen).
notes:
  - Costs one round trip to the host (more only when a connection failure is retried) and at most one
    DescribeInstances call. RV(round_trips) counts the round trips.
  - The AWS options apply to the controller, where the plugin runs; the host needs no AWS credentials.
seealso:
  - module: shadowsnap.ec2.win_vss_writer_info
  - module: amazon.aws.ec2_instance_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Map the disks (instance identity from IMDSv2, block-device mapping from EC2)
  shadowsnap.ec2.win_ebs_disk_info:
  register: disks

- name: The EBS volumes behind drive D
  ansible.builtin.debug:
    msg: "{{ (disks.volumes | selectattr('drive_letter', 'equalto', 'D') | first).ebs_volume_ids }}"

- name: Read the instance once on the controller
  amazon.aws.ec2_instance_info:
    instance_ids: ["{{ instance_id }}"]
  delegate_to: localhost
  register: ec2

- name: Map the disks against that block-device mapping, without another AWS call
  shadowsnap.ec2.win_ebs_disk_info:
    instance_id: "{{ instance_id }}"
    block_device_mappings: "{{ ec2.instances[0].block_device_mappings }}"

- name: Report a disagreement instead of failing
  shadowsnap.ec2.win_ebs_disk_info:
    fail_on_mismatch: false
  register: disks
"""

RETURN = r"""
instance:
  description: The instance the host is, and where that came from.
  returned: success
  type: dict
  contains:
    instance_id:
      description: The instance id.
      type: str
      sample: i-0123456789abcdef0
    region:
      description: The Region used.
      type: str
    availability_zone:
      description: The Availability Zone, when known.
      type: str
    account_id:
      description: The account id from the instance identity document, when known.
      type: str
    instance_type:
      description: The instance type from the instance identity document, when known.
      type: str
    identity_source:
      description: V(imds), V(option) or V(inventory).
      type: str
platform:
  description: How disks show their EBS volumes - V(nitro), V(xen), V(mixed) or V(unknown).
  returned: success
  type: str
volumes:
  description: One item per Windows volume (CD-ROM drives left out).
  returned: success
  type: list
  elements: dict
  contains:
    unique_id:
      description: The volume name C(\\?\Volume{guid}\), GUID in lower case.
      type: str
    drive_letter:
      description: The drive letter without colon, or null.
      type: str
      sample: D
    mount_points:
      description: Folder mount points (access paths other than the drive root and the volume name).
      type: list
      elements: str
    access_paths:
      description: Every access path of the volume's partition.
      type: list
      elements: str
    file_system:
      description: The file system.
      type: str
      sample: NTFS
    label:
      description: The file system label.
      type: str
    size:
      description: Size in bytes.
      type: int
    size_remaining:
      description: Free bytes.
      type: int
    layout:
      description: V(basic), V(dynamic) (dynamic disks), V(storage_pool) (Storage Spaces) or V(unknown).
      type: str
    storage_pool:
      description: The Storage Spaces pool the volume lives in, or null.
      type: str
    disk_numbers:
      description: The disks under the volume (for a pool, its physical member disks).
      type: list
      elements: int
    ebs_volume_ids:
      description: Every EBS volume the volume depends on - all of them belong in one snapshot set.
      type: list
      elements: str
    devices:
      description: The EC2 device names of those volumes.
      type: list
      elements: str
    all_ebs:
      description: Whether every disk under the volume is an EBS volume with a known id.
      type: bool
    instance_store:
      description: Whether instance store is involved (its data is not in any EBS snapshot).
      type: bool
    is_boot:
      description: Whether the volume holds the boot partition.
      type: bool
    is_system:
      description: Whether the volume holds the system partition.
      type: bool
    shadow_storage:
      description:
        - The volume's VSS shadow storage (diff area) association, or null.
        - C(diff_volume) is where the shadow copies' data lives, C(same_volume) whether that is the volume itself;
          C(used_space), C(allocated_space) and C(max_space) are bytes (C(max_space) null with
          C(max_space_unbounded)).
      type: dict
    hosts_shadow_storage_for:
      description: Volumes whose shadow storage lives on this volume.
      type: list
      elements: str
disks:
  description: One item per disk, with storage pool members that Windows hides from C(Get-Disk).
  returned: success
  type: list
  elements: dict
  contains:
    number:
      description: The Windows disk number.
      type: int
    kind:
      description: V(ebs), V(instance_store), V(storage_space) (a pool's virtual disk) or V(other).
      type: str
    platform:
      description: V(nitro) or V(xen) for Amazon disks, else null.
      type: str
    ebs_volume_id:
      description: The EBS volume id, or null.
      type: str
    volume_id_source:
      description: V(serial) (Nitro, or a Xen serial) or V(block_device_mapping) (Xen, by device name).
      type: str
    device:
      description: The EC2 device name.
      type: str
      sample: xvdf
    scsi_target_id:
      description: The SCSI target id (what names the device on Xen).
      type: int
    serial_number:
      description: The disk serial number as Windows reports it.
      type: str
    offline:
      description: Whether the disk is offline.
      type: bool
    storage_pool:
      description: The pool the disk is a member of, or null.
      type: str
    volumes:
      description: The volumes on the disk.
      type: list
      elements: str
    problems:
      description: Why the disk's EBS identity is unknown or doubtful.
      type: list
      elements: str
storage_pools:
  description: Storage Spaces pools with their member disks, volumes and EBS volumes.
  returned: success
  type: list
  elements: dict
shadow_storage:
  description: Every VSS shadow storage association of the host.
  returned: success
  type: list
  elements: dict
attachments:
  description: The EBS attachments of the instance, each with C(seen_by_windows) and C(disk_number).
  returned: success
  type: list
  elements: dict
cross_check:
  description: The comparison of Windows disks and EC2 attachments.
  returned: success
  type: dict
  contains:
    ok:
      description: Whether both sides agree.
      type: bool
    errors:
      description: One message per disagreement, naming the volume, the device and the side missing it.
      type: list
      elements: str
    missing_in_windows:
      description: Attached volumes Windows does not see (C(volume_id), C(device)).
      type: list
      elements: dict
    missing_in_ec2:
      description: EBS disks Windows sees that EC2 does not list as attached (C(volume_id), C(device), C(disk_number)).
      type: list
      elements: dict
problems:
  description: Volumes or disks whose EBS identity could not be told (also shown as warnings).
  returned: success
  type: list
  elements: str
ebs_selection:
  description:
    - The EBS volumes that hold what O(select_volumes) names, and the Windows paths on each in the tag schema's form
      (C(D:\\), C(C:\\mnt\\logs\\)). A Windows volume spanning several EBS volumes brings all of them; every
      Windows volume on a chosen EBS volume is recorded on it.
    - C(volume_metadata) is what M(shadowsnap.ec2.ec2_snapshot_set) and M(shadowsnap.ec2.ec2_vss_snapshot_set) take.
  returned: when O(select_volumes) is given
  type: dict
  contains:
    volume_ids:
      description: The EBS volume ids.
      type: list
      elements: str
    volume_metadata:
      description: EBS volume id to C({paths}).
      type: dict
  version_added: 0.1.0
block_device_mapping_source:
  description: V(option) (O(block_device_mappings)) or V(ec2) (DescribeInstances).
  returned: success
  type: str
windows_hostname:
  description: The host's computer name.
  returned: success
  type: str
hresult:
  description: The HRESULT the agent reported, when an agent operation failed with one.
  returned: on an agent failure with an HRESULT
  type: int
hresult_name:
  description: Its symbolic name, such as V(E_ACCESSDENIED).
  returned: on an agent failure with a known HRESULT
  type: str
round_trips:
  description: Commands sent to the host (1, more when a connection failure was retried).
  returned: always
  type: int
  sample: 1
timings:
  description: Seconds spent per phase (C(read) for the host, C(ec2) for the block-device mapping) and C(total).
  returned: always
  type: dict
  sample: {"read": 1.2, "total": 1.3}
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
