#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_restore_files.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_restore_files
short_description: Copy files and folders back from restored volumes, with their ACLs and time stamps
version_added: 0.1.0
description:
  - Copies each of O(paths) - a file, a folder with everything below it, or a wildcard in the last part (the matching
    files of that folder) - from where its volume is read on this host (O(sources)) into O(target), or back to where
    it was (O(in_place=true)). The source is an exposed VSS shadow copy (C(shadow) sets, see
    M(shadowsnap.ec2.win_vss_shadow_restore)) or a restored volume mounted read-only (M(shadowsnap.ec2.win_ebs_disk)).
  - The copy is C(robocopy) with C(/COPY:DATSO /DCOPY:DAT /B /XJ) - data, attributes, time stamps (created and last
    written), the explicit access entries and the inheritance setting, the owner; folders with their time stamps;
    backup mode, so files whose ACLs deny the administrators are read too; junctions are not followed. Inherited
    entries come from the destination's folders, as in any copy on Windows.
  - Files that exist in the destination are left alone and reported as skipped, unless O(overwrite=true).
  - Each path is reported with the files and bytes copied, what was skipped and why, and what failed (the path,
    the Windows error code and its message). A path that is not in the backup is reported as V(not_found).
  - Paths go to the host in batches of O(batch_size), one round trip each; the progress is printed between them.
options:
  paths:
    description:
      - Absolute paths as they were on the backed-up server (C(D:\Shares\Finance), C(D:\Shares\*.xlsx)). Each must
        be on one of the volumes of O(sources) (the longest drive letter or mount point that holds it).
    type: list
    elements: str
    required: true
  sources:
    description: The set's volumes, and where each is read on this host.
    type: list
    elements: dict
    required: true
    suboptions:
      volume_path:
        description: The volume's drive letter or mount point on the backed-up server (C(D:), C(C:\Mounts\Data)).
        type: str
        required: true
      read_from:
        description: Where its content is read here - the exposed shadow copy's folder or drive, or the restored volume's.
        type: str
        required: true
  target:
    description:
      - The folder the paths are copied into, each under a folder named by its drive letter (C(D:\Shares\Finance)
        goes to C(<target>\D\Shares\Finance)). A local folder or a share (C(\\server\share\folder)).
      - Give either O(target) or O(in_place=true).
    type: str
  in_place:
    description: Copy each path back to where it was on this host.
    type: bool
    default: false
  overwrite:
    description: Overwrite files that exist in the destination (by default they are left alone and reported as skipped).
    type: bool
    default: false
  batch_size:
    description: Paths per round trip (1 to 32); the progress is printed after each.
    type: int
    default: 8
  fail_on_not_found:
    description: Fail when a path is not in the backup (the other paths are copied first).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
attributes:
  check_mode:
    support: full
    details: Checks the paths and reports each one C(planned) with its destination; nothing is copied.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later. Verified in the collection's lab only, never on a real Windows Server (docs/restore.md).
notes:
  - Each path costs two robocopy runs (as a file and as a folder; the one that finds nothing costs a directory lookup).
  - A copy is never retried after a lost answer; run the task again - files already copied are skipped.
seealso:
  - module: shadowsnap.ec2.win_vss_shadow_restore
  - module: shadowsnap.ec2.win_ebs_disk
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: A deleted folder back from the shadow copy exposed at C:\shadowsnap-restore\set\D
  shadowsnap.ec2.win_restore_files:
    paths: ['D:\Shares\Finance', 'D:\Shares\*.xlsx']
    sources:
      - volume_path: 'D:'
        read_from: 'C:\shadowsnap-restore\set\D'
    target: 'C:\Restored'
  register: restored
"""

RETURN = r"""
paths:
  description: Each path and what happened to it.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given (cleaned up).
      type: str
    destination:
      description: Where it was copied to.
      type: str
    kind:
      description: V(files) (a file or a wildcard) or V(folder).
      type: str
    status:
      description: V(copied), V(not_found), V(failed) or (check mode) V(planned).
      type: str
    files_copied:
      description: Files copied.
      type: int
    bytes_copied:
      description: Bytes copied.
      type: int
    folders_copied:
      description: Folders created in the destination.
      type: int
    skipped:
      description: Files not copied, with C(files), C(bytes) and C(reason).
      type: list
      elements: dict
    failures:
      description: What failed - C(path), C(code) (the Windows error), C(hresult), C(message).
      type: list
      elements: dict
    exit_codes:
      description: robocopy's exit codes (a bit mask; 8 and above means some copies failed).
      type: list
      elements: int
files_copied:
  description: Files copied in all.
  returned: when the copy ran
  type: int
bytes_copied:
  description: Bytes copied in all.
  returned: when the copy ran
  type: int
round_trips:
  description: Commands sent to the host.
  returned: always
  type: int
  sample: 1
timings:
  description: Seconds spent per phase and C(total).
  returned: always
  type: dict
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
