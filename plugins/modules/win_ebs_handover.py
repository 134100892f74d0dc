#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_ebs_handover.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_ebs_handover
short_description: Hand a Windows host's volumes over for an in-place swap, and take the restored ones back
version_added: 0.1.0
description:
  - The Windows half of an in-place restore (role C(shadowsnap.ec2.restore), O(state=released) before
    M(shadowsnap.ec2.ec2_volume_swap), O(state=restored) after it) in five round trips in all, where
    M(shadowsnap.ec2.win_service_set), M(shadowsnap.ec2.win_ebs_disk) and M(shadowsnap.ec2.win_vss_shadow_restore)
    take about ten. It decides exactly as they do; it only carries several of their changes in one request (an agent
    C(sequence), carried out in order; the first failure ends it; never sent twice).
  - O(state=released) stops O(services) and the services of the application writers whose components are on
    O(volumes) (the operating system's own writers are never stopped), then takes the volumes' disks offline. When
    the stop fails nothing is taken offline; RV(were_running) always says what to start again.
  - O(state=restored) brings the disks of the restored O(volumes) online with their paths (a disk that collides with
    an online disk is refused unless O(allow_resign=true), as M(shadowsnap.ec2.win_ebs_disk) does), reverts each of
    O(shadows) to the shadow copy stored in it (C(diskshadow) for client-accessible shadow copies, C(vssadmin) for the
    others), starts O(services) and checks that Windows shows every volume online. A missing or refused shadow copy
    fails the task before any service starts unless O(fail_on_unavailable=false); then the other reverts and the
    start go on and RV(consistency) says V(crash).
options:
  state:
    description: V(released) before the swap, V(restored) after it.
    type: str
    choices: [released, restored]
    required: true
  volumes:
    description:
      - The EBS volumes with their paths (drive letters C(D:) and mount folders) - the originals for V(released), the
        restored volumes for V(restored) (the C(volumes) of M(shadowsnap.ec2.ec2_snapshot_set_volumes)' result).
    type: list
    elements: dict
    required: true
    suboptions:
      volume_id:
        description: The EBS volume id.
        type: str
        required: true
      paths:
        description: Its drive letter and mount folders.
        type: list
        elements: str
        default: []
  services:
    description:
      - V(released) - services to stop besides the writers' (for example an agent that reads the data).
      - V(restored) - the services to start, usually the RV(were_running) of the V(released) task.
    type: list
    elements: str
    default: []
  shadows:
    description: V(restored) - the shadow copies to revert, each with the EBS volume that carries it.
    type: list
    elements: dict
    default: []
    suboptions:
      shadow_id:
        description: The shadow copy id from the snapshot's tags.
        type: str
        required: true
      volume_id:
        description: The restored EBS volume it is stored on (tagged after its revert with O(tag_volumes)).
        type: str
  allow_resign:
    description: Bring a colliding disk online anyway; Windows gives it new disk and volume ids.
    type: bool
    default: false
  fail_on_unavailable:
    description: Fail, before any service starts, when a shadow copy is missing or its revert was refused.
    type: bool
    default: true
  tag_volumes:
    description:
      - Tag each reverted EBS volume with the consistency its data has now, V(application), from the controller (one
        C(CreateTags) for all of them, with the AWS options below).
      - Before V(restored) reverts, a volume of O(shadows) already tagged V(application) (an earlier run reverted it,
        and a revert deletes its shadow copy) is reported V(reverted) and left alone (one C(DescribeVolumes) from the
        controller, no round trip to the host).
    type: bool
    default: false
  record:
    description:
      - Names a record the host keeps of the services stopped (for example a restore id), as
        M(shadowsnap.ec2.win_service_set)'s O(shadowsnap.ec2.win_service_set#module:record) does.
      - V(released) - the services the stop finds running are added to the record before any of them stops, in the
        same round trip.
      - V(restored) - the recorded services are started too (O(services) may then be empty), and the record is removed
        once they run. So a run after a controller died, which finds the services already stopped, still starts again
        those that were running before the first stop.
    type: str
    default: ""
    version_added: 0.1.0
  timeout:
    description: Seconds each service has to stop or start, and to wait for the disks of just attached volumes.
    type: int
    default: 60
  poll_seconds:
    description: Seconds between two reads of the storage while waiting for disks.
    type: int
    default: 2
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
  - amazon.aws.common.modules
  - amazon.aws.region.modules
attributes:
  check_mode:
    support: full
    details: Reads the host and returns the services, disks and shadow copies it would change.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later (C(diskshadow)). Verified in the collection's lab only (docs/restore.md).
notes:
  - V(released) costs two round trips (read; stop and offline). V(restored) costs three (read the storage, again while
    a disk has not appeared; online and read the shadow copies; revert, start and verify), one more per refused revert
    when O(fail_on_unavailable=false).
seealso:
  - module: shadowsnap.ec2.win_service_set
  - module: shadowsnap.ec2.win_ebs_disk
  - module: shadowsnap.ec2.win_vss_shadow_restore
  - module: shadowsnap.ec2.ec2_volume_swap
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Stop what owns D and E and take them offline
  shadowsnap.ec2.win_ebs_handover:
    state: released
    volumes: "{{ restored.volumes | items2dict(key_name='source_volume_id', value_name='paths')
                 | dict2items(key_name='volume_id', value_name='paths') }}"
  register: released

- name: Swap the restored volumes in
  shadowsnap.ec2.ec2_volume_swap:
    instance_id: "{{ instance_id }}"
    state: swapped
    volume_ids: "{{ restored.volumes | map(attribute='volume_id') | list }}"
  delegate_to: localhost

- name: Online, revert to the shadow copies stored in them, start again
  shadowsnap.ec2.win_ebs_handover:
    state: restored
    volumes: "{{ restored.volumes | items2dict(key_name='volume_id', value_name='paths')
                 | dict2items(key_name='volume_id', value_name='paths') }}"
    shadows: "{{ restored.volumes | selectattr('shadow_id') | items2dict(key_name='shadow_id', value_name='volume_id')
                 | dict2items(key_name='shadow_id', value_name='volume_id') }}"
    services: "{{ released.were_running }}"
    tag_volumes: true
"""

RETURN = r"""
names:
  description: V(released) - the services stopped, in order.
  returned: success, O(state=released)
  type: list
  elements: str
writer_services:
  description: V(released) - the services found from the writers of O(volumes).
  returned: success, O(state=released)
  type: list
  elements: str
were_running:
  description:
    - V(released) - the services that were running before the task (what to start again); with O(record), also those
      the record holds.
  returned: O(state=released)
  type: list
  elements: str
recorded:
  description: With O(record), the services the record holds (after V(released)) or held (before the start of V(restored)).
  returned: success with O(record), not in check mode
  type: list
  elements: str
services:
  description: Each service stopped or started, with C(name), C(previous_status) and C(status).
  returned: not in check mode
  type: list
  elements: dict
disks:
  description: One entry per volume, as M(shadowsnap.ec2.win_ebs_disk) returns them.
  returned: success
  type: list
  elements: dict
shadows:
  description:
    - V(restored) - one entry per shadow copy, as M(shadowsnap.ec2.win_vss_shadow_restore) returns them; C(outcome)
      V(reverted) (with C(changed=false) when an earlier run reverted it), V(missing), V(refused) or None (not tried).
  returned: O(state=restored)
  type: list
  elements: dict
consistency:
  description: V(restored) with O(shadows) - V(application) only when every shadow copy was reverted, else V(crash).
  returned: success, O(state=restored) with O(shadows)
  type: str
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
  sample: 3
timings:
  description: Seconds spent per phase and C(total).
  returned: always
  type: dict
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
