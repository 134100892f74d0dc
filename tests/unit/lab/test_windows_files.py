r"""Files and folders of a simulated host: paths through junctions, and the security of the agent's session directory.

What these tests show: a local user can leave ``%ProgramData%\shadowsnap`` owned by them, as a junction to a folder of
theirs, or with an extra access entry below the root; the host reports each case, and so does the agent's twin in its
``sessions`` answer, which the controller (session_host.py) refuses, saying what it found and how to fix it; the twin
protects the root as the agent does (owner Administrators, SYSTEM and Administrators only) and the folders below keep
what the user gave them; through a junction the session's files land in the junction's target.
"""

import pytest

from lab.windows import LabWindowsHost
from lab.windows.files import ADMINISTRATORS, SYSTEM, ace
from lab.windows.testing import call_agent
from unit.lab.session_calls import agent_call

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow as generator
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import session_host

ROOT = "C:\\ProgramData\\shadowsnap"
SQL_WRITER_ID = "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"


def make_host(host_model):
    return LabWindowsHost(host_model())


def start_session(host, run_id="ss-hostile"):
    session_plan = generator.SessionPlan(run_id=run_id, volumes=["D:", "E:"], verify_writer_ids=[SQL_WRITER_ID])
    answer = agent_call(host, "session_start", {"run_id": run_id, "files": generator.session_files(session_plan),
                                                "wait_seconds": 30, "wait_for": ["created.txt", "exit.txt"]})
    assert answer["ok"], answer
    return answer["result"]


def test_a_clean_host_has_no_session_directory_until_the_agent_makes_one(host_model):
    host = make_host(host_model)
    files = host.model.files
    assert files.security(ROOT) == {"root": {"path": ROOT, "exists": False}, "folders": []}
    start_session(host)
    report = files.security(ROOT)
    assert report["root"]["owner"] == ADMINISTRATORS and report["root"]["owner_name"] == "BUILTIN\\Administrators"
    assert not report["root"]["inherits"] and not report["root"]["reparse_point"]
    assert [(e["identity"], e["rights"]) for e in report["root"]["explicit_aces"]] == [(SYSTEM, "FullControl"), (ADMINISTRATORS, "FullControl")]
    assert [f["path"] for f in report["folders"]] == [ROOT + "\\runs", ROOT + "\\runs\\ss-hostile"]
    assert all(f["owner"] == ADMINISTRATORS and f["explicit_aces"] == [] and f["inherits"] for f in report["folders"])


def test_a_root_pre_created_by_a_local_user_keeps_that_users_runs_folder_after_the_agent_protects_it(host_model):
    host = make_host(host_model)
    files = host.model.files
    user = files.local_user_sid()
    report = files.make_hostile("foreign_owner", ROOT)
    assert report["root"]["owner"] == user and report["root"]["owner_name"] == "WIN-SQL-01\\lab-user"
    assert [e["identity"] for e in report["root"]["explicit_aces"]] == [user] and report["root"]["inherits"]
    assert [(f["path"], f["owner"]) for f in report["folders"]] == [(ROOT + "\\runs", user)]
    start_session(host)
    after = files.security(ROOT)
    assert after["root"]["owner"] == ADMINISTRATORS and [e["identity"] for e in after["root"]["explicit_aces"]] == [SYSTEM, ADMINISTRATORS]
    runs = next(f for f in after["folders"] if f["path"] == ROOT + "\\runs")
    assert runs["owner"] == user, "the folder below the root keeps its owner"


def test_an_extra_access_entry_below_the_root_survives_the_agent(host_model):
    host = make_host(host_model)
    files = host.model.files
    files.make_hostile("extra_ace", ROOT)
    start_session(host)
    runs = next(f for f in files.security(ROOT)["folders"] if f["path"] == ROOT + "\\runs")
    assert [(e["identity"], e["rights"], e["name"]) for e in runs["explicit_aces"]] == [
        (files.local_user_sid(), "Modify", "WIN-SQL-01\\lab-user")]


def test_through_a_junction_the_session_files_land_in_the_users_folder(host_model):
    host = make_host(host_model)
    files = host.model.files
    report = files.make_hostile("junction", ROOT)
    assert report["root"]["reparse_point"] and report["root"]["reparse_tag"] == "IO_REPARSE_TAG_MOUNT_POINT"
    assert report["root"]["reparse_target"] == "C:\\Users\\Public\\shadowsnap"
    status = session_host.run_status(start_session(host))
    assert status["state"] in ("created", "completed")
    assert files.exists("C:\\Users\\Public\\shadowsnap\\runs\\ss-hostile\\snapshot.dsh"), "written through the junction"
    assert files.exists(ROOT + "\\runs\\ss-hostile\\created.txt")
    target = files.security("C:\\Users\\Public\\shadowsnap")["root"]
    assert target["owner"] == ADMINISTRATORS and not target["inherits"], "Set-Acl on a junction changes its target"
    assert files.security(ROOT)["root"]["owner"] == files.local_user_sid(), "the junction itself is still the user's"
    assert [f["path"] for f in files.security(ROOT)["folders"]] == [ROOT + "\\runs", ROOT + "\\runs\\ss-hostile"]


def test_folder_security_is_validated_and_settable_piece_by_piece(host_model):
    files = host_model().files
    with pytest.raises(ValueError):
        files.make_hostile("friendly", ROOT)
    described = files.set_security("C:\\Data\\Drop", owner=files.local_user_sid(), protected=True,
                                   add_aces=[ace("S-1-1-0", "Write", "None")])
    assert described["owner_name"] == "WIN-SQL-01\\lab-user" and not described["inherits"]
    assert described["explicit_aces"] == [{"identity": "S-1-1-0", "rights": "Write", "type": "Allow", "inheritance": "None",
                                           "name": "Everyone"}]


def test_the_control_api_presents_and_reports_a_hostile_session_directory(client):
    report = client.hostile_session_directory("win-sql-01", "extra_ace")
    assert report["root"]["owner"] == ADMINISTRATORS and report["folders"][0]["explicit_aces"][0]["rights"] == "Modify"
    assert client.folder_security("win-sql-01") == report
    client.set_folder_security("win-sql-01", ROOT + "\\runs\\old", owner="S-1-5-32-545")
    assert [f["owner_name"] for f in client.folder_security("win-sql-01")["folders"]][-1] == "BUILTIN\\Users"
    with pytest.raises(RuntimeError, match="hostile kind"):
        client.hostile_session_directory("win-sql-01", "friendly")
    client.reset()
    assert client.folder_security("win-sql-01")["root"]["exists"] is False


def test_the_twin_reports_the_session_tree_and_the_controller_finds_it_safe_only_as_the_agent_makes_it(host_model):
    host = make_host(host_model)
    fresh = call_agent(host, "sessions")["result"]
    assert (fresh["root"], fresh["run_root"], fresh["runs"]) == (ROOT, ROOT + "\\runs", [])
    assert [(f["path"], f["exists"]) for f in fresh["folders"]] == [(ROOT, False), (ROOT + "\\runs", False)]
    assert session_host.directory_problems(fresh) == [] and session_host.folders_to_create(fresh) == [ROOT, ROOT + "\\runs"]
    start_session(host)
    tree = call_agent(host, "sessions")["result"]
    assert [f["path"] for f in tree["folders"]] == [ROOT, ROOT + "\\runs", ROOT + "\\runs\\ss-hostile"]
    root = tree["folders"][0]
    assert (root["owner"], root["owner_name"], root["attributes"], root["inherits"]) == (
        ADMINISTRATORS, "BUILTIN\\Administrators", "Directory", False)
    assert [(e["identity"], e["name"], e["rights"]) for e in root["explicit_access"]] == [
        (SYSTEM, "NT AUTHORITY\\SYSTEM", "FullControl"), (ADMINISTRATORS, "BUILTIN\\Administrators", "FullControl")]
    assert [run["run_id"] for run in tree["runs"]] == ["ss-hostile"] and tree["runs"][0]["files"]["created.txt"]
    assert session_host.directory_problems(tree) == [] and session_host.folders_to_create(tree) == []


@pytest.mark.parametrize("kind, found", [
    ("foreign_owner", "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\lab-user and has an explicit Allow entry for "
                      "WIN-SQL-01\\lab-user (FullControl): remove C:\\ProgramData\\shadowsnap and let the agent create it"),
    ("junction", "C:\\ProgramData\\shadowsnap is owned by WIN-SQL-01\\lab-user and is a junction to C:\\Users\\Public\\shadowsnap: "
                 "remove C:\\ProgramData\\shadowsnap and let the agent create it (rmdir \"C:\\ProgramData\\shadowsnap\" removes the "
                 "link, not its target)"),
    ("extra_ace", "C:\\ProgramData\\shadowsnap\\runs has an explicit Allow entry for WIN-SQL-01\\lab-user (Modify): remove "
                  "C:\\ProgramData\\shadowsnap\\runs and let the agent create it, or remove the entries (icacls "
                  "\"C:\\ProgramData\\shadowsnap\\runs\" /remove \"WIN-SQL-01\\lab-user\")"),
])
def test_the_twin_reports_each_hostile_session_directory_and_the_controller_refuses_it(host_model, kind, found):
    host = make_host(host_model)
    host.model.files.make_hostile(kind, ROOT)
    tree = call_agent(host, "sessions")["result"]
    assert session_host.directory_problems(tree) == [found]
    assert host.model.tasks.describe() == [] and host.model.shadows.list() == [], "reading the tree changes nothing"


def test_a_folder_made_or_removed_after_the_controllers_check_stops_the_start(host_model):
    host = make_host(host_model)
    files = host.model.files
    checked = session_host.folders_to_create(call_agent(host, "sessions")["result"])
    files.make_hostile("foreign_owner", ROOT)
    session_plan = generator.SessionPlan(run_id="ss-race", volumes=["D:"], verify_writer_ids=[])
    args = {"run_id": "ss-race", "files": generator.session_files(session_plan), "create_folders": checked}
    raced = call_agent(host, "session_start", args)
    assert not raced["ok"] and raced["error"]["message"] == (
        "C:\\ProgramData\\shadowsnap exists now, but did not when the controller checked the session directory: someone "
        "else created it; the session was not started")
    assert files.security(ROOT)["root"]["owner"] == files.local_user_sid(), "not protected: nothing was done"
    assert host.model.tasks.describe() == [] and not files.folder_exists(ROOT + "\\runs\\ss-race")

    files.remove_tree(ROOT)
    gone = call_agent(host, "session_start", dict(args, create_folders=[]))
    assert not gone["ok"] and gone["error"]["message"].startswith("C:\\ProgramData\\shadowsnap is gone since the controller")
    assert host.model.tasks.describe() == [] and not files.folder_exists(ROOT)
