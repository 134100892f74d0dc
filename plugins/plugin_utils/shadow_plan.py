# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""The shadow engine's pre-flight: which volumes go into the shadow set, which writers are required, and why.

Pure Python over the agent's read answers (``facts``, ``storage`` mapped by ebs_disks.py, described writers of
vss_writers.py, ``shadows``); ``build_plan`` returns the :class:`Plan` the session runs (shadow_session.py) or raises
:class:`PreflightError` with every problem and its fix. What the rules guarantee (docs/engines.md, "The shadow engine"):

- **Volumes.** The set is the volumes asked for (``volumes``, the volumes of ``writers``, ``all_data_volumes``), closed
  over two relations until nothing changes: a volume that shares an EBS volume (a disk) with a member is a member too -
  a dynamic (spanned, striped) volume or a Storage Spaces volume brings every volume on its disks, a second partition
  on a member's disk comes along - because the EBS snapshot of that disk captures it; and the volume that holds a
  member's shadow storage (diff area) is a member (only with ``add_storage_volumes``, else the task fails and says how
  to move the diff area). Partitions without a drive letter or mount point (EFI, recovery) on a member disk cannot be
  added and are reported as ``unshadowed_volumes``; any other companion that cannot be added fails the plan.
- **Writers.** Writers named in ``writers`` or ``required_writers`` are *required as a whole*: every volume any of their
  components touches must be in the set. By default (``required_writers`` not given) the *application* writers
  (every writer but the operating system's own, ``vss_writers.INFRASTRUCTURE_WRITERS``) with a component on the set are
  required *per component*: a component that touches the set must have all its volumes in it (a database whose log is
  on a volume outside the set fails the plan, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT up front); components wholly
  outside the set are left out of this backup and reported. An unhealthy application writer that lists no components
  (FAILED_AT_IDENTIFY: its metadata is missing) is required too (rule ``unidentified``): nobody can tell which volumes
  it needs, so the set cannot be application-consistent until it identifies again or is excluded. Required writers
  get ``writer verify``, so diskshadow itself fails rather than silently dropping them - a writer required per
  component is verified by those components (the databases on the set), so that its components on other volumes
  (``master`` on C:) do not fail the set; they must be listed and STABLE (vss_writers.writer_health).
- **Volumes one by one.** NTFS, on EBS (not instance store), reachable by a drive letter or an ASCII mount point,
  at most 64, and with at least ``min_diff_area_free`` of shadow storage space left. With ``include_boot`` the boot
  volume is a member too (the EBS set then holds its disk, so it is shadowed like any other member).
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import volume_key
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_writers import (
    component_volume_keys,
    describe_writer,
    find_writers,
    service_hint,
    writer_problem,
    writer_volume_keys,
)

DEFAULT_MIN_DIFF_AREA_FREE = "1GB"
# The plugin option that restarts failed writers' services, named in the fixes the plan proposes.
RESTART_OPTION = "restart_failed_writers"

_SIZE_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>%|[KMGTP]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_DRIVE_RE = re.compile(r"^(?P<letter>[A-Za-z])(?::\\?)?$")


class PreflightError(Exception):
    """The host or the requested set fails the pre-flight; ``problems`` lists every reason, each with its fix."""

    def __init__(self, problems: list[str], *, details: dict | None = None):
        super().__init__("; ".join(problems))
        self.problems = list(problems)
        self.details = details or {}


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
    include_boot: bool = False

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
        """Every writer diskshadow verifies, whole or by its components."""
        return _unique(entry["writer_id"] for entry in self.required_writers)

    def verify_components(self) -> list[tuple[str, str]]:
        """``(writer id, component full path)`` of the writers required per component: the components on the set."""
        return [(entry["writer_id"], path) for entry in self.required_writers for path in entry.get("components") or []]

    def exclude_writer_ids(self) -> list[str]:
        return _unique(entry["writer_id"] for entry in self.excluded_writers)

    def session_plan(self, run_id: str, backup_type: str = "copy", hold_timeout: int = diskshadow.DEFAULT_HOLD_TIMEOUT):
        return diskshadow.SessionPlan(
            run_id=run_id,
            volumes=self.paths(),
            backup_type=backup_type,
            verify_writer_ids=_unique(entry["writer_id"] for entry in self.required_writers if not entry.get("components")),
            verify_components=self.verify_components(),
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
            problems.append(f"writer {writer['name']!r} lists no components, so its volumes are unknown ({writer_problem(writer, RESTART_OPTION)})")
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
    if options.include_boot:
        boot = [volume for volume in mapping_volumes if volume.get("is_boot")]
        if not boot:
            problems.append("include_boot: the storage listing shows no boot volume to put in the shadow set")
        for volume in boot:
            selection.add(volume, "include_boot (its disk is in the EBS snapshot set)")
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
            problems.append(f"required writer {ref!r} is not listed on this host{service_hint(ref)}")
        strict += [(writer, "required_writers") for writer in named]

    required: list[dict] = []
    touching: list[dict] = []
    excluded_components: list[dict] = []

    def add_required(writer, rule, why, components=None):
        if writer["writer_id"] in excluded_ids:
            problems.append(f"writer {writer['name']!r} is both required ({why}) and in exclude_writers")
            return
        if all(entry["instance_id"] != writer["instance_id"] for entry in required):
            required.append({"name": writer["name"], "writer_id": writer["writer_id"], "instance_id": writer["instance_id"],
                             "rule": rule, "why": why, "components": list(components or [])})

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
            if writer["infrastructure"] or writer.get("healthy", True) or writer["writer_id"] in excluded_ids:
                continue
            if options.required_writers is None:
                add_required(writer, "unidentified", "application writer that lists no components (its metadata is missing)")
            else:
                warnings.append(f"writer {writer['name']!r} lists no components, so the set cannot be checked against it "
                                f"({writer_problem(writer, RESTART_OPTION)})")
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
        if options.required_writers is not None or writer["infrastructure"]:
            continue
        components_on_set = [component.get("full_path") or component.get("name") for component in touched]
        try:
            for path in components_on_set:
                diskshadow.verify_target(writer["writer_id"], path)
        except diskshadow.SessionPlanError as exc:
            problems.append(f"writer {writer['name']!r}: {exc}; exclude the writer, or name it in required_writers to "
                            f"verify it whole")
            continue
        add_required(writer, "component", "application writer with components on the set", components_on_set)
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
            "all_ebs_volume_ids_known": bool(volume.get("all_ebs")),
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


# ---------------------------------------------------------------------------------------------------------- EC2 side


def unnamed_ebs_volumes(plan_volumes: list[dict]) -> list[str]:
    """Why the EBS volumes under the set cannot all be named by their ids (empty: they can). An EBS snapshot set of
    such a set would miss a disk (or, asked for no volume at all, take every volume of the instance)."""
    problems = []
    for entry in plan_volumes:
        if entry.get("all_ebs_volume_ids_known"):
            continue
        devices = ", ".join(entry.get("devices") or []) or "unknown devices"
        problems.append(
            f"{entry['path']}: the EBS volume id of its disk ({devices}) is not known: on Xen it comes from the instance's "
            f"block-device mapping, which lists no volume at that device; see win_ebs_disk_info"
        )
    return problems


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
