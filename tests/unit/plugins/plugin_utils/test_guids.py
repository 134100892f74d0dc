# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one spelling of GUIDs and volume GUID paths (guids.py) that parsers, plans and verdicts compare."""

from __future__ import annotations

import re

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import guids

GUID = "{1f2e3d4c-0000-4000-8000-00000000000a}"


@pytest.mark.parametrize("value", [GUID, GUID.upper(), GUID.strip("{}"), " " + GUID.upper().strip("{}") + " ",
                                   GUID[:-1], GUID[1:]])
def test_every_spelling_of_a_guid_becomes_braced_lower_case(value):
    assert guids.normalise_guid(value) == GUID


@pytest.mark.parametrize("value", [None, "", "not a guid", GUID[:-2] + "}", GUID.replace("-", ""), 42,
                                   "{%s}{%s}" % (GUID.strip("{}"), GUID.strip("{}"))])
def test_anything_else_is_no_guid(value):
    assert guids.normalise_guid(value) is None


def test_volume_guid_paths():
    key = "\\\\?\\Volume" + GUID + "\\"
    assert guids.volume_name(GUID.upper().strip("{}")) == key
    for spelling in (key, key.upper().replace("VOLUME", "Volume"), key.rstrip("\\"), "\\\\?\\volume" + GUID.upper() + "\\"):
        assert guids.volume_key(spelling) == key, spelling
    for other in ("D:\\", GUID, "\\\\?\\Volume{x}\\", None, 7):
        assert guids.volume_key(other) is None


def test_the_pattern_finds_braced_guids_in_text():
    text = "- Writer ID: {E8132975-6F93-4464-A53E-1050253AE220}\r\n- Instance ID: " + GUID
    assert [guids.normalise_guid(found) for found in re.findall(guids.GUID_PATTERN, text)] == [
        "{e8132975-6f93-4464-a53e-1050253ae220}", GUID]
