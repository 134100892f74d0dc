# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""What the log of a session's diskshadow run says: full backup or not, the failure, and the writers it left out.

The log is diskshadow's verbose output for the script diskshadow.py generates (``set verbose on``), in the console's
language. As in vss_parse.py, nothing here reads a label word: the anchors are the echoed script commands
(``-> create``, ``-> begin backup``, never translated), hex HRESULTs, quoted writer names and component paths
(``"\TasksStore"``), volume names and ``+`` bullets. Blank lines and the kind of line end do not matter: doubled
line ends (CR CR LF) put a blank line after every line.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import GUID_PATTERN
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_failure

_CREATE_ECHO_RE = re.compile(r"^\s*->\s*create\s*$", re.IGNORECASE)
_BEGIN_BACKUP_ECHO_RE = re.compile(r"^\s*->\s*begin\s+backup\s*$", re.IGNORECASE)
_ECHO_RE = re.compile(r"^\s*->\s")
_BULLET_LINE_RE = re.compile(r"^\s*\+\s+(?P<rest>\S.*)$")
# Quotes of translated diskshadow messages: ASCII, typographic, guillemets and Japanese corner brackets. Not the single
# quote, which is an apostrophe in these sentences.
_QUOTED_RE = re.compile("[\"\u201c\u201e\u00ab\u300c]([^\"\u201c\u201d\u201e\u00ab\u00bb\u300c\u300d]+)[\"\u201d\u201c\u00bb\u300d]")
_LOG_VOLUME_RE = re.compile(r"\\\\\?\\Volume" + GUID_PATTERN + r"\\|(?<![\w\\])[A-Za-z]:\\[^\s\"\u201d,;]*")


def is_full_backup_log(log: str | None) -> bool:
    """Whether diskshadow ran ``begin backup`` (its script echo ``-> begin backup`` is never translated)."""
    return any(_BEGIN_BACKUP_ECHO_RE.match(line) for line in (log or "").splitlines())


def failure_from_log(log: str | None) -> dict | None:
    """The first failed operation in the diskshadow log with what it means: hresult, name, meaning, advice."""
    failure = parse_diskshadow_failure(log or "")
    if failure is None:
        return None
    info = vss.hresult_info(failure["hresult"])
    failure = dict(failure)
    failure["hresult_text"] = vss.format_hresult(failure["hresult"])
    failure["meaning"] = info.meaning if info else None
    failure["advice"] = info.advice if info else None
    return failure


def _create_section(log: str) -> list[str]:
    """The non-blank lines diskshadow printed for ``create``, up to the next echoed command."""
    lines = [line for line in (log or "").splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if _CREATE_ECHO_RE.match(line):
            section = []
            for following in lines[index + 1:]:
                if _ECHO_RE.match(following):
                    break
                section.append(following)
            return section
    return []


def log_exclusions(log: str | None, writer_names: list[str]) -> dict:
    """What diskshadow's verbose ``create`` output says it included and left out, keyed on structure, not words.

    - A component line quotes a component path (``"\\TasksStore"``) and a writer name and names a volume (``C:\\``),
      on the line or the next one: that component was left out.
    - A line that quotes one known writer name and no component path, ends with a colon and is followed by ``+``
      bullets (``+ Adding component: \\WIN-SQL-01\\master``), says the writer is included, with those components.
    - Any other line that quotes one known writer name and no component path says the writer was left out.

    Returns ``{"components": [{"writer", "component", "volume", "text"}], "writers": [{"writer", "text"}],
    "included": [{"writer", "components", "text"}]}``.
    """
    known = {vss.writer_name_key(name): name for name in writer_names}
    lines = _create_section(log or "")
    components = []
    excluded_writers = []
    included = []
    for index, line in enumerate(lines):
        quoted = _QUOTED_RE.findall(line)
        paths = [item for item in quoted if item.startswith("\\")]
        names = [item for item in quoted if not item.startswith("\\")]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if paths and names:
            rest = line[line.rfind(names[-1]) + len(names[-1]):]
            text = line.strip()
            if following.strip() and not _QUOTED_RE.search(following) and not _BULLET_LINE_RE.match(following):
                rest += " " + following
                text += " " + following.strip()
            volume = _LOG_VOLUME_RE.search(rest)
            components.append({
                "writer": known.get(vss.writer_name_key(names[0]), names[0]),
                "component": paths[0],
                "volume": volume.group(0).rstrip(".") if volume else None,
                "text": text,
            })
        elif len(names) == 1 and not paths and vss.writer_name_key(names[0]) in known:
            writer = known[vss.writer_name_key(names[0])]
            if line.rstrip().endswith((":", "\uff1a")) or _BULLET_LINE_RE.match(following):
                added = []
                for bullet in lines[index + 1:]:
                    match = _BULLET_LINE_RE.match(bullet)
                    if not match:
                        break
                    component = bullet[bullet.index("\\"):].strip() if "\\" in bullet else match.group("rest").strip()
                    added.append(component)
                included.append({"writer": writer, "components": added, "text": line.strip()})
            else:
                excluded_writers.append({"writer": writer, "text": line.strip()})
    return {"components": components, "writers": excluded_writers, "included": included}
