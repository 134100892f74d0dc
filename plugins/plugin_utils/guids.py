# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""GUIDs as Windows tools print them, and the one spelling the collection compares: ``{guid}`` in lower case.

VSS writer, instance, shadow copy and shadow set ids and volume GUID paths (``\\?\Volume{guid}\``) come from
vssadmin, diskshadow, CIM and the collection's own files in several spellings (braces or not, any case, a trailing
backslash or not). Every parser, plan and verdict turns them into the forms below before comparing or storing them.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
from typing import Any

_HEX_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# A braced GUID anywhere in a text (parsers of tool output find ids with it).
GUID_PATTERN = r"\{" + _HEX_GUID + r"\}"

_GUID_RE = re.compile(r"^\{?(" + _HEX_GUID + r")\}?$")
_VOLUME_PATH_RE = re.compile(r"^\\\\\?\\Volume(" + GUID_PATTERN + r")\\?$", re.IGNORECASE)


def normalise_guid(value: Any) -> str | None:
    """``{guid}`` in lower case from a GUID with or without braces, None when ``value`` is not a GUID."""
    match = _GUID_RE.match(str(value or "").strip())
    return "{%s}" % match.group(1).lower() if match else None


def volume_name(guid: str) -> str:
    r"""``\\?\Volume{guid}\`` with the GUID in lower case, as Get-Volume and Get-Partition print it."""
    return "\\\\?\\Volume%s\\" % normalise_guid(guid)


def volume_key(path: Any) -> str | None:
    r"""``\\?\Volume{guid}\`` in the form of :func:`volume_name`, None if ``path`` is not a volume GUID path."""
    if not isinstance(path, str):
        return None
    match = _VOLUME_PATH_RE.match(path.strip())
    return volume_name(match.group(1)) if match else None
