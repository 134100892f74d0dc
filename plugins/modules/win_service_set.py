#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_service_set.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_service_set
short_description: Stop or start the services that own volumes on a Windows host
version_added: 0.1.0
description:
  - Stops (O(state=stopped), with the services that depend on them) or starts (O(state=started)) the services
    O(names) lists and, with O(volumes), the services of the application writers whose components are on those
    volumes (from C(diskshadow)'s detailed writer listing and the collection's writer-to-service table).
  - The operating system's own writers are never stopped. A writer with files on the volumes whose service is not
    known fails the task, naming it - add its service to O(names).
options:
  names:
    description: Service names.
    type: list
    elements: str
    default: []
  volumes:
    description: Drive letters or mount folders whose writers' services are stopped or started too.
    type: list
    elements: str
    default: []
  state:
    description: Stopped or started.
    type: str
    choices: [stopped, started]
    required: true
  timeout:
    description: Seconds each service has to stop or start.
    type: int
    default: 60
  record:
    description:
      - Names a record the host keeps of the services stopped (for example a restore id).
      - With O(state=stopped), the services found running are added to the record before any of them is stopped, in
        the same round trip. With O(state=started), the recorded services are started too (O(names) may then be
        empty), and the record is removed once they run. So a run after a controller died mid-way, which finds the
        services already stopped, still starts again those that were running before the first stop.
      - The record is a file under C(%ProgramData%\shadowsnap\restores), a folder of the collection's own
        (SYSTEM and Administrators only).
    type: str
    default: ""
    version_added: 0.1.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
attributes:
  check_mode:
    support: full
    details: Finds the services and changes nothing.
  platform:
    support: full
    platforms: windows
    details: O(volumes) needs Windows Server (C(diskshadow)).
notes:
  - Costs one round trip to find the writers' services (with O(volumes)) and one to stop or start.
seealso:
  - module: shadowsnap.ec2.win_vss_writer_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Stop what owns D and E
  shadowsnap.ec2.win_service_set:
    volumes: ['D:', 'E:']
    names: [SQLSERVERAGENT]
    state: stopped
  register: stopped

- name: Start again what was running
  shadowsnap.ec2.win_service_set:
    names: "{{ stopped.were_running }}"
    state: started
"""

RETURN = r"""
names:
  description: The services stopped or started, in order.
  returned: success
  type: list
  elements: str
writer_services:
  description: The services found from the writers of O(volumes).
  returned: success
  type: list
  elements: str
services:
  description: Each service with C(name), C(previous_status) and C(status).
  returned: success, not in check mode
  type: list
  elements: dict
were_running:
  description: The services that were running before the task (with O(record), also those the record holds).
  returned: success, not in check mode
  type: list
  elements: str
recorded:
  description: With O(record), the services the record holds (after a stop) or held (before a start).
  returned: success with O(record), not in check mode
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
