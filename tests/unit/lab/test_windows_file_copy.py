"""The lab's files with NTFS metadata (owner, explicit and inherited entries, times) carried by EBS snapshots, restored
volumes and shadow copies, and its robocopy as the agent's twin runs it (files_copy): what it copies, skips and
reports, its exit codes, and a copy that fails halfway."""

from lab.windows import LabWindowsHost
from lab.windows.agent_twin import protocol
from lab.windows.files import ADMINISTRATORS, SYSTEM, USERS, ace
from lab.windows.testing import call_agent
from test_windows_restore import backed_up_volume, restored_disk

FINANCE = "D:\\Shares\\Finance"
CLERK = "S-1-5-21-1-2-3-1104"
OPTIONS = ["/COPY:DATSO", "/DCOPY:DAT", "/B", "/R:1", "/W:1", "/XJ", "/NP", "/NJH", "/NDL", "/NFL", "/BYTES"]


def seed_finance(model):
    """A folder with its own protected ACL and times, two files (one with an explicit entry of its own)."""
    model.files.write(FINANCE + "\\q1.xlsx", b"q1-figures")
    model.files.write(FINANCE + "\\2025\\q4.xlsx", b"q4-figures-longer")
    model.files.set_info(FINANCE, owner=CLERK, protected=True, aces=[ace(CLERK, "Modify"), ace(ADMINISTRATORS)],
                         created="2024-01-02T03:04:05Z", modified="2025-06-01T00:00:00Z")
    model.files.set_info(FINANCE + "\\q1.xlsx", owner=CLERK, aces=[ace(USERS, "Read", inheritance="None")],
                         created="2025-01-05T10:00:00Z", modified="2025-04-01T09:30:00Z")


def robocopy(host, *arguments):
    answer = call_agent(host, "files_copy", {"jobs": [{"arguments": list(arguments) + OPTIONS}]})
    assert answer["ok"], answer
    (job,) = answer["result"]["jobs"]
    assert tuple(job) == protocol.FILES_COPY_JOB_KEYS
    return job


def test_metadata_is_inherited_down_to_a_protected_folder_and_travels_with_snapshots_and_shadow_copies(host_model):
    model = host_model()
    seed_finance(model)
    info = model.files.info(FINANCE + "\\q1.xlsx")
    assert (info["owner"], info["created"], info["modified"], info["size"]) == (
        CLERK, "2025-01-05T10:00:00Z", "2025-04-01T09:30:00Z", 10)
    assert [(e["identity"], e["inherited"]) for e in info["access"]] == [(USERS, False), (CLERK, True), (ADMINISTRATORS, True)]
    assert [e["identity"] for e in model.files.info("D:\\Shares")["access"]] == [SYSTEM, ADMINISTRATORS, USERS], \
        "an unprotected folder inherits the volume root's entries"
    snapshot_id, shadow_id, dummy = backed_up_volume(model)
    model.files.set_info(FINANCE + "\\q1.xlsx", owner=SYSTEM, modified="2026-01-01T00:00:00Z")
    model.volume_detached(model.storage.find_volume("D:").volume_ids[0])
    restored_disk(model, snapshot_id, device="xvdb")
    restored = model.files.info(FINANCE + "\\q1.xlsx")
    assert (restored["owner"], restored["modified"]) == (CLERK, "2025-04-01T09:30:00Z"), "the snapshot's point in time"
    assert call_agent(LabWindowsHost(model), "shadow_expose", {"shadow_id": shadow_id, "path": "S:"})["ok"]
    frozen = model.files.info("S:\\Shares\\Finance\\q1.xlsx")
    assert (frozen["owner"], frozen["modified"], frozen["access"]) == (CLERK, "2025-04-01T09:30:00Z", info["access"])


def test_robocopy_copies_a_folder_from_an_exposed_shadow_with_data_times_security_and_owner(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    seed_finance(model)
    shadow_id = model.shadows.create_set(["D:"])["shadows"][0]["id"]
    model.files.remove_tree(FINANCE)
    assert model.files.info(FINANCE)["exists"] is False
    assert call_agent(host, "shadow_expose", {"shadow_id": shadow_id, "path": "S:"})["ok"]
    job = robocopy(host, "S:\\Shares\\Finance", "C:\\Restore\\D\\Shares\\Finance", "/E")
    assert job["exit_code"] == 1 and job["command"].startswith("robocopy.exe S:\\Shares\\Finance ")
    assert "    Dirs :         2         2         0         0         0         0" in job["output"]
    assert "   Files :         2         2         0         0         0         0" in job["output"]
    assert "   Bytes :        27        27         0         0         0         0" in job["output"]
    for relative in ("", "\\q1.xlsx", "\\2025\\q4.xlsx"):
        source, copy = model.files.info("S:\\Shares\\Finance" + relative), model.files.info("C:\\Restore\\D\\Shares\\Finance" + relative)
        for field in ("size", "owner", "protected", "created", "modified", "access"):
            assert copy[field] == source[field], (relative, field)
    assert model.files.read("C:\\Restore\\D\\Shares\\Finance\\2025\\q4.xlsx") == b"q4-figures-longer"


def test_existing_files_are_skipped_unless_included_and_missing_sources_are_fatal(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    seed_finance(model)
    model.files.write("C:\\Restore\\q1.xlsx", b"edited since")
    kept = robocopy(host, FINANCE, "C:\\Restore", "q1.xlsx", "/XC", "/XN", "/XO")
    assert kept["exit_code"] == 0 and "   Files :         1         0         1" in kept["output"]
    assert model.files.read("C:\\Restore\\q1.xlsx") == b"edited since"
    replaced = robocopy(host, FINANCE, "C:\\Restore", "q1.xlsx", "/IS", "/IT")
    assert replaced["exit_code"] == 1 and model.files.read("C:\\Restore\\q1.xlsx") == b"q1-figures"
    same = robocopy(host, FINANCE, "C:\\Restore", "q1.xlsx")
    assert same["exit_code"] == 0 and "   Files :         1         0         1" in same["output"], "same size and time"
    missing = robocopy(host, "D:\\Shares\\Nothing", "C:\\Restore\\Nothing", "/E")
    assert missing["exit_code"] == 16 and "ERROR 2 (0x00000002) Accessing Source Directory D:\\Shares\\Nothing\\" in missing["output"]


def test_a_copy_set_to_fail_halfway_reports_the_failed_files_and_exit_code_8(host_model):
    model = host_model()
    host = LabWindowsHost(model)
    seed_finance(model)
    model.configure(copy_fail_after_files=1)
    job = robocopy(host, FINANCE, "C:\\Restore", "/E")
    assert job["exit_code"] == 9, "one copied (1), one failed (8)"
    assert "ERROR 112 (0x00000070) Copying File D:\\Shares\\Finance\\q1.xlsx" in job["output"]
    assert "There is not enough space on the disk." in job["output"]
    assert "   Files :         2         1         0         0         1         0" in job["output"]
    assert model.files.read("C:\\Restore\\q1.xlsx") is None


def test_files_copy_refuses_bad_jobs(host_model):
    host = LabWindowsHost(host_model())
    assert call_agent(host, "files_copy", {"jobs": []})["error"]["message"] == "files_copy needs jobs"
    quoted = call_agent(host, "files_copy", {"jobs": [{"arguments": ['D:\\a" /MOV', "C:\\b"]}]})
    assert "without quotes" in quoted["error"]["message"]
    many = call_agent(host, "files_copy", {"jobs": [{"arguments": ["D:\\a", "C:\\b"]}] * 65})
    assert "at most 64 jobs" in many["error"]["message"]
    unknown = robocopy(host, "D:\\Shares", "C:\\Restore", "/MIR")
    assert unknown["exit_code"] == 16 and 'Invalid Parameter' in unknown["output"]
