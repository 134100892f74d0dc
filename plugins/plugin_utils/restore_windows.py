# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Windows side of a restore, decided on the controller: which disk holds which restored EBS volume, what bringing
it online or offline means on this host, which tool may revert a shadow copy, which services own the volumes.

The rules (docs/restore.md, FACTS.md "Restore: Windows rules"):

- a disk whose GPT disk GUID or MBR signature is that of a disk online on the host collides: Windows keeps it offline
  and bringing it online re-signs it. That is refused unless the user allowed it, and the answer says which disk it
  collides with;
- a drive letter another volume holds is not taken from it: the disk comes online without it, and the result says so;
- ``diskshadow revert`` is documented for client-accessible shadow copies only; every other persistent shadow copy is
  reverted with ``vssadmin revert shadow``, whose answer for diskshadow's persistent context is not documented;
- the services that own a volume are those that write the data of the (application) writers whose components are on
  it (vss.py's writer knowledge), plus the user's.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import hashlib
import re
import time

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import ebs_disks, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.action_ec2 import Ec2LookupError, ec2_client, reverted_volumes
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid, volume_key

DRIVE = re.compile(r"^([A-Za-z]):\\?$")
COLLISION_REASON = 4
DONE = {"revert": "reverted", "expose": "exposed"}


class RestorePlanError(ValueError):
    """The restore cannot go on as asked; the message says what is wrong and what to do."""


def split_paths(paths: list[str] | None) -> tuple[str | None, list[str]]:
    """``['D:\\', 'C:\\Mounts\\Data']`` -> ``('D', ['C:\\Mounts\\Data\\'])``: the drive letter and the mount folders."""
    letter = None
    folders: list[str] = []
    for path in paths or []:
        text = str(path).strip().replace("/", "\\")
        match = DRIVE.match(text)
        if match and letter is None:
            letter = match.group(1).upper()
        elif not match and text:
            folders.append(text.rstrip("\\") + "\\")
    return letter, folders


def _raw_disks(storage: dict) -> dict:
    return {record.get("Number"): record for record in storage.get("disks") or [] if isinstance(record, dict)}


def _disk_id(record: dict) -> str | None:
    """The id Windows tells disks apart by: the GPT disk GUID, or the MBR signature."""
    guid = normalise_guid(record.get("Guid"))
    if guid:
        return guid
    signature = record.get("Signature")
    return f"mbr:{int(signature):08x}" if signature not in (None, "", 0) else None


def disks_by_volume(storage: dict) -> dict:
    """``{EBS volume id: disk}`` of an agent ``storage`` answer; each disk as ebs_disks maps it, with ``disk_id``,
    ``offline_reason`` and the drive letter and access paths of its volume."""
    mapping = ebs_disks.map_storage(storage)
    raw = _raw_disks(storage)
    letters = {}
    for volume in mapping["volumes"]:
        for number in volume.get("disk_numbers") or []:
            letters[number] = volume
    found = {}
    for disk in mapping["disks"]:
        if not disk.get("ebs_volume_id"):
            continue
        record = raw.get(disk["number"], {})
        volume = letters.get(disk["number"]) or {}
        found[disk["ebs_volume_id"]] = dict(
            disk, disk_id=_disk_id(record), offline_reason=record.get("OfflineReason"),
            drive_letter=volume.get("drive_letter"), access_paths=volume.get("mount_points") or [],
            volume_unique_id=volume.get("unique_id"))
    return found


def letters_in_use(storage: dict) -> set[str]:
    return {str(volume.get("DriveLetter")).upper() for volume in storage.get("volumes") or []
            if isinstance(volume, dict) and volume.get("DriveLetter")}


def plan_online(storage: dict, volumes: list[dict], allow_resign: bool, read_only: bool) -> tuple[list[dict], list[dict]]:
    """``(requests for disk_online, one entry per volume)``. Raises RestorePlanError when a volume has no disk or
    collides and re-signing was not allowed: nothing is changed then."""
    disks = disks_by_volume(storage)
    in_use = letters_in_use(storage)
    requests, entries, problems = [], [], []
    for item in volumes:
        volume_id = item["volume_id"]
        disk = disks.get(volume_id)
        if disk is None:
            problems.append(f"{volume_id} has no disk on this host (is it attached to this instance?)")
            continue
        letter, folders = split_paths(item.get("paths"))
        collides = None
        if disk["offline"] and disk["disk_id"]:
            collides = next((other for other_id, other in disks.items() if other_id != volume_id and not other["offline"]
                             and other["disk_id"] == disk["disk_id"]), None)
        entry = {"volume_id": volume_id, "disk_number": disk["number"], "was_offline": disk["offline"],
                 "collides_with": collides["ebs_volume_id"] if collides else None, "resigned": False,
                 "drive_letter": disk["drive_letter"], "access_paths": list(disk["access_paths"]),
                 "drive_letter_in_use": None, "changed": False}
        if collides and not allow_resign:
            problems.append(
                f"{volume_id} (disk {disk['number']}) has the disk id of {collides['ebs_volume_id']} (disk "
                f"{collides['number']}), which is online: Windows keeps it offline and bringing it online would re-sign "
                f"it. Detach {collides['ebs_volume_id']} first (an in-place restore does), attach the volume to another "
                f"instance, or allow the re-sign (allow_resign)")
            continue
        wanted_letter = letter
        if letter and letter != disk["drive_letter"] and letter in in_use:
            entry["drive_letter_in_use"] = letter
            wanted_letter = None
        missing = [folder for folder in folders if folder.lower() not in (p.lower() for p in disk["access_paths"])]
        needs = disk["offline"] or bool(disk["read_only"]) != read_only or missing or (
            wanted_letter and wanted_letter != disk["drive_letter"])
        if needs:
            requests.append({"number": disk["number"], "read_only": read_only, "drive_letter": wanted_letter,
                             "access_paths": folders})
            entry.update(changed=True, resigned=bool(collides))
            if wanted_letter:
                in_use.add(wanted_letter)
        entries.append(entry)
    if problems:
        raise RestorePlanError("; ".join(problems))
    return requests, entries


def plan_offline(storage: dict, volume_ids: list[str]) -> tuple[list[int], list[dict]]:
    """``(disk numbers to take offline, one entry per volume)``; a volume without a disk here is reported as absent."""
    disks = disks_by_volume(storage)
    numbers, entries = [], []
    for volume_id in volume_ids:
        disk = disks.get(volume_id)
        if disk is None:
            entries.append({"volume_id": volume_id, "disk_number": None, "present": False, "changed": False})
            continue
        if disk.get("is_boot") or disk.get("is_system"):
            raise RestorePlanError(f"{volume_id} (disk {disk['number']}) holds the running Windows: it cannot be taken offline")
        if not disk["offline"]:
            numbers.append(disk["number"])
        entries.append({"volume_id": volume_id, "disk_number": disk["number"], "present": True,
                        "changed": not disk["offline"]})
    return numbers, entries


def revert_tool(record: dict) -> str:
    """The tool that may revert a shadow copy of this context (see the module docstring)."""
    return "diskshadow" if record.get("ClientAccessible") else "vssadmin"


def shadow_records(answer: dict) -> dict:
    """``{shadow id (lower case, braced): Win32_ShadowCopy record}`` of a ``shadows`` answer."""
    return {normalise_guid(record.get("ID")): record for record in answer.get("shadows") or [] if normalise_guid(record.get("ID"))}


def services_for_volumes(writers: list[dict], storage: dict, paths: list[str]) -> tuple[list[str], list[str]]:
    """``(services, writers without a known service)`` of the application writers whose components are on the
    volumes at ``paths`` (drive letters or mount folders)."""
    wanted = set()
    for volume in ebs_disks.map_storage(storage)["volumes"]:
        names = [f"{volume.get('drive_letter')}:" if volume.get("drive_letter") else None] + list(volume.get("mount_points") or [])
        if any(name and name.rstrip("\\").lower() == str(path).rstrip("\\").lower() for name in names for path in paths):
            wanted.add(volume_key(volume.get("unique_id")))
    services, unknown = [], []
    for writer in writers:
        if writer.get("infrastructure") or not wanted.intersection(writer.get("volumes") or []):
            continue
        owners = vss.writer_application_services(writer["name"])
        if not owners:
            unknown.append(writer["name"])
        services += [service for service in owners if service not in services]
    return services, unknown


def storage_with_disks(transport, volume_ids: list[str], timeout: float, poll_seconds: float) -> dict:
    """The ``storage`` answer, read again every ``poll_seconds`` until every volume in ``volume_ids`` has a disk or
    ``timeout`` seconds passed (a disk appears some time after its EBS volume is attached)."""
    deadline = time.monotonic() + timeout
    while True:
        storage = transport.request("storage").result
        missing = set(volume_ids) - set(disks_by_volume(storage))
        if not missing or time.monotonic() >= deadline:
            return storage
        time.sleep(poll_seconds)


def apply_disk_states(entries: list[dict], disks: list[dict] | None, state: str) -> list[str]:
    """The disks' states of a ``disk_online`` / ``disk_offline`` answer written into the entries of plan_online or
    plan_offline; returns the volumes Windows did not take ``state`` (``online`` or ``offline``)."""
    states = {disk["number"]: disk for disk in disks or []}
    for entry in entries:
        disk = states.get(entry["disk_number"])
        if disk is not None:
            entry.update(drive_letter=disk.get("drive_letter"), access_paths=list(disk.get("access_paths") or []),
                         offline=bool(disk.get("is_offline")), read_only=bool(disk.get("is_read_only")))
    return [entry["volume_id"] for entry in entries
            if entry["disk_number"] in states and states[entry["disk_number"]].get("is_offline") != (state == "offline")]


def shadow_entries(items: list[dict], action: str) -> list[dict]:
    """One result entry per shadow copy to revert, expose or unexpose (``outcome`` None until it is known);
    RestorePlanError for an id that is not a GUID, or an expose or unexpose without its path."""
    entries = []
    for item in items:
        shadow_id = normalise_guid(item["shadow_id"])
        if shadow_id is None:
            raise RestorePlanError(f"{item['shadow_id']!r} is not a shadow copy id")
        if action in ("expose", "unexpose") and not item.get("expose_path"):
            raise RestorePlanError(f"{action} of {shadow_id} needs its expose_path (a drive letter X: or a folder)")
        entries.append({"shadow_id": shadow_id, "volume_id": item.get("volume_id"), "expose_path": item.get("expose_path"),
                        "outcome": None, "tool": None, "hresult": None, "hresult_name": None, "message": None})
    return entries


def service_set_request(names: list[str], state: str, timeout: int, record: str) -> dict:
    """The agent's ``service_set`` arguments; with ``record`` (such as a restore id) the host keeps, in the same round
    trip, the services a stop found running, and a start also starts those and removes the record."""
    request = {"names": names, "state": state, "timeout_seconds": timeout}
    if record:
        request["record"] = record_name(record)
    return request


def record_name(record: str) -> str:
    """The host's file name of a record (any text, such as a restore id, maps to a name the agent accepts)."""
    return "restore-" + hashlib.sha256(record.encode("utf-8")).hexdigest()[:32]


def services_set(answer: dict) -> dict:
    """The result of a ``service_set`` answer: ``services``, the record's services (``recorded``) and what a later start
    should start again (``were_running``): those this stop found running and those an earlier stop recorded."""
    services = answer.get("services") or []
    recorded = list(answer.get("recorded") or [])
    were_running = [service["name"] for service in services if service.get("previous_status") == "Running"]
    return {"services": services, "recorded": recorded,
            "were_running": were_running + [name for name in recorded if name not in were_running]}


def reverted_before(args: dict, entries: list[dict], plugin_name: str, phase) -> set[str]:
    """The volumes of ``entries`` an earlier run reverted, from their tags (one ``DescribeVolumes``, no round trip to the
    host); only with ``tag_volumes``, which writes those tags. ``phase`` is the action's phase timer."""
    volume_ids = [entry["volume_id"] for entry in entries if entry["volume_id"]]
    if not args["tag_volumes"] or not volume_ids:
        return set()
    try:
        with phase("lookup"):
            return reverted_volumes(ec2_client(args, plugin_name), volume_ids)
    except Ec2LookupError as exc:
        raise TaskFailure(f"cannot tell whether an earlier run reverted the volumes: {exc}") from exc


def skip_reverted_before(entries: list[dict], reverted: set[str]) -> list[dict]:
    """The entries still to revert. A revert deletes its shadow copy, so those whose volume an earlier run reverted
    (its tags say so) are marked reverted, unchanged, and not looked for on the host."""
    pending = []
    for entry in entries:
        if entry["volume_id"] in reverted:
            entry.update(outcome="reverted", message="reverted by an earlier run (the volume's tags say so)")
        else:
            pending.append(entry)
    return pending


def mark_missing(entry: dict) -> None:
    entry.update(outcome="missing", message="the shadow copy is not on this host (gone, or its volume is not online "
                                            "read-write)")


def mark_refused(entry: dict, error) -> None:
    """The agent's refusal (an AgentOperationError) of a revert or expose, as the entry's outcome."""
    entry.update(outcome="refused", message=error.reason, hresult_name=error.hresult_name,
                 hresult=vss.format_hresult(error.hresult) if error.hresult is not None else None)


def shadows_consistency(entries: list[dict]) -> str:
    """``application`` only when every shadow copy was reverted or exposed."""
    done = [entry for entry in entries if entry["outcome"] in DONE.values()]
    return "application" if entries and len(done) == len(entries) else "crash"


def unavailable(entries: list[dict], action: str) -> str | None:
    """What could not be reverted or exposed, as a failure message; None when nothing is missing or refused."""
    failed = [entry for entry in entries if entry["outcome"] in ("missing", "refused")]
    if not failed:
        return None
    return (f"could not {action} " + "; ".join(f"{entry['shadow_id']}: {entry['outcome']} ({entry['message']})" for entry in failed)
            + ": the volumes hold the crash-consistent image only")
