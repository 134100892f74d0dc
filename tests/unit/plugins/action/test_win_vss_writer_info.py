# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_writer_info end to end on the controller: the real action plugin, transport, parsers and VSS knowledge,
with a fake connection and Windows host at the boundary that answer with real vssadmin and diskshadow captures."""

from __future__ import annotations

import pathlib

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.shadowsnap.ec2.plugins.action.win_vss_writer_info import ActionModule, agent_source
from unit.plugins.action.agent_fakes import FakeAgentHost, FakeConnection, make_action

CAPTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"
TASK_VARS = {"inventory_hostname": "win-sql-01"}

FRS_STATUS = (
    "-> list writers status\n"
    "Listing writer status ...\n"
    '* WRITER "FRS Writer"\n'
    "        - Status: 1 (VSS_WS_STABLE)\n"
    "        - Writer Failure code: 0x00000000 (S_OK)\n"
    "        - Writer ID: {d76f5a28-3092-4589-ba48-2958fb88ce29}\n"
    "        - Instance ID: {07ae58e5-6977-4e34-9dfe-399bbd2cbe40}\n"
    "1 writers listed.\n"
    "-> list writers detailed\n"
)


def capture(name: str) -> str:
    lines = (CAPTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def writers_host(source: str, text: str, command: str = "vssadmin.exe list writers") -> FakeAgentHost:
    outputs = {source: {"command": command, "text": text, "exit_code": 0}}
    return FakeAgentHost(results={"writers": {"oem_code_page": 932, "outputs": outputs}})


def run(host, args=None, check_mode=False):
    connection = FakeConnection(host)
    action = make_action(ActionModule, connection, args, check_mode=check_mode)
    return action.run(task_vars=dict(TASK_VARS)), host


def test_a_healthy_japanese_listing_in_one_round_trip():
    result, host = run(writers_host("vssadmin", capture("vssadmin_list_writers_ja_healthy_wsrv_01.txt")),
                       {"expected_writers": ["System Writer", "SqlServerWriter"]})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert host.requests == [{"protocol": 1, "op": "writers", "args": {"sources": ["vssadmin"]}}]
    assert result["round_trips"] == 1
    assert result["source"] == "vssadmin" and result["oem_code_page"] == 932
    assert result["summary"] == {"total": 6, "healthy": 6, "failed": 0, "waiting": 0, "unknown": 0}
    assert result["failed_writers"] == [] and result["waiting_writers"] == []
    assert result["missing_writers"] == ["SqlServerWriter"]
    system = next(writer for writer in result["writers"] if writer["name"] == "System Writer")
    assert (system["state"], system["state_name"], system["healthy"], system["service"]) == (1, "STABLE", True, "CryptSvc")
    assert system["failed_phase"] is None
    assert isinstance(result["elapsed"], float)
    assert set(result["timings"]) == {"read", "total"} and result["elapsed"] == result["timings"]["total"]


def test_a_failed_writer_is_reported_and_only_fails_the_task_when_asked():
    text = capture("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    result, dummy = run(writers_host("vssadmin", text))
    assert not result.get("failed")
    assert result["failed_writers"] == ["Microsoft Exchange Writer"]
    exchange = next(writer for writer in result["writers"] if writer["name"] == "Microsoft Exchange Writer")
    assert (exchange["state"], exchange["failed"], exchange["failed_phase"], exchange["service"]) == (
        7, True, "PREPARE_BACKUP", "MSExchangeRepl"
    )

    result, dummy = run(writers_host("vssadmin", text), {"fail_on_unhealthy": True})
    assert result["failed"] is True
    assert result["msg"] == (
        "win-sql-01: VSS writers not ready: 'Microsoft Exchange Writer' is FAILED_AT_PREPARE_BACKUP [7], last error: "
        "Retryable error; restart the service MSExchangeRepl when no backup is running"
    )
    assert result["writers"], "the listing is returned with the failure"


def test_required_writers_must_be_listed_and_healthy():
    text = capture("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    result, dummy = run(writers_host("vssadmin", text), {"required_writers": ["System Writer", "SqlServerWriter"]})
    assert result["failed"] is True
    assert result["msg"] == (
        "win-sql-01: VSS writers not ready: required writer 'SqlServerWriter' is not listed (is its service SQLWriter "
        "running?)"
    )
    result, dummy = run(writers_host("vssadmin", text), {"required_writers": ["microsoft  exchange writer"]})
    assert result["failed"] is True
    assert "required writer 'Microsoft Exchange Writer' is FAILED_AT_PREPARE_BACKUP [7]" in result["msg"]
    result, dummy = run(writers_host("vssadmin", text), {"required_writers": ["system writer", "Registry Writer"]})
    assert not result.get("failed"), result.get("msg")


def test_a_waiting_writer_is_not_a_restart():
    result, host = run(
        writers_host("diskshadow_status", capture("diskshadow_list_writers_status_msdocs_example.txt"), "diskshadow.exe /s x"),
        {"source": "diskshadow", "fail_on_unhealthy": True},
    )
    assert host.requests[0]["args"] == {"sources": ["diskshadow_status"]}
    assert result["source"] == "diskshadow_status"
    assert result["waiting_writers"] == ["System Writer"]
    assert result["summary"]["waiting"] == 1
    assert result["failed"] is True
    assert result["msg"] == (
        "win-sql-01: VSS writers not ready: 'System Writer' is WAITING_FOR_BACKUP_COMPLETE [5], last error: "
        "0x00000000 (S_OK) (a backup is running or a requester left its session open: wait, do not restart anything)"
    )


def test_components_come_from_diskshadow_detailed_with_the_volumes_they_touch():
    text = FRS_STATUS + capture("vss_writer_metadata_frs_msdocs_example.txt")
    result, host = run(writers_host("diskshadow_detailed", text, "diskshadow.exe /s x"), {"components": True})
    assert host.requests[0]["args"] == {"sources": ["diskshadow_detailed"]}
    (frs,) = result["writers"]
    assert frs["service"] == "NtFrs"
    assert frs["components"][0]["paths"] == ["d:\\windows\\sysvol"]
    assert frs["volumes"] == ["\\\\?\\Volume{da897ba5-5840-11db-93c1-806e6f6e6963}\\"]


def test_zero_writers_fail_with_the_event_system_hint():
    text = "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool\r\n(C) Copyright 2001-2013 Microsoft Corp.\r\n\r\n"
    result, dummy = run(writers_host("vssadmin", text))
    assert result["failed"] is True
    assert result["msg"].startswith("win-sql-01: expected at least one writer in vssadmin list writers output")
    assert "COM+ Event System service (EventSystem)" in result["msg"]
    assert "writers" not in result


def test_an_agent_error_fails_with_the_hresult_name():
    host = FakeAgentHost(errors={"writers": {
        "message": "vssadmin.exe list writers exited with code 2", "hresult": "0x80042318",
        "command": "vssadmin.exe list writers", "exit_code": 2,
    }})
    result, dummy = run(host)
    assert result["failed"] is True
    assert (result["hresult"], result["hresult_name"]) == (0x80042318, "VSS_E_WRITER_INFRASTRUCTURE")
    assert "win-sql-01: agent op 'writers' failed" in result["msg"]
    assert result["round_trips"] == 1
    assert set(result["timings"]) == {"read", "total"}, "a failed task has its timings too"


def test_check_mode_reads_as_usual():
    result, host = run(writers_host("vssadmin", capture("vssadmin_list_writers_ja_healthy_wsrv_01.txt")), check_mode=True)
    assert result["summary"]["healthy"] == 6
    assert len(host.requests) == 1


def test_unknown_options_and_bad_choices_are_refused():
    with pytest.raises(AnsibleActionFail):
        run(FakeAgentHost(), {"sources": ["vssadmin"]})
    with pytest.raises(AnsibleActionFail, match="source"):
        run(FakeAgentHost(), {"source": "wmi"})


@pytest.mark.parametrize(
    "source, components, expected",
    [("vssadmin", False, "vssadmin"), ("diskshadow", False, "diskshadow_status"),
     ("vssadmin", True, "diskshadow_detailed"), ("diskshadow", True, "diskshadow_detailed")],
)
def test_agent_source(source, components, expected):
    assert agent_source(source, components) == expected
