# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""The shadow engine's session logic on the controller: pre-flight, volume selection, writer rules, the state machine.

Pure Python over the agent's answers (docs/agent-protocol.md, docs/vss-session.md); the only side effects are the
callables a ``SessionRunner`` is given (send a request, sleep, read a clock), so every rule is tested without Windows.

What the rules guarantee (docs/engines.md, "The shadow engine"):

- **Volumes.** The set is the volumes asked for (``volumes``, the volumes of ``writers``, ``all_data_volumes``), closed
  over two relations until nothing changes: a volume that shares an EBS volume (a disk) with a member is a member too -
  a dynamic (spanned, striped) volume or a Storage Spaces volume brings every volume on its disks, a second partition
  on a member's disk comes along - because the EBS snapshot of that disk captures it; and the volume that holds a
  member's shadow storage (diff area) is a member (only with ``add_storage_volumes``, else the task fails and says how
  to move the diff area). Partitions without a drive letter or mount point (EFI, recovery) on a member disk cannot be
  added and are reported as ``unshadowed_volumes``; any other companion that cannot be added fails the plan.
- **Writers.** Writers named in ``writers`` or ``required_writers`` are *required as a whole*: every volume any of
  their components touches must be in the set. By default (``required_writers`` not given) the *application* writers
  (every writer but the operating system's own, ``INFRASTRUCTURE_WRITERS``) with a component on the set are required
  *per component*: a component that touches the set must have all its volumes in it (a database whose log is on a
  volume outside the set fails the plan, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT up front); components wholly outside
  the set are left out of this backup and reported. Required writers get ``writer verify``, so diskshadow itself fails
  rather than silently dropping them; they must be listed and STABLE (or their service is restarted on request).
- **Volumes one by one.** NTFS, on EBS (not instance store), reachable by a drive letter or an ASCII mount point,
  at most 64, and with at least ``min_diff_area_free`` of shadow storage space left.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentError, AgentOperationError
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.ebs_disks import volume_key
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_failure

IN_PROGRESS_HRESULT = 0x80042316
DEFAULT_MIN_DIFF_AREA_FREE = "1GB"
DEFAULT_SESSION_TIMEOUT = 300
DEFAULT_HOLD_TIMEOUT = 600
# The longest an agent request waits on the host: long waits cost time, not round trips; WinRM keeps polling.
WAIT_PER_ROUND_TRIP = 120
# The scheduled task's execution time limit is the hold timeout plus the session timeout plus this margin.
TASK_TIME_LIMIT_MARGIN = 300
# Run directories older than the task time limit plus this margin are leftovers (session_cleanup).
CLEANUP_MARGIN = 600
SESSION_STATES = ("starting", "created", "completed", "failed", "missing")

# The operating system's own writers: never required by default (their components follow service binaries and system
# files onto every volume); they are included by diskshadow when all their components are in the set.
INFRASTRUCTURE_WRITERS = frozenset(
    name.casefold()
    for name in (
        "ASR Writer",
        "BITS Writer",
        "COM+ REGDB Writer",
        "MSSearch Service Writer",
        "Performance Counters Writer",
        "Registry Writer",
        "Shadow Copy Optimization Writer",
        "System Writer",
        "Task Scheduler Writer",
        "VSS Metadata Store Writer",
        "WMI Writer",
    )
)

_SIZE_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>%|[KMGTP]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_GUID_RE = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
_DRIVE_RE = re.compile(r"^(?P<letter>[A-Za-z])(?::\\?)?$")
_CREATE_ECHO_RE = re.compile(r"^\s*->\s*create\s*$", re.IGNORECASE)
_BEGIN_BACKUP_ECHO_RE = re.compile(r"^\s*->\s*begin\s+backup\s*$", re.IGNORECASE | re.MULTILINE)
_ECHO_RE = re.compile(r"^\s*->\s")
_BULLET_LINE_RE = re.compile(r"^\s*\+\s+(?P<rest>\S.*)$")
_QUOTED_RE = re.compile("[\"\u201c\u201e\u00ab\u300c]([^\"\u201c\u201d\u201e\u00ab\u00bb\u300c\u300d]+)[\"\u201d\u201c\u00bb\u300d]")
_LOG_VOLUME_RE = re.compile(r"\\\\\?\\Volume\{[0-9a-fA-F-]{36}\}\\|(?<![\w\\])[A-Za-z]:\\[^\s\"\u201d,;]*")


class SessionError(Exception):
    """The session cannot go on; the message says what happened and what to do."""

    def __init__(self, message: str, *, hresult: int | None = None, run_id: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.hresult = hresult
        self.run_id = run_id
        self.details = details or {}


class PreflightError(SessionError):
    """The host or the requested set fails the pre-flight; ``problems`` lists every reason, each with its fix."""

    def __init__(self, problems: list[str], *, details: dict | None = None):
        super().__init__("; ".join(problems), details=details)
        self.problems = list(problems)


# ---------------------------------------------------------------------------------------------------------------- ids


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """``ss-<UTC yyyyMMddTHHmmss>-<8 hex>`` (docs/vss-session.md)."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return "ss-%s-%s" % (moment.strftime("%Y%m%dT%H%M%S"), token or secrets.token_hex(4))


def normalise_guid(value: Any) -> str | None:
    """``{guid}`` in lower case, or None when ``value`` is not a GUID."""
    match = _GUID_RE.match(str(value or "").strip())
    return "{%s}" % match.group(1).lower() if match else None


def parse_size(spec: Any, volume_size: int | None = None) -> int:
    """Bytes of ``spec``: an int, ``"1GB"``/``"500MiB"``/``"2T"`` (binary units) or ``"10%"`` of ``volume_size``."""
    if isinstance(spec, bool):
        raise ValueError(f"size {spec!r} is not a number of bytes, a size such as 1GB, or a percentage")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"size {spec} must not be negative")
        return spec
    match = _SIZE_RE.match(str(spec or ""))
    if not match:
        raise ValueError(f"size {spec!r} is not a number of bytes, a size such as 1GB, or a percentage such as 10%")
    number = float(match.group("number"))
    unit = (match.group("unit") or "").upper()
    if unit == "%":
        if number > 100:
            raise ValueError(f"size {spec!r}: a percentage is at most 100%")
        if volume_size is None:
            raise ValueError(f"size {spec!r} is a percentage, but the volume size is unknown")
        return int(math.ceil(volume_size * number / 100))
    return int(math.ceil(number * _UNITS[unit[:1]]))


def format_bytes(value: int | None) -> str:
    if value is None:
        return "unknown"
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


# --------------------------------------------------------------------------------------------------------------- host


def check_host(facts: dict) -> list[str]:
    """Why the host cannot run the shadow engine (empty: it can)."""
    problems = []
    caption = facts.get("os_caption") or "this Windows"
    if facts.get("is_server") is False or facts.get("product_type") == 1:
        problems.append(
            f"{caption} is client Windows: the shadow engine needs Windows Server (diskshadow ships with Windows Server "
            f"only); use engine crash, or aws_vss with AWS's VSS components"
        )
    elif facts.get("diskshadow_present") is False:
        problems.append(f"{caption} has no diskshadow.exe (%SystemRoot%\\System32\\diskshadow.exe); the shadow engine needs it")
    return problems


# ------------------------------------------------------------------------------------------------------------ writers


def _name_key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def is_infrastructure_writer(name: str) -> bool:
    """True for the operating system's own writers (INFRASTRUCTURE_WRITERS)."""
    return _name_key(name) in INFRASTRUCTURE_WRITERS


def writer_volume_keys(writer: dict) -> list[str]:
    """The ``\\\\?\\Volume{guid}\\`` of every volume the writer's components touch, in listing order."""
    keys: list[str] = []
    for component in writer.get("components") or []:
        for volume in component.get("volumes") or []:
            key = volume_key(volume.get("volume"))
            if key and key not in keys:
                keys.append(key)
    return keys


def component_volume_keys(component: dict) -> list[str]:
    keys: list[str] = []
    for volume in component.get("volumes") or []:
        key = volume_key(volume.get("volume"))
        if key and key not in keys:
            keys.append(key)
    return keys


def describe_writer(writer: dict) -> dict:
    """A parsed writer with the service to restart, failed/waiting flags and the volumes its components touch."""
    described = dict(writer)
    state = writer.get("state")
    described["failed"] = vss.writer_state_failed(state)
    described["waiting"] = vss.writer_state_waiting(state)
    described["failed_phase"] = vss.writer_failed_phase(state)
    described["service"] = vss.writer_service(writer["name"])
    described["infrastructure"] = is_infrastructure_writer(writer["name"])
    if writer.get("components") is not None:
        described["volumes"] = writer_volume_keys(writer)
    return described


def find_writers(refs: list[str], writers: list[dict]) -> tuple[list[dict], list[str]]:
    """The writers named by ``refs`` (names, or writer/instance ids as GUIDs), and the refs that name none."""
    found: list[dict] = []
    unknown: list[str] = []
    for ref in refs or []:
        guid = normalise_guid(ref)
        matches = [
            writer
            for writer in writers
            if (guid and guid in (writer.get("writer_id"), writer.get("instance_id")))
            or (not guid and _name_key(writer["name"]) == _name_key(ref))
        ]
        if not matches:
            unknown.append(ref)
        for writer in matches:
            if writer not in found:
                found.append(writer)
    return found, unknown


def writer_problem(writer: dict) -> str:
    """One line on an unhealthy writer: name, state, last error, and what to do."""
    text = f"{writer['name']!r} is {writer.get('state_name') or vss.writer_state_name(writer.get('state'))} [{writer.get('state')}]"
    if writer.get("last_error"):
        text += f", last error: {writer['last_error']}"
    if vss.writer_state_waiting(writer.get("state")):
        return text + " (a backup is running or a requester left its session open: wait, do not restart anything)"
    service = writer.get("service") or vss.writer_service(writer["name"])
    if service:
        return text + f"; restart the service {service} when no backup is running (or set restart_failed_writers: true)"
    return text + "; no known service for this writer: see its application's documentation"


# ------------------------------------------------------------------------------------------------------------ volumes


def volume_path(volume: dict) -> str | None:
    """How diskshadow names the volume: ``D:``, else its first mount point without the trailing backslash."""
    if volume.get("drive_letter"):
        return volume["drive_letter"].upper() + ":"
    for mount_point in volume.get("mount_points") or []:
        return mount_point.rstrip("\\")
    return None


def volume_display(volume: dict) -> str:
    return volume_path(volume) or volume.get("unique_id") or "a volume"


def tag_paths(volume: dict) -> list[str]:
    """Drive root and mount points as the tag schema records them (``D:\\``, ``C:\\mnt\\logs\\``)."""
    paths = []
    if volume.get("drive_letter"):
        paths.append(volume["drive_letter"].upper() + ":\\")
    for mount_point in volume.get("mount_points") or []:
        text = mount_point if mount_point.endswith("\\") else mount_point + "\\"
        if text not in paths:
            paths.append(text)
    return paths


def find_volume(ref: str, volumes: list[dict]) -> dict | None:
    """The volume named by a drive letter (``d``, ``D:``, ``D:\\``), a mount point or a ``\\\\?\\Volume{guid}\\``."""
    text = str(ref or "").strip()
    key = volume_key(text) or volume_key(text + "\\")
    if key:
        return next((volume for volume in volumes if volume["unique_id"] == key), None)
    drive = _DRIVE_RE.match(text)
    if drive:
        letter = drive.group("letter").upper()
        return next((volume for volume in volumes if (volume.get("drive_letter") or "").upper() == letter), None)
    wanted = text.rstrip("\\").casefold()
    for volume in volumes:
        if any(mount_point.rstrip("\\").casefold() == wanted for mount_point in volume.get("mount_points") or []):
            return volume
    return None


def _known_paths(volumes: list[dict]) -> str:
    paths = sorted(path for path in (volume_path(volume) for volume in volumes) if path)
    return ", ".join(paths) or "none"


def _disk_keys(volume: dict) -> set:
    keys = {("disk", number) for number in volume.get("disk_numbers") or [] if number is not None}
    keys.update(("ebs", volume_id) for volume_id in volume.get("ebs_volume_ids") or [])
    return keys


def is_data_volume(volume: dict) -> tuple[bool, str | None]:
    """Whether ``all_data_volumes`` picks the volume, and why not."""
    if volume.get("is_boot") or volume.get("is_system"):
        return False, "the boot or system volume (name it in volumes to include it)"
    if volume.get("drive_type") not in (None, "Fixed"):
        return False, f"drive type {volume.get('drive_type')}"
    if not volume_path(volume):
        return False, "no drive letter or mount point"
    if volume.get("instance_store"):
        return False, "on instance store"
    if not volume.get("all_ebs"):
        return False, "not on EBS"
    if (volume.get("file_system") or "").upper() != "NTFS":
        return False, f"file system {volume.get('file_system') or 'none'}, not NTFS"
    return True, None


@dataclass
class SelectionOptions:
    """What the task asks for (the plugin options of the same names)."""

    volumes: list = field(default_factory=list)
    writers: list = field(default_factory=list)
    all_data_volumes: bool = False
    required_writers: list | None = None
    exclude_writers: list = field(default_factory=list)
    add_storage_volumes: bool = False
    add_companion_volumes: bool = True
    min_diff_area_free: Any = DEFAULT_MIN_DIFF_AREA_FREE

    def needs_components(self) -> bool:
        """Whether the pre-flight needs diskshadow's detailed listing (components and their volumes)."""
        return bool(self.writers) or self.required_writers is None or bool(self.required_writers)


@dataclass
class Plan:
    """The shadow set the pre-flight settled on, and why."""

    volumes: list
    required_writers: list
    excluded_writers: list
    touching_writers: list
    excluded_components: list
    unshadowed_volumes: list
    skipped_volumes: list
    warnings: list

    def paths(self) -> list[str]:
        return [entry["path"] for entry in self.volumes]

    def verify_writer_ids(self) -> list[str]:
        return _unique(entry["writer_id"] for entry in self.required_writers)

    def exclude_writer_ids(self) -> list[str]:
        return _unique(entry["writer_id"] for entry in self.excluded_writers)

    def session_plan(self, run_id: str, backup_type: str = "copy", hold_timeout: int = DEFAULT_HOLD_TIMEOUT):
        return diskshadow.SessionPlan(
            run_id=run_id,
            volumes=self.paths(),
            backup_type=backup_type,
            verify_writer_ids=self.verify_writer_ids(),
            exclude_writer_ids=self.exclude_writer_ids(),
            hold_timeout_seconds=hold_timeout,
        )

    def as_result(self) -> dict:
        return {
            "volumes": self.volumes,
            "required_writers": self.required_writers,
            "excluded_writers": self.excluded_writers,
            "excluded_components": self.excluded_components,
            "unshadowed_volumes": self.unshadowed_volumes,
            "skipped_volumes": self.skipped_volumes,
        }


def _unique(items) -> list:
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


class _Selection:
    """The growing set: unique id -> reasons, in the order volumes joined."""

    def __init__(self, volumes: list[dict]):
        self.by_id = {volume["unique_id"]: volume for volume in volumes}
        self.reasons: dict[str, list[str]] = {}

    def add(self, volume: dict, reason: str) -> bool:
        reasons = self.reasons.setdefault(volume["unique_id"], [])
        new = not reasons
        if reason not in reasons:
            reasons.append(reason)
        return new

    def __contains__(self, unique_id) -> bool:
        return unique_id in self.reasons

    def members(self) -> list[dict]:
        return [self.by_id[unique_id] for unique_id in self.reasons]


def _volume_name_for(key: str, volumes_by_id: dict, display: str | None = None) -> str:
    volume = volumes_by_id.get(key)
    if volume is not None:
        return volume_display(volume)
    return f"{display} ({key})" if display else key


def _select(mapping_volumes, writers, options, problems, skipped) -> _Selection:
    selection = _Selection(mapping_volumes)
    for ref in options.volumes or []:
        volume = find_volume(ref, mapping_volumes)
        if volume is None:
            problems.append(f"volume {ref!r} is not on this host (its volumes: {_known_paths(mapping_volumes)})")
        else:
            selection.add(volume, "selected")
    chosen, unknown = find_writers(options.writers, writers)
    for ref in unknown:
        problems.append(f"writer {ref!r} is not listed on this host (listed: {', '.join(sorted(w['name'] for w in writers)) or 'none'})")
    for writer in chosen:
        if writer.get("components") is None:
            problems.append(f"writer {writer['name']!r} lists no components, so its volumes are unknown ({writer_problem(writer)})")
            continue
        keys = writer_volume_keys(writer)
        if not keys:
            problems.append(f"writer {writer['name']!r} touches no volume: nothing to select for it")
        for key in keys:
            volume = selection.by_id.get(key)
            if volume is None:
                problems.append(f"writer {writer['name']!r} touches volume {key}, which the storage listing does not show")
            else:
                selection.add(volume, f"touched by writer {writer['name']}")
    if options.all_data_volumes:
        for volume in mapping_volumes:
            picked, why_not = is_data_volume(volume)
            if picked:
                selection.add(volume, "all_data_volumes")
            elif volume["unique_id"] not in selection:
                skipped.append({"unique_id": volume["unique_id"], "path": volume_path(volume), "reason": why_not})
    return selection


def _close(selection: _Selection, mapping_volumes, options, problems, unshadowed) -> None:
    """Companions on shared disks and shadow storage volumes, until nothing changes."""
    changed = True
    while changed:
        changed = False
        for member in selection.members():
            keys = _disk_keys(member)
            for other in mapping_volumes:
                shared_keys = keys & _disk_keys(other)
                if other["unique_id"] in selection or not shared_keys:
                    continue
                shared = sorted(value for kind, value in shared_keys if kind == "ebs") or sorted(
                    f"disk {value}" for kind, value in shared_keys if kind == "disk"
                )
                reason = f"shares {', '.join(shared)} with {volume_display(member)}"
                if not volume_path(other):
                    if all(item["unique_id"] != other["unique_id"] for item in unshadowed):
                        unshadowed.append({"unique_id": other["unique_id"], "file_system": other.get("file_system"),
                                           "size": other.get("size"),
                                           "reason": reason + "; no drive letter or mount point (a system partition)"})
                    continue
                if not options.add_companion_volumes:
                    problems.append(
                        f"{volume_display(other)} {reason}: the EBS snapshot of that disk captures it, so it must be in the "
                        f"shadow set; add it to volumes (or set add_companion_volumes: true)"
                    )
                    continue
                changed |= selection.add(other, reason)
            storage = member.get("shadow_storage") or {}
            diff_key = storage.get("diff_volume")
            if not diff_key or diff_key == member["unique_id"] or diff_key in selection:
                continue
            diff_volume = selection.by_id.get(diff_key)
            if options.add_storage_volumes and diff_volume is not None and volume_path(diff_volume):
                changed |= selection.add(diff_volume, f"holds the shadow storage of {volume_display(member)}")
                continue
            where = volume_display(diff_volume) if diff_volume else diff_key
            path = volume_path(member) or member["unique_id"]
            fix = (
                f"keep the diff area on the volume itself: vssadmin delete shadowstorage /for={path} (this deletes "
                f"{path}'s shadow copies), then vssadmin add shadowstorage /for={path} /on={path} /maxsize=10%"
            )
            if diff_volume is not None and volume_path(diff_volume):
                fix += f"; or set add_storage_volumes: true to add {where} to the set"
            problems.append(
                f"the shadow storage (diff area) of {volume_display(member)} is on {where}, outside the set: the EBS "
                f"snapshot of {volume_display(member)} would not hold its shadow copy; {fix}"
            )


def _diff_area(volume: dict, by_id: dict, spec: Any, problems: list[str], warnings: list[str]) -> dict:
    storage = volume.get("shadow_storage")
    path = volume_path(volume) or volume["unique_id"]
    if storage is None:
        host = volume
        used, maximum = 0, None
    else:
        host = by_id.get(storage.get("diff_volume")) or volume
        used = storage.get("used_space") or 0
        maximum = None if storage.get("max_space_unbounded") else storage.get("max_space")
    try:
        required = parse_size(spec, volume.get("size"))
    except ValueError as exc:
        problems.append(f"min_diff_area_free for {path}: {exc}")
        required = None
    free = host.get("size_remaining")
    if maximum is not None:
        room = max(0, maximum - used)
        free = room if free is None else min(free, room)
    entry = {
        "storage_volume": host["unique_id"],
        "storage_path": volume_path(host),
        "same_volume": host["unique_id"] == volume["unique_id"],
        "association": storage is not None,
        "used_space": used if storage is not None else None,
        "max_space": maximum,
        "free_bytes": free,
        "required_bytes": required,
    }
    if required is None:
        return entry
    if free is None:
        warnings.append(f"{path}: the free space of its shadow storage is unknown; the {format_bytes(required)} minimum is not checked")
    elif free < required:
        storage_path = volume_path(host) or host["unique_id"]
        if maximum is not None and host.get("size_remaining") is not None and host["size_remaining"] >= required:
            fix = f"grow the association: vssadmin resize shadowstorage /for={path} /on={storage_path} /maxsize=<larger>"
        else:
            fix = f"free space on {storage_path}"
        problems.append(
            f"{path}: only {format_bytes(free)} of shadow storage (diff area) space left on {storage_path}, "
            f"min_diff_area_free asks for {format_bytes(required)}; {fix}, or lower min_diff_area_free"
        )
    return entry


def _check_member(volume: dict, reasons: list[str], disks_by_number: dict, problems: list[str]) -> None:
    display = volume_display(volume)
    if "selected" not in reasons:
        display += f" (in the set: {'; '.join(reasons)})"
    path = volume_path(volume)
    if not path:
        problems.append(f"{volume['unique_id']} has no drive letter or mount point, so diskshadow cannot add it; give it one")
    elif any(ord(char) > 127 for char in path):
        problems.append(f"{path}: the mount point path is not ASCII; use a drive letter or an ASCII mount point path")
    elif " " in path:
        problems.append(f"{path}: diskshadow cannot add a mount point path with spaces; use a drive letter or another path")
    if (volume.get("file_system") or "").upper() != "NTFS":
        problems.append(
            f"{display} is {volume.get('file_system') or 'not formatted'}, not NTFS: persistent shadow copies need NTFS; "
            f"leave it out or snapshot it with engine crash"
        )
    members = [disks_by_number.get(number) for number in volume.get("disk_numbers") or []]
    if volume.get("instance_store") or any(disk and disk.get("instance_store") for disk in members):
        problems.append(f"{display} is on instance store: no EBS snapshot can hold it; leave it out of the set")
    elif not members or any(disk is None or disk.get("kind") != "ebs" for disk in members):
        problems.append(
            f"{display} is not on EBS volumes only (layout {volume.get('layout')}, disks {volume.get('disk_numbers')}): "
            f"it cannot be snapshotted; see win_ebs_disk_info for the mapping"
        )
    elif any(not disk.get("ebs_volume_id") and not disk.get("device") for disk in members):
        unknown = [str(disk["number"]) for disk in members if not disk.get("ebs_volume_id") and not disk.get("device")]
        problems.append(
            f"{display}: neither the EBS volume id nor the device of disk {', '.join(unknown)} is known (a garbled "
            f"serial number, or a Xen disk without its SCSI target id); see win_ebs_disk_info"
        )


def _writers_rules(writers, options, selection: _Selection, chosen_refs, problems, warnings):
    """(required entries, excluded entries, touching writers, excluded components)."""
    in_set = set(selection.reasons)
    by_id = selection.by_id
    excluded, unknown_excluded = find_writers(options.exclude_writers, writers)
    for ref in unknown_excluded:
        warnings.append(f"exclude_writers: writer {ref!r} is not listed on this host")
    excluded_ids = {writer["writer_id"] for writer in excluded}

    strict: list[tuple[dict, str]] = []
    chosen, dummy = find_writers(chosen_refs, writers)
    strict += [(writer, "selected by writers") for writer in chosen]
    if options.required_writers is not None:
        named, unknown = find_writers(options.required_writers, writers)
        for ref in unknown:
            service = vss.writer_service(ref)
            hint = f" (is its service {service} running?)" if service else ""
            problems.append(f"required writer {ref!r} is not listed on this host{hint}")
        strict += [(writer, "required_writers") for writer in named]

    required: list[dict] = []
    touching: list[dict] = []
    excluded_components: list[dict] = []

    def add_required(writer, rule, why):
        if writer["writer_id"] in excluded_ids:
            problems.append(f"writer {writer['name']!r} is both required ({why}) and in exclude_writers")
            return
        if all(entry["instance_id"] != writer["instance_id"] for entry in required):
            required.append({"name": writer["name"], "writer_id": writer["writer_id"], "instance_id": writer["instance_id"],
                             "rule": rule, "why": why})

    for writer, why in strict:
        add_required(writer, "writer", why)
        if writer.get("components") is None:
            continue
        missing = [key for key in writer_volume_keys(writer) if key not in in_set]
        if missing:
            names = ", ".join(_volume_name_for(key, by_id) for key in missing)
            problems.append(
                f"required writer {writer['name']!r} ({why}) also touches {names}, which the set leaves out: add "
                f"{'it' if len(missing) == 1 else 'them'} to volumes, select by writers: [{writer['name']}], or exclude the writer"
            )

    for writer in writers:
        components = writer.get("components")
        if components is None:
            if not writer.get("infrastructure", is_infrastructure_writer(writer["name"])) and not writer.get("healthy", True):
                warnings.append(f"writer {writer['name']!r} lists no components, so the set cannot be checked against it ({writer_problem(writer)})")
            continue
        touched = [component for component in components if set(component_volume_keys(component)) & in_set]
        if not touched:
            continue
        touching.append(writer)
        if writer["writer_id"] in excluded_ids:
            continue
        for component in components:
            keys = component_volume_keys(component)
            if component in touched:
                continue
            excluded_components.append({
                "writer": writer["name"], "component": component.get("full_path") or component.get("name"),
                "volumes": [_volume_name_for(key, by_id) for key in keys],
                "reason": "all its volumes are outside the set",
            })
        if options.required_writers is not None or is_infrastructure_writer(writer["name"]):
            continue
        add_required(writer, "component", "application writer with components on the set")
        split: dict[tuple, list[str]] = {}
        for component in touched:
            keys = component_volume_keys(component)
            missing = tuple(key for key in keys if key not in in_set)
            if missing:
                inside = tuple(key for key in keys if key in in_set)
                split.setdefault((inside, missing), []).append(component.get("full_path") or component.get("name"))
        for (inside, missing), names in split.items():
            what = ("component '%s'" % names[0]) if len(names) == 1 else "components " + ", ".join("'%s'" % name for name in names)
            problems.append(
                f"{what} of writer {writer['name']!r} touch{'es' if len(names) == 1 else ''} "
                f"{', '.join(_volume_name_for(key, by_id) for key in inside)} in the set and "
                f"{', '.join(_volume_name_for(key, by_id) for key in missing)} outside it: "
                f"{'its shadow copy' if len(names) == 1 else 'their shadow copies'} would be inconsistent "
                f"(VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT); add the missing volume, or exclude the writer"
            )
    excluded_entries = [{"name": writer["name"], "writer_id": writer["writer_id"], "instance_id": writer["instance_id"],
                         "why": "exclude_writers"} for writer in excluded]
    return required, excluded_entries, touching, excluded_components


def build_plan(mapping: dict, writers: list[dict], options: SelectionOptions, shadows: list[dict] | None = None) -> Plan:
    """The shadow set for ``options`` on a host (``mapping``: ebs_disks.map_storage; ``writers``: described writers).

    Raises PreflightError listing every problem (with its fix); the Plan's ``warnings`` are for the task output.
    """
    problems: list[str] = []
    warnings: list[str] = []
    skipped: list[dict] = []
    unshadowed: list[dict] = []
    mapping_volumes = mapping.get("volumes") or []
    writers = [writer if "infrastructure" in writer else describe_writer(writer) for writer in writers or []]

    selection = _select(mapping_volumes, writers, options, problems, skipped)
    if not selection.reasons:
        if not problems:
            problems.append("no volume selected: set volumes, writers or all_data_volumes: true")
        raise PreflightError(problems)
    _close(selection, mapping_volumes, options, problems, unshadowed)

    members = selection.members()
    if len(members) > diskshadow.MAX_VOLUMES_PER_SET:
        problems.append(
            f"the set would hold {len(members)} volumes; a shadow copy set holds at most {diskshadow.MAX_VOLUMES_PER_SET} "
            f"(VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED): split the backup"
        )
    disks_by_number = {disk.get("number"): disk for disk in mapping.get("disks") or []}
    shadow_counts: dict[str, int] = {}
    for shadow in shadows or []:
        key = volume_key(shadow.get("VolumeName"))
        if key:
            shadow_counts[key] = shadow_counts.get(key, 0) + 1

    entries = []
    for volume in members:
        _check_member(volume, selection.reasons[volume["unique_id"]], disks_by_number, problems)
        entry = {
            "path": volume_path(volume),
            "unique_id": volume["unique_id"],
            "drive_letter": volume.get("drive_letter"),
            "mount_points": list(volume.get("mount_points") or []),
            "paths": tag_paths(volume),
            "file_system": volume.get("file_system"),
            "label": volume.get("label"),
            "size": volume.get("size"),
            "size_remaining": volume.get("size_remaining"),
            "layout": volume.get("layout"),
            "storage_pool": volume.get("storage_pool"),
            "disk_numbers": list(volume.get("disk_numbers") or []),
            "ebs_volume_ids": list(volume.get("ebs_volume_ids") or []),
            "devices": list(volume.get("devices") or []),
            "is_boot": bool(volume.get("is_boot")),
            "reasons": selection.reasons[volume["unique_id"]],
            "existing_shadows": shadow_counts.get(volume["unique_id"], 0),
        }
        entry["diff_area"] = _diff_area(volume, selection.by_id, options.min_diff_area_free, problems, warnings)
        if entry["existing_shadows"] >= 64:
            warnings.append(
                f"{entry['path']} already has {entry['existing_shadows']} shadow copies; VSS keeps 64 client-accessible "
                f"ones by default (VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED): delete old ones"
            )
        entries.append(entry)
    entries.sort(key=lambda item: (item["path"] is None, (item["path"] or item["unique_id"]).casefold()))

    required, excluded, touching, excluded_components = _writers_rules(
        writers, options, selection, options.writers, problems, warnings
    )
    if problems:
        raise PreflightError(_unique(problems), details={"volumes": entries})
    return Plan(
        volumes=entries,
        required_writers=required,
        excluded_writers=excluded,
        touching_writers=[writer["name"] for writer in touching],
        excluded_components=excluded_components,
        unshadowed_volumes=unshadowed,
        skipped_volumes=skipped,
        warnings=_unique(warnings),
    )


# ------------------------------------------------------------------------------------------------------ writer health


def writer_health(writers: list[dict], plan: Plan) -> dict:
    """Which writers block the session (required and not STABLE nor waiting) and which only earn a warning.

    Returns ``{"blocking": [writer...], "warnings": [str...], "services": [service names to restart]}``; each blocking
    writer carries ``problem`` (name, state, last error, what to do).
    """
    required_ids = {entry["instance_id"] for entry in plan.required_writers}
    touching = {_name_key(name) for name in plan.touching_writers}
    blocking = []
    warnings = []
    services = []
    for writer in writers:
        if writer.get("healthy"):
            continue
        described = writer if "service" in writer else describe_writer(writer)
        problem = writer_problem(described)
        if writer["instance_id"] in required_ids and not vss.writer_state_waiting(writer.get("state")):
            blocking.append(dict(described, problem="required writer " + problem))
            if described.get("service") and described["service"] not in services:
                services.append(described["service"])
        elif writer["instance_id"] in required_ids or _name_key(writer["name"]) in touching:
            warnings.append("writer " + problem)
    return {"blocking": blocking, "warnings": warnings, "services": services}


# ------------------------------------------------------------------------------------------------- session and status


def session_state(status: dict) -> str:
    state = status.get("state")
    if state not in SESSION_STATES:
        raise SessionError(f"the agent reported session state {state!r}; expected one of {', '.join(SESSION_STATES)}")
    return state


def recorded_shadows(status: dict, session_plan) -> tuple[str, dict]:
    """(shadow set id, {volume path: shadow id}) from what record.cmd wrote; SessionError when incomplete."""
    values = dict(status.get("shadows") or {})
    values[diskshadow.SHADOW_SET_VARIABLE] = status.get("shadow_set_id") or values.get(diskshadow.SHADOW_SET_VARIABLE) or ""
    text = "\n".join(f"{name}={value}" for name, value in values.items())
    try:
        return diskshadow.parse_created_record(text, session_plan)
    except diskshadow.SessionPlanError as exc:
        raise SessionError(f"session {session_plan.run_id}: {exc}", run_id=session_plan.run_id) from exc


def is_full_backup_log(log: str | None) -> bool:
    """Whether diskshadow ran ``begin backup`` (its script echo ``-> begin backup`` is never translated)."""
    return bool(_BEGIN_BACKUP_ECHO_RE.search(log or ""))


def failure_from_log(log: str | None) -> dict | None:
    """The first failed operation in the diskshadow log with what it means: hresult, name, meaning, advice."""
    failure = parse_diskshadow_failure(log or "")
    if failure is None:
        return None
    info = vss.hresult_info(failure["hresult"])
    failure = dict(failure)
    failure["hresult_text"] = vss.format_hresult(failure["hresult"])
    failure["meaning"] = info.meaning if info else None
    failure["advice"] = info.advice if info else None
    return failure


def _create_section(log: str) -> list[str]:
    lines = (log or "").splitlines()
    for index, line in enumerate(lines):
        if _CREATE_ECHO_RE.match(line):
            section = []
            for following in lines[index + 1:]:
                if _ECHO_RE.match(following):
                    break
                section.append(following)
            return section
    return []


def log_exclusions(log: str | None, writer_names: list[str]) -> dict:
    """What diskshadow's verbose ``create`` output says it included and left out, keyed on structure, not words.

    - A component line quotes a component path (``"\\TasksStore"``) and a writer name and names a volume (``C:\\``),
      on the line or the next one: that component was left out.
    - A line that quotes one known writer name and no component path, ends with a colon and is followed by ``+``
      bullets (``+ Adding component: \\WIN-SQL-01\\master``), says the writer is included, with those components.
    - Any other line that quotes one known writer name and no component path says the writer was left out.

    Returns ``{"components": [{"writer", "component", "volume", "text"}], "writers": [{"writer", "text"}],
    "included": [{"writer", "components", "text"}]}``.
    """
    known = {_name_key(name): name for name in writer_names}
    lines = _create_section(log or "")
    components = []
    excluded_writers = []
    included = []
    for index, line in enumerate(lines):
        quoted = _QUOTED_RE.findall(line)
        paths = [item for item in quoted if item.startswith("\\")]
        names = [item for item in quoted if not item.startswith("\\")]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if paths and names:
            rest = line[line.rfind(names[-1]) + len(names[-1]):]
            text = line.strip()
            if following.strip() and not _QUOTED_RE.search(following) and not _BULLET_LINE_RE.match(following):
                rest += " " + following
                text += " " + following.strip()
            volume = _LOG_VOLUME_RE.search(rest)
            components.append({
                "writer": known.get(_name_key(names[0]), names[0]),
                "component": paths[0],
                "volume": volume.group(0).rstrip(".") if volume else None,
                "text": text,
            })
        elif len(names) == 1 and not paths and _name_key(names[0]) in known:
            writer = known[_name_key(names[0])]
            if line.rstrip().endswith((":", "\uff1a")) or _BULLET_LINE_RE.match(following):
                added = []
                for bullet in lines[index + 1:]:
                    match = _BULLET_LINE_RE.match(bullet)
                    if not match:
                        break
                    component = bullet[bullet.index("\\"):].strip() if "\\" in bullet else match.group("rest").strip()
                    added.append(component)
                included.append({"writer": writer, "components": added, "text": line.strip()})
            else:
                excluded_writers.append({"writer": writer, "text": line.strip()})
    return {"components": components, "writers": excluded_writers, "included": included}


def writer_results(plan: Plan, writers: list[dict], log: str | None) -> list[dict]:
    """Per writer that matters to this set: required or not, included or excluded, and why."""
    exclusions = log_exclusions(log, [writer["name"] for writer in writers])
    excluded_by_log = {_name_key(item["writer"]): item["text"] for item in exclusions["writers"]}
    included_by_log = {_name_key(item["writer"]): item for item in exclusions["included"]}
    components_by_writer: dict[str, list] = {}
    for item in exclusions["components"]:
        components_by_writer.setdefault(_name_key(item["writer"]), []).append(
            {"component": item["component"], "volume": item["volume"], "text": item["text"]}
        )
    required = {entry["instance_id"]: entry for entry in plan.required_writers}
    excluded = {entry["instance_id"] for entry in plan.excluded_writers}
    touching = {_name_key(name) for name in plan.touching_writers}
    results = []
    for writer in writers:
        key = _name_key(writer["name"])
        relevant = (writer["instance_id"] in required or writer["instance_id"] in excluded or key in touching
                    or key in excluded_by_log or key in components_by_writer or key in included_by_log)
        if not relevant:
            continue
        entry = {
            "name": writer["name"],
            "writer_id": writer["writer_id"],
            "state_name": writer.get("state_name"),
            "required": writer["instance_id"] in required,
            "rule": required[writer["instance_id"]]["rule"] if writer["instance_id"] in required else None,
            "included": None,
            "reason": None,
            "included_components": list(included_by_log[key]["components"]) if key in included_by_log else [],
            "excluded_components": components_by_writer.get(key, []),
        }
        if writer["instance_id"] in excluded:
            entry.update(included=False, reason="writer exclude (exclude_writers)")
        elif key in excluded_by_log:
            entry.update(included=False, reason=excluded_by_log[key])
        elif key in included_by_log:
            entry.update(included=True, reason=included_by_log[key]["text"])
        elif key in touching or entry["required"]:
            entry.update(included=True, reason="writer verify: diskshadow fails rather than drop it" if entry["required"]
                         else "has components on the set")
        elif writer.get("components") is not None:
            entry.update(included=False, reason="none of its components is on the set's volumes")
        results.append(entry)
    return results


@dataclass
class RetryPolicy:
    """When a failed session is tried again (Microsoft's advice, vss.py): in-progress sets and transient writer errors."""

    in_progress_retries: int = vss.SNAPSHOT_SET_MAX_RETRIES
    in_progress_delay: float = vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS
    writer_error_retries: int = 0
    writer_error_delay: float = vss.WRITER_RETRY_AFTER_SECONDS

    def decide(self, hresult: int | None, used: dict) -> tuple[str, float] | None:
        """(kind, delay) when another attempt is due, else None; ``used`` counts attempts per kind (updated)."""
        if hresult is None:
            return None
        if hresult == IN_PROGRESS_HRESULT:
            kind, limit, delay = "in_progress", self.in_progress_retries, self.in_progress_delay
        else:
            info = vss.hresult_info(hresult)
            if info is None or not info.retryable:
                return None
            kind, limit, delay = "writer_error", self.writer_error_retries, self.writer_error_delay
        if used.get(kind, 0) >= limit:
            return None
        used[kind] = used.get(kind, 0) + 1
        return kind, delay


@dataclass
class CreateOutcome:
    """A shadow set that exists: the run, what diskshadow recorded, and the story of the attempts."""

    run_id: str
    session_plan: Any
    status: dict
    shadow_set_id: str
    shadows: dict
    attempts: list
    cleaned: list


class SessionRunner:
    """Drives the agent's session ops (docs/vss-session.md) with bounded waits and the retry policy.

    ``send(op, args)`` returns the op's result or raises an AgentError; ``sleep`` and ``clock`` are time.sleep and
    time.monotonic in production.
    """

    def __init__(self, send: Callable[[str, dict], dict], *, sleep: Callable[[float], None], clock: Callable[[], float],
                 policy: RetryPolicy | None = None, session_timeout: int = DEFAULT_SESSION_TIMEOUT,
                 wait_per_round_trip: int = WAIT_PER_ROUND_TRIP, run_id_factory: Callable[[], str] = new_run_id):
        self.send = send
        self.sleep = sleep
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.session_timeout = session_timeout
        self.wait_per_round_trip = wait_per_round_trip
        self.run_id_factory = run_id_factory
        self.attempts: list[dict] = []
        self.cleanup_errors: list[str] = []

    def _wait(self, deadline: float) -> int:
        return int(max(0, min(self.wait_per_round_trip, math.ceil(deadline - self.clock()))))

    def task_time_limit(self, hold_timeout: int) -> int:
        return int(hold_timeout + self.session_timeout + TASK_TIME_LIMIT_MARGIN)

    def create(self, plan: Plan, backup_type: str, hold_timeout: int, cleanup: bool = True,
               leftover_age: int | None = None) -> CreateOutcome:
        """Starts sessions until one has created its shadow set, a failure is final, or the retries run out.

        With ``cleanup``, the first start also cleans the runs older than ``leftover_age`` seconds (default: this
        session's task time limit plus a margin, so that no live session of another controller is touched).
        """
        used: dict = {}
        cleaned: list = []
        time_limit = self.task_time_limit(hold_timeout)
        cleanup_age = (leftover_age or time_limit + CLEANUP_MARGIN) if cleanup else None
        while True:
            session_plan = plan.session_plan(self.run_id_factory(), backup_type, hold_timeout)
            files = diskshadow.session_files(session_plan)
            run_id = session_plan.run_id
            deadline = self.clock() + self.session_timeout
            args = {"run_id": run_id, "files": files, "wait_seconds": self._wait(deadline), "run_dir": session_plan.run_dir(),
                    "time_limit_seconds": time_limit}
            if cleanup_age is not None:
                args["cleanup_older_than_seconds"] = cleanup_age
                cleanup_age = None
            try:
                status = self.send("session_start", args)
            except AgentOperationError as exc:
                decision = self.policy.decide(exc.hresult, used)
                self.attempts.append({"run_id": run_id, "outcome": "refused", "hresult": exc.hresult,
                                      "hresult_name": exc.hresult_name, "message": exc.reason,
                                      "retry_after": decision[1] if decision else None})
                if decision is None:
                    raise
                self.sleep(decision[1])
                continue
            cleaned.extend(status.get("cleaned") or [])
            while session_state(status) == "starting" and self.clock() < deadline:
                status = self.send("session_status", {"run_id": run_id, "wait_seconds": self._wait(deadline), "until": "created"})
            state = session_state(status)
            if state == "starting":
                self.attempts.append({"run_id": run_id, "outcome": "timeout"})
                self.abort(run_id)
                raise SessionError(
                    f"diskshadow did not create the shadow set of {', '.join(plan.paths())} within session_timeout "
                    f"({self.session_timeout} s); the session was aborted. Writers slow to freeze, or a busy host: raise "
                    f"session_timeout", run_id=run_id, details={"status": status},
                )
            if state in ("created", "completed"):
                try:
                    set_id, shadows = recorded_shadows(status, session_plan)
                except SessionError:
                    self.abort(run_id)
                    raise
                self.attempts.append({"run_id": run_id, "outcome": state})
                return CreateOutcome(run_id, session_plan, status, set_id, shadows, self.attempts, cleaned)
            if state == "missing":
                raise SessionError(f"session {run_id}: its run directory vanished on the host", run_id=run_id)
            failure = failure_from_log(status.get("log"))
            if status.get("shadow_set_id") or status.get("shadows"):
                self.abort(run_id)
            hresult = failure["hresult"] if failure else None
            decision = self.policy.decide(hresult, used)
            self.attempts.append({"run_id": run_id, "outcome": "failed", "hresult": hresult,
                                  "hresult_name": failure["name"] if failure else None,
                                  "exit_code": status.get("exit_code"), "retry_after": decision[1] if decision else None})
            if decision is None:
                raise SessionError(
                    failure_message(plan, status, failure, run_id), hresult=hresult, run_id=run_id,
                    details={"status": status, "failure": failure},
                )
            self.sleep(decision[1])

    def abort(self, run_id: str) -> dict | None:
        """Best effort: release ``abort`` and delete the run's shadows; errors are kept, never raised."""
        try:
            return self.send("session_release", {"run_id": run_id, "decision": "abort", "wait_seconds": min(60, self.wait_per_round_trip),
                                                 "delete_shadows": True})
        except AgentError as exc:
            self.cleanup_errors.append(f"aborting session {run_id} failed: {exc}")
            return None


def failure_message(plan: Plan, status: dict, failure: dict | None, run_id: str) -> str:
    """Why diskshadow failed: HRESULT name, meaning, advice, writers it dropped, the log's tail when nothing is known."""
    volumes = ", ".join(plan.paths())
    if failure:
        text = f"diskshadow failed to create the shadow set of {volumes} (run {run_id}): HRESULT {failure['hresult_text']}"
        if failure.get("meaning"):
            text += f": {failure['meaning']} {failure['advice']}"
        elif failure.get("error_text"):
            text += f" ({failure['error_text']})"
    else:
        tail = " | ".join(line.strip() for line in (status.get("log") or "").splitlines()[-6:] if line.strip())
        text = (f"diskshadow ended with exit code {status.get('exit_code')} without creating the shadow set of {volumes} "
                f"(run {run_id}); the task may have been stopped (time limit); log tail: {tail or '(empty)'}")
    required = {_name_key(entry["name"]) for entry in plan.required_writers}
    dropped = [item for item in log_exclusions(status.get("log"), [entry["name"] for entry in plan.required_writers])["writers"]
               if _name_key(item["writer"]) in required]
    if dropped:
        text += "; required writers left out by diskshadow: " + "; ".join(item["text"] for item in dropped)
    return text


# ------------------------------------------------------------------------------------------------------------ release


def judge_release(status: dict, decision: str, run_id: str) -> dict:
    """What a ``session_release`` answer means for the task.

    Returns ``{"ok", "message", "changed", "verified", "backup_type", "backup_complete_sent", "missing_shadow_ids"}``.
    ``verified``: every shadow recorded at creation still existed when the release came (so every EBS snapshot taken
    in between holds it); None when it cannot be told (released before, nothing recorded).
    """
    state = session_state(status)
    full = is_full_backup_log(status.get("log"))
    outcome = {"ok": True, "message": None, "changed": False, "verified": None, "backup_type": "full" if full else "copy",
               "backup_complete_sent": None, "missing_shadow_ids": [], "state": state}
    if state == "missing":
        if decision == "ok":
            outcome.update(ok=False, message=(
                f"session {run_id} does not exist on the host (never started, or cleaned up after its hold timeout): "
                f"nothing to complete"))
        return outcome
    effective = status.get("decision") or decision
    released_before = bool(status.get("released_before"))
    deleted = status.get("deleted_shadow_ids") or []
    outcome["changed"] = not released_before or bool(deleted)
    if decision == "ok" and effective != "ok":
        outcome.update(ok=False, message=f"session {run_id} was already released with {effective!r}: it cannot be completed")
        return outcome
    recorded = [normalise_guid(value) for value in (status.get("shadows") or {}).values()]
    recorded = [value for value in recorded if value]
    present = {normalise_guid(value) for value in status.get("present_shadow_ids") or []}
    if not released_before and recorded:
        missing = [value for value in recorded if value not in present]
        outcome["missing_shadow_ids"] = missing
        outcome["verified"] = not missing
    if decision != "ok":
        outcome["backup_complete_sent"] = False if full else None
        if state in ("starting", "created"):
            outcome.update(ok=False, message=f"session {run_id}: diskshadow still runs after the abort; its task is stopped at its time limit")
        return outcome
    if state in ("starting", "created"):
        outcome.update(ok=False, message=(
            f"session {run_id}: diskshadow has not ended within the wait after the release (end backup still running); "
            f"run state=completed again to check, the shadows are kept until then"))
        return outcome
    if full:
        outcome["backup_complete_sent"] = state == "completed"
    if state == "failed":
        failure = failure_from_log(status.get("log"))
        if failure:
            cause = f"HRESULT {failure['hresult_text']}"
        elif status.get("exit_code") is None:
            cause = "no exit code (its task ended without writing exit.txt: stopped at its time limit, or killed)"
        else:
            cause = f"exit code {status.get('exit_code')}"
        outcome.update(ok=False, message=(
            f"session {run_id}: diskshadow ended with {cause} before or at the release"
            + ("; BackupComplete was not sent (did the hold time out before the release?)" if full else "")))
        return outcome
    if outcome["missing_shadow_ids"]:
        outcome.update(ok=False, message=(
            f"session {run_id}: shadow copies {', '.join(outcome['missing_shadow_ids'])} were gone when the set was released "
            f"(diff area full, or deleted): EBS snapshots taken since they were created may not hold them; treat this "
            f"backup as crash-consistent"))
    return outcome


# ---------------------------------------------------------------------------------------------------------- EC2 side


def ec2_volume_metadata(plan_volumes: list[dict], shadows: dict) -> tuple[dict, list[str], list[str]]:
    """(volume_metadata for ec2_snapshot_set keyed by EBS volume id - or device when the id is unknown -,
    the EBS volume ids, the device names). One EBS volume holding several Windows volumes lists all their paths
    and the shadow id of the first one (the tag schema keeps one; the shadow set id finds the others)."""
    metadata: dict = {}
    volume_ids: list[str] = []
    devices: list[str] = []
    for entry in plan_volumes:
        keys = list(entry.get("ebs_volume_ids") or [])
        if not keys:
            keys = list(entry.get("devices") or [])
        for key in keys:
            item = metadata.setdefault(key, {"paths": [], "shadow_id": None})
            for path in entry.get("paths") or []:
                if path not in item["paths"]:
                    item["paths"].append(path)
            if item["shadow_id"] is None:
                item["shadow_id"] = shadows.get(entry["path"])
        for volume_id in entry.get("ebs_volume_ids") or []:
            if volume_id not in volume_ids:
                volume_ids.append(volume_id)
        for device in entry.get("devices") or []:
            if device not in devices:
                devices.append(device)
    return metadata, sorted(volume_ids), sorted(devices)
