#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_ebs_disk.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_ebs_disk
short_description: Bring the disks of EBS volumes online or offline on a Windows host
version_added: 0.1.0
description:
  - Finds the disk of each EBS volume by its serial (Nitro NVMe) or SCSI target (Xen), as
    M(shadowsnap.ec2.win_ebs_disk_info) does, and brings it online with its drive letter and mount folders
    (O(state=online)) or takes it offline (O(state=offline), before its EBS volume is detached).
  - A disk cloned from a disk that is online on the same host has the same disk signature (MBR) or disk GUID (GPT), so
    Windows keeps it offline, and bringing it online re-signs it (new ids; a re-signed system disk no longer boots).
    The task refuses that, naming both disks, unless O(allow_resign=true). Restoring in place (the source detached
    first) or to another instance avoids the collision.
  - A drive letter that another volume holds is left to it; RV(disks[].drive_letter_in_use) says so.
options:
  volumes:
    description:
      - The EBS volumes, each with the paths it should have (drive letters C(D:) and mount folders), for example the
        C(paths) of M(shadowsnap.ec2.ec2_snapshot_set_volumes)' result.
    type: list
    elements: dict
    required: true
    suboptions:
      volume_id:
        description: The EBS volume id.
        type: str
        required: true
      paths:
        description: Drive letter and mount folders for O(state=online).
        type: list
        elements: str
        default: []
  state:
    description: Online or offline.
    type: str
    choices: [online, offline]
    default: online
  allow_resign:
    description: Bring a colliding disk online anyway; Windows gives it new disk and volume ids.
    type: bool
    default: false
  read_only:
    description: Bring the disks online read-only (Windows then may not show the shadow copies stored on them).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the disks of just attached volumes to appear.
    type: int
    default: 60
  poll_seconds:
    description: Seconds between two reads of the storage while waiting.
    type: int
    default: 2
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
attributes:
  check_mode:
    support: full
    details: Reads the storage and returns what it would change.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later. Verified in the collection's lab only (docs/restore.md).
notes:
  - Costs one round trip to read the storage (more while waiting for disks) and one to change the disks.
seealso:
  - module: shadowsnap.ec2.win_ebs_disk_info
  - module: shadowsnap.ec2.ec2_volume_swap
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Take the original volumes offline before the swap
  shadowsnap.ec2.win_ebs_disk:
    state: offline
    volumes: "{{ restored.volumes | map(attribute='source_volume_id') | map('community.general.dict_kv', 'volume_id') }}"

- name: The restored disks online with their recorded drive letters
  shadowsnap.ec2.win_ebs_disk:
    volumes:
      - volume_id: vol-0123456789abcdef0
        paths: ['D:\\']
"""

RETURN = r"""
disks:
  description: One entry per volume.
  returned: success
  type: list
  elements: dict
  contains:
    volume_id:
      description: The EBS volume id.
      type: str
    disk_number:
      description: The Windows disk number.
      type: int
    changed:
      description: Whether the task changed the disk.
      type: bool
    collides_with:
      description: The EBS volume whose online disk has the same disk id (O(state=online)).
      type: str
    resigned:
      description: Whether Windows re-signed the disk as it came online.
      type: bool
    drive_letter:
      description: Its drive letter now.
      type: str
    drive_letter_in_use:
      description: The drive letter asked for, held by another volume.
      type: str
    access_paths:
      description: The access paths of its data partition.
      type: list
      elements: str
hresult:
  description: The HRESULT of a failure the agent reported, when there is one.
  returned: when the agent reported a failure
  type: int
hresult_name:
  description: Its symbolic name.
  returned: when the agent reported a failure with a known HRESULT
  type: str
round_trips:
  description: Commands sent to the host.
  returned: always
  type: int
  sample: 2
timings:
  description: Seconds spent per phase and C(total).
  returned: always
  type: dict
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
