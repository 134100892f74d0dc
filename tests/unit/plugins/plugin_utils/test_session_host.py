# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the agent's raw facts mean (session_host.py): the session state, created.txt, the session directory's safety
and the leftover runs, from answers shaped as the agent and the lab's twin give them."""

from __future__ import annotations

import math

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, session_host
from lab.windows.agent_twin import protocol as twin
from unit.plugins.plugin_utils.session_answers import (
    ADMINISTRATORS,
    ROOT,
    SYSTEM,
    created_text,
    folder,
    fresh_host_sessions,
    run_facts,
    sessions,
    task,
)

SET_ID = "{11111111-2222-4333-8444-555555555555}"
USER = "S-1-5-21-1-2-3-1001"
RUNS = diskshadow.RUN_ROOT


def test_the_answers_the_tests_script_have_the_keys_the_agent_and_its_twin_answer():
    assert tuple(run_facts("ss-1", "created")) == twin.RUN_FACT_KEYS == tuple(run_facts("ss-1", "missing"))
    assert tuple(task()) == twin.TASK_FACT_KEYS
    assert tuple(folder(ROOT)) == twin.FOLDER_FACT_KEYS == tuple(folder(ROOT, exists=False))
    assert tuple(folder(ROOT, aces=[(SYSTEM, "", "FullControl", "Allow")])["explicit_access"][0]) == twin.ACCESS_ENTRY_KEYS
    assert tuple(sessions()) == twin.SESSIONS_KEYS


@pytest.mark.parametrize("exists, active, created, code, state", [
    (False, True, True, 0, "missing"),
    (True, True, True, 0, "completed"),
    (True, False, False, 3, "failed"),
    (True, False, True, -1, "failed"),
    (True, True, True, None, "created"),
    (True, True, False, None, "starting"),
    (True, False, True, None, "failed"),
])
def test_the_session_state_follows_from_the_facts(exists, active, created, code, state):
    assert session_host.session_state(exists, active, created, code) == state


def test_exit_codes_tasks_and_their_time_limits_are_read_as_task_scheduler_writes_them():
    assert [session_host.exit_code(text) for text in (None, "", " \r\n", "0\r\n", "1", "-2147024891", "ECHO is off.",
                                                      "99999999999")] == [None, None, None, 0, 1, -2147024891, -1, -1]
    assert session_host.task_active(task("Running")) and session_host.task_active(task("Queued"))
    assert session_host.task_active(task("Ready", last_result=0x41303)), "started, not run yet"
    assert session_host.task_active(task("4")), "the state's number when the CIM enumeration type is missing"
    assert not session_host.task_active(task("Ready", last_result=0)) and not session_host.task_active(None)
    assert [session_host.task_time_limit(task(time_limit=text)) for text in ("PT25M", "PT1H30M", "P1DT2H", "PT90.5S")] == [
        1500, 5400, 93600, 90.5]
    assert all(session_host.task_time_limit(task(time_limit=text)) == math.inf for text in ("", "PT0S", "P", "soon", None))


def test_a_run_status_parses_created_txt_once_and_keeps_the_raw_texts_meaning():
    created = created_text(SET_ID.upper(), {"vol_d": "{AAAAAAAA-0000-4000-8000-000000000001}", "vol_e": "%vol_e%"})
    status = session_host.run_status(run_facts("ss-1", "created", created=created, log="-> create\r\n", cleaned=[{"run_id": "x"}]))
    assert (status["state"], status["task_running"], status["task_state"], status["exit_code"]) == ("created", True, "Running", None)
    assert status["shadow_set_id"] == SET_ID
    assert status["shadows"] == {"vol_d": "{aaaaaaaa-0000-4000-8000-000000000001}", "vol_e": None}
    assert status["record"].values["vol_e"] == "%vol_e%" and status["cleaned"] == [{"run_id": "x"}]
    assert "decision" not in status, "only a release answer says what was released"
    missing = session_host.run_status(run_facts("ss-2", "missing"))
    assert (missing["state"], missing["record"], missing["shadows"], missing["release"]) == ("missing", None, {}, None)


def test_a_release_status_lists_the_sets_shadows_that_were_present_before_any_deletion():
    copies = [{"ID": "{AAAAAAAA-0000-4000-8000-000000000001}", "SetID": SET_ID.upper()},
              {"ID": "{BBBBBBBB-0000-4000-8000-000000000001}", "SetID": "{CCCCCCCC-0000-4000-8000-000000000001}"}]
    answer = run_facts("ss-1", "completed", created=created_text(SET_ID, {"vol_d": "{aaaaaaaa-0000-4000-8000-000000000001}"}),
                       release="abort\r\n", released_before=True, shadow_copies=copies,
                       deleted_shadow_ids=["{AAAAAAAA-0000-4000-8000-000000000001}"])
    status = session_host.run_status(answer)
    assert status["present_shadow_ids"] == ["{aaaaaaaa-0000-4000-8000-000000000001}"]
    assert status["deleted_shadow_ids"] == ["{aaaaaaaa-0000-4000-8000-000000000001}"]
    assert (status["decision"], status["released_before"]) == ("abort", True)
    unrecorded = session_host.run_status(dict(answer, files={}))
    assert unrecorded["present_shadow_ids"] == [], "no record, no set: another set's shadows are not this run's"


# ------------------------------------------------------------------------------------------------ the session tree


def test_the_tree_the_agent_makes_is_safe_and_a_fresh_host_gets_its_folders_created():
    assert session_host.directory_problems(sessions()) == []
    assert session_host.folders_to_create(sessions()) == []
    assert session_host.directory_problems(fresh_host_sessions()) == []
    assert session_host.folders_to_create(fresh_host_sessions()) == [ROOT, RUNS]
    inherited = sessions([folder(ROOT, SYSTEM, inherits=True), folder(RUNS, aces=[(ADMINISTRATORS, "", "Modify", "Allow")])])
    assert session_host.directory_problems(inherited) == [], "inherited entries come from the root, which the agent protects"


def test_a_foreign_owner_is_refused_once_for_the_folder_to_remove():
    tree = sessions([folder(ROOT, USER, owner_name="WIN-SQL-01\\mallory", aces=[(USER, "WIN-SQL-01\\mallory", "FullControl", "Allow")]),
                     folder(RUNS, USER, owner_name="WIN-SQL-01\\mallory")])
    assert session_host.directory_problems(tree) == [
        "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\mallory and has an explicit Allow entry for WIN-SQL-01\\mallory "
        "(FullControl): remove C:\\ProgramData\\shadowsnap and let the agent create it"]
    nameless = sessions([folder(ROOT), folder(RUNS, USER, owner_name="")])
    assert session_host.directory_problems(nameless) == [
        "C:\\ProgramData\\shadowsnap\\runs is owned by S-1-5-21-1-2-3-1001: remove C:\\ProgramData\\shadowsnap\\runs and let "
        "the agent create it"]


def test_a_junction_or_other_reparse_point_is_refused_and_the_fix_keeps_its_target():
    tree = sessions([folder(ROOT, attributes="Directory, ReparsePoint", link_type="Junction", link_target="C:\\Users\\Public\\x"),
                     folder(RUNS, USER)])
    assert session_host.directory_problems(tree) == [
        "C:\\ProgramData\\shadowsnap is a junction to C:\\Users\\Public\\x: remove C:\\ProgramData\\shadowsnap and let the "
        "agent create it (rmdir \"C:\\ProgramData\\shadowsnap\" removes the link, not its target)"]
    other = sessions([folder(ROOT), folder(RUNS), folder(RUNS + "\\ss-1", attributes="Directory, ReparsePoint, Offline")])
    assert session_host.directory_problems(other)[0].startswith(
        "C:\\ProgramData\\shadowsnap\\runs\\ss-1 is a reparse point: remove C:\\ProgramData\\shadowsnap\\runs\\ss-1")


def test_an_explicit_entry_for_anyone_but_system_and_administrators_is_refused_with_both_fixes():
    tree = sessions([folder(ROOT), folder(RUNS, aces=[(USER, "WIN-SQL-01\\mallory", "Modify, Synchronize", "Allow"),
                                                      ("S-1-1-0", "Everyone", "Write", "Deny"),
                                                      (SYSTEM, "", "FullControl", "Allow")])])
    assert session_host.directory_problems(tree) == [
        "C:\\ProgramData\\shadowsnap\\runs has an explicit Allow entry for WIN-SQL-01\\mallory (Modify, Synchronize) and has "
        "an explicit Deny entry for Everyone (Write): remove C:\\ProgramData\\shadowsnap\\runs and let the agent create it, "
        "or remove the entries (icacls \"C:\\ProgramData\\shadowsnap\\runs\" /remove \"Everyone\"; "
        "icacls \"C:\\ProgramData\\shadowsnap\\runs\" /remove \"WIN-SQL-01\\mallory\")"]


def test_a_folder_whose_security_cannot_be_read_is_refused():
    unreadable = dict(folder(RUNS + "\\ss-1"), owner=None, error="Attempted to perform an unauthorized operation.")
    (problem,) = session_host.directory_problems(sessions([folder(ROOT), folder(RUNS), unreadable]))
    assert problem == ("C:\\ProgramData\\shadowsnap\\runs\\ss-1 has a security descriptor the agent cannot read (Attempted to "
                       "perform an unauthorized operation.): remove C:\\ProgramData\\shadowsnap\\runs\\ss-1 and let the "
                       "agent create it")


# ------------------------------------------------------------------------------------------------ leftover runs


def aged(run_id, seconds, state="failed", release=None, **options):
    """A run whose directory was created ``seconds`` before the sessions answer was read (02:00:00)."""
    minutes, secs = divmod(7200 - seconds, 60)
    hours, minutes = divmod(minutes, 60)
    created_at = "2026-11-25T%02d:%02d:%06.3fZ" % (hours, minutes, secs)
    return run_facts(run_id, state, created=created_text(SET_ID, {"vol_d": "{aaaaaaaa-0000-4000-8000-000000000001}"}),
                     exit_text="1\r\n" if state == "failed" else None, release=release, created_at=created_at, **options)


def test_leftover_runs_are_old_and_not_running_within_their_time_limit():
    runs = [aged("ss-old", 700), aged("ss-young", 500), aged("ss-released", 4000, state="completed", release="ok\r\n"),
            aged("ss-aborted", 4000, state="completed", release="abort\r\n"),
            aged("ss-held", 900, state="created", task_facts=task("Running", time_limit="PT1H")),
            aged("ss-overdue", 3700, state="created", task_facts=task("Running", time_limit="PT1H")),
            aged("not valid!", 9000)]
    assert session_host.leftover_runs(sessions(runs=runs), 600) == [
        {"run_id": "ss-old", "shadow_set_id": SET_ID},
        {"run_id": "ss-released", "shadow_set_id": None},
        {"run_id": "ss-aborted", "shadow_set_id": SET_ID},
        {"run_id": "ss-overdue", "shadow_set_id": SET_ID},
    ]
    assert [run["run_id"] for run in session_host.leftover_runs(sessions(runs=runs), 5)] == [
        "ss-old", "ss-young", "ss-released", "ss-aborted", "ss-overdue"], "never younger than 60 s, whatever is asked"
    assert session_host.leftover_runs(sessions(runs=[aged("ss-young", 59)]), 0) == []
    undated = dict(aged("ss-x", 9000), created=None)
    assert session_host.leftover_runs(sessions(runs=[undated]), 60) == [], "an age that cannot be told is no leftover"
