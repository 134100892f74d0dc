# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the VSS knowledge tables: writer states, HRESULTs and the writer-to-service map."""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss

TROUBLESHOOTING_DOC = pathlib.Path(__file__).resolve().parents[4] / "docs" / "troubleshooting.md"

# VSS_WRITER_STATE as listed in the reference (vss.h order).
EXPECTED_STATES = [
    "UNKNOWN",
    "STABLE",
    "WAITING_FOR_FREEZE",
    "WAITING_FOR_THAW",
    "WAITING_FOR_POST_SNAPSHOT",
    "WAITING_FOR_BACKUP_COMPLETE",
    "FAILED_AT_IDENTIFY",
    "FAILED_AT_PREPARE_BACKUP",
    "FAILED_AT_PREPARE_SNAPSHOT",
    "FAILED_AT_FREEZE",
    "FAILED_AT_THAW",
    "FAILED_AT_POST_SNAPSHOT",
    "FAILED_AT_BACKUP_COMPLETE",
    "FAILED_AT_PRE_RESTORE",
    "FAILED_AT_POST_RESTORE",
    "FAILED_AT_BACKUPSHUTDOWN",
]

# Every HRESULT the reference names, with its full symbolic name.
EXPECTED_HRESULTS = {
    0x800423F0: "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
    0x800423F1: "VSS_E_WRITERERROR_OUTOFRESOURCES",
    0x800423F2: "VSS_E_WRITERERROR_TIMEOUT",
    0x800423F3: "VSS_E_WRITERERROR_RETRYABLE",
    0x800423F4: "VSS_E_WRITERERROR_NONRETRYABLE",
    0x800423F5: "VSS_E_WRITERERROR_RECOVERY_FAILED",
    0x80042336: "VSS_E_WRITERERROR_PARTIAL_FAILURE",
    0x80042301: "VSS_E_BAD_STATE",
    0x80042302: "VSS_E_UNEXPECTED",
    0x80042304: "VSS_E_PROVIDER_NOT_REGISTERED",
    0x80042306: "VSS_E_PROVIDER_VETO",
    0x80042308: "VSS_E_OBJECT_NOT_FOUND",
    0x8004230C: "VSS_E_VOLUME_NOT_SUPPORTED",
    0x8004230F: "VSS_E_UNEXPECTED_PROVIDER_ERROR",
    0x80042312: "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
    0x80042313: "VSS_E_FLUSH_WRITES_TIMEOUT",
    0x80042314: "VSS_E_HOLD_WRITES_TIMEOUT",
    0x80042315: "VSS_E_UNEXPECTED_WRITER_ERROR",
    0x80042316: "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
    0x80042317: "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
    0x80042318: "VSS_E_WRITER_INFRASTRUCTURE",
    0x80042319: "VSS_E_WRITER_NOT_RESPONDING",
    0x8004231D: "VSS_E_VOLUME_IN_USE",
    0x8004231F: "VSS_E_INSUFFICIENT_STORAGE",
    0x80042325: "VSS_E_REVERT_IN_PROGRESS",
    0x800423FE: "VSS_E_CANNOT_REVERT_DISKID",
}

# Writer -> service, as the reference lists it.
EXPECTED_SERVICES = {
    "ASR Writer": "VSS",
    "COM+ REGDB Writer": "VSS",
    "Registry Writer": "VSS",
    "Shadow Copy Optimization Writer": "VSS",
    "System Writer": "CryptSvc",
    "WMI Writer": "Winmgmt",
    "BITS Writer": "BITS",
    "SqlServerWriter": "SQLWriter",
    "IIS Config Writer": "AppHostSvc",
    "IIS Metabase Writer": "IISADMIN",
    "NTDS": "NTDS",
    "DFS Replication service writer": "DFSR",
    "DHCP Jet Writer": "DHCPServer",
    "FRS Writer": "NtFrs",
    "FSRM writer": "srmsvc",
    "Microsoft Hyper-V VSS Writer": "vmms",
    "MSMQ Writer": "MSMQ",
    "MSSearch Service Writer": "WSearch",
    "NPS VSS Writer": "EventSystem",
    "Certificate Authority": "CertSvc",
    "Microsoft Exchange Writer": "MSExchangeRepl",
    "Microsoft Exchange Replica Writer": "MSExchangeRepl",
    "WIDWriter": "WIDWriter",
    "TermServLicensing": "TermServLicensing",
    "WDS VSS Writer": "WDSServer",
    "WINS Jet Writer": "WINS",
    "SharePoint Services Writer": "SPWriter",
    "OSearch15 VSS Writer": "OSearch15",
    "SPSearch4 VSS Writer": "SPSearch4",
    "SMS Writer": "SMS_SITE_VSS_WRITER",
    "Task Scheduler Writer": "Schedule",
}


def test_writer_state_table_is_the_vss_enumeration_in_order():
    assert vss.VSS_WRITER_STATE == dict(enumerate(EXPECTED_STATES))


@pytest.mark.parametrize("state", range(16))
def test_writer_state_name_of_every_state(state):
    assert vss.writer_state_name(state) == EXPECTED_STATES[state]


@pytest.mark.parametrize("state", [16, 99, -1])
def test_writer_state_outside_the_enumeration_is_unknown_and_unhealthy(state):
    assert vss.writer_state_name(state) == "UNKNOWN"
    assert not vss.writer_state_healthy(state)
    assert vss.writer_failed_phase(state) is None


@pytest.mark.parametrize("state", range(16))
def test_only_stable_is_healthy(state):
    assert vss.writer_state_healthy(state) is (state == 1)


@pytest.mark.parametrize("state", range(16))
def test_waiting_states_are_transient_not_failed(state):
    waiting = EXPECTED_STATES[state].startswith("WAITING_FOR_")
    assert vss.writer_state_waiting(state) is waiting
    if waiting:
        assert not vss.writer_state_failed(state)
        assert vss.writer_failed_phase(state) is None


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        (6, "IDENTIFY"),
        (7, "PREPARE_BACKUP"),
        (8, "PREPARE_SNAPSHOT"),
        (9, "FREEZE"),
        (10, "THAW"),
        (11, "POST_SNAPSHOT"),
        (12, "BACKUP_COMPLETE"),
        (13, "PRE_RESTORE"),
        (14, "POST_RESTORE"),
        (15, "BACKUPSHUTDOWN"),
    ],
)
def test_failed_states_tell_the_phase(state, phase):
    assert vss.writer_state_failed(state)
    assert vss.writer_failed_phase(state) == phase


@pytest.mark.parametrize("state", [0, 1, 2, 3, 4, 5])
def test_states_that_are_not_failed_have_no_phase(state):
    assert not vss.writer_state_failed(state)
    assert vss.writer_failed_phase(state) is None


@pytest.mark.parametrize(("code", "name"), sorted(EXPECTED_HRESULTS.items()))
def test_every_reference_hresult_is_named(code, name):
    assert vss.hresult_name(code) == name
    assert vss.HRESULTS[code].name == name


@pytest.mark.parametrize("info", list(vss.HRESULTS.values()), ids=lambda info: info.name)
def test_every_hresult_has_a_one_line_meaning_and_advice(info):
    assert info.name.startswith(("VSS_E_", "E_"))
    for text in (info.meaning, info.advice):
        assert text.strip()
        assert "\n" not in text
    assert (info.max_retries > 0) is info.retryable


@pytest.mark.parametrize(
    "text", ["80042306", "0x80042306", "0X80042306", "80042306\n", " 0x80042306 "], ids=repr
)
def test_hresult_lookup_by_hex_text(text):
    assert vss.hresult_from_text(text) == 0x80042306
    assert vss.hresult_name(text) == "VSS_E_PROVIDER_VETO"


def test_hresult_lookup_by_signed_int_as_com_returns_it():
    assert vss.hresult_name(-2147212538) == "VSS_E_PROVIDER_VETO"
    assert vss.hresult_info(0x800423F2 - 2**32).name == "VSS_E_WRITERERROR_TIMEOUT"


def test_hresult_lookup_is_case_insensitive_in_hex():
    assert vss.hresult_name("800423f3") == "VSS_E_WRITERERROR_RETRYABLE"


@pytest.mark.parametrize("text", ["", "8004230", "800423066", "0x8004230G", "VSS_E_PROVIDER_VETO", "{80042306}"])
def test_malformed_hresult_text_is_rejected(text):
    with pytest.raises(ValueError, match="not an HRESULT"):
        vss.hresult_from_text(text)


def test_unknown_hresult_has_no_name():
    assert vss.hresult_info(0x8004ABCD) is None
    assert vss.hresult_name("0x8004ABCD") is None
    assert vss.format_hresult(0x8004ABCD) == "0x8004ABCD"


def test_format_hresult_shows_the_name_next_to_the_hex():
    assert vss.format_hresult(0x80042306) == "0x80042306 (VSS_E_PROVIDER_VETO)"
    assert vss.format_hresult(-2147212538) == "0x80042306 (VSS_E_PROVIDER_VETO)"


@pytest.mark.parametrize(
    "code", [0x800423F1, 0x800423F2, 0x800423F3], ids=["OUTOFRESOURCES", "TIMEOUT", "RETRYABLE"]
)
def test_transient_writer_errors_wait_ten_minutes_and_retry_three_times(code):
    info = vss.hresult_info(code)
    assert info.retryable
    assert info.retry_after_seconds == 600
    assert info.max_retries == 3


def test_snapshot_set_in_progress_is_retried_later():
    info = vss.hresult_info(0x80042316)
    assert info.retryable
    assert 0 < info.retry_after_seconds <= 600
    assert info.max_retries >= 1
    assert "later" in info.advice


@pytest.mark.parametrize(
    "code",
    [0x800423F0, 0x800423F4, 0x80042306, 0x8004230C, 0x80042312, 0x80042317, 0x8004231F, 0x800423FE],
)
def test_errors_that_need_a_change_are_not_retryable(code):
    info = vss.hresult_info(code)
    assert not info.retryable
    assert info.retry_after_seconds is None
    assert info.max_retries == 0


def test_inconsistent_snapshot_advice_is_to_add_the_volumes():
    assert "volume" in vss.hresult_info(0x800423F0).advice.lower()


@pytest.mark.parametrize(("writer", "service"), sorted(EXPECTED_SERVICES.items()))
def test_writer_service_table(writer, service):
    assert vss.writer_service(writer) == service


@pytest.mark.parametrize(
    ("writer", "service"),
    [
        ("ADAM instance1 Writer", "ADAM_instance1"),
        ("ADAM MyApp Writer", "ADAM_MyApp"),
        ("adam MyApp writer", "ADAM_MyApp"),
    ],
)
def test_adam_writers_name_their_instance_service(writer, service):
    assert vss.writer_service(writer) == service


@pytest.mark.parametrize("writer", ["system writer", "  System   Writer ", "SYSTEM WRITER"])
def test_writer_service_ignores_case_and_spacing(writer):
    assert vss.writer_service(writer) == "CryptSvc"


@pytest.mark.parametrize("writer", ["Some Vendor Writer", "", "ADAM Writer", "Writer"])
def test_unknown_writer_has_no_service(writer):
    assert vss.writer_service(writer) is None


def test_exchange_writer_service_depends_on_the_version():
    assert vss.writer_service("Microsoft Exchange Writer") == "MSExchangeRepl"
    assert vss.EXCHANGE_2010_WRITER_SERVICE == "MSExchangeIS"


def test_all_writers_missing_points_at_the_com_event_system():
    assert vss.SERVICE_WHEN_ALL_WRITERS_MISSING == "EventSystem"


def hresult_table() -> str:
    """The HRESULT table of docs/troubleshooting.md, generated from vss.py (paste it there when vss.py changes)."""
    rows = ["| HRESULT | name | what it means | what to do | retried by `win_vss_snapshot_set` |", "|---|---|---|---|---|"]
    for code, info in vss.HRESULTS.items():
        if code == vss.VSS_E_SNAPSHOT_SET_IN_PROGRESS:
            retry = (f"yes: `in_progress_retries` (default {vss.SNAPSHOT_SET_MAX_RETRIES}) after `in_progress_delay` "
                     f"(default {vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS} s)")
        elif info.retryable:
            retry = (f"when asked: `writer_error_retries` (default 0; Microsoft: up to {info.max_retries}) after "
                     f"`writer_error_delay` (default {info.retry_after_seconds} s)")
        else:
            retry = "no"
        rows.append(f"| 0x{code:08X} | `{info.name}` | {info.meaning} | {info.advice} | {retry} |")
    return "\n".join(rows)


def service_table() -> str:
    """The writer-to-service table of docs/troubleshooting.md, generated from vss.py."""
    rows = ["| writer | service to restart |", "|---|---|"]
    rows += [f"| {writer} | `{service}` |" for writer, service in vss.WRITER_SERVICES.items()]
    return "\n".join(rows)


def test_the_troubleshooting_guide_carries_the_tables_generated_from_vss_py():
    text = TROUBLESHOOTING_DOC.read_text(encoding="utf-8")
    assert hresult_table() in text, "regenerate the HRESULT table of docs/troubleshooting.md with hresult_table()"
    assert service_table() in text, "regenerate the writer table of docs/troubleshooting.md with service_table()"
    for code, info in vss.HRESULTS.items():
        assert f"| 0x{code:08X} | `{info.name}` |" in text, info.name
    for state, name in vss.VSS_WRITER_STATE.items():
        assert f"| {state} | `{name}` |" in text, name
