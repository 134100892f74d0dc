# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: restore_file_volumes
short_description: The volumes of a snapshot set that hold the paths of a file-level restore
version_added: 0.1.0
description:
  - Finds, for each path, the set's volume whose drive letter or mount point is the longest prefix of it, and returns
    those volumes (each once, in the set's order), so that a file-level restore creates only the volumes it reads.
  - Fails naming every path that is not absolute, has a wildcard before its last part, is a whole volume, or is on none
    of the set's volumes - before anything is created.
options:
  _input:
    description: The set's volumes, as RV(shadowsnap.ec2.ec2_snapshot_set_volumes#module:volumes) returns them (also in check mode).
    type: list
    elements: dict
    required: true
  paths:
    description: The paths to restore (C(D:\Shares\Finance), C(D:\Shares\*.xlsx)).
    type: list
    elements: str
    required: true
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Only the volumes that hold the paths
  ansible.builtin.set_fact:
    needed: "{{ plan.volumes | shadowsnap.ec2.restore_file_volumes(['D:\\Shares\\Finance']) }}"
"""

RETURN = r"""
_value:
  description: The volumes that hold the paths, each with C(volume_path) (the drive letter or mount point that matched).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import file_restore


def restore_file_volumes(volumes, paths):
    """The volumes of ``volumes`` that hold ``paths`` (see DOCUMENTATION)."""
    by_path = {}
    for volume in volumes or []:
        for path in volume.get("paths") or []:
            by_path.setdefault(file_restore.clean_path(path), volume)
    try:
        found = file_restore.check_paths(list(paths or []), list(by_path))
    except file_restore.FileRestoreError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    matched = {}
    for volume_path in found.values():
        matched.setdefault(id(by_path[volume_path]), volume_path)
    return [dict(volume, volume_path=matched[id(volume)]) for volume in volumes if id(volume) in matched]


class FilterModule:
    """The collection's filters."""

    def filters(self):
        return {"restore_file_volumes": restore_file_volumes}
