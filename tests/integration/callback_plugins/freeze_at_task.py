# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Freezes ansible-playbook (SIGSTOP to itself) when a task whose name contains $SHADOWSNAP_FREEZE_AT_TASK is about to
start: every task before it has finished on every host (linear strategy), nothing of it has run. The test then kills
the frozen controller and everything below it (conftest.kill_controller), so a kill lands between two given tasks
every time. Test use only."""

import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: freeze_at_task
type: aggregate
short_description: freeze the controller before a named task, for the tests that kill it there
description: Sends SIGSTOP to ansible-playbook when the task named in $SHADOWSNAP_FREEZE_AT_TASK is about to start.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "freeze_at_task"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_task_start(self, task, is_conditional):
        wanted = os.environ.get("SHADOWSNAP_FREEZE_AT_TASK")
        if wanted and wanted in task.get_name():
            os.kill(os.getpid(), signal.SIGSTOP)
