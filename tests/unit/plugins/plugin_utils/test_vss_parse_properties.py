# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property tests (hypothesis) of the VSS output readers on every real capture in tests/fixtures/windows.

Consoles, copy and paste and mail change the layout of a listing without changing what it says: doubled line ends
(CR CR LF puts an empty line after every line), any mix of ``\\r\\n``, ``\\r\\r\\n``, ``\\n`` and a lone ``\\r``,
trailing spaces and tabs, and a banner or prompt line before the output. Given such a copy, every reader (the parsers
of vss_parse.py and the log readers of diskshadow_log.py) must give what it gives for the clean capture: the same
result, or the same refusal (a ``VssParseError`` with the same message). Damaged copies (lines lost, repeated or
swapped, the text cut anywhere, stray lines) may be refused, but only with a ``VssParseError``, and what is accepted
has the documented shape. The examples are derandomized and no example database is kept, so every run tries the same
inputs.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow_log, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_failure,
    parse_diskshadow_shadows,
    parse_diskshadow_writers,
    parse_vssadmin_shadowstorage,
    parse_vssadmin_writers,
)
from unit.plugins.plugin_utils.sql_host import capture

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "windows"
CAPTURES = sorted(path.name for path in FIXTURES.glob("*.txt"))

# Writer names the create transcripts mention (log_exclusions only reads the writers it is told about).
LOG_WRITERS = ["SqlServerWriter", "Task Scheduler Writer", "Shadow Copy Optimization Writer", "System Writer"]

READERS = {
    "parse_vssadmin_writers": parse_vssadmin_writers,
    "parse_diskshadow_writers": parse_diskshadow_writers,
    "parse_diskshadow_failure": parse_diskshadow_failure,
    "parse_diskshadow_shadows": parse_diskshadow_shadows,
    "parse_vssadmin_shadowstorage": parse_vssadmin_shadowstorage,
    "is_full_backup_log": diskshadow_log.is_full_backup_log,
    "failure_from_log": diskshadow_log.failure_from_log,
    "log_exclusions": lambda text: diskshadow_log.log_exclusions(text, LOG_WRITERS),
}

# Lines that come before the output, taken from the captures: the vssadmin banner, the diskshadow banner, a
# cmd.exe banner and prompts of cmd.exe, PowerShell and the Exchange Management Shell.
BANNERS = [
    ["vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool", "(C) Copyright 2001-2013 Microsoft Corp."],
    ["PS C:\\WINDOWS\\system32> vssadmin list writers"],
    ["[PS] C:\\temp> vssadmin list writers", "", "Waiting for responses.", "These may be delayed if a shadow copy is being prepared."],
    ["Microsoft Windows [Version 6.0.6001]", "Copyright (c) 2006 Microsoft Corporation.  All rights reserved.", "",
     "C:\\Windows\\system32>vssadmin list writers"],
    ["C:\\Windows\\system32>diskshadow", "Microsoft DiskShadow version 1.0", "Copyright (C) 2013 Microsoft Corporation",
     "On computer:  WIN-1ADC454BHIV,  5/8/2026 2:54:58 AM", ""],
]
LINE_ENDS = ["\r\n", "\r\r\n", "\n", "\r"]
TRAILING = ["", " ", "\t", "   ", " \t "]
BLANK_LINES = ["", " ", "\t", "  \t"]

GUID = re.compile(r"^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$")
WRITER_KEYS = {"name", "writer_id", "instance_id", "state", "state_name", "last_error", "healthy"}

RELAYOUT = settings(max_examples=40, derandomize=True, database=None, deadline=None)
DAMAGE = settings(max_examples=60, derandomize=True, database=None, deadline=None)


def outcomes(text: str) -> dict:
    """What every reader makes of the text: its result, or ("refused", message) for a VssParseError. The message
    loses the start of the text it quotes, which a banner changes. Any other exception propagates and fails."""
    found = {}
    for name, read in READERS.items():
        try:
            found[name] = read(text)
        except VssParseError as error:
            found[name] = ("refused", str(error).partition(" Text starts with: ")[0])
    return found


@st.composite
def relaid(draw, text: str) -> str:
    """The text with another layout: a banner or not, each line with its own or one shared line end, trailing
    blanks, and empty or blank-only lines after any line (or after every line: doubled line ends)."""
    lines = draw(st.sampled_from([[]] + BANNERS)) + text.split("\n")
    shared_end = draw(st.sampled_from([None] + LINE_ENDS))
    doubled = draw(st.booleans())
    laid = []
    for line in lines:
        end = shared_end or draw(st.sampled_from(LINE_ENDS))
        laid.append(line + draw(st.sampled_from(TRAILING)) + end)
        count = 1 if doubled else draw(st.integers(min_value=0, max_value=2))
        laid.extend([draw(st.sampled_from(BLANK_LINES)) + end] * count)
    prefix = draw(st.sampled_from(["", "\ufeff"]))
    return prefix + "".join(laid)


STRAY_LINE = st.text(alphabet=st.sampled_from(list("{}[]:'\"*-+>\\ \t0123456789abcdefVSS_WS\u2019\u201c\u00e9\u72b6")), max_size=40)


@st.composite
def damaged(draw, text: str) -> str:
    """The text with lines lost, repeated, swapped or replaced by stray text, perhaps cut anywhere."""
    lines = text.split("\n")
    changes = draw(st.lists(st.sampled_from(["drop", "repeat", "swap", "stray"]), min_size=1, max_size=4))
    for action in changes:
        if not lines:
            break
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        if action == "drop":
            del lines[index]
        elif action == "repeat":
            lines.insert(index, lines[index])
        elif action == "swap" and index + 1 < len(lines):
            lines[index], lines[index + 1] = lines[index + 1], lines[index]
        elif action == "stray":
            lines.insert(index, draw(STRAY_LINE))
    damaged_text = "\n".join(lines)
    if draw(st.booleans()):
        damaged_text = damaged_text[: draw(st.integers(min_value=0, max_value=len(damaged_text)))]
    return damaged_text


def assert_documented_shape(found: dict) -> None:
    for reader in ("parse_vssadmin_writers", "parse_diskshadow_writers"):
        writers = found[reader]
        if isinstance(writers, tuple):
            continue
        assert writers, f"{reader} accepted a listing without writers"
        for writer in writers:
            assert WRITER_KEYS <= set(writer) <= WRITER_KEYS | {"components"}
            assert writer["name"] and GUID.match(writer["writer_id"]) and GUID.match(writer["instance_id"])
            assert isinstance(writer["state"], int)
            assert writer["healthy"] is vss.writer_state_healthy(writer["state"])
    for shadow in [] if isinstance(found["parse_diskshadow_shadows"], tuple) else found["parse_diskshadow_shadows"]:
        assert GUID.match(shadow["shadow_id"]) and GUID.match(shadow["shadow_set_id"])
        assert shadow["original_volume"] and shadow["device_object"]
    failure = found["parse_diskshadow_failure"]
    if isinstance(failure, dict):
        assert failure["hresult"] & 0x80000000


def reads_something(result) -> bool:
    """A result that is no refusal and not empty (log_exclusions always answers its three lists)."""
    if isinstance(result, tuple):
        return False
    if isinstance(result, dict) and set(result) == {"components", "writers", "included"}:
        return any(result.values())
    return bool(result)


def test_every_reader_accepts_some_capture_and_refuses_some():
    """The properties compare real results: each parser gives a non-empty result for at least one capture, and the
    captures include listings the writer parsers refuse (partial or hand-edited ones)."""
    clean = {name: outcomes(capture(name)) for name in CAPTURES}
    for reader in READERS:
        assert any(reads_something(found[reader]) for found in clean.values()), reader
    for reader in ("parse_vssadmin_writers", "parse_diskshadow_writers", "parse_diskshadow_shadows"):
        assert any(isinstance(found[reader], tuple) and found[reader][0] == "refused" for found in clean.values()), reader


@pytest.mark.parametrize("name", CAPTURES)
@RELAYOUT
@given(data=st.data())
def test_another_layout_reads_the_same(name, data):
    text = capture(name)
    expected = outcomes(text)
    assert outcomes(data.draw(relaid(text), label="relaid")) == expected


@pytest.mark.parametrize("name", CAPTURES)
@DAMAGE
@given(data=st.data())
def test_damaged_output_is_refused_with_a_parse_error_or_read_in_shape(name, data):
    text = data.draw(damaged(capture(name)), label="damaged")
    assert_documented_shape(outcomes(data.draw(relaid(text), label="relaid")))


# ------------------------------------------------------------------- the log readers on two line ends


@pytest.mark.parametrize("line_end", ["\r\r\n", "\r"], ids=["doubled", "lone_cr"])
def test_diskshadow_log_with_doubled_or_lone_cr_line_ends(line_end):
    """The create transcript's exclusions and its ``-> BEGIN BACKUP``, and the veto failure, read the same."""
    transcript = capture("diskshadow_script_sql_writer_excluded_restic340_partial.txt")
    veto = capture("diskshadow_create_failed_provider_veto_openzfs406.txt")
    relaid_transcript = transcript.replace("\n", line_end)
    assert diskshadow_log.is_full_backup_log(relaid_transcript)
    assert diskshadow_log.log_exclusions(relaid_transcript, LOG_WRITERS) == diskshadow_log.log_exclusions(transcript, LOG_WRITERS)
    assert [item["volume"] for item in diskshadow_log.log_exclusions(relaid_transcript, LOG_WRITERS)["components"]] == [
        "C:\\", "C:\\"]
    assert diskshadow_log.failure_from_log(veto.replace("\n", line_end))["error_text"] == "VSS_E_PROVIDER_VETO"
