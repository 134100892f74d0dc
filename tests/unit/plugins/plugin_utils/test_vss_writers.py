# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writer knowledge (vss_writers.py), shared by win_vss_writer_info and win_vss_snapshot_set: finding and describing
writers, one line per unhealthy writer, and the health of the writers against a shadow set plan."""

from __future__ import annotations

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import shadow_plan, vss, vss_writers
from unit.plugins.plugin_utils.sql_host import (
    SQL_WRITER,
    SYSTEM_WRITER,
    mapping,
    volume_guid,
    writers,
    writers_text,
)


def test_writers_are_found_by_name_or_id_and_classified():
    listed = writers()
    found, unknown = vss_writers.find_writers(["sqlserverwriter", SYSTEM_WRITER[1].upper().strip("{}"), SQL_WRITER[2], "Nope"], listed)
    assert [writer["name"] for writer in found] == ["SqlServerWriter", "System Writer"]
    assert unknown == ["Nope"]
    by_name = {writer["name"]: writer for writer in listed}
    assert by_name["System Writer"]["infrastructure"] and not by_name["SqlServerWriter"]["infrastructure"]
    assert by_name["MSMQ Writer (MSMQ)"]["service"] is None
    assert by_name["SqlServerWriter"]["service"] == "SQLWriter"
    assert by_name["SqlServerWriter"]["volumes"] == [volume_guid(name) for name in ("C", "D", "L", "G")]


# ------------------------------------------------------------------------------------------------ writer health


def health_of(listed, **options):
    result = shadow_plan.build_plan(mapping(), listed, shadow_plan.SelectionOptions(**options))
    return result, vss_writers.writer_health(listed, result, "restart_failed_writers")


def test_a_failed_required_writer_blocks_and_names_its_state_error_and_service():
    listed = writers(states={"SqlServerWriter": 8}, failure_codes={"SqlServerWriter": "0x800423f3 (VSS_E_WRITERERROR_RETRYABLE)"})
    dummy, health = health_of(listed, volumes=["D:", "L:"])
    assert [writer["problem"] for writer in health.blocking] == [
        "required writer 'SqlServerWriter' is FAILED_AT_PREPARE_SNAPSHOT [8], last error: 0x800423f3 "
        "(VSS_E_WRITERERROR_RETRYABLE); restart the service SQLWriter when no backup is running (or set "
        "restart_failed_writers: true)"]
    assert health.services == ["SQLWriter"]
    assert not health.waiting


def test_unrequired_failed_writers_only_warn():
    listed = writers(states={"System Writer": 9, "Registry Writer": 7})
    dummy, health = health_of(listed, volumes=["D:", "L:"])
    assert health.blocking == [] and health.services == []
    assert health.warnings == [
        "writer 'System Writer' is FAILED_AT_FREEZE [9], last error: 0x00000000 (S_OK); restart the service CryptSvc when "
        "no backup is running (or set restart_failed_writers: true)",
    ], "Registry Writer touches only C:, which is not in the set"


@pytest.mark.parametrize("state", [2, 3, 4, 5])
def test_a_required_writer_waiting_for_another_backup_blocks_and_is_never_restarted(state):
    listed = writers(states={"SqlServerWriter": state, "System Writer": 9})
    dummy, health = health_of(listed, volumes=["D:", "L:"])
    (blocking,) = health.blocking
    assert blocking["name"] == "SqlServerWriter" and blocking["waiting"] is True
    assert blocking["problem"].endswith(
        "(a backup is running or a requester left its session open: wait, do not restart anything)")
    assert blocking["problem"].startswith(f"required writer 'SqlServerWriter' is {vss.VSS_WRITER_STATE[state]} [{state}]")
    assert health.services == [], "restarting a waiting writer would break the backup it waits for"
    assert health.waiting, "only waiting writers block: listing them again later may find them STABLE"
    assert [warning.split(" is ")[0] for warning in health.warnings] == ["writer 'System Writer'"]


def test_a_waiting_writer_that_is_not_required_only_warns():
    listed = writers(states={"SqlServerWriter": 5})
    dummy, health = health_of(listed, volumes=["D:", "L:"], required_writers=[])
    assert health.blocking == []
    assert health.warnings == [
        "writer 'SqlServerWriter' is WAITING_FOR_BACKUP_COMPLETE [5], last error: 0x00000000 (S_OK) (a backup is running or "
        "a requester left its session open: wait, do not restart anything)"]


def test_an_application_writer_on_a_selected_volume_is_required_and_one_without_a_known_service_says_so():
    listed = writers(states={"MSMQ Writer (MSMQ)": 7})
    dummy, health = health_of(listed, volumes=["S:"])
    assert [writer["name"] for writer in health.blocking] == ["MSMQ Writer (MSMQ)"]
    assert health.blocking[0]["problem"].endswith("no known service for this writer: see its application's documentation")
    assert health.services == []


def test_an_application_writer_that_failed_at_identify_blocks_the_set_until_it_identifies_or_is_excluded():
    listed = writers(states={"SqlServerWriter": 6}, drop_components=("SqlServerWriter",))
    assert "components" not in listed[0] or listed[0].get("components") is None
    with pytest.raises(shadow_plan.PreflightError, match="'SqlServerWriter' lists no components"):
        shadow_plan.build_plan(mapping(), listed, shadow_plan.SelectionOptions(writers=["SqlServerWriter"]))
    result, health = health_of(listed, volumes=["D:", "L:"])
    assert result.warnings == []
    assert [(entry["name"], entry["rule"]) for entry in result.required_writers] == [("SqlServerWriter", "unidentified")]
    assert [writer["problem"] for writer in health.blocking] == [
        "required writer 'SqlServerWriter' is FAILED_AT_IDENTIFY [6], last error: 0x00000000 (S_OK); restart the service "
        "SQLWriter when no backup is running (or set restart_failed_writers: true); it lists no components, so the "
        "volumes it needs are unknown and the set cannot be application-consistent for it; or leave it out with "
        "exclude_writers"]
    assert health.services == ["SQLWriter"]

    result, health = health_of(listed, volumes=["D:", "L:"], exclude_writers=["SqlServerWriter"])
    assert result.required_writers == [] and health.blocking == [], "excluded on purpose: the user's decision"
    result = shadow_plan.build_plan(mapping(), listed, shadow_plan.SelectionOptions(volumes=["D:", "L:"], required_writers=[]))
    assert result.warnings == ["writer 'SqlServerWriter' lists no components, so the set cannot be checked against it "
                               "('SqlServerWriter' is FAILED_AT_IDENTIFY [6], last error: 0x00000000 (S_OK); restart the "
                               "service SQLWriter when no backup is running (or set restart_failed_writers: true))"]
    assert result.required_writers == [], "required_writers given: only those writers are required"


# ------------------------------------------------------------------------------------------ one place for both plugins


def test_a_problem_names_the_restart_option_only_for_a_plugin_that_has_one():
    (failed,) = [writer for writer in writers(states={"SqlServerWriter": 9}) if writer["name"] == "SqlServerWriter"]
    plain = vss_writers.writer_problem(failed)
    assert plain == ("'SqlServerWriter' is FAILED_AT_FREEZE [9], last error: 0x00000000 (S_OK); restart the service "
                     "SQLWriter when no backup is running")
    assert vss_writers.writer_problem(failed, "restart_failed_writers") == plain + " (or set restart_failed_writers: true)"
    (waiting,) = [writer for writer in writers(states={"SqlServerWriter": 5}) if writer["name"] == "SqlServerWriter"]
    assert vss_writers.writer_problem(waiting, "restart_failed_writers").endswith("wait, do not restart anything)")


def test_described_volumes_are_the_storage_mappings_volume_keys_whatever_the_tools_case():
    volumes = [{"volume": volume_guid("D").upper().replace("VOLUME", "Volume")}, {"volume": "D:\\"},
               {"volume": volume_guid("D")}]
    upper = {"name": "SqlServerWriter", "writer_id": SQL_WRITER[1], "instance_id": SQL_WRITER[2], "state": 1,
             "components": [{"name": "Sales", "volumes": volumes}]}
    described = vss_writers.describe_writer(upper)
    assert described["volumes"] == [volume_guid("D")], "one key per volume, as ebs_disks.map_storage keys them"
    assert mapping()["volumes"][3]["unique_id"] == volume_guid("D")
    assert (described["infrastructure"], described["service"], described["failed"], described["waiting"]) == (
        False, "SQLWriter", False, False)


def test_reading_a_writers_answer_says_what_is_wrong():
    with pytest.raises(vss_writers.WritersError, match="the agent returned no vssadmin text"):
        vss_writers.read_writers({"outputs": {}}, "vssadmin")
    with pytest.raises(vss_writers.WritersError, match=r"found none.*COM\+ Event System service \(EventSystem\)"):
        vss_writers.read_writers({"outputs": {"vssadmin": {"text": "vssadmin 1.1\r\n"}}}, "vssadmin")
    text = {"outputs": {"diskshadow_detailed": {"text": writers_text()}}}
    assert [writer["name"] for writer in vss_writers.read_writers(text, "diskshadow_detailed")][:2] == [
        "SqlServerWriter", "System Writer"]


def test_a_listing_requires_writers_by_name_or_id_and_stable():
    listed = writers(states={"SqlServerWriter": 5})
    assert vss_writers.listing_problems(listed, [SYSTEM_WRITER[1].upper(), "system  WRITER"], False) == []
    assert vss_writers.listing_problems(listed, ["sqlserverwriter"], False) == [
        "required writer 'SqlServerWriter' is WAITING_FOR_BACKUP_COMPLETE [5], last error: 0x00000000 (S_OK) (a backup is "
        "running or a requester left its session open: wait, do not restart anything)"]
    assert vss_writers.listing_problems(listed, ["Microsoft Exchange Writer"], False) == [
        "required writer 'Microsoft Exchange Writer' is not listed (is its service MSExchangeRepl running?)"]
    summary = vss_writers.listing_summary(listed, ["SqlServerWriter", "Nope"])
    assert (summary["waiting_writers"], summary["missing_writers"], summary["summary"]["waiting"]) == (
        ["SqlServerWriter"], ["Nope"], 1)
