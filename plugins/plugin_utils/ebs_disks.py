# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""Which EBS volumes hold which Windows volumes: the join of the agent's ``storage`` result with EC2's attachments.

Pure Python, no AWS and no Windows: the input is the ``storage`` result of the agent (docs/agent-protocol.md: raw
``Get-Disk``, ``Win32_DiskDrive``, ``Get-Partition``, ``Get-Volume``, ``Win32_ShadowStorage``, dynamic disks and
Storage Spaces pools) and the instance's EBS attachments (its block-device mapping).

How a Windows disk names its EBS volume (AWS, "Map disks to volumes on your Windows instance"):

- Nitro (NVMe): ``Get-Disk`` SerialNumber is ``vol`` + the volume id's hex digits + ``_00000001.`` (no dash);
  FriendlyName ``NVMe Amazon Elastic B`` (truncated "Amazon Elastic Block Store"). Instance store disks have serials
  starting with ``AWS`` (FriendlyName ``NVMe Amazon EC2 NVMe``).
- Xen (AWS PV driver): FriendlyName ``AWS PVDISK``; the device name comes from ``Win32_DiskDrive.SCSITargetId``
  (0 is ``/dev/sda1``, 1..25 are ``xvdb``..``xvdz``, 78 and up are instance store ``xvdca``...) and the block-device
  mapping gives the volume attached at that device. The serial may carry the volume id without its dash.

``map_storage(storage, attachments)`` returns ``{"platform", "disks", "volumes", "storage_pools", "shadow_storage",
"problems"}``; ``cross_check(mapping, attachments)`` compares the EBS disks Windows sees with the volumes EC2 lists
as attached, both ways. Real Windows hands CIM enumerations over as numbers (``BusType`` 17, ``PartitionStyle`` 2,
``OperationalStatus`` ``[53264]``); the names (``NVMe``, ``GPT``, ``Online``) are accepted too.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
from typing import Any, Iterable

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import volume_key

# Win32_ShadowStorage.MaxSpace when the storage is not limited (vssadmin prints UNBOUNDED).
UNBOUNDED_SHADOW_STORAGE = 0xFFFFFFFFFFFFFFFF

# MSFT_Disk / MSFT_PhysicalDisk BusType.
BUS_TYPES = {
    0: "Unknown", 1: "SCSI", 2: "ATAPI", 3: "ATA", 4: "1394", 5: "SSA", 6: "Fibre Channel", 7: "USB", 8: "RAID",
    9: "iSCSI", 10: "SAS", 11: "SATA", 12: "SD", 13: "MMC", 14: "Virtual", 15: "File Backed Virtual", 16: "Spaces",
    17: "NVMe", 18: "SCM", 19: "UFS",
}
PARTITION_STYLES = {0: "RAW", 1: "MBR", 2: "GPT"}
OPERATIONAL_STATUS = {
    0: "Unknown", 1: "Other", 2: "OK", 3: "Degraded", 0xD010: "Online", 0xD011: "Not Ready", 0xD012: "No Media",
    0xD013: "Offline", 0xD014: "Failed",
}
# MSFT_Volume DriveType.
DRIVE_TYPES = {0: "Unknown", 1: "Invalid Root Path", 2: "Removable", 3: "Fixed", 4: "Remote", 5: "CD-ROM", 6: "RAM Disk"}

# Xen: SCSI target ids 78 and up are instance store volumes (xvdca, xvdcb...).
XEN_INSTANCE_STORE_FIRST_TARGET = 78

_VOLUME_SERIAL_RE = re.compile(r"^vol-?(?P<hex>[0-9a-f]{17}|[0-9a-f]{8})(?:_[0-9a-f]*)?$", re.IGNORECASE)
_DRIVE_ROOT_RE = re.compile(r"^(?P<letter>[A-Za-z]):\\?$")


class EbsMappingError(ValueError):
    """The storage result does not have the shape of the agent protocol (missing lists, wrong types)."""


def ebs_volume_id_from_serial(serial: Any) -> str | None:
    """``vol-0123456789abcdef0`` from a disk serial such as ``vol0123456789abcdef0_00000001.``, else None.

    Tolerates the serial with or without the ``_00000001`` suffix, trailing dots and spaces, a dash, any case. The
    hex part must be 17 digits (or 8, the old id format): a shortened or garbled serial names no volume.
    """
    if not isinstance(serial, str):
        return None
    text = serial.strip().rstrip(". ").strip()
    match = _VOLUME_SERIAL_RE.match(text)
    return f"vol-{match.group('hex').lower()}" if match else None


def xen_device_from_target_id(target_id: Any) -> tuple[str | None, bool]:
    """(EC2 device name, is instance store) of a Xen PV disk's SCSI target id; (None, False) when it names none."""
    if not isinstance(target_id, int) or isinstance(target_id, bool) or target_id < 0:
        return None, False
    if target_id == 0:
        return "/dev/sda1", False
    if 1 <= target_id <= 25:
        return "xvd" + chr(ord("a") + target_id), False
    if XEN_INSTANCE_STORE_FIRST_TARGET <= target_id < XEN_INSTANCE_STORE_FIRST_TARGET + 26:
        return "xvdc" + chr(ord("a") + target_id - XEN_INSTANCE_STORE_FIRST_TARGET), True
    return None, False


def device_key(name: Any) -> str:
    """A device name in one spelling: ``/dev/xvdf``, ``xvdf`` and ``/dev/sdf`` name the same Xen device."""
    text = str(name or "").strip().lower()
    if text.startswith("/dev/"):
        text = text[len("/dev/"):]
    if text in ("sda", "sda1", "xvda", "xvda1"):
        return "sda1"
    match = re.match(r"^sd([b-z])$", text)
    if match:
        return "xvd" + match.group(1)
    return text


def attachments_from_block_device_mappings(mappings: Iterable[dict] | None) -> list[dict]:
    """The EBS attachments as ``[{device, volume_id, status}]`` from an instance's block-device mapping.

    Accepts boto3's ``BlockDeviceMappings`` (``DeviceName``, ``Ebs.VolumeId``), the snake_case list of
    ``amazon.aws.ec2_instance_info`` (``device_name``, ``ebs.volume_id``) and already flat items (``device``,
    ``volume_id``). Items without an EBS volume are skipped.
    """
    attachments = []
    for index, item in enumerate(mappings or []):
        if not isinstance(item, dict):
            raise EbsMappingError(f"block device mapping item {index} is not a dict: {item!r}")
        ebs = item.get("Ebs") or item.get("ebs")
        if isinstance(ebs, dict):
            volume_id = ebs.get("VolumeId") or ebs.get("volume_id")
            status = ebs.get("Status") or ebs.get("status")
        else:
            volume_id = item.get("volume_id")
            status = item.get("status")
        device = item.get("DeviceName") or item.get("device_name") or item.get("device")
        if not volume_id:
            continue
        attachment = {"device": device, "volume_id": volume_id, "status": status or "attached"}
        if "boot" in item:
            attachment["boot"] = bool(item["boot"])
        attachments.append(attachment)
    return attachments


def _unwrap(value: Any) -> Any:
    """Windows PowerShell 5.1 sometimes serializes an array as ``{"value": [...], "Count": n}``."""
    if isinstance(value, dict) and set(value) == {"value", "Count"} and isinstance(value["value"], list):
        return value["value"]
    return value


def _as_list(value: Any) -> list:
    value = _unwrap(value)
    if value is None:
        return []
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return [value]


def _records(storage: dict, key: str) -> list[dict]:
    value = _unwrap(storage.get(key))
    if value is None:
        return []
    if isinstance(value, dict):  # ConvertTo-Json of a single object
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise EbsMappingError(f"storage result: {key!r} must be a list of objects, got {type(value).__name__}")
    return value


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _enum_name(value: Any, names: dict) -> str | None:
    number = _int(value)
    if number is not None:
        return names.get(number, str(number))
    return _text(value)


def _drive_letter(value: Any) -> str | None:
    text = _text(value)
    if text and len(text) == 1 and text.isalpha():
        return text.upper()
    match = _DRIVE_ROOT_RE.match(text or "")
    return match.group("letter").upper() if match else None


def _disk_name(record: dict) -> str:
    return " ".join(str(record.get(key) or "") for key in ("FriendlyName", "Model", "Caption")).strip()


def _classify(record: dict, drive: dict | None, attachments_by_device: dict) -> dict:
    """One disk (a Get-Disk record, or a pool member from Get-PhysicalDisk) with its EBS identity."""
    number = _int(record.get("Number"))
    if number is None:
        number = _int(record.get("DeviceId"))
    serial = _text(record.get("SerialNumber"))
    bus_type = _enum_name(record.get("BusType"), BUS_TYPES)
    name = _disk_name(record) + " " + _disk_name(drive or {})
    status = [_enum_name(item, OPERATIONAL_STATUS) for item in _as_list(record.get("OperationalStatus"))]
    offline = record.get("IsOffline")
    if offline is None:
        offline = any(item == "Offline" for item in status)
    disk = {
        "number": number,
        "kind": "other",
        "platform": None,
        "ebs_volume_id": None,
        "volume_id_source": None,
        "device": None,
        "scsi_target_id": _int((drive or {}).get("SCSITargetId")),
        "instance_store": False,
        "serial_number": serial,
        "friendly_name": _text(record.get("FriendlyName")),
        "model": _text(record.get("Model")) or _text((drive or {}).get("Model")),
        "bus_type": bus_type,
        "partition_style": _enum_name(record.get("PartitionStyle"), PARTITION_STYLES),
        "operational_status": status,
        "offline": bool(offline),
        "read_only": bool(record.get("IsReadOnly")),
        "is_boot": bool(record.get("IsBoot")),
        "is_system": bool(record.get("IsSystem")),
        "size": _int(record.get("Size")),
        "storage_pool": None,
        "pool_member": False,
        "dynamic": False,
        "volumes": [],
        "problems": [],
    }
    upper = name.upper()
    serial_volume = ebs_volume_id_from_serial(serial)
    if bus_type in ("Spaces", "Storage Spaces"):
        disk["kind"] = "storage_space"
    elif "PVDISK" in upper:
        _classify_xen(disk, serial_volume, attachments_by_device)
    elif bus_type == "NVMe" or "AMAZON ELASTIC" in upper or "AMAZON EC2 NVME" in upper:
        _classify_nitro(disk, serial, serial_volume, upper)
    return disk


def _classify_nitro(disk: dict, serial: str | None, serial_volume: str | None, upper_name: str) -> None:
    if (serial or "").upper().startswith("AWS") or "AMAZON EC2 NVME" in upper_name:
        disk.update(kind="instance_store", platform="nitro", instance_store=True)
        return
    if serial_volume is None and "AMAZON ELASTIC" not in upper_name:
        return  # an NVMe disk that is not Amazon's: leave it as "other"
    disk.update(kind="ebs", platform="nitro")
    if serial_volume:
        disk.update(ebs_volume_id=serial_volume, volume_id_source="serial")
    else:
        disk["problems"].append(
            f"EBS NVMe disk {disk['number']}: serial number {serial!r} does not carry a volume id "
            f"(expected vol + 17 hex digits, e.g. vol0123456789abcdef0_00000001.)"
        )


def _classify_xen(disk: dict, serial_volume: str | None, attachments_by_device: dict) -> None:
    disk["platform"] = "xen"
    device, instance_store = xen_device_from_target_id(disk["scsi_target_id"])
    disk["device"] = device
    if instance_store:
        disk.update(kind="instance_store", instance_store=True)
        return
    disk["kind"] = "ebs"
    if disk["scsi_target_id"] is None:
        disk["problems"].append(
            f"Xen PV disk {disk['number']}: no Win32_DiskDrive SCSITargetId, so its EC2 device name is unknown"
        )
    elif device is None:
        disk["problems"].append(
            f"Xen PV disk {disk['number']}: SCSI target id {disk['scsi_target_id']} maps to no EC2 device name "
            f"(0 is /dev/sda1, 1-25 are xvdb-xvdz, 78 and up are instance store)"
        )
    attached = attachments_by_device.get(device_key(device)) if device else None
    if attached:
        disk.update(ebs_volume_id=attached["volume_id"], volume_id_source="block_device_mapping")
        if serial_volume and serial_volume != attached["volume_id"]:
            disk["problems"].append(
                f"Xen PV disk {disk['number']} at {device}: its serial names {serial_volume}, but EC2 has "
                f"{attached['volume_id']} attached at {attached['device']}"
            )
    elif serial_volume:
        disk.update(ebs_volume_id=serial_volume, volume_id_source="serial")


def _shadow_storage(storage: dict) -> list[dict]:
    associations = []
    for record in _records(storage, "shadow_storage"):
        volume = volume_key(record.get("Volume"))
        diff_volume = volume_key(record.get("DiffVolume"))
        max_space = _int(record.get("MaxSpace"))
        unbounded = max_space is not None and max_space >= UNBOUNDED_SHADOW_STORAGE
        associations.append(
            {
                "volume": volume,
                "diff_volume": diff_volume,
                "same_volume": volume is not None and volume == diff_volume,
                "used_space": _int(record.get("UsedSpace")),
                "allocated_space": _int(record.get("AllocatedSpace")),
                "max_space": None if unbounded else max_space,
                "max_space_unbounded": unbounded,
            }
        )
    return associations


def _pool_members(pool: dict, disks_by_number: dict, drives_by_index: dict, attachments_by_device: dict) -> list[dict]:
    """The pool's physical disks: Get-Disk records when Windows lists them there, else the Get-PhysicalDisk items."""
    members = []
    physical = {(_int(item.get("DeviceId"))): item for item in _records(pool, "PhysicalDisks")}
    numbers = [_int(number) for number in _as_list(pool.get("PhysicalDiskNumbers"))]
    for number in [number for number in numbers if number is not None] + [
        number for number in physical if number is not None and number not in numbers
    ]:
        if number in disks_by_number:
            members.append(disks_by_number[number])
        elif number in physical:
            member = _classify(physical[number], drives_by_index.get(number), attachments_by_device)
            member["pool_member"] = True
            members.append(member)
    return members


def map_storage(storage: dict, attachments: Iterable[dict] | None = None) -> dict:
    """The per-volume and per-disk mapping of an agent ``storage`` result (see the module docstring).

    ``attachments`` (``attachments_from_block_device_mappings``) are needed on Xen, where the device name gives the
    volume id; on Nitro the serial numbers carry the ids and attachments only add the device names.
    """
    if not isinstance(storage, dict):
        raise EbsMappingError(f"storage result must be an object, got {type(storage).__name__}")
    attachment_list = list(attachments or [])
    attachments_by_device = {device_key(item.get("device")): item for item in attachment_list if item.get("device")}
    device_by_volume = {item["volume_id"]: item.get("device") for item in attachment_list}

    drives_by_index = {_int(item.get("Index")): item for item in _records(storage, "disk_drives")}
    disks = []
    disks_by_number = {}
    for record in _records(storage, "disks"):
        disk = _classify(record, drives_by_index.get(_int(record.get("Number"))), attachments_by_device)
        disks.append(disk)
        disks_by_number[disk["number"]] = disk

    pools = []
    pool_by_virtual_disk = {}
    pool_by_volume = {}
    for record in _records(storage, "storage_pools"):
        name = _text(record.get("FriendlyName")) or _text(record.get("UniqueId")) or "storage pool"
        members = _pool_members(record, disks_by_number, drives_by_index, attachments_by_device)
        for member in members:
            member["storage_pool"] = name
            if member["number"] not in disks_by_number:
                disks.append(member)
                disks_by_number[member["number"]] = member
        pool = {
            "name": name,
            "member_disk_numbers": [member["number"] for member in members],
            "virtual_disks": [_text(item) for item in _as_list(record.get("VirtualDisks"))],
            "virtual_disk_numbers": [n for n in (_int(item) for item in _as_list(record.get("VirtualDiskNumbers"))) if n is not None],
            "volumes": [],
            "ebs_volume_ids": sorted({member["ebs_volume_id"] for member in members if member["ebs_volume_id"]}),
        }
        pools.append(pool)
        for number in pool["virtual_disk_numbers"]:
            pool_by_virtual_disk[number] = pool
        for volume_id in _as_list(record.get("VolumeUniqueIds")):
            if volume_key(volume_id):
                pool_by_volume[volume_key(volume_id)] = pool

    for disk in disks:
        if disk["device"] is None and disk["ebs_volume_id"] in device_by_volume:
            disk["device"] = device_by_volume[disk["ebs_volume_id"]]

    partitions_by_volume: dict[str, list[dict]] = {}
    for partition in _records(storage, "partitions"):
        for path in _as_list(partition.get("AccessPaths")):
            key = volume_key(path)
            if key:
                partitions_by_volume.setdefault(key, []).append(partition)

    dynamic_by_volume: dict[str, list[int]] = {}
    for record in _records(storage, "dynamic_disks"):
        number = _int(record.get("DiskNumber"))
        if number in disks_by_number:
            disks_by_number[number]["dynamic"] = True
        for volume_id in _as_list(record.get("VolumeUniqueIds")):
            key = volume_key(volume_id)
            if key and number is not None:
                dynamic_by_volume.setdefault(key, []).append(number)

    shadow_storage = _shadow_storage(storage)
    storage_by_volume = {item["volume"]: item for item in shadow_storage if item["volume"]}

    volumes = []
    problems = [problem for disk in disks for problem in disk["problems"]]
    for record in _records(storage, "volumes"):
        volume = _map_volume(record, partitions_by_volume, dynamic_by_volume, pool_by_virtual_disk, pool_by_volume, disks_by_number)
        if volume is None:
            continue
        volume["shadow_storage"] = storage_by_volume.get(volume["unique_id"])
        volume["hosts_shadow_storage_for"] = sorted(
            item["volume"] for item in shadow_storage if item["diff_volume"] == volume["unique_id"] and item["volume"]
        )
        volumes.append(volume)
        problems.extend(volume.pop("problems"))
    for pool in pools:
        pool["volumes"] = [volume["unique_id"] for volume in volumes if volume["storage_pool"] == pool["name"]]

    platforms = sorted({disk["platform"] for disk in disks if disk["platform"]})
    return {
        "platform": platforms[0] if len(platforms) == 1 else ("mixed" if platforms else "unknown"),
        "disks": sorted(disks, key=lambda disk: (disk["number"] is None, disk["number"] or 0)),
        "volumes": volumes,
        "storage_pools": pools,
        "shadow_storage": shadow_storage,
        "problems": problems,
    }


def _map_volume(record, partitions_by_volume, dynamic_by_volume, pool_by_virtual_disk, pool_by_volume, disks_by_number):
    unique_id = volume_key(record.get("UniqueId")) or volume_key(record.get("Path"))
    drive_type = _enum_name(record.get("DriveType"), DRIVE_TYPES)
    if unique_id is None or drive_type == "CD-ROM":
        return None
    partitions = partitions_by_volume.get(unique_id, [])
    access_paths = []
    for partition in partitions:
        for path in _as_list(partition.get("AccessPaths")):
            if isinstance(path, str) and path not in access_paths:
                access_paths.append(path)
    letter = _drive_letter(record.get("DriveLetter"))
    for partition in partitions:
        letter = letter or _drive_letter(partition.get("DriveLetter"))
    mount_points = [path for path in access_paths if volume_key(path) is None and not _DRIVE_ROOT_RE.match(path)]
    if letter is None:
        letter = next((_drive_letter(path) for path in access_paths if _DRIVE_ROOT_RE.match(path)), None)

    problems = []
    pool = pool_by_volume.get(unique_id)
    disk_numbers = sorted({_int(partition.get("DiskNumber")) for partition in partitions} - {None})
    if pool is None:
        pool = next((pool_by_virtual_disk[number] for number in disk_numbers if number in pool_by_virtual_disk), None)
    if pool is not None:
        layout = "storage_pool"
        members = [disks_by_number[number] for number in pool["member_disk_numbers"] if number in disks_by_number]
    elif unique_id in dynamic_by_volume:
        layout = "dynamic"
        members = [disks_by_number[number] for number in sorted(set(dynamic_by_volume[unique_id])) if number in disks_by_number]
    elif disk_numbers:
        layout = "basic"
        members = [disks_by_number[number] for number in disk_numbers if number in disks_by_number]
    else:
        layout = "unknown"
        members = []
        if drive_type in (None, "Fixed"):
            problems.append(
                f"volume {unique_id} ({letter + ':' if letter else 'no drive letter'}) is on no partition, dynamic "
                f"disk or storage pool the agent reported: its EBS volumes are unknown"
            )
    for member in members:
        if unique_id not in member["volumes"]:
            member["volumes"].append(unique_id)
    ebs_volume_ids = sorted({member["ebs_volume_id"] for member in members if member["ebs_volume_id"]})
    return {
        "unique_id": unique_id,
        "drive_letter": letter,
        "mount_points": mount_points,
        "access_paths": access_paths,
        "file_system": _text(record.get("FileSystem")),
        "label": _text(record.get("FileSystemLabel")),
        "drive_type": drive_type,
        "size": _int(record.get("Size")),
        "size_remaining": _int(record.get("SizeRemaining")),
        "layout": layout,
        "storage_pool": pool["name"] if pool else None,
        "disk_numbers": [member["number"] for member in members],
        "ebs_volume_ids": ebs_volume_ids,
        "devices": sorted({member["device"] for member in members if member["device"]}),
        "all_ebs": bool(members) and all(member["kind"] == "ebs" and member["ebs_volume_id"] for member in members),
        "instance_store": any(member["instance_store"] for member in members),
        "is_boot": any(bool(partition.get("IsBoot")) for partition in partitions),
        "is_system": any(bool(partition.get("IsSystem")) for partition in partitions),
        "problems": problems,
    }


def cross_check(mapping: dict, attachments: Iterable[dict], instance_id: str | None = None) -> dict:
    """Every attached EBS volume must be a disk Windows sees, and every EBS disk Windows sees must be attached.

    Returns ``{"ok", "errors", "attachments", "missing_in_windows", "missing_in_ec2"}``: each error names the volume,
    the device and which side is missing it; ``attachments`` adds ``seen_by_windows`` and ``disk_number``.
    """
    instance = instance_id or "the instance"
    errors: list[str] = []
    attachment_list = list(attachments)
    disks = [disk for disk in mapping["disks"] if disk["kind"] == "ebs"]

    disks_by_volume: dict[str, list[dict]] = {}
    for disk in disks:
        if disk["ebs_volume_id"]:
            disks_by_volume.setdefault(disk["ebs_volume_id"], []).append(disk)
        else:
            reasons = "; ".join(disk["problems"]) or "no volume id in its serial number and none attached at its device"
            errors.append(
                f"Windows disk {disk['number']} ({disk['friendly_name'] or disk['model'] or 'EBS'}"
                f"{', device ' + disk['device'] if disk['device'] else ''}) is an EBS disk whose volume id is unknown: "
                f"{reasons}"
            )
    for volume_id, found in sorted(disks_by_volume.items()):
        if len(found) > 1:
            errors.append(
                f"EBS volume {volume_id} appears as several Windows disks ({', '.join(str(disk['number']) for disk in found)})"
            )
    for disk in disks:
        for problem in disk["problems"]:
            if disk["ebs_volume_id"] and "its serial names" in problem:
                errors.append(problem)

    expected = {}
    checked = []
    missing_in_windows = []
    for attachment in attachment_list:
        volume_id, device, status = attachment["volume_id"], attachment.get("device"), attachment.get("status") or "attached"
        found = disks_by_volume.get(volume_id, [])
        checked.append(dict(attachment, seen_by_windows=bool(found), disk_number=found[0]["number"] if found else None))
        if status != "attached":
            errors.append(f"EBS volume {volume_id} at {device} is {status} on {instance}, not attached: wait for it to settle")
            continue
        expected[volume_id] = attachment
        if not found:
            missing_in_windows.append({"volume_id": volume_id, "device": device})
            errors.append(
                f"EBS volume {volume_id} attached at {device} is missing in Windows: EC2 lists it as attached to "
                f"{instance}, but Windows lists no disk with that volume (check Disk Management / Get-Disk, the NVMe or "
                f"PV drivers, and that it is the same instance)"
            )

    missing_in_ec2 = []
    listed = {attachment["volume_id"] for attachment in attachment_list}
    for disk in disks:
        volume_id = disk["ebs_volume_id"]
        if volume_id and volume_id not in listed:
            missing_in_ec2.append({"volume_id": volume_id, "device": disk["device"], "disk_number": disk["number"]})
            errors.append(
                f"Windows disk {disk['number']} is EBS volume {volume_id}"
                f"{' at ' + disk['device'] if disk['device'] else ''}, which is missing in EC2: EC2 does not list it as "
                f"attached to {instance} (wrong instance or region, or a stale block-device mapping)"
            )
    return {
        "ok": not errors,
        "errors": errors,
        "attachments": checked,
        "missing_in_windows": missing_in_windows,
        "missing_in_ec2": missing_in_ec2,
    }
