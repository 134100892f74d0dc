#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_vss_writer_info.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_vss_writer_info
short_description: Read the VSS writers of a Windows host and judge their health
version_added: 0.1.0
description:
  - Lists the Volume Shadow Copy Service (VSS) writers of a Windows host with their state, last error and the service
    to restart when they are failed, in one round trip to the host.
  - The host runs C(vssadmin list writers) or C(diskshadow) through the collection's agent (a PowerShell script sent
    with the request, nothing is installed); the output is decoded with the console's OEM code page and parsed on the
    controller by structure (quoted names, C({GUID})s, C([N]) state numbers, C(VSS_WS_*) tokens), so it works in any
    display language.
  - A writer is healthy only in state V(STABLE). V(WAITING_FOR_*) states mean a backup is running or a requester
    left its session open; V(FAILED_AT_*) states name the phase that failed.
  - A listing without any writer fails the task - VSS is not usable then (often the COM+ Event System service).
options:
  source:
    description:
      - The tool that lists the writers.
      - V(vssadmin) runs C(vssadmin list writers) (Windows Server and client Windows).
      - V(diskshadow) runs a C(diskshadow) script with C(list writers status) (Windows Server only).
      - With O(components=true) the writers always come from C(diskshadow).
    type: str
    choices: [vssadmin, diskshadow]
    default: vssadmin
  components:
    description:
      - Also return each writer's components, with the files and the volumes they touch, from C(diskshadow) with
        C(list writers status) and C(list writers detailed) in one script.
      - This takes longer than the status only; the backup flow uses it to put every volume a writer needs in the
        shadow copy set.
    type: bool
    default: false
  expected_writers:
    description:
      - Writer names (as VSS lists them, for example V(SqlServerWriter)) or writer ids to report in RV(missing_writers)
        when they are not listed. Names are compared without case and with runs of spaces collapsed.
    type: list
    elements: str
    default: []
  required_writers:
    description:
      - Writer names or writer ids that must be listed and healthy; the task fails naming each one that is missing or
        not V(STABLE), with its state, last error and the service to restart (a V(WAITING_FOR_*) writer waits for
        another backup - nothing to restart).
    type: list
    elements: str
    default: []
  fail_on_unhealthy:
    description:
      - Fail the task when any writer is not healthy, naming each one with its state, last error and the service to
        restart (waiting writers are reported as such - nothing to restart).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
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
    details: Windows Server 2016 and later (and client Windows with O(source=vssadmin)).
notes:
  - Costs one round trip to the host (more only when a connection failure is retried). RV(round_trips) counts them.
  - The writer-to-service table comes from vendor documentation; verify it for your product versions.
  - The lists of failed, waiting and missing writers are RV(failed_writers), RV(waiting_writers) and
    RV(missing_writers) - C(failed) is the task's own result key.
seealso:
  - module: shadowsnap.ec2.win_ebs_disk_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Read the writers
  shadowsnap.ec2.win_vss_writer_info:
    expected_writers:
      - SqlServerWriter
  register: vss

- name: Show the failed writers and what to restart
  ansible.builtin.debug:
    msg: "{{ item.name }} is {{ item.state_name }} ({{ item.last_error }}); restart {{ item.service }}"
  loop: "{{ vss.writers | selectattr('failed') }}"

- name: Stop when the SQL writer is not listed at all
  ansible.builtin.assert:
    that: vss.missing_writers | length == 0
    fail_msg: "Not listed: {{ vss.missing_writers | join(', ') }}"

- name: A SQL Server host must have a healthy SQL writer before a backup
  shadowsnap.ec2.win_vss_writer_info:
    required_writers:
      - SqlServerWriter
      - System Writer

- name: The volumes every writer touches, for the shadow copy set
  shadowsnap.ec2.win_vss_writer_info:
    components: true
    fail_on_unhealthy: true
  register: vss_detailed
"""

RETURN = r"""
writers:
  description: Every writer listed, in listing order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The writer name.
      type: str
      sample: SqlServerWriter
    writer_id:
      description: The writer class id, lower case.
      type: str
      sample: "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"
    instance_id:
      description: The writer instance id, lower case.
      type: str
    state:
      description: The VSS_WRITER_STATE number.
      type: int
      sample: 1
    state_name:
      description: Its name without the C(VSS_WS_) prefix.
      type: str
      sample: STABLE
    last_error:
      description: The last error as the tool printed it (translated by vssadmin, a code from diskshadow).
      type: str
      sample: No error
    healthy:
      description: Whether the writer is V(STABLE).
      type: bool
    failed:
      description: Whether the writer is in a V(FAILED_AT_*) state.
      type: bool
    waiting:
      description: Whether the writer is in a V(WAITING_FOR_*) state.
      type: bool
    failed_phase:
      description: The phase a failed writer failed in (V(FREEZE) for V(FAILED_AT_FREEZE)), else null.
      type: str
    service:
      description: The service to restart when the writer is failed, null when the writer is not in the table.
      type: str
      sample: SQLWriter
    components:
      description: The writer's components (O(components=true) only).
      type: list
      elements: dict
      contains:
        name:
          description: The component name.
          type: str
        logical_path:
          description: The component's logical path.
          type: str
        full_path:
          description: The logical path and the name.
          type: str
        paths:
          description: The files and folders the component affects.
          type: list
          elements: str
        volumes:
          description: The volumes the component affects (C(volume) as C(\\?\Volume{guid}\) and C(display_name)).
          type: list
          elements: dict
    volumes:
      description: Every volume the writer's components touch (O(components=true) only).
      type: list
      elements: str
summary:
  description: How many writers are listed, healthy, failed, waiting, or in another state (V(UNKNOWN)).
  returned: success
  type: dict
  sample: {"total": 12, "healthy": 11, "failed": 1, "waiting": 0, "unknown": 0}
failed_writers:
  description: The names of the failed writers (V(FAILED_AT_*) states).
  returned: success
  type: list
  elements: str
waiting_writers:
  description: The names of the writers in a V(WAITING_FOR_*) state.
  returned: success
  type: list
  elements: str
missing_writers:
  description: The names in O(expected_writers) that are not listed.
  returned: success
  type: list
  elements: str
source:
  description: The agent source used - V(vssadmin), V(diskshadow_status) or V(diskshadow_detailed).
  returned: always
  type: str
command:
  description: The command the agent ran.
  returned: success
  type: str
  sample: vssadmin.exe list writers
oem_code_page:
  description: The console (OEM) code page the output was decoded with.
  returned: success
  type: int
  sample: 932
hresult:
  description: The HRESULT of a failure the agent reported, when there is one.
  returned: when the agent reported a failure
  type: int
hresult_name:
  description: Its symbolic name, such as V(VSS_E_WRITER_NOT_RESPONDING).
  returned: when the agent reported a failure with a known HRESULT
  type: str
round_trips:
  description: Commands sent to the host (1, more when a connection failure was retried).
  returned: always
  type: int
  sample: 1
timings:
  description: Seconds spent per phase (C(read)) and C(total).
  returned: always
  type: dict
  sample: {"read": 1.2, "total": 1.3}
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
