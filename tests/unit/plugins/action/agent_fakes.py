# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test doubles at the boundary only: an Ansible connection and the Windows host behind it.

``FakeConnection`` implements the part of Ansible's connection contract an action plugin uses (``exec_command``,
``reset``, ``close``, the real ``powershell`` shell plugin as ``_shell``); ``FakeAgentHost`` plays the Windows host:
it decodes the ``-EncodedCommand`` the controller sent, checks it is the transport's bootstrap, reads the request
and the agent script from stdin the way the bootstrap does, and answers like the agent. The code under test - the
action plugins, ``ActionBase._low_level_execute_command``, the transport, the parsers - is all real.
"""

from __future__ import annotations

import base64
import json

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import shell_loader

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport


def decode_encoded_command(command: str) -> str:
    """The script of ``PowerShell ... -EncodedCommand <base64 of UTF-16LE>`` as one string."""
    words = command.split(" ")
    assert words[0] == "PowerShell" and words[-2] == "-EncodedCommand", command[:120]
    return base64.b64decode(words[-1]).decode("utf-16-le")


def bootstrap_as_sent() -> str:
    """The bootstrap after the shell plugin's encoding (lines stripped, blank lines dropped)."""
    return "\n".join(line.strip() for line in agent_transport.BOOTSTRAP.splitlines() if line.strip())


class FakeAgentHost:
    """A Windows host that answers agent requests from canned results (op -> result) and errors (op -> error)."""

    def __init__(self, results=None, errors=None, stderr=b""):
        self.results = dict(results or {})
        self.errors = dict(errors or {})
        self.stderr = stderr
        self.requests = []
        self.scripts = []

    def answer(self, command: str, stdin: bytes) -> tuple[int, bytes, bytes]:
        assert decode_encoded_command(command) == bootstrap_as_sent()
        text = stdin.decode("ascii")
        lines = text.splitlines()  # what $input yields, and what psrp feeds the runspace
        request = json.loads(lines[0])
        self.requests.append(request)
        self.scripts.append("\n".join(lines[1:]))
        return 0, json.dumps(self.respond(request)).encode("utf-8") + b"\r\n", self.stderr

    def respond(self, request: dict) -> dict:
        op = request["op"]
        if op == "batch":
            answers = [self.respond(dict(item, protocol=request["protocol"])) for item in request["args"]["requests"]]
            return {"protocol": 1, "op": "batch", "ok": True, "result": {"answers": answers}, "elapsed_ms": 2}
        if op == "sequence":
            answers = []
            for item in request["args"]["requests"]:
                answers.append(self.respond(dict(item, protocol=request["protocol"])))
                if not answers[-1]["ok"]:
                    break
            return {"protocol": 1, "op": "sequence", "ok": True, "result": {"answers": answers}, "elapsed_ms": 2}
        if op in self.errors:
            return {"protocol": 1, "op": op, "ok": False, "error": self.errors[op], "elapsed_ms": 1}
        if op in self.results:
            return {"protocol": 1, "op": op, "ok": True, "result": self.results[op], "elapsed_ms": 1}
        return {
            "protocol": 1,
            "op": op,
            "ok": False,
            "error": {"message": f"unknown op '{op}'", "hresult": None, "command": None, "exit_code": None},
            "elapsed_ms": 0,
        }


class FakeConnection:
    """Ansible's connection contract in front of a host: exec_command, reset, close and the shell plugin.

    ``script`` is a list of what successive exec_command calls do: None answers through the host, an exception is
    raised, a tuple ``(rc, stdout, stderr)`` is returned as is. When the list runs out, the host answers.
    """

    transport = "winrm"
    allow_executable = False
    become = None
    default_user = None

    def __init__(self, host=None, script=(), shell="powershell"):
        self._shell = shell_loader.get(shell)
        self.host = host or FakeAgentHost()
        self.script = list(script)
        self.calls = []
        self.events = []

    def exec_command(self, cmd, in_data=None, sudoable=True):
        self.calls.append({"cmd": cmd, "in_data": in_data, "sudoable": sudoable})
        self.events.append("exec")
        if not self.script:
            return self.host.answer(cmd, in_data)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, tuple):
            return step
        return self.host.answer(cmd, in_data)

    def get_option(self, name):
        raise KeyError(name)

    def reset(self):
        self.events.append("reset")

    def close(self):
        self.events.append("close")


def make_action(action_class, connection, args=None, check_mode=False):
    """A real action plugin object on a fake connection, as the task executor builds it."""
    task = Task()
    task.args = dict(args or {})
    task.check_mode = check_mode
    return action_class(task, connection, PlayContext(), DataLoader(), None, None)


class Action(ActionBase):
    """The smallest real action plugin: the transport only needs _low_level_execute_command and _connection."""

    def run(self, tmp=None, task_vars=None):
        return {}


class Recorder:
    """Stands in for time.sleep and random.uniform, and records the back-off delays."""

    def __init__(self, pick="max"):
        self.delays = []
        self.pick = pick

    def sleep(self, seconds):
        self.delays.append(seconds)

    def uniform(self, low, high):
        return high if self.pick == "max" else low
