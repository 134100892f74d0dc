# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # What every win_* action plugin shares (plugins/plugin_utils/agent_action.py): how it reaches the host, the
    # attributes, the failure and timing results. Extend it together with ansible.builtin.action_common_attributes,
    # ansible.builtin.action_common_attributes.conn and ansible.builtin.action_common_attributes.flow, which describe
    # the attributes.
    DOCUMENTATION = r"""
options: {}
attributes:
  action:
    support: full
    details: Runs on the controller; the host only runs the collection's agent for each request.
  async:
    support: none
  become:
    support: none
    details: C(become) is not applied to the agent; the connection's account must be an administrator of the host.
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  connection:
    support: full
    details: The host's own connection - C(winrm), C(psrp), or C(ssh) with the PowerShell shell.
  delegation:
    support: none
    details: The agent runs on the host the task targets; do not delegate these tasks.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: windows
notes:
  - Runs on the controller and reaches the host through its own connection, the way M(ansible.windows.win_reboot) does;
    the collection's agent (one PowerShell script) is sent with each request and nothing is installed on the host.
  - Read operations are retried up to three times after a transient connection failure, with a jittered back-off and
    a fresh connection; operations that change the host are not retried.
  - Every result carries C(round_trips) (commands sent to the host, retries included), C(timings) (seconds per phase
    and C(total)) and C(elapsed); a failure names the host in C(msg) and, when the agent reported one, the HRESULT in
    C(hresult) and C(hresult_name).
"""

    # The Region of the controller's EC2 calls about the host (plugins/plugin_utils/host_identity.py).
    REGION = r"""
options:
  region:
    description:
      - The AWS Region of the instance, for the EC2 calls the plugin makes on the controller.
      - When the task (or C(module_defaults)) sets it, this Region is used, and the Region the host reports (IMDSv2)
        must agree with it - else the task fails before anything changes.
      - When it is not set, the Region the host reports (IMDSv2), else the host variable C(placement.region) (as the
        P(amazon.aws.aws_ec2#inventory) inventory sets it), else C(AWS_REGION) or C(AWS_DEFAULT_REGION).
    type: str
    aliases: [aws_region]
"""
