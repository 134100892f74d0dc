# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent transport over Ansible's real ``winrm`` connection plugin (pywinrm) against the lab's WinRM endpoint.

What Windows would do is played by a small host behind the endpoint: it decodes the -EncodedCommand that arrives in
``rsp:Arguments`` with the lab's decoder, checks it is the bootstrap, reads the request and the agent from stdin
(WS-Man Send), and answers like the agent. Faults come from the endpoint's own switches (dropped TCP connections,
bare HTTP 500s, rejected credentials), so retries, resets and round-trip counts are checked against real traffic.
"""

from __future__ import annotations

import json

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentConnectionError,
    AgentOperationError,
    AgentTransport,
)
from lab.winrm import CommandResult, WinRMServer, decode_powershell_command
from unit.plugins.action.agent_fakes import Action, Recorder, bootstrap_as_sent, make_action

JAPANESE_LABEL = "\u30c7\u30fc\u30bf"  # "data"


class AgentHost:
    """Answers agent requests as the Windows host would, from the command line and stdin the endpoint received."""

    def __init__(self):
        self.requests = []
        self.stdin_ascii = []

    def run_command(self, command, arguments, stdin):
        script = decode_powershell_command(command, arguments)
        if script != bootstrap_as_sent():
            return CommandResult(stderr=b"not the shadowsnap bootstrap\r\n", exit_code=1)
        self.stdin_ascii.append(all(byte < 128 for byte in stdin))
        line, dummy, agent = stdin.decode("utf-8").partition("\n")
        if not agent.startswith(agent_transport.AGENT_HEADER + "\n"):
            return CommandResult(stderr=b"no agent on stdin\r\n", exit_code=1)
        request = json.loads(line)
        self.requests.append(request)
        return CommandResult(stdout=json.dumps(self.answer(request)).encode("utf-8") + b"\r\n")

    def answer(self, request):
        op = request["op"]
        if op == "batch":
            answers = [self.answer(item) for item in request["args"]["requests"]]
            return {"protocol": 1, "op": "batch", "ok": True, "result": {"answers": answers}, "elapsed_ms": 3}
        if op == "facts":
            return {"protocol": 1, "op": "facts", "ok": True, "result": {"hostname": "WIN-LAB", "ui_culture": "ja-JP"},
                    "elapsed_ms": 1}
        if op == "storage":
            # Raw UTF-8 as ConvertTo-Json writes it when the console encoding is UTF-8.
            volume = {"UniqueId": "\\\\?\\Volume{11111111-2222-3333-4444-555555555555}\\", "FileSystemLabel": JAPANESE_LABEL}
            return {"protocol": 1, "op": "storage", "ok": True, "result": {"volumes": [volume]}, "elapsed_ms": 1}
        return {"protocol": 1, "op": op, "ok": False,
                "error": {"message": "diskshadow.exe exited with code 1", "hresult": "0x80042316",
                          "command": "diskshadow.exe /s x.dsh", "exit_code": 1}}


@pytest.fixture(name="lab")
def lab_fixture():
    host = AgentHost()
    server = WinRMServer(host, name="WIN-LAB")
    server.start()
    play_context = PlayContext()
    connection = connection_loader.get("winrm", play_context, None)
    connection.set_options(var_options=dict(server.inventory_vars(), _extras={}))
    recorder = Recorder()
    transport = AgentTransport(
        make_action(Action, connection), host="win-lab", sleep=recorder.sleep, uniform=recorder.uniform
    )
    try:
        yield server, host, transport, recorder
    finally:
        connection.close()
        server.stop()
    assert server.errors == []


def test_one_request_is_one_winrm_command_with_the_agent_on_stdin(lab):
    server, host, transport, dummy = lab
    reply = transport.request("facts")
    assert reply.result == {"hostname": "WIN-LAB", "ui_culture": "ja-JP"}
    assert server.counters.commands == 1
    assert transport.round_trips == 1
    assert host.requests == [{"protocol": 1, "op": "facts", "args": {}}]
    assert host.stdin_ascii == [True]


def test_a_batch_is_one_command_and_utf8_output_decodes(lab):
    server, dummy, transport, dummy2 = lab
    reply = transport.request_many([("facts", None), ("storage", None)])
    facts, storage = reply.results
    assert facts["hostname"] == "WIN-LAB"
    assert storage["volumes"][0]["FileSystemLabel"] == JAPANESE_LABEL
    assert server.counters.commands == 1


def test_a_dropped_connection_is_retried_after_a_reset(lab):
    server, host, transport, recorder = lab
    transport.request("facts")
    rule = server.faults.drop_connection(action="Command")
    reply = transport.request("facts")
    assert rule.fired == 1
    assert reply.round_trips == 2
    assert transport.round_trips == 3
    assert len(host.requests) == 2
    assert len(recorder.delays) == 1
    assert server.counters.shells_created >= 2, "the retry runs in a new shell"


def test_a_bare_http_500_is_retried(lab):
    server, host, transport, dummy = lab
    rule = server.faults.http_error(500, action="Receive")
    assert transport.request("facts").round_trips == 2
    assert rule.fired == 1
    assert len(host.requests) == 2, "the first command ran; its answer was lost, so the read ran again"


def test_rejected_credentials_are_not_retried(lab):
    server, dummy, transport, recorder = lab
    server.faults.reject_auth()
    with pytest.raises(AgentConnectionError, match="credentials were rejected"):
        transport.request("facts")
    assert transport.round_trips == 1
    assert recorder.delays == []


def test_an_agent_error_comes_back_with_its_hresult_name(lab):
    dummy, dummy2, transport, dummy3 = lab
    with pytest.raises(AgentOperationError, match=r"0x80042316 \(VSS_E_SNAPSHOT_SET_IN_PROGRESS\)"):
        transport.request("shadows")
