# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a session's diskshadow log says (diskshadow_log.py), on real captures and on diskshadow's layout in other
languages: full backup or not, the failure, the writers and components it left out or included."""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow_log, shadow_session
from unit.plugins.plugin_utils.sql_host import (
    capture,
    plan,
    writers,
)


def test_exclusions_in_a_real_verbose_create_transcript():
    log = capture("diskshadow_script_sql_writer_excluded_restic340_partial.txt")
    found = diskshadow_log.log_exclusions(log, ["SqlServerWriter", "Task Scheduler Writer", "Shadow Copy Optimization Writer"])
    assert found["writers"] == [{"writer": "Shadow Copy Optimization Writer",
                                 "text": 'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.'}]
    assert [(item["writer"], item["component"], item["volume"]) for item in found["components"]] == [
        ("Task Scheduler Writer", "\\TasksStore", "C:\\"), ("SqlServerWriter", "\\HOSTNAME\\master", "C:\\")]
    assert found["components"][0]["text"] == ('Component "\\TasksStore" from writer "Task Scheduler Writer" is excluded from '
                                              'backup, because it requires volume C:\\ which is not in the shadow copy set.')
    assert not diskshadow_log.is_full_backup_log(log.replace("-> BEGIN BACKUP", "-> ADD VOLUME f:"))
    assert diskshadow_log.is_full_backup_log(log)


def test_exclusions_are_read_by_structure_in_any_language():
    log = ("-> create\r\n"
           "\u30b3\u30f3\u30dd\u30fc\u30cd\u30f3\u30c8 \"\\TasksStore\" (\u30e9\u30a4\u30bf\u30fc \"Task Scheduler Writer\") \u306f\u3001"
           "\u30dc\u30ea\u30e5\u30fc\u30e0 C:\\ \u304c\r\n\u5fc5\u8981\u306a\u305f\u3081\u9664\u5916\u3055\u308c\u307e\u3059\u3002\r\n"
           "\u30e9\u30a4\u30bf\u30fc \"System Writer\" \u3092\u9664\u5916\u3057\u3066\u3044\u307e\u3059\u3002\r\n"
           "-> exec C:\\ProgramData\\shadowsnap\\runs\\x\\record.cmd\r\n"
           "Writer \"SqlServerWriter\" after the create section is not read\r\n")
    found = diskshadow_log.log_exclusions(log, ["Task Scheduler Writer", "System Writer", "SqlServerWriter"])
    assert [(item["writer"], item["component"], item["volume"]) for item in found["components"]] == [
        ("Task Scheduler Writer", "\\TasksStore", "C:\\")]
    assert [item["writer"] for item in found["writers"]] == ["System Writer"]
    assert diskshadow_log.log_exclusions("no create here", ["System Writer"]) == {"components": [], "writers": [], "included": []}


def test_an_including_line_with_its_component_bullets_is_not_an_exclusion():
    log = ("-> create\r\n"
           'Excluding writer "Shadow Copy Optimization Writer", because all of its components have been excluded.\r\n'
           'Including writer "SqlServerWriter":\r\n'
           "        + Adding component: \\WIN-SQL-01\\master\r\n"
           "        + Adding component: \\WIN-SQL-01\\Sales\r\n"
           'Including writer "System Writer":\r\n'
           "        + Adding component: \\System Files\r\n"
           "Alias vol_d for shadow ID {7bdeaad3-bbf1-4d9b-903a-4a7d82d5875f} set as environment variable.\r\n")
    names = ["SqlServerWriter", "System Writer", "Shadow Copy Optimization Writer"]
    found = diskshadow_log.log_exclusions(log, names)
    assert [item["writer"] for item in found["writers"]] == ["Shadow Copy Optimization Writer"]
    assert [(item["writer"], item["components"]) for item in found["included"]] == [
        ("SqlServerWriter", ["\\WIN-SQL-01\\master", "\\WIN-SQL-01\\Sales"]), ("System Writer", ["\\System Files"])]
    results = {item["name"]: item for item in shadow_session.writer_results(plan(volumes=["D:", "L:"]), writers(), log)}
    assert (results["System Writer"]["included"], results["System Writer"]["reason"]) == (True, 'Including writer "System Writer":')
    assert results["SqlServerWriter"]["included_components"] == ["\\WIN-SQL-01\\master", "\\WIN-SQL-01\\Sales"]


def test_failure_from_a_real_provider_veto():
    failure = diskshadow_log.failure_from_log(capture("diskshadow_create_failed_provider_veto_openzfs406.txt"))
    assert (failure["hresult"], failure["name"], failure["hresult_text"]) == (0x80042306, "VSS_E_PROVIDER_VETO",
                                                                              "0x80042306 (VSS_E_PROVIDER_VETO)")
    assert failure["advice"].startswith("Read the System and Application logs")
    assert diskshadow_log.failure_from_log("-> create\r\nAlias vol_d for shadow ID {x} set as environment variable.") is None
