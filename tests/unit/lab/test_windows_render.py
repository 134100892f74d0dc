"""The simulated hosts' vssadmin and diskshadow text: same layout as real captures, parsed by the collection's parsers.

Structure tests rebuild a capture's writers (names, ids, states, last errors) in the renderer and compare the text
line by line with the capture (tests/fixtures/windows/); where a capture carries a publication artefact the
test names it and normalises exactly that. Parser tests run the rendered text through the console code-page round
trip (encoded in the host's OEM code page, decoded as the agent decodes it) and the collection's parsers.
"""

import datetime
import pathlib
from dataclasses import dataclass

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_writers,
    parse_vssadmin_writers,
)
from lab.dataplane import BlockStore
from lab.windows import catalog, render
from lab.windows.locales import EN_US, FR_FR, JA_JP, LOCALES, agent_decode, console_bytes
from lab.windows.model import WindowsServer
from lab.windows.testing import sample_instance

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "windows"


def load(name):
    """A capture without its ``#`` provenance lines."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


@dataclass
class FakeWriter:
    name: str
    writer_id: str
    instance_id: str
    state: int
    error: str


def writers_from_capture(text, locale):
    """The capture's writers, read by the collection's parser, as renderer input (last error word -> error key)."""
    words = {word: key for key, word in locale.error_words.items()}
    return [FakeWriter(w["name"], w["writer_id"], w["instance_id"], w["state"], words[w["last_error"]]) for w in parse_vssadmin_writers(text)]


def round_trip(text, locale, decode_page=None):
    return agent_decode(console_bytes(text, locale.oem_code_page), decode_page or locale.oem_code_page)


def sql_host(locale="en-US", **windows):
    settings = {"os": "2022", "locale": locale, "applications": ["sql"]}
    settings.update(windows)
    return WindowsServer(sample_instance("win-sql-01", windows=settings), BlockStore()).seed()


# ---------------------------------------------------------------------------------------------- structure
def test_vssadmin_en_matches_the_exchange_capture_line_for_line():
    """Banner, "Waiting for responses." lines, blank lines and 3-space indentation as on Windows Server 2012 R2+.

    Artefacts: the capture starts with the Exchange shell prompt and its last block (ASR Writer) is cut: both left out.
    """
    text = load("vssadmin_list_writers_en_waiting_for_responses_exchange_partial.txt")
    complete = text[: text.index("Writer name: 'ASR Writer'")]
    capture = complete.split("\n", 1)[1]
    rendered = render.vssadmin_list_writers(EN_US, writers_from_capture(complete, EN_US))
    assert rendered.splitlines() == capture.splitlines()
    assert rendered == capture


def test_vssadmin_en_failed_writer_block_matches_the_nagios_capture():
    """Blocks only (the capture has no banner): [7] Failed / Retryable error, a blank line after every block."""
    capture = load("vssadmin_list_writers_en_exchange_failed_retryable_nagios_data.txt")
    rendered = render.vssadmin_list_writers(EN_US, writers_from_capture(capture, EN_US))
    assert rendered[rendered.index("Writer name:"):] == capture


def test_vssadmin_ja_matches_the_japanese_capture():
    """Labels, [1] 安定, エラーなし and the blank-line layout of the Japanese capture.

    Artefacts of the blog normalised in the capture: U+2018/U+2019 around names (real: ASCII '), the en dash in the
    banner (real: '-'), the lost 3-space indentation (compared without leading blanks); the prompt line is left out.
    The writer ids of the capture are anonymised: they are taken from it as they are.
    """
    text = load("vssadmin_list_writers_ja_healthy_wsrv_01.txt")
    capture = text.split("\n", 1)[1].replace("\u2018", "'").replace("\u2019", "'").replace("\u2013", "-")
    rendered = render.vssadmin_list_writers(JA_JP, writers_from_capture(capture, JA_JP))
    assert [line.lstrip() for line in rendered.splitlines()] == capture.splitlines()
    assert "   ライター Id: " in rendered and "   状態: [1] 安定" in rendered


def test_vssadmin_fr_matches_the_french_capture():
    """Labels with a space before the colon and U+2019 apostrophes, as the French capture prints them.

    Artefacts: the capture's first line is the poster's backtick and command, and its 5th block is cut: left out.
    """
    text = load("vssadmin_list_writers_fr_win11_openzfs406_partial.txt")
    lines = text.splitlines()
    complete = "\n".join(lines[2:lines.index("Nom du r\u00e9da")]) + "\n"
    rendered = render.vssadmin_list_writers(FR_FR, writers_from_capture(complete, FR_FR))
    assert rendered == complete


def test_diskshadow_status_matches_the_documentation_example():
    """Layout of ``list writers status``. The example prints names without quotes (the 2012 R2 page and the restic
    capture quote them, as the lab does) and elides writers (its count says 8): both normalised."""
    capture = load("diskshadow_list_writers_status_msdocs_example.txt")
    writers = [
        FakeWriter("System Writer", "{e8132975-6f93-4464-a53e-1050253ae220}", "{7e631031-c695-4229-9da1-a7de057e64cb}", 5, "no_error"),
        FakeWriter("Shadow Copy Optimization Writer", "{4dc3bdd4-ab48-4d07-adb0-3bee2926fd7f}",
                   "{9e362607-9794-4dd4-a7cd-b3d5de0aad20}", 1, "no_error"),
        FakeWriter("Registry Writer", "{afbab4a2-367d-4d15-a586-71dbb18f8485}", "{e87ba7e3-f8d8-42d8-b2ee-c76ae26b98e8}", 1, "no_error"),
    ]
    rendered = render.diskshadow_list_writers_status(EN_US, writers)
    normalised = [line.replace('"', "") if line.startswith("* WRITER") else line for line in rendered]
    normalised[-2] = "8 writers listed."
    assert normalised[:-1] == capture.splitlines()
    assert rendered[-1] == ""


def test_diskshadow_script_banner_matches_the_restic_capture():
    """``diskshadow /s``: version, copyright, ``On computer:  HOST,  date`` with two spaces, a blank, ``-> command``."""
    capture = load("diskshadow_script_sql_writer_excluded_restic340_partial.txt").splitlines()
    start = capture.index("Microsoft DiskShadow version 1.0")
    moment = datetime.datetime(2019, 6, 2, 14, 55, 20)
    rendered = render.diskshadow_script(EN_US, "HOSTNAME", moment, [("SET VERBOSE ON", [])]).splitlines()
    assert rendered == capture[start:start + 5]


def test_no_writers_prints_the_banner_only_and_the_parsers_refuse_it():
    """EventSystem stopped: vssadmin lists nothing, which the collection treats as a failure, never as healthy."""
    host = sql_host()
    host.writers.set_state("*", "missing")
    text = render.vssadmin_list_writers(EN_US, host.writers.visible())
    assert text.splitlines() == list(EN_US.vssadmin_banner) + [""] + list(EN_US.vssadmin_waiting) + [""]
    with pytest.raises(VssParseError):
        parse_vssadmin_writers(text)
    with pytest.raises(VssParseError):
        parse_diskshadow_writers("\n".join(render.diskshadow_list_writers_status(EN_US, [])))


# ------------------------------------------------------------------------------------ parsers and code pages
@pytest.mark.parametrize("locale", sorted(LOCALES))
def test_every_state_parses_to_the_model_after_the_code_page_round_trip(locale):
    host = sql_host(locale)
    states = list(range(16))
    for writer, state in zip(host.writers, states):
        host.writers.set_state(writer.name, state)
    host.writers.set_state("System Writer", "not_responding")
    host.writers.set_state("WMI Writer", "timed_out")
    expected = [(w.name, w.writer_id, w.instance_id, w.state) for w in host.writers.visible()]
    assert len(expected) == len(host.writers)

    vssadmin = round_trip(render.vssadmin_list_writers(host.locale, host.writers.visible()), host.locale)
    parsed = parse_vssadmin_writers(vssadmin)
    assert [(w["name"], w["writer_id"], w["instance_id"], w["state"]) for w in parsed] == expected
    assert [w["healthy"] for w in parsed] == [state == 1 for dummy, dummy2, dummy3, state in expected]

    status = render.diskshadow_list_writers_status(host.locale, host.writers.visible())
    script = round_trip(render.diskshadow_script(host.locale, host.hostname, host.clock(), [("list writers status", status)]), host.locale)
    parsed = parse_diskshadow_writers(script)
    assert [(w["name"], w["writer_id"], w["instance_id"], w["state"]) for w in parsed] == expected
    timed_out = next(w for w in parsed if w["name"] == "WMI Writer")
    assert timed_out["state_name"] == "FAILED_AT_FREEZE"
    assert timed_out["last_error"] == "0x800423f2 (VSS_E_WRITERERROR_TIMEOUT)"


@pytest.mark.parametrize("locale", sorted(LOCALES))
def test_detailed_listing_gives_each_writer_its_component_volumes(locale):
    host = sql_host(locale)
    host.writers.set_state("SqlServerWriter", "failed_at_prepare_snapshot")
    writers = host.writers.visible()
    detailed = render.diskshadow_list_writers_detailed(host.locale, writers, host.writers.components)
    status = render.diskshadow_list_writers_status(host.locale, writers)
    text = round_trip(render.diskshadow_script(host.locale, host.hostname, host.clock(),
                                               [("list writers detailed", detailed), ("list writers status", status)]), host.locale)
    parsed = {w["name"]: w for w in parse_diskshadow_writers(text)}
    sql = parsed["SqlServerWriter"]
    assert sql["state"] == 8 and sql["last_error"].startswith("0x800423f0")
    assert [c["full_path"] for c in sql["components"]] == ["\\WIN-SQL-01\\%s" % db for db in catalog.SQL_DATABASES]
    drives = {host.storage.find_volume("D:").unique_id: "D:\\", host.storage.find_volume("E:").unique_id: "E:\\"}
    for component in sql["components"]:
        assert {v["volume"]: v["display_name"] for v in component["volumes"]} == drives
        assert component["paths"] == ["D:\\SQLData", "E:\\SQLLogs"]
    system = parsed["System Writer"]["components"][0]
    assert system["volumes"] == [{"volume": host.storage.find_volume("C:").unique_id, "display_name": "C:\\"}]


def test_japanese_text_survives_cp932_and_a_decoding_mistake_shows():
    host = sql_host("ja-JP")
    text = render.vssadmin_list_writers(host.locale, host.writers.visible())
    data = console_bytes(text, 932)
    assert data.decode("cp932") == text.replace("\n", "\r\n")
    assert "ライター名" not in data.decode("utf-8", errors="replace")
    right = agent_decode(data, 932)
    wrong = agent_decode(data, 437)
    assert "ライター名: 'System Writer'" in right and "ライター名" not in wrong
    assert "\ufffd" in agent_decode(data, 65001)
    # The parsers key on structure, so even mojibake labels still give the writers; the words are lost.
    assert [w["name"] for w in parse_vssadmin_writers(wrong)] == [w["name"] for w in parse_vssadmin_writers(right)]


def test_characters_outside_the_code_page_get_windows_best_fit_or_a_question_mark():
    assert console_bytes("d\u2019administration \u2013 x", 850) == b"d'administration - x"
    assert console_bytes("\u2018System Writer\u2019", 932).decode("cp932") == "\u2018System Writer\u2019"
    assert console_bytes("\u65e5\u672c", 437) == b"??"
    assert console_bytes("a\nb\r\nc", 437) == b"a\r\nb\r\nc"


def test_failed_states_print_one_word_and_the_number_tells_the_phase():
    for locale in LOCALES.values():
        words = {locale.state_word(state) for state in range(6, 16)}
        assert len(words) == 1 and locale.state_word(1) not in words
        assert len({locale.state_word(state) for state in range(0, 6)}) == 6
