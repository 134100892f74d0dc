# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""Parsers of vssadmin and diskshadow output, keyed on structure, never on label words.

vssadmin and diskshadow translate their labels, state words and error words (``状態: [1] 安定``,
``État : [1] Stable``), so nothing here reads a label. The anchors are what no locale changes: the quoted
writer name, the ``{GUID}`` values in order (writer id, then instance id), the bracketed state number ``[N]``, the
``VSS_WS_*`` and ``VSS_E_*`` tokens diskshadow prints, hex HRESULTs, ``\\?\Volume{GUID}\`` names and the
block layout. Blank lines separate nothing: CR CR LF line ends, reflowed console output and mail double them, so
blocks are found by what they hold. A vssadmin writer block is its quoted name line, its ``{GUID}`` lines, its
``[N]`` state line and the line after the state (the last error); a prompt or a new name line ends it earlier.
A diskshadow block goes on over blank lines only with its ``- `` bullet lines; after blank lines, any other line
ends it, as a prompt does. Indentation, line ends (``\r\n``, ``\r\r\n``, ``\n``, ``\r``), trailing blanks,
prompt lines (``C:\>vssadmin list writers``, ``DISKSHADOW> list writers status``, ``-> CREATE``), banners
and copyright lines do not matter. A line that an 80-column console wrapped inside a ``{GUID}`` is joined
back to its continuation before parsing.

All ids are returned as ``{guid}`` in lower case, so ids from different tools compare equal.

``parse_vssadmin_writers(text)`` and ``parse_diskshadow_writers(text)`` return a list with one dict per
writer, in listing order, each with these keys:

- ``name``: the writer name as printed between the quotes.
- ``writer_id``: the writer class id.
- ``instance_id``: the writer instance id.
- ``state``: the VSS_WRITER_STATE number (int).
- ``state_name``: its name without the ``VSS_WS_`` prefix (``STABLE``, ``FAILED_AT_FREEZE``).
- ``last_error``: as printed, the text after the label: vssadmin's last error (``No error``,
  ``Retryable error``, in the console's language), diskshadow's writer failure code
  (``0x800423f2 (VSS_E_WRITERERROR_TIMEOUT)``); None when the listing has no such line.
- ``healthy``: True only for STABLE (see ``vss.writer_state_healthy``).

``parse_diskshadow_writers`` reads ``list writers status`` and the metadata listings (``list writers``,
``list writers detailed``). Metadata listings carry no state, so a script runs ``list writers status`` too
and passes the whole log: blocks of the same writer instance are joined. A writer whose metadata was
listed also has ``components``: a list of dicts with ``name``, ``logical_path``, ``full_path`` (from the
component's ``"Writer:\logical\name"`` header), ``paths`` (the paths it affects) and ``volumes`` (the
volumes it affects, dicts of ``volume`` ``\\?\Volume{guid}\`` and ``display_name`` such as ``C:\``
or None). The backup flow uses them to put every volume a writer touches in the shadow copy set.

``parse_diskshadow_failure(text)`` returns None when the text shows no failed operation, else a dict of
the first failure: ``hresult`` (int), ``name`` (symbolic name such as ``VSS_E_PROVIDER_VETO`` from
``vss.HRESULTS``, else the printed error text when it is a symbol, else None) and ``error_text`` (as
printed after the label, or None). In script mode diskshadow stops at the first failure.

``parse_diskshadow_shadows(text)`` reads ``list shadows all`` and the result of ``create``; it returns one
dict per shadow copy: ``shadow_id``, ``shadow_set_id``, ``alias`` (``VSS_SHADOW_1`` for
``%VSS_SHADOW_1%``, None for ``<No Alias>``), ``original_volume`` (``\\?\Volume{guid}\``),
``original_volume_display`` (``E:\`` or None), ``device_object``
(``\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy1``), ``provider_id`` (None if not printed) and
``attributes`` (the untranslated keywords such as ``["No_Auto_Release", "Persistent", "Differential"]``,
None if not printed). No shadow copies is an empty list.

``parse_vssadmin_shadowstorage(text)`` returns one dict per shadow storage association: ``for_volume``,
``for_volume_display``, ``storage_volume``, ``storage_volume_display`` (``\\?\Volume{guid}\`` and the
``C:`` printed in parentheses, or None), and ``used``, ``allocated``, ``maximum`` as printed after their
labels (``2.06 GB (1%)``, ``UNBOUNDED``). No association is an empty list.

Output that cannot be trusted raises ``VssParseError`` (a ValueError): no writer at all (zero writers is a
failure for every caller, never "healthy"), a writer block without exactly two GUIDs or its state, a diskshadow
state number that contradicts its ``VSS_WS_*`` token, a vssadmin listing whose state words contradict the
numbers, a shadow copy or storage association block missing what identifies it.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import GUID_PATTERN, normalise_guid, volume_name
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss import (
    VSS_WRITER_STATE,
    WRITER_STATE_STABLE,
    hresult_name,
    writer_name_key,
    writer_state_healthy,
    writer_state_name,
)


class VssParseError(ValueError):
    """Tool output that does not have the structure the caller relies on."""


_SNIPPET_CHARS = 240

_GUID_RE = re.compile(GUID_PATTERN)
# The end of a line that an 80-column console cut inside a GUID: an open brace followed only by GUID characters.
_WRAPPED_GUID_RE = re.compile(r"\{[0-9A-Fa-f-]{0,35}$")
_GUID_CONTINUATION_RE = re.compile(r"^[0-9A-Fa-f-]{0,36}\}")
_DASH_BULLET_RE = re.compile(r"^\s*-\s")
_VOLUME_RE = re.compile(r"\\\\\?\\Volume(?P<guid>" + GUID_PATTERN + r")\\(?:\s*\[(?P<display>[^\]]*)\])?")
_PROMPT_RE = re.compile(r"^\s*(?:(?:\[PS\]\s*)?(?:PS\s+)?[A-Za-z]:\\[^>]*>|DISKSHADOW>|->\s|>>)", re.IGNORECASE)

# ASCII quotes, and the typographic ones that blog engines and German output use (U+2018, U+201C, U+201E; U+2019, U+201D).
_OPEN_QUOTES = "'\"\u2018\u201c\u201e"
_CLOSE_QUOTES = "'\"\u2019\u201d\u201c"
# vssadmin: ``<label>: 'System Writer'``; the name runs to the last quote of the line.
_VSSADMIN_NAME_RE = re.compile(r"[:\uff1a]\s*[" + _OPEN_QUOTES + r"](?P<name>.+?)[" + _CLOSE_QUOTES + r"]\s*$")
# vssadmin: ``<label>: [1] Stable``.
_VSSADMIN_STATE_RE = re.compile(r"[:\uff1a]\s*\[(?P<state>\d+)\]\s*(?P<word>.*?)\s*$")
_AFTER_LABEL_RE = re.compile(r"^[^:\uff1a]*[:\uff1a]\s*(?P<value>.*?)\s*$")

# diskshadow: ``* WRITER "System Writer"`` (or without quotes), never with a GUID on the line.
_BULLET_RE = re.compile(r"^\s*\*\s+(?P<rest>\S.*?)\s*$")
_QUOTED_RE = re.compile(r"[" + _OPEN_QUOTES + r"](?P<text>.+)[" + _CLOSE_QUOTES + r"]")
# diskshadow: ``- Status: 5 (VSS_WS_WAITING_FOR_BACKUP_COMPLETE)``.
_DISKSHADOW_STATE_RE = re.compile(r"(?P<state>\d+)\s*\(\s*VSS_WS_(?P<token>[A-Z_]+)\s*\)")
# diskshadow: ``- Writer Failure code: 0x00000000 (S_OK)``.
_FAILURE_CODE_RE = re.compile(r"0x[0-9A-Fa-f]{8}\b.*$")
# diskshadow: ``+ Component "SqlServerWriter:\SQL2012\model"``.
_COMPONENT_RE = re.compile("[\"\u201c](?P<writer>[^\"\u201c\u201d]*?):(?P<full_path>\\\\[^\"\u201c\u201d]*)[\"\u201d]")
_BULLET_PATH_RE = re.compile(r"^\s*-\s+(?P<path>(?:[A-Za-z]:\\|\\\\(?!\?\\Volume)).*?)\s*$")

# diskshadow failure block: ``- Returned HRESULT: 80042306`` then ``- Error text: VSS_E_PROVIDER_VETO``.
_HRESULT_LINE_RE = re.compile(r"[:\uff1a]\s*(?:0x)?(?P<hex>[0-9A-Fa-f]{8})\s*$")
_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")

_DEVICE_RE = re.compile(r"\\\\\?\\GLOBALROOT\\\S+")
_ALIAS_RE = re.compile(r"%(?P<alias>[^%\s]+)%")
# diskshadow's shadow copy attribute keywords (never translated), case-folded.
_SHADOW_ATTRIBUTES = frozenset(
    word.casefold()
    for word in (
        "Persistent",
        "No_Auto_Release",
        "Differential",
        "Plex",
        "Client_accessible",
        "No_Writers",
        "Transportable",
        "Nas",
        "Hardware",
        "Auto_Recovered",
        "Imported",
        "Exposed_Locally",
        "Exposed_Remotely",
        "Rollback_Recovery",
        "Delayed_Postsnapshot",
        "Tx_Recovery",
        "File_Share",
    )
)

# vssadmin shadowstorage: ``(C:)\\?\Volume{...}\``; the parenthesised part is absent for unlettered volumes.
_STORAGE_VOLUME_RE = re.compile(r"(?:\((?P<display>[^)]*)\))?\s*\\\\\?\\Volume(?P<guid>" + GUID_PATTERN + r")\\")
_STORAGE_SIZES = ("used", "allocated", "maximum")


def _snippet(text: str) -> str:
    """The start of the text, for error messages that have to show what was received."""
    start = text.lstrip("\ufeff").strip()[:_SNIPPET_CHARS]
    return repr(start) if start else "(empty text)"


def _no_writers_error(tool: str, block: str, text: str) -> VssParseError:
    return VssParseError(
        f"expected at least one writer in {tool} output ({block}), found none; zero writers means VSS is not usable, "
        f"never healthy. Text starts with: {_snippet(text)}"
    )


def _lines(text: str) -> list[str]:
    """Lines without line ends or trailing blanks; a line that a console wrapped inside a ``{GUID}`` is joined to its
    continuation, also over the blank lines that doubled line ends put between them."""
    lines: list[str] = []
    last_text: int | None = None
    for line in text.lstrip("\ufeff").splitlines():
        line = line.rstrip()
        if last_text is not None and _WRAPPED_GUID_RE.search(lines[last_text]) and _GUID_CONTINUATION_RE.match(line):
            lines[last_text] += line
            del lines[last_text + 1:]
            continue
        lines.append(line)
        if line:
            last_text = len(lines) - 1
    return lines


def _text_lines(lines: list[str]) -> list[tuple[str, bool]]:
    """The non-blank lines, each with whether blank lines came before it."""
    found = []
    after_blank = False
    for line in lines:
        if line.strip():
            found.append((line, after_blank))
        after_blank = not line.strip()
    return found


def _continues_diskshadow_block(line: str, after_blank: bool) -> bool:
    """A prompt ends a diskshadow block; after blank lines only its ``- `` bullet lines go on with it."""
    return not _PROMPT_RE.match(line) and (not after_blank or bool(_DASH_BULLET_RE.match(line)))


def _after_label(line: str) -> str:
    match = _AFTER_LABEL_RE.match(line)
    return match.group("value") if match else line.strip()


def _writer(name: str, writer_id: str, instance_id: str, state: int, last_error: str | None) -> dict:
    return {
        "name": name,
        "writer_id": writer_id,
        "instance_id": instance_id,
        "state": state,
        "state_name": writer_state_name(state),
        "last_error": last_error,
        "healthy": writer_state_healthy(state),
    }


def _is_vssadmin_state_line(line: str) -> bool:
    return bool(_VSSADMIN_STATE_RE.search(line)) and not _GUID_RE.search(line)


def _vssadmin_blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(writer name, the lines after the name line) per writer block.

    A block runs from its name line to the line after its state line (the last error), or to a prompt or the next
    name line when it is shorter; blank lines neither end nor open one."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    state_read = False
    for line in lines:
        if not line.strip():
            continue
        name_match = _VSSADMIN_NAME_RE.search(line)
        if name_match and not _GUID_RE.search(line):
            current = []
            blocks.append((name_match.group("name").strip(), current))
            state_read = False
        elif _PROMPT_RE.match(line):
            current = None
        elif current is not None:
            current.append(line)
            if state_read:
                current = None
            else:
                state_read = _is_vssadmin_state_line(line)
        elif _VSSADMIN_STATE_RE.search(line):
            raise VssParseError(
                f"state line outside any writer block (its writer name line is missing or garbled): {line.strip()!r}"
            )
    return blocks


def _check_state_words(words_by_state: dict[int, dict[str, str]]) -> None:
    """vssadmin prints one word per state number; a listing that breaks that rule was edited or is corrupted."""
    for state, words in words_by_state.items():
        if len(words) > 1:
            examples = ", ".join(f"{writer!r} [{state}] {word!r}" for word, writer in words.items())
            raise VssParseError(f"state [{state}] is printed with different words ({examples}): the listing contradicts itself")
    stable_words = words_by_state.get(WRITER_STATE_STABLE, {})
    for state, words in words_by_state.items():
        for word, writer in words.items():
            if state != WRITER_STATE_STABLE and word in stable_words:
                raise VssParseError(
                    f"writer {writer!r} shows state [{state}] with the word {word!r} that this listing prints for [1] "
                    f"(STABLE): number and word contradict each other, the listing cannot be trusted"
                )


def parse_vssadmin_writers(text: str) -> list[dict]:
    """Writers from ``vssadmin list writers`` output in any language (see the module docstring for the shape)."""
    writers = []
    words_by_state: dict[int, dict[str, str]] = {}
    for name, block in _vssadmin_blocks(_lines(text)):
        guids: list[str] = []
        state: int | None = None
        last_error: str | None = None
        for line in block:
            if state is not None:
                last_error = _after_label(line)
            elif _is_vssadmin_state_line(line):
                state_match = _VSSADMIN_STATE_RE.search(line)
                state = int(state_match.group("state"))
                word = state_match.group("word").casefold()
                if word:
                    words_by_state.setdefault(state, {}).setdefault(word, name)
            else:
                guids.extend(normalise_guid(guid) for guid in _GUID_RE.findall(line))
        if len(guids) != 2:
            raise VssParseError(f"writer {name!r}: expected a writer id and an instance id {{GUID}}, found {len(guids)}")
        if state is None:
            raise VssParseError(f"writer {name!r}: no state line ([N] after the label)")
        writers.append(_writer(name, guids[0], guids[1], state, last_error))
    if not writers:
        raise _no_writers_error("vssadmin list writers", "a quoted writer name, two {GUID} lines and a [N] state", text)
    _check_state_words(words_by_state)
    return writers


def _diskshadow_writer_name(header: str) -> str:
    """The quoted name, or the header without diskshadow's leading ``WRITER`` keyword when it prints no quotes."""
    quoted = _QUOTED_RE.search(header)
    if quoted:
        return quoted.group("text").strip()
    parts = header.split(None, 1)
    return parts[1].strip() if len(parts) > 1 else parts[0]


def _same_name(printed: str, name: str) -> bool:
    """Component headers repeat the writer name; dependency lines name another writer by id and must not match."""
    return writer_name_key(printed) == writer_name_key(name)


def _component(full_path: str) -> dict:
    segments = full_path.strip("\\").split("\\")
    return {"name": segments[-1], "logical_path": "\\".join(segments[:-1]), "full_path": full_path, "paths": [], "volumes": []}


def _read_component_line(component: dict, line: str) -> None:
    volume = _VOLUME_RE.search(line)
    if volume:
        display = volume.group("display")
        component["volumes"].append(
            {"volume": volume_name(volume.group("guid")), "display_name": display.strip() if display else None}
        )
        return
    path = _BULLET_PATH_RE.match(line)
    if path and "=" not in line:
        component["paths"].append(path.group("path"))


def _diskshadow_block(name: str, block: list[str]) -> dict:
    """Identity, state and components of one ``* WRITER`` block (state None in metadata listings)."""
    guids: list[str] = []
    state: int | None = None
    last_error: str | None = None
    components: list[dict] | None = None
    for line in block:
        component_header = _COMPONENT_RE.search(line)
        if component_header and _same_name(component_header.group("writer"), name):
            if components is None:
                components = []
            components.append(_component(component_header.group("full_path")))
            continue
        if components:
            _read_component_line(components[-1], line)
            continue
        guids.extend(normalise_guid(guid) for guid in _GUID_RE.findall(line))
        state_match = _DISKSHADOW_STATE_RE.search(line)
        if state_match:
            state = int(state_match.group("state"))
            token = state_match.group("token")
            if VSS_WRITER_STATE.get(state) != token:
                raise VssParseError(f"writer {name!r}: state {state} printed as VSS_WS_{token}, which is not its name")
            continue
        failure_code = _FAILURE_CODE_RE.search(line)
        if failure_code and last_error is None:
            last_error = failure_code.group(0).strip()
    if len(guids) < 2:
        raise VssParseError(f"writer {name!r}: expected a writer id and an instance id {{GUID}}, found {len(guids)}")
    return {
        "name": name,
        "writer_id": guids[0],
        "instance_id": guids[1],
        "state": state,
        "last_error": last_error,
        "components": components,
    }


def _merge_diskshadow_block(merged: dict, block: dict) -> None:
    for key in ("state", "last_error", "components"):
        if merged[key] is None:
            merged[key] = block[key]


def parse_diskshadow_writers(text: str) -> list[dict]:
    """Writers from diskshadow ``list writers status`` / ``detailed`` output (see the module docstring)."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in _lines(text):
        if _PROMPT_RE.match(line):
            current = None
            continue
        bullet = _BULLET_RE.match(line)
        if bullet and not _GUID_RE.search(line):
            current = []
            blocks.append((_diskshadow_writer_name(bullet.group("rest")), current))
        elif current is not None:
            current.append(line)

    by_instance: dict[str, dict] = {}
    for name, block in blocks:
        parsed = _diskshadow_block(name, block)
        if parsed["instance_id"] in by_instance:
            _merge_diskshadow_block(by_instance[parsed["instance_id"]], parsed)
        else:
            by_instance[parsed["instance_id"]] = parsed
    if not by_instance:
        raise _no_writers_error("diskshadow list writers", "a '* WRITER' line, two {GUID}s and 'N (VSS_WS_...)'", text)

    writers = []
    for parsed in by_instance.values():
        if parsed["state"] is None:
            raise VssParseError(
                f"writer {parsed['name']!r} {parsed['instance_id']}: no status (N (VSS_WS_...)); metadata listings carry "
                f"no state, run 'list writers status' in the same diskshadow script"
            )
        writer = _writer(parsed["name"], parsed["writer_id"], parsed["instance_id"], parsed["state"], parsed["last_error"])
        if parsed["components"] is not None:
            writer["components"] = parsed["components"]
        writers.append(writer)
    return writers


def parse_diskshadow_failure(text: str) -> dict | None:
    """The first failed operation in diskshadow output (HRESULT, its name, the printed error text), or None."""
    lines = _text_lines(_lines(text))
    for index, (line, _after_blank) in enumerate(lines):
        match = _HRESULT_LINE_RE.search(line)
        if not match or _GUID_RE.search(line):
            continue
        hresult = int(match.group("hex"), 16)
        if not hresult & 0x80000000:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else None
        error_text = _after_label(following[0]) if following and _continues_diskshadow_block(*following) else None
        name = hresult_name(hresult)
        if name is None and error_text and _SYMBOL_RE.match(error_text):
            name = error_text
        return {"hresult": hresult, "name": name, "error_text": error_text}
    return None


def _shadow_attributes(line: str) -> list[str] | None:
    """The attribute keywords of a line whose value is only such keywords (they are never translated)."""
    words = _after_label(line).replace(",", " ").split()
    if words and all(word.casefold() in _SHADOW_ATTRIBUTES for word in words):
        return words
    return None


def _shadow(header: str, block: list[str]) -> dict:
    alias = _ALIAS_RE.search(header)
    shadow = {
        "shadow_id": normalise_guid(_GUID_RE.search(header).group(0)),
        "shadow_set_id": None,
        "alias": alias.group("alias") if alias else None,
        "original_volume": None,
        "original_volume_display": None,
        "device_object": None,
        "provider_id": None,
        "attributes": None,
    }
    for line in block:
        volume = _VOLUME_RE.search(line)
        device = _DEVICE_RE.search(line)
        guids = _GUID_RE.findall(line)
        if volume:
            if shadow["original_volume"] is None:
                shadow["original_volume"] = volume_name(volume.group("guid"))
                display = volume.group("display")
                shadow["original_volume_display"] = display.strip() if display else None
        elif device:
            shadow["device_object"] = device.group(0)
        elif guids:
            if shadow["shadow_set_id"] is None:
                shadow["shadow_set_id"] = normalise_guid(guids[0])
            elif shadow["provider_id"] is None:
                shadow["provider_id"] = normalise_guid(guids[0])
        elif shadow["attributes"] is None:
            shadow["attributes"] = _shadow_attributes(line)
    missing = [key for key in ("shadow_set_id", "original_volume", "device_object") if shadow[key] is None]
    if missing:
        raise VssParseError(f"shadow copy {shadow['shadow_id']}: no {', '.join(missing)} in its block")
    return shadow


def parse_diskshadow_shadows(text: str) -> list[dict]:
    """Shadow copies from diskshadow ``list shadows all`` or ``create`` output (see the module docstring)."""
    shadows = []
    header: str | None = None
    block: list[str] = []
    for line, after_blank in _text_lines(_lines(text)):
        starts_shadow = bool(_BULLET_RE.match(line) and _GUID_RE.search(line))
        if starts_shadow or not _continues_diskshadow_block(line, after_blank):
            if header is not None:
                shadows.append(_shadow(header, block))
            header, block = (line if starts_shadow else None), []
        elif header is not None:
            block.append(line)
    if header is not None:
        shadows.append(_shadow(header, block))
    return shadows


def _storage_volume(line: str) -> tuple[str, str | None] | None:
    match = _STORAGE_VOLUME_RE.search(line)
    if not match:
        return None
    display = match.group("display")
    return volume_name(match.group("guid")), display.strip() if display else None


def parse_vssadmin_shadowstorage(text: str) -> list[dict]:
    """Shadow storage associations from ``vssadmin list shadowstorage`` output (see the module docstring)."""
    associations = []
    lines = [line for line in _lines(text) if line.strip() and not _PROMPT_RE.match(line)]
    index = 0
    while index < len(lines):
        for_volume = _storage_volume(lines[index])
        if for_volume is None:
            index += 1
            continue
        storage_volume = _storage_volume(lines[index + 1]) if index + 1 < len(lines) else None
        sizes = lines[index + 2:index + 2 + len(_STORAGE_SIZES)]
        if storage_volume is None or len(sizes) < len(_STORAGE_SIZES) or any(_storage_volume(size) for size in sizes):
            raise VssParseError(
                f"shadow storage association for {for_volume[0]}: expected the storage volume line and the used, "
                f"allocated and maximum size lines after it"
            )
        association = {
            "for_volume": for_volume[0],
            "for_volume_display": for_volume[1],
            "storage_volume": storage_volume[0],
            "storage_volume_display": storage_volume[1],
        }
        association.update((key, _after_label(size)) for key, size in zip(_STORAGE_SIZES, sizes))
        associations.append(association)
        index += 2 + len(_STORAGE_SIZES)
    return associations
