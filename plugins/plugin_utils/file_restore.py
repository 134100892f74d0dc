# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A file-level restore, decided on the controller: which restored volume holds each path, the robocopy runs that copy
it, and what robocopy's answers say.

The rules (docs/restore.md "files"):

- a path is a file, a folder (copied with everything below it) or a wildcard in its last part (the matching files of
  that folder); it belongs to the set's volume whose drive letter or mount point is the longest prefix of it;
- the copy keeps data, attributes, time stamps, security and owner (``/COPY:DATSO``, folders ``/DCOPY:DAT``) and reads
  in backup mode (``/B``), so the ACLs of the files do not stop it; junctions are not followed (``/XJ``);
- files that exist in the destination are left alone (``/XC /XN /XO``) unless overwriting was asked (``/IS /IT``);
- robocopy's exit code is a bit mask, 8 and above meaning some copies failed; its summary and failure lines are read by
  their structure (the rule of dashes, rows of six numbers, ``(0x<hex>)`` codes), never by their words, which are
  translated.

Each path is copied by two robocopy runs in one round trip: as a file (its folder, its name as the pattern) and as a
folder (``/E``). One of them finds nothing - no such file, no such folder (exit code 16, ERROR 2) - and that is how a
path's kind is known without a listing.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re

WILDCARD = re.compile(r"[*?]")
ABSOLUTE = re.compile(r"^[A-Za-z]:(\\|$)")
BAD_CHARACTERS = re.compile(r'["<>|\r\n]')
COPY_OPTIONS = ["/COPY:DATSO", "/DCOPY:DAT", "/B", "/R:1", "/W:1", "/XJ", "/NP", "/NJH", "/NDL", "/NFL", "/BYTES"]
KEEP_EXISTING = ["/XC", "/XN", "/XO"]
OVERWRITE = ["/IS", "/IT"]
FAILED_BIT = 8
FATAL_BIT = 16
NOT_FOUND_CODES = (2, 3)
SUMMARY_ROW = re.compile(r"^\s*\S[^:]*:\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
RULE = re.compile(r"^\s*-{20,}\s*$")
FAILURE = re.compile(r"\b(\d+) \(0x([0-9A-Fa-f]{8})\) (.*)$")
FAILED_PATH = re.compile(r"([A-Za-z]:\\.*|\\\\.*)$")
KEPT_REASON = "already in the destination (overwriting was not asked)"


class FileRestoreError(ValueError):
    """The paths cannot be restored as asked; the message says which and why."""


def clean_path(path: str) -> str:
    """``d:/Shares/Finance/`` -> ``D:\\Shares\\Finance``."""
    text = str(path).strip().replace("/", "\\")
    text = re.sub(r"\\{2,}", r"\\", text).rstrip("\\")
    return text[0].upper() + text[1:] if ABSOLUTE.match(text) else text


def volume_of(path: str, volume_paths: list[str]) -> str | None:
    """The volume path (``D:``, ``C:\\Mounts\\Data``) among ``volume_paths`` that holds ``path``: the longest prefix."""
    lowered = clean_path(path).lower()
    best = None
    for candidate in volume_paths:
        root = clean_path(candidate).lower()
        if (lowered == root or lowered.startswith(root + "\\")) and (best is None or len(root) > len(clean_path(best))):
            best = candidate
    return best


def check_paths(paths: list[str], volume_paths: list[str]) -> dict:
    """``{path: volume path}`` for every path; FileRestoreError naming each path that is not absolute, has a wildcard
    before its last part, or is on none of ``volume_paths`` (the set's drive letters and mount points)."""
    if not paths:
        raise FileRestoreError("no paths to restore were given")
    found, problems = {}, []
    for path in paths:
        cleaned = clean_path(path)
        if not ABSOLUTE.match(cleaned) or BAD_CHARACTERS.search(cleaned):
            problems.append(f"{path!r} is not an absolute Windows path (D:\\folder\\file)")
            continue
        if WILDCARD.search(cleaned.rsplit("\\", 1)[0]):
            problems.append(f"{path!r} has a wildcard before its last part (wildcards match the files of one folder)")
            continue
        volume = volume_of(cleaned, volume_paths)
        if volume is None:
            problems.append(f"{path!r} is on none of the set's volumes")
            continue
        if clean_path(volume).lower() == cleaned.lower():
            problems.append(f"{path!r} is a whole volume: restore the volume (restore_mode alongside or in_place)")
            continue
        found[cleaned] = volume
    if problems:
        raise FileRestoreError("; ".join(problems) + " (the set's volumes: " + ", ".join(volume_paths or ["none"]) + ")")
    return found


def destination_of(path: str, target: str | None) -> str:
    """Where ``path`` goes: under ``target`` with its drive letter as the first folder (``D:\\a`` -> ``T\\D\\a``),
    or the path itself when restoring in place (``target`` None)."""
    if target is None:
        return path
    return clean_path(target) + "\\" + path[0] + path[2:]


def plan_jobs(path: str, read_from: str, volume_path: str, target: str | None, overwrite: bool) -> list[dict]:
    """The two robocopy runs of one path (as a file, as a folder): ``{"kind", "arguments"}`` each. ``read_from`` is
    where the volume at ``volume_path`` is read on the copying host (an exposed shadow copy, or the restored volume)."""
    relative = path[len(clean_path(volume_path)):].lstrip("\\")
    source = clean_path(read_from) + "\\" + relative
    destination = destination_of(path, target)
    policy = OVERWRITE if overwrite else KEEP_EXISTING
    source_folder, name = source.rsplit("\\", 1)
    destination_folder = destination.rsplit("\\", 1)[0]
    jobs = [{"kind": "files", "arguments": [source_folder, destination_folder, name, *COPY_OPTIONS, *policy]}]
    if not WILDCARD.search(name):
        jobs.append({"kind": "folder", "arguments": [source, destination, "/E", *COPY_OPTIONS, *policy]})
    return jobs


def parse_output(text: str) -> dict:
    """robocopy's summary (``dirs``, ``files``, ``bytes``: each ``total``, ``copied``, ``skipped``, ``mismatch``,
    ``failed``, ``extras``; None without a summary) and its ``failures`` (``code``, ``hresult``, ``path``,
    ``message``)."""
    lines = str(text or "").replace("\r\n", "\n").split("\n")
    rows, failures = [], []
    last_rule = max((index for index, line in enumerate(lines) if RULE.match(line)), default=None)
    if last_rule is not None:
        for line in lines[last_rule + 1:]:
            match = SUMMARY_ROW.match(line)
            if match:
                rows.append(dict(zip(("total", "copied", "skipped", "mismatch", "failed", "extras"),
                                     (int(value) for value in match.groups()))))
    for index, line in enumerate(lines):
        match = FAILURE.search(line)
        if match:
            where = FAILED_PATH.search(match.group(3))
            failures.append({"code": int(match.group(1)), "hresult": "0x" + match.group(2).upper(),
                             "path": where.group(1) if where else None,
                             "message": lines[index + 1].strip() if index + 1 < len(lines) else ""})
    summary = dict(zip(("dirs", "files", "bytes"), rows)) if len(rows) >= 3 else None
    return {"summary": summary, "failures": failures}


def _source_missing(failures: list[dict], source: str) -> bool:
    """Whether a fatal run's failures only say that its source folder does not exist (the path is not of this kind)."""
    return bool(failures) and all(failure["code"] in NOT_FOUND_CODES and failure["path"]
                                  and clean_path(failure["path"]).lower() == clean_path(source).lower()
                                  for failure in failures)


def judge_path(path: str, destination: str, answers: list[dict], jobs: list[dict], overwrite: bool) -> dict:
    """One path's entry of the result from the answers of its robocopy runs: ``status`` (``copied``, ``not_found``
    or ``failed``), files and bytes copied, what was skipped and why, the failures."""
    entry = {"path": path, "destination": destination, "kind": None, "status": "copied", "files_copied": 0,
             "bytes_copied": 0, "folders_copied": 0, "skipped": [], "failures": [], "exit_codes": []}
    found = False
    skipped_files = skipped_bytes = 0
    for job, answer in zip(jobs, answers):
        code = int(answer.get("exit_code") if answer.get("exit_code") is not None else FATAL_BIT)
        entry["exit_codes"].append(code)
        parsed = parse_output(answer.get("output"))
        summary = parsed["summary"]
        if code & FATAL_BIT:
            if not _source_missing(parsed["failures"], job["arguments"][0]):
                entry["failures"] += parsed["failures"] or [{"code": None, "hresult": None, "path": None,
                                                             "message": f"robocopy exited with {code}: {answer.get('output')}"}]
            continue
        if summary is None:
            entry["failures"].append({"code": None, "hresult": None, "path": None,
                                      "message": f"robocopy exited with {code} without its summary"})
            continue
        if summary["files"]["total"] == 0 and job["kind"] == "files":
            continue
        found = True
        entry["kind"] = entry["kind"] or job["kind"]
        entry["files_copied"] += summary["files"]["copied"]
        entry["bytes_copied"] += summary["bytes"]["copied"]
        entry["folders_copied"] += summary["dirs"]["copied"] if job["kind"] == "folder" else 0
        skipped_files += summary["files"]["skipped"]
        skipped_bytes += summary["bytes"]["skipped"]
        entry["failures"] += parsed["failures"]
        if code & FAILED_BIT and not parsed["failures"]:
            entry["failures"].append({"code": None, "hresult": None, "path": None,
                                      "message": f"robocopy exited with {code}: some copies failed"})
    if skipped_files:
        entry["skipped"].append({"files": skipped_files, "bytes": skipped_bytes,
                                 "reason": "identical in the destination" if overwrite else KEPT_REASON})
    if entry["failures"]:
        entry["status"] = "failed"
    elif not found:
        entry["status"] = "not_found"
    return entry
