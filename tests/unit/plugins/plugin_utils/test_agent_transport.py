# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent transport through ActionBase._low_level_execute_command, with a fake Ansible connection at the boundary.

The shell plugin is Ansible's real ``powershell`` plugin; the connection and the Windows host behind it are the only
doubles (tests/unit/plugins/action/agent_fakes.py). test_agent_transport_winrm.py runs the same transport over
Ansible's real ``winrm`` connection against the lab's WinRM endpoint.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible.plugins.connection.psrp import Connection as PsrpConnection
from ansible.plugins.loader import connection_loader, shell_loader
from ansible.plugins.shell.powershell import _common_args
from winrm.exceptions import WinRMTransportError

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentConnectionError,
    AgentOperationError,
    AgentProtocolError,
    AgentTransport,
    AgentTransportError,
)
from unit.plugins.action.agent_fakes import (
    Action,
    FakeAgentHost,
    FakeConnection,
    Recorder,
    bootstrap_as_sent,
    make_action,
)

FACTS = {"hostname": "WIN-SQL-01", "oem_code_page": 932, "ec2": None}
STORAGE = {"disks": [], "disk_drives": [], "partitions": [], "volumes": [], "shadow_storage": [],
           "dynamic_disks": [], "storage_pools": []}

# A progress record and an error record as powershell.exe writes them to stderr when its output is redirected.
CLIXML_STDERR = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    "<T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use."
    "</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>"
    '<S S="Error">WARNING: something noisy_x000D__x000A_</S></Objs>'
)


def transport_for(connection, recorder=None, **kwargs):
    recorder = recorder or Recorder()
    action = make_action(Action, connection)
    return AgentTransport(action, host="win-sql-01", sleep=recorder.sleep, uniform=recorder.uniform, **kwargs)


def host_with(**results):
    return FakeAgentHost(results={"facts": FACTS, "storage": STORAGE, **results})


# ------------------------------------------------------------------------------------------------- what is sent


def test_the_command_is_the_bootstrap_encoded_by_the_powershell_shell_plugin():
    shell = shell_loader.get("powershell")
    command = agent_transport.build_command(shell)
    assert command.startswith("PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand ")
    script = base64.b64decode(command.split(" ")[-1]).decode("utf-16-le")
    assert script == bootstrap_as_sent()
    # The winrm connection plugin does not encode a command that already starts like this...
    assert command.startswith(shell._encode_script("", as_list=False, strict_mode=False, preserve_rc=False))
    # ...and the psrp plugin decodes such a command and runs the script in its runspace.
    assert command.startswith(" ".join(_common_args) + " -EncodedCommand")


def test_a_shell_that_is_not_powershell_is_refused_with_a_clear_message():
    with pytest.raises(AnsibleError, match="PowerShell shell .* 'sh' shell"):
        agent_transport.build_command(shell_loader.get("sh"))


def test_stdin_is_the_request_line_then_the_agent_script_in_ascii():
    connection = FakeConnection(host_with(writers={"oem_code_page": 437, "outputs": {}}))
    transport_for(connection).request("writers", {"sources": ["vssadmin"]})
    call = connection.calls[0]
    assert call["sudoable"] is False
    stdin = call["in_data"]
    stdin.decode("ascii")
    first, rest = stdin.split(b"\n", 1)
    assert json.loads(first) == {"protocol": 1, "op": "writers", "args": {"sources": ["vssadmin"]}}
    assert rest.decode("ascii") == agent_transport.agent_script()
    assert rest.startswith(b"# shadowsnap-agent protocol=1\n")


def test_non_ascii_in_a_request_travels_as_json_escapes():
    stdin = agent_transport.build_stdin(agent_transport.build_request("facts", {"label": "\u30c7\u30fc\u30bf"}), "x")
    assert b"\\u30c7\\u30fc\\u30bf" in stdin
    assert json.loads(stdin.split(b"\n", 1)[0])["args"]["label"] == "\u30c7\u30fc\u30bf"


def test_the_host_reads_the_script_back_line_by_line_as_the_bootstrap_and_psrp_do():
    host = host_with()
    transport_for(FakeConnection(host)).request("facts")
    assert host.scripts[0] + "\n" == agent_transport.agent_script()


# ------------------------------------------------------------------------------------------------- answers


def test_a_read_op_costs_one_round_trip_and_returns_its_result():
    connection = FakeConnection(host_with())
    transport = transport_for(connection)
    reply = transport.request("facts")
    assert reply.result == FACTS
    assert reply.results == (FACTS,)
    assert reply.round_trips == 1
    assert reply.agent_elapsed_ms == 1
    assert transport.round_trips == 1
    assert transport.metadata()["round_trips"] == 1
    assert connection.events == ["exec"]


def test_a_batch_answers_several_ops_in_one_round_trip():
    host = host_with()
    connection = FakeConnection(host)
    transport = transport_for(connection)
    reply = transport.request_many([("facts", None), ("storage", None)])
    assert reply.results == (FACTS, STORAGE)
    assert transport.round_trips == 1
    assert host.requests == [
        {"protocol": 1, "op": "batch", "args": {"requests": [{"op": "facts", "args": {}}, {"op": "storage", "args": {}}]}}
    ]


def test_a_batch_holds_read_ops_only():
    with pytest.raises(ValueError, match="read ops only.*not: session_start"):
        agent_transport.build_batch_request([("facts", None), ("session_start", {})])
    with pytest.raises(ValueError, match="at least one"):
        agent_transport.build_batch_request([])


def test_a_failed_op_inside_a_batch_raises_for_that_op():
    host = host_with()
    host.errors["storage"] = {"message": "Get-Disk failed", "hresult": "0x80070005", "command": None, "exit_code": None}
    with pytest.raises(AgentOperationError) as raised:
        transport_for(FakeConnection(host)).request_many([("facts", None), ("storage", None)])
    assert raised.value.op == "storage"
    assert raised.value.hresult_name == "E_ACCESSDENIED"
    assert "win-sql-01: agent op 'storage' failed: Get-Disk failed" in str(raised.value)


def test_a_batch_answer_with_the_wrong_number_of_answers_is_a_protocol_error():
    answer = {"protocol": 1, "op": "batch", "ok": True, "result": {"answers": []}, "elapsed_ms": 1}
    connection = FakeConnection(script=[(0, json.dumps(answer).encode(), b"")])
    with pytest.raises(AgentProtocolError, match="batch of 2 ops .* answered with 0 answers"):
        transport_for(connection).request_many([("facts", None), ("storage", None)])


def test_a_sequence_carries_changes_in_order_and_its_first_failure_ends_it():
    host = host_with(service_set={"services": []}, storage=STORAGE)
    transport = transport_for(FakeConnection(host))
    reply = transport.request_sequence([("service_set", {"names": ["MSSQLSERVER"]}), ("storage", None)])
    assert reply.results == ({"services": []}, STORAGE) and transport.round_trips == 1
    assert host.requests[0]["op"] == "sequence"
    host.errors["disk_offline"] = {"message": "Set-Disk failed", "hresult": "0x80070005", "command": None, "exit_code": None}
    with pytest.raises(AgentOperationError) as raised:
        transport.request_sequence([("service_set", {}), ("disk_offline", {"numbers": [1]}), ("storage", None)])
    assert raised.value.op == "disk_offline" and raised.value.completed == ({"services": []},)
    with pytest.raises(ValueError, match="not: session_start"):
        agent_transport.build_sequence_request([("storage", None), ("session_start", {})])
    assert not agent_transport.is_read_request("sequence", {"requests": [{"op": "storage"}]}), "a sequence is never retried"


def test_a_sequence_answer_that_stops_without_a_failure_is_a_protocol_error():
    ok = {"protocol": 1, "op": "storage", "ok": True, "result": STORAGE, "elapsed_ms": 1}
    answer = {"protocol": 1, "op": "sequence", "ok": True, "result": {"answers": [ok]}, "elapsed_ms": 1}
    connection = FakeConnection(script=[(0, json.dumps(answer).encode(), b"")])
    with pytest.raises(AgentProtocolError, match="sequence of 2 ops .* answered with 1 answers"):
        transport_for(connection).request_sequence([("storage", None), ("service_set", {})])


def test_agent_error_names_host_op_command_and_hresult():
    host = host_with()
    host.errors["writers"] = {
        "message": "vssadmin.exe list writers exited with code 2",
        "hresult": "0x80042319",
        "command": "vssadmin.exe list writers",
        "exit_code": 2,
        "output": "Error: ...",
    }
    with pytest.raises(AgentOperationError) as raised:
        transport_for(FakeConnection(host)).request("writers", {"sources": ["vssadmin"]})
    error = raised.value
    assert (error.host, error.op, error.hresult, error.hresult_name) == (
        "win-sql-01", "writers", 0x80042319, "VSS_E_WRITER_NOT_RESPONDING"
    )
    assert (error.command, error.exit_code, error.output) == ("vssadmin.exe list writers", 2, "Error: ...")
    message = str(error)
    assert message.startswith("win-sql-01: agent op 'writers' failed: vssadmin.exe list writers exited with code 2")
    assert "command: vssadmin.exe list writers, exit code 2" in message
    assert "HRESULT 0x80042319 (VSS_E_WRITER_NOT_RESPONDING)" in message
    assert "Restart the writer's service" in message


def test_an_error_without_hresult_says_so_without_inventing_one():
    host = host_with()
    host.errors["facts"] = {"message": "boom", "hresult": None, "command": None, "exit_code": None}
    with pytest.raises(AgentOperationError) as raised:
        transport_for(FakeConnection(host)).request("facts")
    assert raised.value.hresult is None and raised.value.hresult_name is None
    assert str(raised.value) == "win-sql-01: agent op 'facts' failed: boom"


def test_bom_crlf_and_a_clixml_progress_stream_are_tolerated():
    answer = {"protocol": 1, "op": "facts", "ok": True, "result": FACTS, "elapsed_ms": 5}
    stdout = b"\xef\xbb\xbf" + json.dumps(answer).encode() + b"\r\n"
    connection = FakeConnection(script=[(0, stdout, CLIXML_STDERR.encode())])
    reply = transport_for(connection).request("facts")
    assert reply.result == FACTS
    assert reply.stderr == "WARNING: something noisy\r\n".strip()


def test_decode_clixml_keeps_error_records_and_drops_progress_records():
    assert agent_transport.decode_clixml(CLIXML_STDERR) == "WARNING: something noisy"
    assert agent_transport.decode_clixml("plain text") == "plain text"


@pytest.mark.parametrize(
    "stdout, message",
    [
        pytest.param(b"", "no answer on stdout", id="empty"),
        pytest.param(b"Preparing modules\r\n", "not a JSON document", id="text"),
        pytest.param(b'{"protocol":1,"op":"facts","ok":true,"result":{}}\r\n{"protocol":1}', "exactly one JSON document",
                     id="two-documents"),
        pytest.param(b'{"protocol":1,"op":"facts","ok":true,"result":{}} trailing', "exactly one JSON document",
                     id="trailing-text"),
        pytest.param(b"[1, 2]", "not an agent answer", id="not-an-object"),
        pytest.param(b'{"protocol":2,"op":"facts","ok":true,"result":{}}', "speaks protocol 2", id="protocol"),
        pytest.param(b'{"protocol":1,"op":"storage","ok":true,"result":{}}', "answered op 'storage'", id="other-op"),
        pytest.param(b'{"protocol":1,"op":"facts","ok":true}', "no result object", id="no-result"),
        pytest.param(b'{"protocol":1,"op":"facts","ok":false}', "without an error object", id="no-error"),
    ],
)
def test_anything_but_one_answer_document_is_a_protocol_error(stdout, message):
    connection = FakeConnection(script=[(0, stdout, b"")])
    with pytest.raises(AgentProtocolError, match=message) as raised:
        transport_for(connection).request("facts")
    assert raised.value.host == "win-sql-01" and raised.value.op == "facts"
    assert connection.events == ["exec"], "a protocol error is not retried"


def test_a_non_zero_exit_code_is_a_transport_error_with_stderr():
    connection = FakeConnection(script=[(1, b"", b"powershell: The term 'x' is not recognized")])
    with pytest.raises(AgentTransportError, match="exited with code 1; stderr: .*not recognized") as raised:
        transport_for(connection).request("facts")
    assert raised.value.rc == 1
    assert not isinstance(raised.value, AgentConnectionError)


def test_a_non_zero_exit_code_with_an_error_answer_reports_the_agent_error():
    answer = {"protocol": 1, "op": None, "ok": False,
              "error": {"message": "shadowsnap bootstrap: the agent needs FullLanguage", "hresult": None}}
    connection = FakeConnection(script=[(1, json.dumps(answer).encode(), b"")])
    with pytest.raises(AgentOperationError, match="agent op 'facts' failed: shadowsnap bootstrap: the agent needs FullLanguage"):
        transport_for(connection).request("facts")


# ------------------------------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(AnsibleConnectionFailure("winrm connection error: read timed out"), id="ansible-connection-failure"),
        pytest.param(requests.exceptions.ConnectionError("Connection reset by peer"), id="requests-connection-error"),
        pytest.param(requests.exceptions.ReadTimeout("read timed out"), id="requests-timeout"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="socket-reset"),
        pytest.param(WinRMTransportError("http", 500, "Internal Server Error"), id="winrm-http-500"),
        pytest.param(WinRMTransportError("http", 503, "Service Unavailable"), id="winrm-http-503"),
        pytest.param(AnsibleError("the connection attempt timed out"), id="winrm-connect-timeout"),
    ],
)
def test_a_read_op_is_retried_after_a_transient_failure_with_a_reset(failure):
    host = host_with()
    connection = FakeConnection(host, script=[failure])
    recorder = Recorder()
    transport = transport_for(connection, recorder)
    reply = transport.request("facts")
    assert reply.result == FACTS
    assert reply.round_trips == 2 and transport.round_trips == 2
    assert connection.events == ["exec", "close", "reset", "exec"]
    assert recorder.delays == [1.0]


def test_retries_are_bounded_and_the_last_error_is_reported():
    failures = [AnsibleConnectionFailure(f"failure {n}") for n in range(1, 10)]
    connection = FakeConnection(script=failures)
    recorder = Recorder()
    with pytest.raises(AgentConnectionError, match="connection failed 4 times, last: AnsibleConnectionFailure: failure 4") as raised:
        transport_for(connection, recorder, retries=3).request("storage")
    assert raised.value.round_trips == 4
    assert connection.events.count("exec") == 4
    assert connection.events.count("reset") == 3
    assert recorder.delays == [1.0, 2.0, 4.0]


def test_backoff_is_jittered_between_half_and_all_of_the_capped_exponential():
    transport = transport_for(FakeConnection(), Recorder("max"), backoff=1.0, max_backoff=10.0)
    assert [transport._delay(attempt) for attempt in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    transport = transport_for(FakeConnection(), Recorder("min"), backoff=1.0, max_backoff=10.0)
    assert [transport._delay(attempt) for attempt in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_an_op_that_changes_the_host_is_never_retried():
    connection = FakeConnection(script=[AnsibleConnectionFailure("connection reset")])
    recorder = Recorder()
    with pytest.raises(AgentConnectionError, match="not retried because 'session_release' changes the host") as raised:
        transport_for(connection, recorder).request("session_release", {"run_id": "r1", "decision": "ok"})
    assert raised.value.round_trips == 1
    assert connection.events == ["exec"]
    assert recorder.delays == []


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(AnsibleConnectionFailure("basic: the specified credentials were rejected by the server"), id="credentials"),
        pytest.param(WinRMTransportError("http", 401, "Unauthorized"), id="http-401"),
        pytest.param(ValueError("a bug"), id="bug"),
    ],
)
def test_permanent_failures_are_not_retried(failure):
    connection = FakeConnection(script=[failure])
    with pytest.raises(AgentConnectionError) as raised:
        transport_for(connection).request("facts")
    assert raised.value.__cause__ is failure
    assert connection.events == ["exec"]


def test_a_failing_reset_does_not_stop_the_retry():
    class BrokenReset(FakeConnection):
        def reset(self):
            super().reset()
            raise AnsibleConnectionFailure("still down")

    connection = BrokenReset(host_with(), script=[AnsibleConnectionFailure("down")])
    assert transport_for(connection).request("facts").result == FACTS
    assert connection.events == ["exec", "close", "reset", "exec"]


def test_is_transient_follows_the_cause_chain():
    try:
        try:
            raise requests.exceptions.ConnectionError("reset")
        except requests.exceptions.ConnectionError as inner:
            raise AnsibleError("wrapped") from inner
    except AnsibleError as outer:
        assert agent_transport.is_transient(outer)
    assert not agent_transport.is_transient(AnsibleError("no such file"))


def test_read_requests():
    assert agent_transport.is_read_request("facts")
    assert not agent_transport.is_read_request("session_start")
    assert agent_transport.is_read_request("batch", {"requests": [{"op": "facts"}, {"op": "shadows"}]})
    assert not agent_transport.is_read_request("batch", {"requests": [{"op": "facts"}, {"op": "revert"}]})
    assert not agent_transport.is_read_request("batch", {"requests": []})


def test_the_agent_script_must_be_ascii_with_its_header(tmp_path):
    def parts(frame, read_ops=b"function Get-FactsResult {}\n"):
        for name, data in ((agent_transport.AGENT_FRAME, frame), ("read_ops.ps1", read_ops), ("session_ops.ps1", b""),
                           ("restore_ops.ps1", b""), ("files_ops.ps1", b""),
                           (agent_transport.VOLUME_EXTENTS_SOURCE, b"// C#\n")):
            (tmp_path / name).write_bytes(data)
        return tmp_path

    marker = agent_transport.PARTS_MARKER.encode("ascii")
    with pytest.raises(AnsibleError, match="must be ASCII only"):
        agent_transport.agent_script(parts(b"# shadowsnap-agent protocol=1\n" + marker + b"\n", b"Write-Output '\xc3\xa9'\n"))
    with pytest.raises(AnsibleError, match="must start with the line"):
        agent_transport.agent_script(parts(b"# another header\nparam($RequestJson)\n" + marker + b"\n"))
    script = agent_transport.agent_script(parts(b"# shadowsnap-agent protocol=1\r\nparam($RequestJson)\r\n" + marker + b"\r\n"))
    assert script.startswith("# shadowsnap-agent protocol=1\nparam($RequestJson)\n# The names this agent shares")
    assert script.endswith("$VolumeExtentsSource = @'\n// C#\n'@\nfunction Get-FactsResult {}\n\n\n\n")


# ------------------------------------------------------------------------------------------------- psrp


class RecordingPsrpConnection(PsrpConnection):
    """Ansible's real psrp connection plugin, with the runspace (the network side) replaced by a recorder.

    Its exec_command still decides how to run the command: it recognises the -EncodedCommand, decodes the script and
    hands ``in_data`` to the runspace as pipeline input, one string per line - what the bootstrap's $input reads.
    """

    def __init__(self, agent_host):
        super().__init__(PlayContext())
        self.agent_host = agent_host
        self.invocations = []
        self._psrp_host = "win-psrp"

    def _connect(self):
        self._connected = True
        return self

    def _exec_psrp_script(self, script, input_data=None, use_local_scope=True, arguments=None):
        self.invocations.append({"script": script, "input": input_data, "arguments": arguments})
        request = json.loads(input_data[0])
        return 0, json.dumps(self.agent_host.respond(request)).encode(), b""


def test_the_psrp_connection_runs_the_bootstrap_in_its_runspace_with_stdin_as_pipeline_input():
    connection = RecordingPsrpConnection(host_with())
    action = make_action(Action, connection)
    reply = AgentTransport(action, host="win-psrp").request("facts")
    assert reply.result == FACTS
    (invocation,) = connection.invocations
    assert invocation["script"] == bootstrap_as_sent()
    assert invocation["arguments"] is None
    lines = invocation["input"]
    assert json.loads(lines[0]) == {"protocol": 1, "op": "facts", "args": {}}
    assert "\n".join(lines[1:]) + "\n" == agent_transport.agent_script()


# ------------------------------------------------------------------------------------------------- ssh


def test_the_ssh_connection_sends_the_encoded_bootstrap_as_the_remote_command_and_the_agent_on_stdin():
    """Ansible's real ssh connection plugin with the PowerShell shell; only its process runner (_run) is replaced."""
    connection = connection_loader.get("ssh", PlayContext(), None, shell=shell_loader.get("powershell"))
    host = host_with()
    runs = []

    def run(cmd, in_data, sudoable=True, checkrc=True):
        runs.append({"cmd": cmd, "in_data": in_data, "sudoable": sudoable})
        return host.answer(cmd[-1].decode() if isinstance(cmd[-1], bytes) else cmd[-1], in_data)

    connection._run = run
    connection.set_options(var_options={"ansible_host": "win-ssh", "ansible_user": "Administrator",
                                        "inventory_hostname": "win-ssh"})
    assert connection.allow_executable is False, "ssh with a Windows shell runs commands without /bin/sh -c"
    reply = AgentTransport(make_action(Action, connection), host="win-ssh").request("facts")
    assert reply.result == FACTS
    (sent,) = runs
    remote_command = sent["cmd"][-1].decode() if isinstance(sent["cmd"][-1], bytes) else sent["cmd"][-1]
    assert remote_command == agent_transport.build_command(shell_loader.get("powershell"))
    assert sent["in_data"].startswith(b'{"args":{},"op":"facts","protocol":1}\n# shadowsnap-agent protocol=1\n')
    assert sent["sudoable"] is False


def test_status_and_file_reads_are_retried_but_never_batched():
    assert agent_transport.is_read_request("session_status") and agent_transport.is_read_request("file_read")
    for op in ("session_start", "session_release", "shadow_delete", "session_cleanup", "service_restart"):
        assert not agent_transport.is_read_request(op), op
    with pytest.raises(ValueError, match="read ops only"):
        agent_transport.build_batch_request([("facts", None), ("session_status", {"run_id": "ss-1"})])
