#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_vss_shadow_restore.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_vss_shadow_restore
short_description: Revert restored volumes to the VSS shadow copies stored in them, or expose those read-only
version_added: 0.1.0
description:
  - A volume restored from a C(shadow) engine set holds the crash-consistent image of the EBS snapshot and the
    application-consistent shadow copy stored inside it. This module finds each shadow copy by its id (the
    C(shadow_id) of the restore's tags) once the volume is online read-write, then reverts the volume to it
    (O(action=revert)) or exposes it read-only (O(action=expose)).
  - O(action=unexpose) gives back the drive letter or folder O(shadows[].expose_path) a shadow copy is exposed at
    (C(diskshadow unexpose)), before the restored volume is taken offline and discarded; the shadow copy stays. A
    shadow copy not exposed there (or gone) is reported V(unexposed) without a change, so a re-run after a half-done
    cleanup goes on.
  - Revert needs Windows Server and never applies to the system volume. C(diskshadow revert) is documented for
    client-accessible shadow copies only, so with O(tool=auto) those are reverted with C(diskshadow) and every other
    one with C(vssadmin revert shadow /ForceDismount) - whose answer for diskshadow's persistent context Microsoft
    does not document. A refusal is reported per shadow copy with its HRESULT.
  - RV(consistency) is V(application) only when every shadow copy was reverted or exposed; otherwise the volumes hold
    the crash-consistent image only.
  - Nothing may be written to a restored volume before its revert - each write grows the diff area and can make VSS
    delete the shadow copy.
options:
  shadows:
    description: The shadow copies.
    type: list
    elements: dict
    required: true
    suboptions:
      shadow_id:
        description: The shadow copy id.
        type: str
        required: true
      volume_id:
        description: The EBS volume that holds it (reported back).
        type: str
      expose_path:
        description: For O(action=expose) and O(action=unexpose), a drive letter C(X:) or a folder.
        type: str
  action:
    description: Revert, expose, or give an exposure back (V(unexpose)).
    type: str
    choices: [revert, expose, unexpose]
    required: true
  tool:
    description: The tool that reverts (V(auto) chooses by the shadow copy's context).
    type: str
    choices: [auto, diskshadow, vssadmin]
    default: auto
  fail_on_unavailable:
    description: Fail when a shadow copy is missing or its revert or exposure was refused.
    type: bool
    default: true
  tag_volumes:
    description:
      - After a revert, tag each reverted EBS volume (its O(shadows[].volume_id)) with the consistency its data has
        now, V(application), from the controller (C(CreateTags), with the AWS options below).
      - Before a revert, a volume already tagged V(application) (an earlier run reverted it, and a revert deletes its
        shadow copy) is reported V(reverted) and left alone, so a re-run changes nothing (C(DescribeVolumes)).
    type: bool
    default: false
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
    details: Reads the shadow copies and reports C(planned) for each one it would revert or expose.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later. Verified in the collection's lab only, never on a real Windows Server (docs/restore.md).
notes:
  - Costs one round trip to read the shadow copies and one per shadow copy.
  - A revert cannot be undone. It is never retried after a lost answer.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set_volumes
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Back to the application-consistent point
  shadowsnap.ec2.win_vss_shadow_restore:
    action: revert
    shadows:
      - shadow_id: "{8b7d2f34-0c55-4d8e-9f0f-6f0b6b1f7c11}"
  register: reverted
"""

RETURN = r"""
shadows:
  description: Each shadow copy and what happened.
  returned: success
  type: list
  elements: dict
  contains:
    shadow_id:
      description: The shadow copy id.
      type: str
    outcome:
      description: V(reverted), V(exposed), V(unexposed), V(missing), V(refused) or (check mode) V(planned).
      type: str
    tool:
      description: The tool that reverted it.
      type: str
    hresult:
      description: The HRESULT of a refusal.
      type: str
    hresult_name:
      description: Its name.
      type: str
tagged_volume_ids:
  description: The volumes tagged as application-consistent (O(tag_volumes=true)).
  returned: when volumes were tagged
  type: list
  elements: str
consistency:
  description: V(application) when every shadow copy was reverted or exposed, else V(crash).
  returned: always
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
