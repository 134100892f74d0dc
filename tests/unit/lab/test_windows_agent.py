"""The agent protocol as a simulated host answers it: recognition and refusal, the read ops, error documents,
replay of recorded tool output, and the per-host counters."""

import base64
import json
import pathlib
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_writers, parse_vssadmin_writers
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer
from lab.windows.agent_twin.protocol import WRITER_SOURCES
from lab.windows.testing import AGENT_SCRIPT, agent_command, bootstrap_arguments, call_agent, sample_instance

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "windows"


def load(name):
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def make_host(name="win-sql-01", **options):
    return LabWindowsHost(WindowsServer(sample_instance(name, **options), BlockStore()).seed())


def clixml_lines(stderr):
    text = stderr.decode("utf-8")
    assert text.startswith("#< CLIXML\r\n")
    root = ET.fromstring(text.split("\r\n", 1)[1])
    return [element.text.replace("_x000D__x000A_", "") for element in root]


# ------------------------------------------------------------------------------------------ recognition
def test_the_agent_is_recognised_by_its_first_line_and_answers_one_json_document():
    host = make_host()
    result = host.run_command(*agent_command("facts"))
    assert result.exit_code == 0 and result.stderr == b""
    assert result.stdout.endswith(b"\r\n")
    document = json.loads(result.stdout.decode("utf-8"))
    assert list(document) == ["protocol", "op", "ok", "result", "elapsed_ms"]
    assert document["protocol"] == 1 and document["op"] == "facts" and document["ok"] is True
    assert isinstance(document["elapsed_ms"], int)
    assert document["result"]["hostname"] == "WIN-SQL-01"


def test_crlf_and_byte_order_mark_on_stdin_are_accepted():
    host = make_host()
    command, arguments, dummy = agent_command("facts")
    stdin = b"\xef\xbb\xbf" + json.dumps({"protocol": 1, "op": "facts"}).encode() + b"\r\n" + AGENT_SCRIPT.replace("\n", "\r\n").encode()
    assert json.loads(host.run_command(command, arguments, stdin).stdout)["ok"]


def test_pypsrp_style_arguments_and_abbreviated_parameter():
    host = make_host()
    dummy, arguments, stdin = agent_command("facts")
    encoded = arguments[0].split()[-1]
    assert json.loads(host.run_command("powershell.exe", ["-NoProfile", "-enc", encoded], stdin).stdout)["ok"]


def test_other_scripts_on_stdin_are_refused_like_powershell():
    host = make_host()
    result = host.run_command("PowerShell", bootstrap_arguments(), b'{"protocol": 1, "op": "facts"}\nGet-Process\n')
    assert result.exit_code == 1 and result.stdout == b""
    assert any("not a shadowsnap agent request" in line for line in clixml_lines(result.stderr))
    assert host.counter_snapshot()["refused"] == 1 and host.counter_snapshot()["round_trips"] == 0


def test_an_agent_of_another_protocol_version_is_a_transport_error():
    host = make_host()
    command, arguments, stdin = agent_command("facts", script="# shadowsnap-agent protocol=2\n")
    result = host.run_command(command, arguments, stdin)
    assert result.exit_code == 1 and "protocol=2" in " ".join(clixml_lines(result.stderr))
    assert host.counter_snapshot()["protocol_mismatches"] == 1


def test_unknown_powershell_is_refused_with_a_command_not_found_error():
    host = make_host()
    script = base64.b64encode("Get-Disk | ConvertTo-Json".encode("utf-16-le")).decode()
    result = host.run_command("PowerShell", ["-NoProfile -NonInteractive -EncodedCommand " + script], b"")
    assert result.exit_code == 1
    lines = clixml_lines(result.stderr)
    assert lines[0].startswith("Get-Disk : The term 'Get-Disk' is not recognized as the name of a cmdlet")
    assert "    + FullyQualifiedErrorId : CommandNotFoundException" in lines


def test_bad_base64_is_refused_as_powershell_refuses_it():
    result = make_host().run_command("PowerShell", ["-EncodedCommand", "not*base64"], b"")
    assert result.exit_code == 1 and "properly encoded" in clixml_lines(result.stderr)[0]


@pytest.mark.parametrize("script, stdout, exit_code", [
    ("Write-Output hello", "hello\r\n", 0),
    ("Set-StrictMode -Version Latest\nWrite-Output 'a b'; exit 3\nIf (-not $?) { exit 1 }", "a b\r\n", 3),
    ("$env:COMPUTERNAME", "WIN-WEB-01\r\n", 0),
    ("$PSVersionTable.PSVersion.ToString()", "5.1.17763.6414\r\n", 0),
    ("Write-Output 日本語", "日本語\r\n", 0),
])
def test_a_few_literal_statements_are_answered_for_raw(script, stdout, exit_code):
    host = make_host("win-web-01")
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    result = host.run_command("PowerShell", ["-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand " + encoded], b"")
    assert result.stdout.decode("cp932") == stdout and result.exit_code == exit_code
    assert host.counter_snapshot()["raw_commands"] == 1


def test_ps_version_table():
    host = make_host()
    encoded = base64.b64encode(b"$\x00P\x00S\x00V\x00e\x00r\x00s\x00i\x00o\x00n\x00T\x00a\x00b\x00l\x00e\x00").decode()
    text = host.run_command("PowerShell", ["-EncodedCommand " + encoded], b"").stdout.decode()
    assert "PSVersion                      5.1.20348.2849" in text and "BuildVersion                   10.0.20348.2849" in text


def test_cmd_commands():
    host = make_host()
    assert host.run_command("hostname", [], b"").stdout == b"WIN-SQL-01\r\n"
    result = host.run_command("ipconfig", ["/all"], b"")
    assert result.exit_code == 1
    assert result.stderr == b"'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"


# ------------------------------------------------------------------------------------------------ ops
def test_storage_and_shadows_ops():
    host = make_host("win-sql-01")
    storage = call_agent(host, "storage")["result"]
    assert {"disks", "disk_drives", "partitions", "volumes", "shadow_storage", "dynamic_disks", "storage_pools"} <= set(storage)
    assert len(storage["disks"]) == 4
    assert call_agent(host, "shadows")["result"] == {"shadows": []}
    host.model.shadows.create_set(["D:"])
    assert len(call_agent(host, "shadows")["result"]["shadows"]) == 1


@pytest.mark.parametrize("name", ["win-sql-01", "win-web-01", "win-xen-01"])
def test_writers_op_gives_every_source_in_the_hosts_code_page(name):
    host = make_host(name)
    host.model.writers.set_state("System Writer", "failed_at_freeze")
    document = call_agent(host, "writers", {"sources": ["vssadmin", "diskshadow_status", "diskshadow_detailed"]})
    result = document["result"]
    assert result["oem_code_page"] == host.model.locale.oem_code_page
    expected = [(w.name, w.state) for w in host.model.writers.visible()]
    vssadmin = result["outputs"]["vssadmin"]
    assert vssadmin["exit_code"] == 0 and "\r\n" in vssadmin["text"]
    assert [(w["name"], w["state"]) for w in parse_vssadmin_writers(vssadmin["text"])] == expected
    assert [(w["name"], w["state"]) for w in parse_diskshadow_writers(result["outputs"]["diskshadow_status"]["text"])] == expected
    detailed = parse_diskshadow_writers(result["outputs"]["diskshadow_detailed"]["text"])
    assert all(w["components"] for w in detailed)
    assert host.model.services["VSS"].status == "Running"


def test_writers_sources_as_the_agent_reads_them():
    host = make_host()
    for args in (None, {"sources": "vssadmin"}, {"sources": []}):
        assert list(call_agent(host, "writers", args)["result"]["outputs"]) == ["vssadmin"]
    document = call_agent(host, "writers", {"sources": ["vssadmin", "eventlog"]})
    assert document["ok"] is False and "result" not in document
    assert document["error"]["message"] == "unknown writers source 'eventlog' (known: vssadmin, diskshadow_status, diskshadow_detailed)"
    assert host.counter_snapshot()["errors"] == 1


def test_writer_outputs_carry_the_command_and_crlf_joined_lines():
    outputs = call_agent(make_host(), "writers", {"sources": WRITER_SOURCES})["result"]["outputs"]
    assert outputs["vssadmin"]["command"] == "vssadmin.exe list writers"
    assert outputs["diskshadow_status"]["command"].startswith("diskshadow.exe /s C:\\Users\\Administrator\\AppData\\Local\\Temp\\shadowsnap-")
    for output in outputs.values():
        # The tools end with a blank line: PowerShell keeps it as an empty last line, so one CRLF remains.
        assert output["text"].endswith("\r\n") and not output["text"].endswith("\r\n\r\n")
        assert "\n" not in output["text"].replace("\r\n", "")
    detailed = outputs["diskshadow_detailed"]["text"]
    assert detailed.index("-> list writers status") < detailed.index("-> list writers detailed")


def test_a_failing_tool_fails_the_op_with_the_hresult_it_printed():
    host = make_host()
    failure = "\nThe last operation failed.\n        - Returned HRESULT: 80042306\n        - Error text: VSS_E_PROVIDER_VETO\n"
    host.replays.arm("writers", source="diskshadow_status", text=failure, exit_code=1)
    document = call_agent(host, "writers", {"sources": ["vssadmin", "diskshadow_status"]})
    error = document["error"]
    assert document["ok"] is False and error["hresult"] == "0x80042306" and error["exit_code"] == 1
    assert error["message"] == error["command"] + " exited with code 1"
    assert error["output"] == failure.rstrip("\n").replace("\n", "\r\n")
    assert error["type"] == "System.Exception" and error["where"]


def test_batches_of_read_operations():
    host = make_host("win-web-01")
    document = call_agent(host, "batch", {"requests": [{"op": "facts", "args": {}}, {"op": "storage"},
                                                       {"op": "writers", "args": {"sources": ["eventlog"]}}]})
    assert document["ok"] and document["op"] == "batch" and isinstance(document["elapsed_ms"], int)
    facts, storage, writers = document["result"]["answers"]
    assert facts["op"] == "facts" and facts["ok"] and facts["result"]["ui_culture"] == "ja-JP"
    assert storage["op"] == "storage" and storage["ok"] and storage["result"]["disks"]
    assert writers["op"] == "writers" and writers["ok"] is False
    counters = host.counter_snapshot()
    assert counters["round_trips"] == 1 and counters["ops"] == {"batch": 1, "facts": 1, "storage": 1, "writers": 1}
    for requests, message in (([], "at least one request"), ([{"op": "facts"}, {"op": "session_start"}], "cannot be batched"),
                              ([{"op": "batch", "args": {"requests": []}}], "cannot be batched")):
        document = call_agent(host, "batch", {"requests": requests})
        assert document["ok"] is False and document["op"] == "batch" and message in document["error"]["message"]
    host.replays.arm("storage", error={"message": "Access is denied.", "hresult": "0x80070005"})
    answers = call_agent(host, "batch", {"requests": [{"op": "facts"}, {"op": "storage"}]})["result"]["answers"]
    assert answers[0]["ok"] and answers[1]["error"]["hresult"] == "0x80070005"


def test_a_sequence_carries_restore_ops_in_order_and_stops_at_the_first_failure():
    host = make_host("win-sql-01")
    document = call_agent(host, "sequence", {"requests": [
        {"op": "service_set", "args": {"names": ["MSSQLSERVER"], "state": "stopped"}}, {"op": "storage"}]})
    assert document["ok"] and document["op"] == "sequence"
    stopped, storage = document["result"]["answers"]
    assert stopped["ok"] and stopped["result"]["services"][0]["status"] == "Stopped" and storage["ok"]
    host.replays.arm("disk_offline", error={"message": "Access is denied.", "hresult": "0x80070005"})
    answers = call_agent(host, "sequence", {"requests": [
        {"op": "disk_offline", "args": {"numbers": [1]}},
        {"op": "service_set", "args": {"names": ["MSSQLSERVER"], "state": "running"}}]})["result"]["answers"]
    assert [answer["op"] for answer in answers] == ["disk_offline"] and answers[0]["ok"] is False
    assert host.model.services["MSSQLSERVER"].status == "Stopped", \
        "nothing after the failure ran"
    for requests, message in (([], "at least one request"), ([{"op": "session_start"}], "cannot be in a sequence")):
        document = call_agent(host, "sequence", {"requests": requests})
        assert document["ok"] is False and message in document["error"]["message"]


def test_the_answer_is_ascii_json_with_escapes():
    host = make_host("win-web-01")
    stdout = host.run_command(*agent_command("writers")).stdout
    assert stdout.endswith(b"}\r\n") and max(stdout) < 128
    assert b"\\u30e9\\u30a4\\u30bf\\u30fc" in stdout
    assert "ライター名" in json.loads(stdout)["result"]["outputs"]["vssadmin"]["text"]


def test_the_collections_bootstrap_is_modelled():
    transport = pytest.importorskip("ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport")
    host = make_host()
    arguments = bootstrap_arguments("\n".join(line.strip() for line in transport.BOOTSTRAP.splitlines() if line.strip()))
    stdin = (json.dumps({"protocol": 1, "op": "facts"}) + "\n").encode()
    document = json.loads(host.run_command("PowerShell", arguments, stdin).stdout)
    assert document["op"] is None and document["ok"] is False
    assert document["error"]["message"].startswith("shadowsnap bootstrap: expected the request line and the agent script")
    agent = transport.agent_script()
    result = host.run_command("PowerShell", arguments, (json.dumps({"protocol": 1, "op": "facts"}) + "\n" + agent).encode("ascii"))
    assert json.loads(result.stdout)["result"]["hostname"] == "WIN-SQL-01"


def test_diskshadow_is_absent_on_client_windows():
    host = make_host("win-pc-01", volumes=[{"device": "/dev/sda1", "size": 60, "drive": "C:"}], windows={"os": "win10"})
    assert call_agent(host, "writers", {"sources": ["vssadmin"]})["ok"]
    document = call_agent(host, "writers", {"sources": ["diskshadow_status"]})
    assert document["ok"] is False
    assert document["error"]["message"] == "diskshadow.exe is not on this host (it ships with Windows Server only)"
    assert document["error"]["command"] == "diskshadow"


@pytest.mark.parametrize("request_line, op, message", [
    ("not json", None, "Invalid JSON primitive"),
    ("[1, 2]", None, "request protocol '' is not supported by this agent (protocol 1)"),
    ('{"protocol": 2, "op": "facts"}', "facts", "request protocol '2' is not supported by this agent (protocol 1)"),
    ('{"protocol": 1}', None, "unknown op '' (this agent answers: facts, storage, writers, shadows, sessions, session_start, "
     "session_status, session_release, shadow_delete, session_cleanup, service_restart, file_read, disk_online, "
     "disk_offline, shadow_revert, shadow_expose, shadow_unexpose, service_set, files_copy, batch, sequence)"),
    ('{"protocol": 1, "op": "reboot"}', "reboot", "unknown op 'reboot'"),
])
def test_error_documents(request_line, op, message):
    host = make_host()
    command, arguments, dummy = agent_command("facts")
    result = host.run_command(command, arguments, (request_line + "\n" + AGENT_SCRIPT).encode())
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ok"] is False and "result" not in document and document["op"] == op
    assert message in document["error"]["message"]
    assert set(document["error"]) == {"message", "hresult", "command", "exit_code", "output", "type", "where"}


def test_a_wrong_decoding_code_page_shows_in_the_text():
    host = make_host("win-web-01")
    good = call_agent(host, "writers")["result"]["outputs"]["vssadmin"]["text"]
    host.model.configure(agent_code_page=437)
    bad = call_agent(host, "writers")["result"]["outputs"]["vssadmin"]["text"]
    assert "ライター名" in good and "ライター名" not in bad
    assert [w["name"] for w in parse_vssadmin_writers(bad)] == [w["name"] for w in parse_vssadmin_writers(good)]


def test_slow_tools_and_stop():
    host = make_host()
    host.model.configure(tool_delay_seconds=0.2)
    assert call_agent(host, "writers")["elapsed_ms"] >= 200
    host.stopping.set()
    assert call_agent(host, "writers")["elapsed_ms"] < 200


# ---------------------------------------------------------------------------------------------- replay
def test_replay_a_real_japanese_capture_through_the_code_page():
    """The blog capture has an en dash in its banner, which cp932 lacks: Windows' best fit makes it '-'."""
    host = make_host("win-web-01")
    capture = load("vssadmin_list_writers_ja_healthy_wsrv_01.txt")
    host.replays.arm("writers", source="vssadmin", text=capture)
    result = call_agent(host, "writers", {"sources": ["vssadmin", "diskshadow_status"]})["result"]
    text = result["outputs"]["vssadmin"]["text"]
    assert text.startswith("C:\\Windows\\system32>vssadmin list writers\r\nvssadmin 1.1 - ボリューム")
    assert [w["name"] for w in parse_vssadmin_writers(text)][:2] == ["System Writer", "ASR Writer"]
    assert "SqlServerWriter" not in text
    assert "IIS Config Writer" in result["outputs"]["diskshadow_status"]["text"]
    again = call_agent(host, "writers")["result"]["outputs"]["vssadmin"]["text"]
    assert "IIS Config Writer" in again, "a replay answers once by default"
    assert host.counter_snapshot()["replays_served"] == 1


def test_replay_raw_bytes_exit_codes_and_until_cleared():
    host = make_host()
    failed = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    host.replays.arm("writers", source="vssadmin", raw=failed.replace("\n", "\r\n").encode("cp437"), times=None)
    for dummy in range(3):
        output = call_agent(host, "writers")["result"]["outputs"]["vssadmin"]
        assert parse_vssadmin_writers(output["text"])[-1]["state"] == 7
    host.replays.clear("writers")
    host.replays.arm("writers", source="vssadmin", text="Error: Access is denied.\n", exit_code=2)
    error = call_agent(host, "writers")["error"]
    assert (error["exit_code"], error["output"], error["hresult"]) == (2, "Error: Access is denied.", None)
    assert call_agent(host, "writers")["result"]["outputs"]["vssadmin"]["exit_code"] == 0


def test_replay_results_errors_and_processes():
    host = make_host()
    host.replays.arm("facts", result={"hostname": "RECORDED"})
    host.replays.arm("storage", error={"message": "Access is denied.", "hresult": "0x80070005"})
    host.replays.arm("shadows", stdout="garbage", stderr="boom", exit_code=5)
    assert call_agent(host, "facts")["result"] == {"hostname": "RECORDED"}
    error = call_agent(host, "storage")["error"]
    assert (error["message"], error["hresult"], error["command"], error["exit_code"]) == ("Access is denied.", "0x80070005", None, None)
    process = host.run_command(*agent_command("shadows"))
    assert (process.stdout, process.stderr, process.exit_code) == (b"garbage", b"boom", 5)
    assert call_agent(host, "facts")["result"]["hostname"] == "WIN-SQL-01"
    counters = host.counter_snapshot()
    assert counters["round_trips"] == 4 and counters["ops"] == {"facts": 2, "storage": 1, "shadows": 1}
    assert counters["replays_served"] == 3


def test_replay_validation():
    host = make_host()
    with pytest.raises(ValueError):
        host.replays.arm("facts", text="x")
    with pytest.raises(ValueError):
        host.replays.arm("writers", source="eventlog", text="x")
    with pytest.raises(ValueError):
        host.replays.arm("writers")
    with pytest.raises(ValueError):
        host.replays.arm("writers", source="vssadmin", text="x", times=0)


def test_counters_per_op_and_reset():
    host = make_host()
    for op in ("facts", "facts", "storage", "writers"):
        call_agent(host, op)
    snapshot = host.counter_snapshot()
    assert snapshot["round_trips"] == 4 and snapshot["ops"] == {"facts": 2, "storage": 1, "writers": 1}
    model = WindowsServer(sample_instance("win-xen-01"), BlockStore()).seed()
    host.reset(model)
    assert host.counter_snapshot()["round_trips"] == 0 and host.model is model
