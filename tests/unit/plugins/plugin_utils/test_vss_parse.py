# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the vssadmin/diskshadow parsers against real captures (tests/fixtures/windows) and variants of them.

Every fixture starts with ``#`` provenance lines (see tests/fixtures/windows/README.md); ``load`` strips them.
Tests named ``*_variant_*`` build a synthetic variant of a real capture inside the test (CRLF line ends,
indentation removed, prompt lines added, a state changed...) and say what they changed.
"""

from __future__ import annotations

import pathlib

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_failure,
    parse_diskshadow_shadows,
    parse_diskshadow_writers,
    parse_vssadmin_shadowstorage,
    parse_vssadmin_writers,
)

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"

WRITER_KEYS = {"name", "writer_id", "instance_id", "state", "state_name", "last_error", "healthy"}

# Every capture in tests/fixtures/windows and what reads it (the parser its tests here run it through, or the other
# test module that reads a capture no VSS parser applies to).
FIXTURE_PARSERS = {
    "ec2_get_disk_json_nvme_ws2022_3ebs_shortened.txt": "test_ebs_disks.py",
    "ec2_get_disk_table_xen_pvdisk_offline_01.txt": "test_ebs_disks.py",
    "wmi_win32_shadowcopy_get_wmiobject_table_01.txt": "tests/unit/lab/test_windows_model.py",
    "diskshadow_create_failed_provider_veto_openzfs406.txt": "parse_diskshadow_failure",
    "diskshadow_create_noautorecover_openzfs406_partial.txt": "parse_diskshadow_shadows, parse_diskshadow_failure",
    "diskshadow_interactive_create_persistent_thirdparty_provider_partial.txt": "parse_diskshadow_shadows",
    "diskshadow_list_shadows_all_ja_wsb_01.txt": "parse_diskshadow_shadows",
    "diskshadow_list_writers_status_msdocs_example.txt": "parse_diskshadow_writers",
    "diskshadow_script_sql_writer_excluded_restic340_partial.txt": "parse_diskshadow_failure, parse_diskshadow_writers",
    "vss_writer_metadata_frs_msdocs_example.txt": "parse_diskshadow_writers",
    "vssadmin_list_shadowstorage_en_win10_powershell_console_wrap.txt": "parse_vssadmin_shadowstorage",
    "vssadmin_list_writers_en_after_restart_ws2003_02.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_all_failed_no_blank_lines_ws2008_partial.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_before_restart_ws2003_01.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_hyperv_failed_inconsistent_ws2008_partial.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_sql_asr_mssearch_blog_partial.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_en_waiting_for_responses_exchange_partial.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_fr_win11_openzfs406_partial.txt": "parse_vssadmin_writers",
    "vssadmin_list_writers_ja_healthy_wsrv_01.txt": "parse_vssadmin_writers",
}


def load(name: str) -> str:
    """A capture without its leading ``#`` provenance lines, exactly as the tool printed the rest."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def unindent(text: str) -> str:
    return "\n".join(line.lstrip() for line in text.split("\n"))


def drop_last_lines(text: str, count: int) -> str:
    return "\n".join(text.rstrip("\n").split("\n")[:-count]) + "\n"


def doubled(text: str) -> str:
    """CR CR LF line ends, as some consoles, reflowed copies and mail write them: an empty line after every line."""
    return text.replace("\n", "\r\r\n")


def as_printed(text: str) -> str:
    return text


# A refusal must not hang on blank lines: the refusal tests run on the listing as printed and with doubled line ends.
LAYOUTS = pytest.mark.parametrize("layout", [as_printed, doubled], ids=["as_printed", "doubled_line_ends"])


def by_name(writers: list[dict]) -> dict[str, dict]:
    return {writer["name"]: writer for writer in writers}


# ---------------------------------------------------------------------------------------------- fixtures


def test_every_fixture_is_accounted_for_and_carries_its_provenance():
    files = {path.name for path in FIXTURES.iterdir() if path.name != "README.md"}
    assert files == set(FIXTURE_PARSERS)
    for name in files:
        header = (FIXTURES / name).read_text(encoding="utf-8").split("\n")[:2]
        assert header[0].startswith("# source: "), name
        assert header[1].startswith("# notes: "), name
        assert load(name).strip(), name


def test_load_strips_only_the_leading_header():
    text = load("diskshadow_script_sql_writer_excluded_restic340_partial.txt")
    assert text.startswith("C:\\Users\\Administrator\\Desktop>dir E:")
    assert "-> # WRITER VERIFY {a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}" in text


# ---------------------------------------------------------------------------- vssadmin list writers


def test_vssadmin_japanese_blog_capture_with_curly_quotes_and_lost_indentation():
    """Tolerates the blog artefacts of this file: U+2018/U+2019 quotes, lost indentation, en dash in the banner."""
    writers = parse_vssadmin_writers(load("vssadmin_list_writers_ja_healthy_wsrv_01.txt"))
    assert [writer["name"] for writer in writers] == [
        "System Writer",
        "ASR Writer",
        "Registry Writer",
        "WMI Writer",
        "COM+ REGDB Writer",
        "Shadow Copy Optimization Writer",
    ]
    system = writers[0]
    assert system == {
        "name": "System Writer",
        "writer_id": "{a1111111-1a11-2222-a33a-1050253ae220}",
        "instance_id": "{a1111111-1a11-2222-a33a-eacf897c2bb2}",
        "state": 1,
        "state_name": "STABLE",
        "last_error": "エラーなし",
        "healthy": True,
    }
    assert all(writer["healthy"] and writer["state_name"] == "STABLE" for writer in writers)
    assert writers[-1]["instance_id"] == "{a1111111-1a11-2222-a33a-f0ba3a6d115c}"


def test_vssadmin_japanese_variant_as_the_console_prints_it():
    """Variant: the blog artefacts undone (ASCII quotes, 3-space indentation) and CRLF line ends."""
    original = load("vssadmin_list_writers_ja_healthy_wsrv_01.txt")
    console = []
    for line in original.split("\n"):
        line = line.replace("\u2018", "'").replace("\u2019", "'").replace("\u2013", "-")
        console.append(line if "'" in line or not line.startswith(("ライター", "状態", "最後")) else "   " + line)
    assert parse_vssadmin_writers(crlf("\n".join(console))) == parse_vssadmin_writers(original)


def test_vssadmin_french_capture_partial():
    """Partial capture: the 5th name line is cut ('Nom du réda', no quotes), so it is not a writer block."""
    writers = parse_vssadmin_writers(load("vssadmin_list_writers_fr_win11_openzfs406_partial.txt"))
    assert [writer["name"] for writer in writers] == [
        "Task Scheduler Writer",
        "VSS Metadata Store Writer",
        "Performance Counters Writer",
        "System Writer",
    ]
    assert by_name(writers)["System Writer"]["instance_id"] == "{3a440350-edf0-4b35-bbc0-2af9898666f7}"
    assert by_name(writers)["Task Scheduler Writer"]["writer_id"] == "{d61d61c8-d73a-4eee-8cdd-f6f9786b7124}"
    assert {writer["last_error"] for writer in writers} == {"Aucune erreur"}
    assert all(writer["state"] == 1 and writer["healthy"] for writer in writers)


def test_vssadmin_exchange_capture_with_a_failed_retryable_writer():
    writers = parse_vssadmin_writers(load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt"))
    assert len(writers) == 5
    exchange = by_name(writers)["Microsoft Exchange Writer"]
    assert exchange == {
        "name": "Microsoft Exchange Writer",
        "writer_id": "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}",
        "instance_id": "{728c7e4c-d8fa-46cc-999d-e20573e08a08}",
        "state": 7,
        "state_name": "FAILED_AT_PREPARE_BACKUP",
        "last_error": "Retryable error",
        "healthy": False,
    }
    assert vss.writer_failed_phase(exchange["state"]) == "PREPARE_BACKUP"
    assert vss.writer_service(exchange["name"]) == "MSExchangeRepl"
    assert [writer["name"] for writer in writers if writer["healthy"]] == [
        "System Writer",
        "Registry Writer",
        "IIS Metabase Writer",
        "Event Log Writer",
    ]


@pytest.mark.parametrize(
    "variant",
    [crlf, unindent, lambda text: crlf(unindent(text))],
    ids=["crlf", "no_indentation", "crlf_no_indentation"],
)
def test_vssadmin_exchange_variant_line_ends_and_indentation(variant):
    """Variant: the same capture with CRLF line ends and/or without indentation parses the same."""
    original = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    assert parse_vssadmin_writers(variant(original)) == parse_vssadmin_writers(original)


@pytest.mark.parametrize(
    "name",
    [
        "vssadmin_list_writers_ja_healthy_wsrv_01.txt",
        "vssadmin_list_writers_fr_win11_openzfs406_partial.txt",
        "vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt",
        "vssadmin_list_writers_en_sql_asr_mssearch_blog_partial.txt",
    ],
)
def test_vssadmin_listing_with_an_empty_line_between_every_line(name):
    """Variant: doubled line ends, and an empty line between every line (reflowed console, mail): the same writers,
    the last error read after its blank line too."""
    original = load(name)
    writers = parse_vssadmin_writers(original)
    assert parse_vssadmin_writers(doubled(original)) == writers
    assert parse_vssadmin_writers("\n\n".join(original.split("\n"))) == writers
    assert all(writer["last_error"] for writer in writers)


@LAYOUTS
def test_vssadmin_variant_two_blocks_run_together_are_rejected(layout):
    """Variant: the Event Log Writer's state and last error and the next writer's name line lost: its block runs into
    the Exchange writer's GUIDs and must not take that writer's state."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt").replace(
        "   State: [1] Stable\n   Last error: No error\n\nWriter name: 'Microsoft Exchange Writer'\n", ""
    )
    with pytest.raises(VssParseError, match=r"'Event Log Writer'.*found 4"):
        parse_vssadmin_writers(layout(text))


def test_vssadmin_exchange_variant_with_prompts_and_banner():
    """Variant: prompt, banner and a trailing prompt glued to the last block (no blank line) are ignored."""
    original = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    wrapped = (
        "C:\\Windows\\system32>vssadmin list writers\n"
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool\n"
        "(C) Copyright 2001-2013 Microsoft Corp.\n\n" + original.rstrip("\n") + "\nC:\\Windows\\system32>\n"
    )
    assert parse_vssadmin_writers(wrapped) == parse_vssadmin_writers(original)


def test_vssadmin_exchange_variant_failed_at_freeze_timed_out():
    """Variant: the Exchange writer as it looks after a freeze timeout ([9] Failed, Timed out)."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    text = text.replace("State: [7] Failed\n   Last error: Retryable error", "State: [9] Failed\n   Last error: Timed out")
    exchange = by_name(parse_vssadmin_writers(text))["Microsoft Exchange Writer"]
    assert (exchange["state"], exchange["state_name"], exchange["last_error"]) == (9, "FAILED_AT_FREEZE", "Timed out")
    assert exchange["healthy"] is False
    assert vss.writer_failed_phase(exchange["state"]) == "FREEZE"


def test_vssadmin_blog_excerpt_without_banner_or_blank_lines():
    """Partial capture (3 blocks, no banner): a new name line starts a new writer without a blank line."""
    writers = parse_vssadmin_writers(load("vssadmin_list_writers_en_sql_asr_mssearch_blog_partial.txt"))
    assert [writer["name"] for writer in writers] == ["SqlServerWriter", "ASR Writer", "MSSearch Service Writer"]
    assert by_name(writers)["ASR Writer"]["writer_id"] == "{be000cbe-11fe-4426-9c58-531aa6355fc4}"
    assert by_name(writers)["ASR Writer"]["instance_id"] == "{1dcb9866-6b86-4a5f-8dcc-eaf270bbfb2b}"
    assert all(writer["healthy"] and writer["last_error"] == "No error" for writer in writers)


@LAYOUTS
def test_vssadmin_hyperv_capture_partial_raises_on_the_elided_block(layout):
    """Partial capture: the author's '<... more similar stuff...>' replaced the GUIDs of 'Registry Writer'."""
    with pytest.raises(VssParseError, match=r"'Registry Writer'.*writer id and an instance id"):
        parse_vssadmin_writers(layout(load("vssadmin_list_writers_en_hyperv_failed_inconsistent_ws2008_partial.txt")))


def test_vssadmin_hyperv_capture_variant_without_the_elided_block():
    """Variant: the two complete blocks of the capture (the elided last two lines removed)."""
    text = drop_last_lines(load("vssadmin_list_writers_en_hyperv_failed_inconsistent_ws2008_partial.txt"), 2)
    writers = parse_vssadmin_writers(text)
    assert len(writers) == 2
    hyperv, system = writers
    assert hyperv["name"] == "Microsoft Hyper-V VSS Writer"
    assert (hyperv["state"], hyperv["state_name"], hyperv["healthy"]) == (8, "FAILED_AT_PREPARE_SNAPSHOT", False)
    assert hyperv["last_error"] == "Inconsistent shadow copy"
    assert vss.writer_service(hyperv["name"]) == "vmms"
    assert (system["state"], system["state_name"], system["healthy"]) == (5, "WAITING_FOR_BACKUP_COMPLETE", False)
    assert vss.writer_state_waiting(system["state"])


@LAYOUTS
def test_vssadmin_capture_without_blank_lines_partial_raises_on_the_cut_guid(layout):
    """Partial capture, forum artefacts: no blank lines, no indentation, a '- Code: Select all' line, a cut GUID."""
    with pytest.raises(VssParseError, match="'Microsoft Hyper-V VSS Writer'"):
        parse_vssadmin_writers(layout(load("vssadmin_list_writers_en_all_failed_no_blank_lines_ws2008_partial.txt")))


def test_vssadmin_capture_without_blank_lines_variant_without_the_cut_block():
    """Variant: the capture minus the cut Hyper-V block: three writers, all failed at prepare snapshot."""
    text = drop_last_lines(load("vssadmin_list_writers_en_all_failed_no_blank_lines_ws2008_partial.txt"), 2)
    writers = parse_vssadmin_writers(text)
    assert [writer["name"] for writer in writers] == ["ASR Writer", "System Writer", "SqlServerWriter"]
    assert {(writer["state"], writer["state_name"], writer["last_error"]) for writer in writers} == {
        (8, "FAILED_AT_PREPARE_SNAPSHOT", "No error")
    }
    assert not any(writer["healthy"] for writer in writers)
    assert by_name(writers)["SqlServerWriter"]["instance_id"] == "{4c50db3e-e1eb-410a-99f9-ba4fc3b568c2}"


@LAYOUTS
def test_vssadmin_capture_waiting_for_responses_partial_raises_on_the_cut_block(layout):
    """Partial capture: 'ASR Writer' is cut after its writer id."""
    with pytest.raises(VssParseError, match=r"'ASR Writer'.*found 1"):
        parse_vssadmin_writers(layout(load("vssadmin_list_writers_en_waiting_for_responses_exchange_partial.txt")))


def test_vssadmin_capture_waiting_for_responses_variant_without_the_cut_block():
    """Variant: without the cut block, the '[PS] C:\\temp>' prompt and 'Waiting for responses' lines are skipped."""
    text = drop_last_lines(load("vssadmin_list_writers_en_waiting_for_responses_exchange_partial.txt"), 2)
    writers = parse_vssadmin_writers(text)
    assert [writer["name"] for writer in writers] == [
        "Task Scheduler Writer",
        "VSS Metadata Store Writer",
        "Performance Counters Writer",
        "System Writer",
    ]
    assert writers[3]["instance_id"] == "{a29aadde-0639-4400-923a-5fd982e53c7e}"


@LAYOUTS
def test_vssadmin_hand_edited_listing_after_restart_is_rejected(layout):
    """This capture was hand-edited: '[7] Stable' uses the word of [1] for a failed state number."""
    with pytest.raises(VssParseError, match=r"'WMI Writer' shows state \[7\] with the word 'stable'"):
        parse_vssadmin_writers(layout(load("vssadmin_list_writers_en_after_restart_ws2003_02.txt")))


def test_vssadmin_hand_edited_listing_after_restart_variant_without_the_wmi_block():
    """Variant: the three consistent blocks of the same capture parse (the contradiction is the only problem)."""
    text = drop_last_lines(load("vssadmin_list_writers_en_after_restart_ws2003_02.txt"), 6)
    writers = parse_vssadmin_writers(text)
    assert [writer["name"] for writer in writers] == ["System Writer", "SqlServerWriter", "MSDEWriter"]
    assert all(writer["healthy"] for writer in writers)
    assert writers[0]["instance_id"] == "{449e12cf-6b8f-4d75-a821-bc869d6612c4}"


@LAYOUTS
def test_vssadmin_hand_edited_listing_before_restart_is_rejected(layout):
    """This capture was hand-edited: [1] is printed both as 'Failed' and as 'Stable'."""
    with pytest.raises(VssParseError, match=r"state \[1\] is printed with different words"):
        parse_vssadmin_writers(layout(load("vssadmin_list_writers_en_before_restart_ws2003_01.txt")))


@pytest.mark.parametrize("text", ["", "   \r\n\r\n", "\ufeff"], ids=["empty", "blank_lines", "bom_only"])
def test_vssadmin_empty_output_is_a_failure(text):
    with pytest.raises(VssParseError, match=r"found none; zero writers means VSS is not usable.*\(empty text\)"):
        parse_vssadmin_writers(text)


def test_vssadmin_banner_only_is_a_failure_that_shows_the_text():
    banner = (
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool\r\n"
        "(C) Copyright 2001-2013 Microsoft Corp.\r\n\r\n"
        "Error: A Volume Shadow Copy Service component encountered an unexpected error.\r\n"
    )
    with pytest.raises(VssParseError, match="Volume Shadow Copy Service administrative") as raised:
        parse_vssadmin_writers(banner)
    assert isinstance(raised.value, ValueError)
    assert "expected at least one writer" in str(raised.value)


@LAYOUTS
def test_vssadmin_variant_block_missing_its_state(layout):
    """Variant: the Exchange capture with the failed writer's state line removed."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt").replace("   State: [7] Failed\n", "")
    with pytest.raises(VssParseError, match=r"'Microsoft Exchange Writer': no state line"):
        parse_vssadmin_writers(layout(text))


@LAYOUTS
def test_vssadmin_variant_block_missing_its_instance_id(layout):
    """Variant: the Exchange capture with the System Writer's instance id line removed."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt").replace(
        "   Writer Instance Id: {eb6b4c30-aa48-486a-9618-0d1934d180ca}\n", ""
    )
    with pytest.raises(VssParseError, match=r"'System Writer'.*found 1"):
        parse_vssadmin_writers(layout(text))


@LAYOUTS
def test_vssadmin_variant_state_line_without_a_writer_name(layout):
    """Variant: a garbled name line leaves a state line outside any block; the writer must not vanish silently."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt").replace(
        "Writer name: 'Microsoft Exchange Writer'", "Writer name: Microsoft Exchange Writer"
    )
    with pytest.raises(VssParseError, match=r"state line outside any writer block.*\[7\] Failed"):
        parse_vssadmin_writers(layout(text))


@LAYOUTS
def test_vssadmin_variant_open_brace_in_a_last_error_does_not_swallow_the_next_writer(layout):
    """Variant: a last error text ending in an unclosed '{' and hex digits is not a console wrap."""
    text = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt").replace(
        "   Last error: No error\n\nWriter name: 'Registry Writer'", "   Last error: Unexpected {0bad\n\nWriter name: 'Registry Writer'"
    )
    writers = parse_vssadmin_writers(layout(text))
    assert [writer["name"] for writer in writers][:2] == ["System Writer", "Registry Writer"]
    assert writers[0]["last_error"] == "Unexpected {0bad"


def test_vssadmin_variant_german_labels_and_double_quotes():
    """Variant: German labels around the blog excerpt, names in double quotes; only the structure is read."""
    text = (
        load("vssadmin_list_writers_en_sql_asr_mssearch_blog_partial.txt")
        .replace("Writer name: 'SqlServerWriter'", 'Verfassername: "SqlServerWriter"')
        .replace("Writer Instance Id:", "Verfasserinstanzkennung:")
        .replace("Writer Id:", "Verfasserkennung:")
        .replace("State: [1] Stable", "Status: [1] Stabil")
        .replace("Last error: No error", "Letzter Fehler: Kein Fehler")
    )
    writers = parse_vssadmin_writers(text)
    assert [writer["name"] for writer in writers] == ["SqlServerWriter", "ASR Writer", "MSSearch Service Writer"]
    assert {writer["last_error"] for writer in writers} == {"Kein Fehler"}
    assert all(writer["healthy"] for writer in writers)


@pytest.mark.parametrize(
    "name",
    [
        "vssadmin_list_writers_ja_healthy_wsrv_01.txt",
        "vssadmin_list_writers_fr_win11_openzfs406_partial.txt",
        "vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt",
    ],
)
def test_vssadmin_writers_have_exactly_the_documented_keys(name):
    for writer in parse_vssadmin_writers(load(name)):
        assert set(writer) == WRITER_KEYS
        assert isinstance(writer["state"], int)
        assert writer["healthy"] is vss.writer_state_healthy(writer["state"])
        assert writer["state_name"] == vss.writer_state_name(writer["state"])


def test_vssadmin_parser_does_not_accept_a_diskshadow_listing():
    with pytest.raises(VssParseError, match="expected at least one writer"):
        parse_vssadmin_writers(load("diskshadow_list_writers_status_msdocs_example.txt"))


# ------------------------------------------------------------------------- diskshadow list writers


def test_diskshadow_status_documentation_example():
    writers = parse_diskshadow_writers(load("diskshadow_list_writers_status_msdocs_example.txt"))
    assert [writer["name"] for writer in writers] == ["System Writer", "Shadow Copy Optimization Writer", "Registry Writer"]
    assert writers[0] == {
        "name": "System Writer",
        "writer_id": "{e8132975-6f93-4464-a53e-1050253ae220}",
        "instance_id": "{7e631031-c695-4229-9da1-a7de057e64cb}",
        "state": 5,
        "state_name": "WAITING_FOR_BACKUP_COMPLETE",
        "last_error": "0x00000000 (S_OK)",
        "healthy": False,
    }
    assert [writer["healthy"] for writer in writers] == [False, True, True]
    assert writers[2]["instance_id"] == "{e87ba7e3-f8d8-42d8-b2ee-c76ae26b98e8}"
    assert all(set(writer) == WRITER_KEYS for writer in writers)


def test_diskshadow_status_variant_quoted_names_crlf_no_indentation():
    """Variant: names in double quotes (the 2012 R2 page's form), CRLF, no indentation, a DISKSHADOW> prompt."""
    original = load("diskshadow_list_writers_status_msdocs_example.txt")
    text = "DISKSHADOW> list writers status\n\n" + original
    for name in ("System Writer", "Shadow Copy Optimization Writer", "Registry Writer"):
        text = text.replace(f"* WRITER {name}\n", f'* WRITER "{name}"\n')
    assert parse_diskshadow_writers(crlf(unindent(text))) == parse_diskshadow_writers(original)


def test_diskshadow_status_variant_failed_writer():
    """Variant: the Registry Writer failed at freeze with a writer timeout."""
    text = load("diskshadow_list_writers_status_msdocs_example.txt").replace(
        "        - Status: 1 (VSS_WS_STABLE)\n        - Writer Failure code: 0x00000000 (S_OK)\n"
        "        - Writer ID: {afbab4a2",
        "        - Status: 9 (VSS_WS_FAILED_AT_FREEZE)\n        - Writer Failure code: 0x800423f2 (VSS_E_WRITERERROR_TIMEOUT)\n"
        "        - Writer ID: {afbab4a2",
    )
    registry = by_name(parse_diskshadow_writers(text))["Registry Writer"]
    assert (registry["state"], registry["state_name"], registry["healthy"]) == (9, "FAILED_AT_FREEZE", False)
    assert registry["last_error"] == "0x800423f2 (VSS_E_WRITERERROR_TIMEOUT)"


@LAYOUTS
def test_diskshadow_status_variant_number_contradicting_its_token(layout):
    """Variant: a state number that is not the number of the printed VSS_WS_ token."""
    text = load("diskshadow_list_writers_status_msdocs_example.txt").replace(
        "Status: 5 (VSS_WS_WAITING_FOR_BACKUP_COMPLETE)", "Status: 1 (VSS_WS_WAITING_FOR_BACKUP_COMPLETE)"
    )
    with pytest.raises(VssParseError, match=r"'System Writer': state 1 printed as VSS_WS_WAITING_FOR_BACKUP_COMPLETE"):
        parse_diskshadow_writers(layout(text))


@LAYOUTS
def test_diskshadow_status_variant_block_missing_its_instance_id(layout):
    text = load("diskshadow_list_writers_status_msdocs_example.txt").replace(
        "        - Instance ID: {9e362607-9794-4dd4-a7cd-b3d5de0aad20}\n", ""
    )
    with pytest.raises(VssParseError, match=r"'Shadow Copy Optimization Writer'.*found 1"):
        parse_diskshadow_writers(layout(text))


@LAYOUTS
def test_diskshadow_status_variant_block_missing_its_status(layout):
    text = load("diskshadow_list_writers_status_msdocs_example.txt").replace(
        "        - Status: 1 (VSS_WS_STABLE)\n        - Writer Failure code: 0x00000000 (S_OK)\n        - Writer ID: {4dc3",
        "        - Writer Failure code: 0x00000000 (S_OK)\n        - Writer ID: {4dc3",
    )
    with pytest.raises(VssParseError, match=r"'Shadow Copy Optimization Writer'.*no status"):
        parse_diskshadow_writers(layout(text))


@LAYOUTS
def test_diskshadow_metadata_listing_alone_has_no_state(layout):
    """Metadata listings carry no state: the documentation example alone cannot tell if the writer is healthy."""
    with pytest.raises(VssParseError, match=r"'FRS Writer' \{07ae58e5-6977-4e34-9dfe-399bbd2cbe40\}: no status.*list writers status"):
        parse_diskshadow_writers(layout(load("vss_writer_metadata_frs_msdocs_example.txt")))


FRS_STATUS_BLOCK = (
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


def test_diskshadow_status_and_metadata_of_one_script_are_joined_with_components():
    """Variant: a script log with a status block (synthetic, same ids) followed by the metadata example."""
    text = FRS_STATUS_BLOCK + load("vss_writer_metadata_frs_msdocs_example.txt")
    writers = parse_diskshadow_writers(text)
    assert len(writers) == 1
    frs = writers[0]
    assert set(frs) == WRITER_KEYS | {"components"}
    assert (frs["name"], frs["state_name"], frs["healthy"], frs["last_error"]) == ("FRS Writer", "STABLE", True, "0x00000000 (S_OK)")
    assert frs["writer_id"] == "{d76f5a28-3092-4589-ba48-2958fb88ce29}"
    assert frs["components"] == [
        {
            "name": "da45368c-b2d3-4cf0-bdc338a2cde15a7b",
            "logical_path": "SYSVOL",
            "full_path": "\\SYSVOL\\da45368c-b2d3-4cf0-bdc338a2cde15a7b",
            "paths": ["d:\\windows\\sysvol"],
            "volumes": [{"volume": "\\\\?\\Volume{da897ba5-5840-11db-93c1-806e6f6e6963}\\", "display_name": "D:\\"}],
        }
    ]
    assert vss.writer_service(frs["name"]) == "NtFrs"


def test_diskshadow_metadata_variant_diskshadow_wording_second_component_and_dependency():
    """Variant: diskshadow's own wording ('+ Component', 'Paths affected'), a second component on C: and a
    dependency line naming another writer, which must not be taken for a component."""
    text = (
        FRS_STATUS_BLOCK
        + load("vss_writer_metadata_frs_msdocs_example.txt")
        .replace("    - Component ", "    + Component ")
        .replace("Affected paths by this component", "Paths affected by this component")
        .replace("Affected volumes by this component", "Volumes affected by this component")
        + '          - Dependency to "{e8132975-6f93-4464-a53e-1050253ae220}:\\System Files"\n'
        + '    + Component "FRS Writer:\\Staging\\Area"\n'
        + "       - Paths affected by this component:\n"
        + "         - C:\\Windows\\ntfrs\\\n"
        + "       - Volumes affected by this component:\n"
        + "         - \\\\?\\Volume{0A0B0C0D-1111-2222-3333-444455556666}\\ [C:\\]\n"
    )
    components = parse_diskshadow_writers(text)[0]["components"]
    assert [(component["logical_path"], component["name"]) for component in components] == [
        ("SYSVOL", "da45368c-b2d3-4cf0-bdc338a2cde15a7b"),
        ("Staging", "Area"),
    ]
    assert components[0]["paths"] == ["d:\\windows\\sysvol"]
    assert components[1]["paths"] == ["C:\\Windows\\ntfrs\\"]
    assert components[1]["volumes"] == [{"volume": "\\\\?\\Volume{0a0b0c0d-1111-2222-3333-444455556666}\\", "display_name": "C:\\"}]


def test_diskshadow_create_transcript_lists_no_writers():
    """A create transcript (verbose exclusions) is not a writer listing: zero writers is an error."""
    with pytest.raises(VssParseError, match=r"diskshadow list writers.*found none.*Volume in drive E is Test"):
        parse_diskshadow_writers(load("diskshadow_script_sql_writer_excluded_restic340_partial.txt"))


def test_diskshadow_parser_does_not_accept_a_vssadmin_listing():
    with pytest.raises(VssParseError, match="expected at least one writer"):
        parse_diskshadow_writers(load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt"))


# ---------------------------------------------------------------------------- diskshadow failures


def test_diskshadow_provider_veto_capture():
    failure = parse_diskshadow_failure(load("diskshadow_create_failed_provider_veto_openzfs406.txt"))
    assert failure == {"hresult": 0x80042306, "name": "VSS_E_PROVIDER_VETO", "error_text": "VSS_E_PROVIDER_VETO"}
    assert not vss.hresult_info(failure["hresult"]).retryable


def test_diskshadow_provider_veto_variant_crlf_no_indentation():
    original = load("diskshadow_create_failed_provider_veto_openzfs406.txt")
    assert parse_diskshadow_failure(crlf(unindent(original))) == parse_diskshadow_failure(original)


@pytest.mark.parametrize(
    "name",
    [
        "diskshadow_create_noautorecover_openzfs406_partial.txt",
        "diskshadow_script_sql_writer_excluded_restic340_partial.txt",
        "diskshadow_interactive_create_persistent_thirdparty_provider_partial.txt",
        "diskshadow_list_writers_status_msdocs_example.txt",
    ],
)
def test_diskshadow_output_without_a_failed_operation(name):
    assert parse_diskshadow_failure(load(name)) is None


def test_diskshadow_writer_failure_code_is_not_an_operation_failure():
    """Variant: a status listing with a failed writer's code; the listing itself succeeded."""
    text = load("diskshadow_list_writers_status_msdocs_example.txt").replace(
        "0x00000000 (S_OK)", "0x800423f2 (VSS_E_WRITERERROR_TIMEOUT)"
    )
    assert parse_diskshadow_failure(text) is None


def test_diskshadow_failure_variant_localized_labels():
    """Variant: the capture's failure block with translated sentence and labels and another HRESULT."""
    text = (
        "DISKSHADOW> create\n\n"
        "最後の操作は失敗しました。\n"
        "        - 返された HRESULT: 80042316\n"
        "        - エラー テキスト: VSS_E_SNAPSHOT_SET_IN_PROGRESS\n"
    )
    failure = parse_diskshadow_failure(text)
    assert failure == {"hresult": 0x80042316, "name": "VSS_E_SNAPSHOT_SET_IN_PROGRESS", "error_text": "VSS_E_SNAPSHOT_SET_IN_PROGRESS"}
    assert vss.hresult_info(failure["hresult"]).retryable


def test_diskshadow_failure_variant_unknown_code_keeps_the_printed_symbol():
    text = load("diskshadow_create_failed_provider_veto_openzfs406.txt").replace("80042306", "8004ABCD").replace(
        "VSS_E_PROVIDER_VETO", "VSS_E_NEW_IN_A_LATER_WINDOWS"
    )
    assert parse_diskshadow_failure(text) == {
        "hresult": 0x8004ABCD,
        "name": "VSS_E_NEW_IN_A_LATER_WINDOWS",
        "error_text": "VSS_E_NEW_IN_A_LATER_WINDOWS",
    }


def test_diskshadow_failure_variant_sentence_error_text_and_missing_error_line():
    sentence = parse_diskshadow_failure("The last operation failed.\n - Returned HRESULT: 8004ABCD\n - Error text: Something broke.\n")
    assert sentence == {"hresult": 0x8004ABCD, "name": None, "error_text": "Something broke."}
    cut = parse_diskshadow_failure("The last operation failed.\n - Returned HRESULT: 0x80042316\n")
    assert cut == {"hresult": 0x80042316, "name": "VSS_E_SNAPSHOT_SET_IN_PROGRESS", "error_text": None}


def test_diskshadow_failure_error_text_after_blank_lines_only_as_a_bullet():
    """Doubled line ends keep the error text; after a blank line, a line that is no ``- `` bullet is not one."""
    veto = load("diskshadow_create_failed_provider_veto_openzfs406.txt")
    assert parse_diskshadow_failure(doubled(veto)) == parse_diskshadow_failure(veto)
    cut = "The last operation failed.\n - Returned HRESULT: 0x80042316\n\nMicrosoft DiskShadow version 1.0\n"
    assert parse_diskshadow_failure(cut) == {"hresult": 0x80042316, "name": "VSS_E_SNAPSHOT_SET_IN_PROGRESS", "error_text": None}


def test_diskshadow_failure_variant_two_failures_returns_the_first():
    """Variant: the veto capture followed by a second failed create; a script stops at the first failure."""
    veto = load("diskshadow_create_failed_provider_veto_openzfs406.txt")
    second = veto.replace("80042306", "8004231F").replace("VSS_E_PROVIDER_VETO", "VSS_E_INSUFFICIENT_STORAGE")
    assert parse_diskshadow_failure(veto + "\n" + second)["name"] == "VSS_E_PROVIDER_VETO"


def test_diskshadow_failure_ignores_hex_that_is_not_a_failure_hresult():
    text = "- Setting the VSS context to: 0x00000010\n- Original count of shadow copies = 1\n- Volume: {80042306-0000-0000-0000-000000000000}\n"
    assert parse_diskshadow_failure(text) is None


# ---------------------------------------------------------------------------- diskshadow shadows


JA_SHADOW = {
    "shadow_id": "{66f52f76-6ac2-46b0-8160-6ee32c7da178}",
    "shadow_set_id": "{305fd2bb-9a64-4775-9444-7f024af2c562}",
    "alias": None,
    "original_volume": "\\\\?\\Volume{afdd4c4b-9dfd-46e8-9697-72262ec00f6f}\\",
    "original_volume_display": "E:\\",
    "device_object": "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy1",
    "provider_id": "{b5946137-7b9f-4925-af80-51abd60b20d5}",
    "attributes": ["No_Auto_Release", "Persistent", "Differential"],
}


def test_diskshadow_japanese_list_shadows_all():
    assert parse_diskshadow_shadows(load("diskshadow_list_shadows_all_ja_wsb_01.txt")) == [JA_SHADOW]


def test_diskshadow_japanese_list_shadows_variant_crlf_no_indentation():
    text = crlf(unindent(load("diskshadow_list_shadows_all_ja_wsb_01.txt")))
    assert parse_diskshadow_shadows(text) == [JA_SHADOW]


def test_diskshadow_japanese_list_shadows_variant_doubled_line_ends():
    """The ``- `` lines of a shadow copy block go on over the blank lines that doubled line ends put between them."""
    assert parse_diskshadow_shadows(doubled(load("diskshadow_list_shadows_all_ja_wsb_01.txt"))) == [JA_SHADOW]


@LAYOUTS
def test_diskshadow_cut_create_result_does_not_take_a_later_sentence_after_a_blank_line(layout):
    """Variant: the cut create result, then a blank line and the next create's sentence with a set id: a line after
    blank lines that is no ``- `` bullet ends the block, so the cut block stays without its set id."""
    text = load("diskshadow_create_noautorecover_openzfs406_partial.txt") + (
        "\nQuerying all shadow copies with the shadow copy set ID {11111111-2222-3333-4444-555555555555}\n"
    )
    with pytest.raises(VssParseError, match=r"\{50ca3407-1494-4784-ac5a-58eb49df0f7d\}: no shadow_set_id, original_volume"):
        parse_diskshadow_shadows(layout(text))


def test_diskshadow_list_shadows_variant_two_shadows_of_one_set():
    """Variant: a second shadow (on D:) listed right after the first, as diskshadow does for a multi-volume set."""
    original = load("diskshadow_list_shadows_all_ja_wsb_01.txt")
    block = original[original.index("        * "):]
    second = (
        block.replace("{66f52f76-6ac2-46b0-8160-6ee32c7da178}", "{11111111-2222-3333-4444-555555555555}")
        .replace("{afdd4c4b-9dfd-46e8-9697-72262ec00f6f}\\ [E:\\]", "{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}\\ [D:\\]")
        .replace("HarddiskVolumeShadowCopy1", "HarddiskVolumeShadowCopy2")
    )
    shadows = parse_diskshadow_shadows(original + second)
    assert [shadow["original_volume_display"] for shadow in shadows] == ["E:\\", "D:\\"]
    assert {shadow["shadow_set_id"] for shadow in shadows} == {JA_SHADOW["shadow_set_id"]}
    assert shadows[1]["device_object"].endswith("HarddiskVolumeShadowCopy2")


def test_diskshadow_create_result_with_third_party_provider_partial():
    """Partial capture (stops at '- Servic'): what identifies the shadow is there; provider and attributes are not."""
    shadows = parse_diskshadow_shadows(load("diskshadow_interactive_create_persistent_thirdparty_provider_partial.txt"))
    assert shadows == [
        {
            "shadow_id": "{7c589f05-5339-4f71-a51c-2cbd2ed1acdf}",
            "shadow_set_id": "{7d5c8869-2838-47b2-be8c-eba81c65f2ae}",
            "alias": "VSS_SHADOW_1",
            "original_volume": "\\\\?\\Volume{9edf9657-4390-11f1-86ae-f1519abac96e}\\",
            "original_volume_display": "E:\\",
            "device_object": "\\\\?\\GLOBALROOT\\Device\\ZfsSnapshot2094c7375a7fbf25",
            "provider_id": None,
            "attributes": None,
        }
    ]


@LAYOUTS
def test_diskshadow_create_result_cut_after_the_shadow_id_is_rejected(layout):
    """Partial capture: the block stops at its '* Shadow copy ID' line, so the shadow cannot be placed."""
    with pytest.raises(VssParseError, match=r"\{50ca3407-1494-4784-ac5a-58eb49df0f7d\}: no shadow_set_id, original_volume, device_object"):
        parse_diskshadow_shadows(layout(load("diskshadow_create_noautorecover_openzfs406_partial.txt")))


def test_diskshadow_create_transcript_without_result_lists_no_shadows():
    assert parse_diskshadow_shadows(load("diskshadow_script_sql_writer_excluded_restic340_partial.txt")) == []
    assert parse_diskshadow_shadows("") == []


# ------------------------------------------------------------------------ vssadmin shadowstorage

WRAPPED_ASSOCIATION = {
    "for_volume": "\\\\?\\Volume{986da89b-2336-4410-9417-d5dbf1f5f3e5}\\",
    "for_volume_display": "C:",
    "storage_volume": "\\\\?\\Volume{986da89b-2336-4410-9417-d5dbf1f5f3e5}\\",
    "storage_volume_display": "C:",
    "used": "2.06 GB (1%)",
    "allocated": "2.53 GB (1%)",
    "maximum": "11.8 GB (8%)",
}


@LAYOUTS
def test_vssadmin_shadowstorage_with_console_line_wrap(layout):
    """Tolerates the 80-column wrap inside the storage volume's GUID (joined back before parsing, also over the blank
    line that doubled line ends put inside the wrap)."""
    assert parse_vssadmin_shadowstorage(layout(load("vssadmin_list_shadowstorage_en_win10_powershell_console_wrap.txt"))) == [
        WRAPPED_ASSOCIATION
    ]


def test_vssadmin_shadowstorage_variant_unwrapped_crlf_and_second_association():
    """Variant: the wrap undone, CRLF, and a second association (D: on E:, unbounded) appended."""
    text = load("vssadmin_list_shadowstorage_en_win10_powershell_console_wrap.txt").replace("f5f3\ne5}", "f5f3e5}")
    text += (
        "\nShadow Copy Storage association\n"
        "   For volume: (D:)\\\\?\\Volume{0A0B0C0D-1111-2222-3333-444455556666}\\\n"
        "   Shadow Copy Storage volume: (E:)\\\\?\\Volume{99999999-8888-7777-6666-555555555555}\\\n"
        "   Used Shadow Copy Storage space: 0 B (0%)\n"
        "   Allocated Shadow Copy Storage space: 0 B (0%)\n"
        "   Maximum Shadow Copy Storage space: UNBOUNDED (100%)\n"
    )
    associations = parse_vssadmin_shadowstorage(crlf(text))
    assert associations[0] == WRAPPED_ASSOCIATION
    assert associations[1] == {
        "for_volume": "\\\\?\\Volume{0a0b0c0d-1111-2222-3333-444455556666}\\",
        "for_volume_display": "D:",
        "storage_volume": "\\\\?\\Volume{99999999-8888-7777-6666-555555555555}\\",
        "storage_volume_display": "E:",
        "used": "0 B (0%)",
        "allocated": "0 B (0%)",
        "maximum": "UNBOUNDED (100%)",
    }


@LAYOUTS
def test_vssadmin_shadowstorage_variant_cut_block_is_rejected(layout):
    text = drop_last_lines(load("vssadmin_list_shadowstorage_en_win10_powershell_console_wrap.txt"), 1)
    with pytest.raises(VssParseError, match=r"Volume\{986da89b-2336-4410-9417-d5dbf1f5f3e5\}.*used, allocated and maximum"):
        parse_vssadmin_shadowstorage(layout(text))


def test_vssadmin_shadowstorage_without_associations_is_empty():
    text = (
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool\n"
        "(C) Copyright 2001-2013 Microsoft Corp.\n\nNo items found that satisfy the query.\n"
    )
    assert parse_vssadmin_shadowstorage(text) == []
