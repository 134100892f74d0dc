# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ids (run_ids.py): the contract of docs/vss-session.md, and valid for the diskshadow files."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, run_ids


def test_run_ids_follow_the_contract_and_are_valid_for_diskshadow_py():
    run_id = run_ids.new_run_id(datetime(2026, 11, 25, 1, 2, 3, tzinfo=timezone.utc), "0a1b2c3d")
    assert run_id == "ss-20261125T010203-0a1b2c3d"
    assert re.fullmatch(r"ss-\d{8}T\d{6}-[0-9a-f]{8}", run_ids.new_run_id())
    assert run_ids.new_run_id() != run_ids.new_run_id()
    diskshadow.validate(diskshadow.SessionPlan(run_id=run_ids.new_run_id(), volumes=["D:"]))
