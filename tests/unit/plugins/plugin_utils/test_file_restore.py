"""The controller's decisions for a file-level restore: which volume holds a path, the robocopy runs of a path, and
what robocopy's answers say - read by their structure, in English and in translations."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import file_restore
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.file_restore import FileRestoreError

VOLUMES = ["D:", "E:", "C:\\Mounts\\Data"]

ENGLISH = """\r
2026/12/02 02:14:00 ERROR 112 (0x00000070) Copying File S:\\Shares\\Finance\\q1.xlsx\r
There is not enough space on the disk.\r
\r
------------------------------------------------------------------------------\r
\r
               Total    Copied   Skipped  Mismatch    FAILED    Extras\r
    Dirs :         2         2         0         0         0         0\r
   Files :         3         1         1         0         1         0\r
   Bytes :       300       100       100         0       100         0\r
   Times :   0:00:00   0:00:00                       0:00:00   0:00:00\r
   Ended : Wednesday, December 2, 2026 2:14:00 AM\r
"""
# The same summary with translated labels and words (the structure is what is read).
TRANSLATED = """2026/12/02 02:14:00 FEHLER 112 (0x00000070) Kopieren der Datei S:\\Shares\\Finance\\q1.xlsx
Auf dem Datenträger ist nicht genügend Speicherplatz vorhanden.

------------------------------------------------------------------------------

             Insgesamt   KopiertÜbersprungenKeine Übereinstimmung    FEHLER    Extras
Verzeich.:         2         2         0         0         0         0
  Dateien:         3         1         1         0         1         0
    Bytes:       300       100       100         0       100         0
"""


@pytest.mark.parametrize("path, expected", [
    ("D:\\Shares\\Finance", "D:"), ("d:/shares/finance/", "D:"), ("C:\\Mounts\\Data\\x.txt", "C:\\Mounts\\Data"),
    ("C:\\Mounts\\DataX\\y", None), ("F:\\x", None), ("E:\\logs\\*.ldf", "E:"),
])
def test_a_path_belongs_to_the_volume_with_the_longest_prefix(path, expected):
    assert file_restore.volume_of(path, VOLUMES) == expected


def test_paths_off_the_sets_volumes_relative_or_with_inner_wildcards_are_refused_all_at_once():
    with pytest.raises(FileRestoreError) as raised:
        file_restore.check_paths(["F:\\Shares", "Shares\\x", "D:\\*\\x.txt", "D:\\", "D:\\ok"], VOLUMES)
    message = str(raised.value)
    assert "'F:\\\\Shares' is on none of the set's volumes" in message and "not an absolute" in message
    assert "wildcard before its last part" in message and "is a whole volume" in message and "D:\\ok" not in message
    assert "(the set's volumes: D:, E:, C:\\Mounts\\Data)" in message
    assert file_restore.check_paths(["d:/Shares/Finance/", "C:\\Mounts\\Data\\a"], VOLUMES) == {
        "D:\\Shares\\Finance": "D:", "C:\\Mounts\\Data\\a": "C:\\Mounts\\Data"}
    with pytest.raises(FileRestoreError, match="no paths"):
        file_restore.check_paths([], VOLUMES)


def test_a_path_is_copied_as_a_file_and_as_a_folder_keeping_what_exists_unless_overwriting():
    jobs = file_restore.plan_jobs("D:\\Shares\\Finance", "C:\\shadowsnap-restore\\set\\D", "D:", "C:\\Restored", False)
    assert [job["kind"] for job in jobs] == ["files", "folder"]
    assert jobs[0]["arguments"][:3] == ["C:\\shadowsnap-restore\\set\\D\\Shares", "C:\\Restored\\D\\Shares", "Finance"]
    assert jobs[1]["arguments"][:3] == ["C:\\shadowsnap-restore\\set\\D\\Shares\\Finance", "C:\\Restored\\D\\Shares\\Finance", "/E"]
    for job in jobs:
        assert "/COPY:DATSO" in job["arguments"] and "/B" in job["arguments"] and "/XJ" in job["arguments"]
        assert {"/XC", "/XN", "/XO"} <= set(job["arguments"]) and "/IS" not in job["arguments"]
    (wildcard,) = file_restore.plan_jobs("C:\\Mounts\\Data\\*.csv", "T:", "C:\\Mounts\\Data", None, True)
    assert wildcard["arguments"][:3] == ["T:", "C:\\Mounts\\Data", "*.csv"], "in place: back where it was"
    assert {"/IS", "/IT"} <= set(wildcard["arguments"]) and "/XC" not in wildcard["arguments"]


@pytest.mark.parametrize("text", [ENGLISH, TRANSLATED])
def test_the_summary_and_the_failures_are_read_by_their_structure(text):
    parsed = file_restore.parse_output(text)
    assert parsed["summary"]["files"] == {"total": 3, "copied": 1, "skipped": 1, "mismatch": 0, "failed": 1, "extras": 0}
    assert parsed["summary"]["bytes"]["copied"] == 100 and parsed["summary"]["dirs"]["copied"] == 2
    (failure,) = parsed["failures"]
    assert (failure["code"], failure["hresult"], failure["path"]) == (112, "0x00000070", "S:\\Shares\\Finance\\q1.xlsx")
    assert failure["message"].endswith(".")


def answer(text, code):
    return {"command": "robocopy.exe", "exit_code": code, "output": text}


NOT_FOUND = "2026/12/02 02:14:00 ERROR 2 (0x00000002) Accessing Source Directory S:\\a\\\r\nThe system cannot find the file specified.\r\n"
NO_DESTINATION = ("2026/12/02 02:14:00 ERROR 3 (0x00000003) Creating Destination Directory Q:\\R\\D\\a\\\r\n"
                  "The system cannot find the path specified.\r\n")
# A folder that exists with no file of the name: robocopy finds nothing to copy.
NOTHING = ("\r\n------------------------------------------------------------------------------\r\n\r\n"
           "               Total    Copied   Skipped  Mismatch    FAILED    Extras\r\n"
           "    Dirs :         1         0         1         0         0         0\r\n"
           "   Files :         0         0         0         0         0         0\r\n"
           "   Bytes :         0         0         0         0         0         0\r\n")


def test_a_path_is_judged_from_both_runs():
    jobs = file_restore.plan_jobs("D:\\a", "S:", "D:", "C:\\R", False)
    failed = file_restore.judge_path("D:\\a", "C:\\R\\D\\a", [answer(NOTHING, 0), answer(ENGLISH, 9)], jobs, False)
    assert (failed["status"], failed["kind"], failed["files_copied"], failed["bytes_copied"]) == ("failed", "folder", 1, 100)
    assert failed["skipped"] == [{"files": 1, "bytes": 100, "reason": file_restore.KEPT_REASON}]
    assert failed["failures"][0]["code"] == 112 and failed["exit_codes"] == [0, 9]
    missing = file_restore.judge_path("D:\\a", "C:\\R\\D\\a", [answer(NOTHING, 0), answer(NOT_FOUND, 16)], jobs, False)
    assert (missing["status"], missing["failures"], missing["kind"]) == ("not_found", [], None)
    fatal = file_restore.judge_path("D:\\a", "C:\\R\\D\\a", [answer("ERROR : Invalid Parameter #3", 16), answer(NOT_FOUND, 16)],
                                    jobs, False)
    assert fatal["status"] == "failed" and "Invalid Parameter" in fatal["failures"][0]["message"]
    no_destination = file_restore.judge_path("D:\\a", "Q:\\R\\D\\a", [answer(NOTHING, 0), answer(NO_DESTINATION, 16)],
                                             jobs, False)
    assert no_destination["status"] == "failed", "a destination that cannot be made is no missing source"
    silent = file_restore.judge_path("D:\\a", "C:\\R\\D\\a", [answer("", 8), answer(NOT_FOUND, 16)], jobs, False)
    assert silent["status"] == "failed" and "without its summary" in silent["failures"][0]["message"]
