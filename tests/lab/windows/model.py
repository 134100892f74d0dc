r"""A Python model of one Windows Server on EC2, as the lab's simulated hosts answer for it.

Built from a seeded lab instance (name, instance id, style, volumes with their EBS volume ids) and the topology's
``windows`` settings::

    {"os": "2022", "edition": "Datacenter", "locale": "en-US", "applications": ["sql"],
     "aws_vss_components": "2.3.1", "imds": True, "writer_states": {"SqlServerWriter": "failed_at_freeze"},
     "shadow_storage": {"D:": "F:"}}

Disks follow EC2: on Nitro every EBS volume is an NVMe disk whose serial is the volume id (``vol`` + 17 hex +
``_00000001.``, FriendlyName ``NVMe Amazon Elastic B``); on Xen an ``AWS PVDISK`` whose serial is the id without
its dash and whose ``Win32_DiskDrive.SCSITargetId`` comes from the device name (``/dev/sda1`` -> 0, ``xvdb`` ..
``xvdz`` -> 1..25). The root disk is MBR with C:, data disks are GPT with a Microsoft Reserved partition and one NTFS
partition at the topology's ``drive`` (a letter such as ``D:`` or a mount folder such as ``C:\Mounts\Data``).
Volumes whose topology entries share a ``span`` (``{"name": "Pool1", "kind": "storage_pool" | "dynamic"}``) form one
Windows volume over several EBS volumes. Volume GUIDs are derived from the EBS volume ids, so they are stable.

Writers, services, shadow copies and shadow storage are modelled as documented in docs/lab-windows.md. The files of
every volume live in the lab's BlockStore (:mod:`lab.windows.content`).
"""

import collections
import datetime
import itertools
import json
import re
import threading
import uuid

from . import catalog
from .content import SYSTEM_VOLUME_INFORMATION, Journal, VolumeContent, assess_journal, normalize
from .locales import get_locale

LAB_NAMESPACE = uuid.UUID("6b1f8a52-3c2e-4e59-9d0c-5a4c1e7f0b11")
GIB = 1 << 30
MIB = 1 << 20
MSR_OFFSET = 17408
MSR_SIZE = 16 * MIB - MSR_OFFSET
UNBOUNDED = 18446744073709551615
ROOT_USED_BYTES = 22 * GIB
NVME_UNIQUE_ID = "%s0001Amazon Elastic Block Store              1D0F"

WRITER_STATE_ALIASES = {
    "healthy": 1,
    "stable": 1,
    "unknown": 0,
    "waiting_for_freeze": 2,
    "waiting_for_thaw": 3,
    "waiting_for_post_snapshot": 4,
    "waiting_for_completion": 5,
    "waiting_for_backup_complete": 5,
}
for _number, _name in catalog.WRITER_STATE_NAMES.items():
    WRITER_STATE_ALIASES.setdefault(_name.lower(), _number)
del _number, _name
SPECIAL_WRITER_STATES = ("timed_out", "not_responding", "missing", "present")
HISTORY_LIMIT = 500
EVENT_LIMIT = 2000
# Faults of the VSS machinery a test can arm per host (see WindowsServer.arm_vss_fault and docs/lab-windows.md).
VSS_FAULT_KINDS = ("writer_fail_at_freeze", "writer_timeout", "snapshot_set_in_progress", "insufficient_storage",
                   "provider_veto", "create_delay")
# Initial diff area a shadow copy needs on its storage volume (vssadmin: a MaxSize below 320 MB is refused).
DIFF_AREA_MINIMUM = 320 * MIB


def stable_guid(*parts):
    return str(uuid.uuid5(LAB_NAMESPACE, ":".join(str(part) for part in parts)))


def scsi_target_id(device):
    """Xen: ``/dev/sda1`` -> 0, ``xvdb``..``xvdz`` (or ``sdb``..) -> 1..25."""
    match = re.fullmatch(r"(?:/dev/)?(?:xvd|sd)([a-z])\d*", device)
    if match:
        target = ord(match.group(1)) - ord("a")
        if target <= 25:
            return target
    raise ValueError("no SCSI target id for device %r (expected /dev/sda1 or xvdb..xvdz)" % device)


def volume_unique_id(guid):
    return "\\\\?\\Volume{%s}\\" % guid


def wmi_datetime(moment):
    """A WMI DMTF datetime in UTC: ``20240531130959.884752+000``."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+000"


class Service:
    def __init__(self, spec):
        self.name = spec.name
        self.display_name = spec.display_name
        self.start_type = spec.start_type
        self.status = spec.status

    def describe(self):
        return {"Name": self.name, "DisplayName": self.display_name, "Status": self.status, "StartType": self.start_type}


class Writer:
    """One VSS writer: identity from the catalog, state and last error settable at run time."""

    def __init__(self, spec, hostname):
        self.spec = spec
        self.hostname = hostname
        self.generation = 0
        self.state = 1
        self.error = "no_error"
        self.present = True
        # State changes with their cause: (time, state, error, event, details); see WindowsServer.writer_transition.
        self.history = collections.deque(maxlen=HISTORY_LIMIT)
        # True when the failed state came from a fault armed for one shadow copy creation (the next one resets it).
        self.transient_failure = False

    @property
    def name(self):
        return self.spec.name

    @property
    def writer_id(self):
        return self.spec.writer_id

    @property
    def service(self):
        return self.spec.service

    @property
    def instance_id(self):
        return "{%s}" % stable_guid("writer-instance", self.hostname, self.spec.name, self.generation)

    def restart(self):
        """The writer's process started again: a new instance id, stable, no error."""
        self.generation += 1
        self.state = 1
        self.error = "no_error"
        self.present = True
        self.transient_failure = False

    @property
    def failure_code(self):
        return catalog.ERROR_HRESULTS[self.error]

    def describe(self):
        return {
            "name": self.name,
            "writer_id": self.writer_id,
            "instance_id": self.instance_id,
            "state": self.state,
            "state_name": catalog.WRITER_STATE_NAMES.get(self.state, "UNKNOWN"),
            "error": self.error,
            "failure_code": "0x%08x" % self.failure_code,
            "present": self.present,
            "service": self.service,
        }


# CIM enumerations as ConvertTo-Json writes them (MSFT_Disk, MSFT_PhysicalDisk, MSFT_Volume, Win32 DriveType).
BUS_TYPES = {"SCSI": 1, "Spaces": 16, "NVMe": 17}
PARTITION_STYLES = {"RAW": 0, "MBR": 1, "GPT": 2}
DISK_ONLINE = 53264  # 0xD010
DISK_OFFLINE = 53267  # 0xD013
HEALTHY = 0
DRIVE_TYPE_FIXED = 3
GPT_BASIC_DATA = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
GPT_MSR = "{e3c9e316-0b5c-4db8-817d-f92df00215ae}"
GPT_LDM_METADATA = "{5808c8aa-7e8f-42e0-85d2-e1e90434cfb3}"
GPT_LDM_DATA = "{af9b60a0-1431-4f62-bc68-3311714a69ad}"
MBR_IFS = 7


class Disk:  # pylint: disable=too-many-instance-attributes
    """A disk as Get-Disk, Get-PhysicalDisk and Win32_DiskDrive show it."""

    def __init__(self, number, size, style, volume_id=None, device=None):
        self.number = number
        self.size = size
        self.style = style
        self.volume_id = volume_id
        self.device = device
        self.partition_style = "GPT"
        self.is_boot = False
        self.offline = False
        self.virtual_name = None
        self.pool = None
        self.dynamic = False

    @property
    def hex_id(self):
        return self.volume_id.replace("-", "") if self.volume_id else None

    @property
    def serial(self):
        if self.virtual_name:
            return stable_guid("virtual-disk", self.virtual_name, self.pool).replace("-", "")[:20].upper()
        if self.style == "xen":
            return self.hex_id
        return "%s_00000001." % self.hex_id

    @property
    def friendly_name(self):
        if self.virtual_name:
            return self.virtual_name
        return "AWS PVDISK" if self.style == "xen" else "NVMe Amazon Elastic B"

    @property
    def manufacturer(self):
        if self.virtual_name:
            return "Msft"
        return "AWS" if self.style == "xen" else "NVMe"

    @property
    def model(self):
        if self.virtual_name:
            return "Storage Space"
        return "PVDISK" if self.style == "xen" else "Amazon Elastic Block Store"

    @property
    def bus_type(self):
        if self.virtual_name:
            return "Spaces"
        return "SCSI" if self.style == "xen" else "NVMe"

    @property
    def unique_id(self):
        if self.virtual_name:
            return stable_guid("virtual-disk-uid", self.virtual_name).replace("-", "").upper()
        if self.style == "xen":
            return "SCSI\\DISK&VEN_AWS&PROD_PVDISK\\000%d00" % self.scsi_target
        return NVME_UNIQUE_ID % self.hex_id

    @property
    def scsi_target(self):
        return scsi_target_id(self.device) if self.device else 0

    def location(self):
        if self.virtual_name:
            return ""
        if self.style == "xen":
            return "PCI Slot 3 : Adapter 0 : Port 0 : Target %d : LUN 0" % self.scsi_target
        return "PCI Slot %d : Bus 0 : Device %d : Function 0 : Adapter %d : Port 0 : Target 0 : LUN 0" % (
            self.number + 4, self.number + 4, self.number)

    def describe(self):
        """Get-Disk, with the properties the agent selects (enumerations as numbers, as ConvertTo-Json writes them)."""
        return {
            "Number": self.number,
            "SerialNumber": self.serial,
            "AdapterSerialNumber": None if self.style == "xen" or self.virtual_name else self.serial,
            "FriendlyName": self.friendly_name,
            "Manufacturer": self.manufacturer,
            "Model": self.model,
            "BusType": BUS_TYPES[self.bus_type],
            "PartitionStyle": PARTITION_STYLES[self.partition_style],
            "OperationalStatus": [DISK_OFFLINE if self.offline else DISK_ONLINE],
            "HealthStatus": HEALTHY,
            "IsOffline": self.offline,
            "OfflineReason": 4 if self.offline else None,
            "IsReadOnly": False,
            "IsBoot": self.is_boot,
            "IsSystem": self.is_boot,
            "IsClustered": False,
            "Size": self.size,
            "Location": self.location(),
            "Path": "\\\\?\\%s#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}" % self.describe_drive()["PNPDeviceID"].replace("\\", "#").lower(),
            "UniqueId": self.unique_id,
        }

    def describe_physical(self):
        """Get-PhysicalDisk of a storage pool member (hidden from Get-Disk)."""
        return {
            "DeviceId": str(self.number),
            "SerialNumber": self.serial,
            "AdapterSerialNumber": None if self.style == "xen" else self.serial,
            "FriendlyName": self.friendly_name,
            "Model": self.model,
            "BusType": BUS_TYPES[self.bus_type],
            "Size": self.size,
            "UniqueId": self.unique_id,
        }

    def describe_drive(self):
        """Win32_DiskDrive."""
        if self.virtual_name:
            model, pnp = "Microsoft Storage Space Device", "STORAGE\\DISK\\{%s}" % stable_guid("pnp", self.virtual_name)
            target, port = 0, 0
        elif self.style == "xen":
            model = "AWS PVDISK SCSI Disk Device"
            pnp = "SCSI\\DISK&VEN_AWS&PROD_PVDISK\\1&1C121344&0&0000%02X" % self.scsi_target
            target, port = self.scsi_target, 0
        else:
            model = "NVMe Amazon Elastic B"
            pnp = "SCSI\\DISK&VEN_NVME&PROD_AMAZON_ELASTIC_B\\5&%08X&0&000000" % (self.number + 0x1A2B3C00)
            target, port = 0, self.number
        return {
            "Index": self.number,
            "DeviceID": "\\\\.\\PHYSICALDRIVE%d" % self.number,
            "Caption": model,
            "Model": model,
            "SerialNumber": self.serial,
            "InterfaceType": "SCSI",
            "SCSIPort": port,
            "SCSIBus": 0,
            "SCSITargetId": target,
            "SCSILogicalUnit": 0,
            "PNPDeviceID": pnp,
            "Size": self.size,
        }


class WindowsVolume:  # pylint: disable=too-many-instance-attributes
    """An NTFS volume as Get-Volume sees it, backed by one or more EBS volumes (its content)."""

    def __init__(self, guid, size, label, content, drive=None, is_root=False, span_kind=None):
        self.guid = guid
        self.size = size
        self.label = label or ""
        self.content = content
        self.drive_letter = None
        self.mount_paths = []
        self.is_root = is_root
        self.span_kind = span_kind
        self.disk_numbers = []
        if drive:
            if len(drive) == 2 and drive[1] == ":":
                self.drive_letter = drive[0].upper()
            else:
                self.mount_paths.append(drive.rstrip("\\") + "\\")

    @property
    def unique_id(self):
        return volume_unique_id(self.guid)

    @property
    def volume_ids(self):
        return list(self.content.volume_ids)

    @property
    def display_name(self):
        """What diskshadow prints in brackets: ``D:\\`` or the mount folder."""
        if self.drive_letter:
            return "%s:\\" % self.drive_letter
        return self.mount_paths[0] if self.mount_paths else self.unique_id

    def access_paths(self):
        paths = ["%s:\\" % self.drive_letter] if self.drive_letter else []
        return paths + list(self.mount_paths) + [self.unique_id]

    def size_remaining(self):
        used = self.content.used_bytes() + (ROOT_USED_BYTES if self.is_root else 64 * MIB)
        return max(0, self.size - used)

    def describe(self):
        """Get-Volume, with the properties the agent selects."""
        return {
            "UniqueId": self.unique_id,
            "Path": self.unique_id,
            "DriveLetter": self.drive_letter,
            "FileSystem": "NTFS",
            "FileSystemLabel": self.label,
            "DriveType": DRIVE_TYPE_FIXED,
            "HealthStatus": HEALTHY,
            "Size": self.size,
            "SizeRemaining": self.size_remaining(),
        }


class WindowsServer:  # pylint: disable=too-many-instance-attributes,too-many-public-methods
    """One simulated Windows host; every method is thread-safe."""

    def __init__(self, instance, blockstore, region="us-east-1", config=None, clock=None):
        config = dict(instance.get("windows") or {}) if config is None else dict(config)
        self.lock = threading.RLock()
        self.name = instance["name"]
        self.instance_id = instance["instance_id"]
        self.instance_type = instance.get("instance_type")
        self.availability_zone = instance.get("availability_zone", region + "a")
        self.region = region
        self.style = instance.get("style", "nitro")
        if self.style not in ("nitro", "xen"):
            raise ValueError("style must be nitro or xen, not %r" % self.style)
        self.blockstore = blockstore
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.hostname = config.get("hostname") or self.name.upper()
        self.os = catalog.operating_system(config.get("os", "2022"), config.get("edition"))
        self.locale = get_locale(config.get("locale", "en-US"))
        self.applications = list(config.get("applications", ()))
        unknown = set(self.applications) - set(catalog.APPLICATIONS)
        if unknown:
            raise ValueError("unknown applications %s (the lab knows %s)" % (sorted(unknown), catalog.APPLICATIONS))
        self.aws_vss_components_version = config.get("aws_vss_components")
        self.imds = bool(config.get("imds", True))
        self.agent_code_page = config.get("agent_code_page")
        self.tool_delay_seconds = float(config.get("tool_delay_seconds", 0.0))
        self.shadow_counter = 0
        self.services = {}
        self.writers = []
        self.disks = []
        self.partitions = []
        self.volumes = []
        self.storage_pools = []
        self.shadow_storage = {}
        self.journal = None
        # VSS activity (the shadow engine's lab side): writer events (BackupComplete...), armed faults, exit codes of
        # files diskshadow `exec`s, shadow copies exposed as drive letters, the snapshot set being created.
        self.vss_events = collections.deque(maxlen=EVENT_LIMIT)
        self.event_numbers = itertools.count(1)
        self.vss_faults = []
        self.exec_exit_codes = {}
        self.exposures = {}
        self.creating_set = None
        self.diskshadow_failure_exit_code = int(config.get("diskshadow_failure_exit_code", 1))
        self._sessions = None
        self._build_services()
        self._build_storage(instance["volumes"], instance.get("root_device_name", "/dev/sda1"))
        self._build_writers()
        self._build_shadow_storage(config.get("shadow_storage") or {})
        for writer_name, state in (config.get("writer_states") or {}).items():
            if isinstance(state, dict):
                self.set_writer_state(writer_name, **state)
            else:
                self.set_writer_state(writer_name, state)

    # ----------------------------------------------------------------------------------------------- building
    def _build_services(self):
        specs = list(catalog.BASE_SERVICES)
        for application in self.applications:
            specs.extend(catalog.APPLICATION_SERVICES[application])
        self.services = {spec.name: Service(spec) for spec in specs}

    def _build_writers(self):
        specs = list(catalog.BASE_WRITERS)
        if "sql" in self.applications:
            specs.insert(4, catalog.sql_writer(self.hostname))
        if "iis" in self.applications:
            specs.extend(catalog.IIS_WRITERS)
        self.writers = [Writer(spec, self.hostname) for spec in specs]

    def _build_storage(self, volumes, root_device):
        spans = {}
        for index, entry in enumerate(volumes):
            disk = Disk(index, int(entry["size"]) * GIB, self.style, entry["volume_id"], entry["device"])
            disk.offline = bool(entry.get("offline"))
            self.disks.append(disk)
            span = entry.get("span")
            if span:
                spans.setdefault(span["name"], {"kind": span.get("kind", "storage_pool"), "entries": []})["entries"].append((disk, entry))
                continue
            if entry["device"] == root_device:
                self._add_root(disk, entry)
            elif entry.get("drive") and not disk.offline:
                self._add_data_volume(disk, entry)
            else:
                disk.partition_style = "RAW"
        for name, span in spans.items():
            self._add_span(name, span["kind"], span["entries"])

    def _add_root(self, disk, entry):
        disk.partition_style = "MBR"
        disk.is_boot = True
        size = disk.size - MIB
        content = VolumeContent(self.blockstore, [disk.volume_id])
        volume = WindowsVolume(stable_guid("volume", disk.volume_id), size, entry.get("label", ""), content,
                               entry.get("drive", "C:"), is_root=True)
        volume.disk_numbers = [disk.number]
        self.volumes.append(volume)
        self.partitions.append(self._partition(disk, 1, MIB, size, "IFS", volume, mbr_type=MBR_IFS))

    def _add_data_volume(self, disk, entry):
        size = disk.size - 16 * MIB - MIB
        content = VolumeContent(self.blockstore, [disk.volume_id])
        volume = WindowsVolume(stable_guid("volume", disk.volume_id), size, entry.get("label", ""), content, entry["drive"])
        volume.disk_numbers = [disk.number]
        self.volumes.append(volume)
        self.partitions.append(self._partition(disk, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
        self.partitions.append(self._partition(disk, 2, 16 * MIB, size, "Basic", volume, GPT_BASIC_DATA))

    def _add_span(self, name, kind, entries):
        if kind not in ("storage_pool", "dynamic"):
            raise ValueError("span kind must be storage_pool or dynamic, not %r" % kind)
        disks = [disk for disk, dummy in entries]
        first = entries[0][1]
        volume_ids = [disk.volume_id for disk in disks]
        content = VolumeContent(self.blockstore, volume_ids, span_name=name)
        total = sum(disk.size for disk in disks)
        guid = stable_guid("span", name, *volume_ids)
        if kind == "dynamic":
            volume = WindowsVolume(guid, total - len(disks) * 2 * MIB, first.get("label", name), content,
                                   first.get("drive"), span_kind=kind)
            volume.disk_numbers = [disk.number for disk in disks]
            for disk in disks:
                disk.dynamic = True
                self.partitions.append(self._partition(disk, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
                self.partitions.append(self._partition(disk, 2, 16 * MIB, MIB, "Unknown", None, GPT_LDM_METADATA))
                self.partitions.append(self._partition(disk, 3, 17 * MIB, disk.size - 18 * MIB, "Unknown", None, GPT_LDM_DATA))
        else:
            for disk in disks:
                disk.pool = name
                disk.partition_style = "RAW"
            virtual_name = first.get("virtual_disk", "%s-VDisk" % name)
            virtual = Disk(len(self.disks), total - len(disks) * 256 * MIB, self.style)
            virtual.virtual_name = virtual_name
            virtual.pool = name
            self.disks.append(virtual)
            size = virtual.size - 16 * MIB - MIB
            volume = WindowsVolume(guid, size, first.get("label", name), content, first.get("drive"), span_kind=kind)
            volume.disk_numbers = [virtual.number]
            self.partitions.append(self._partition(virtual, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
            self.partitions.append(self._partition(virtual, 2, 16 * MIB, size, "Basic", volume, GPT_BASIC_DATA))
            self.storage_pools.append({
                "FriendlyName": name,
                "UniqueId": "{%s}" % stable_guid("pool", name, *volume_ids),
                "PhysicalDiskNumbers": [disk.number for disk in disks],
                "PhysicalDisks": [disk.describe_physical() for disk in disks],
                "VirtualDisks": [virtual_name],
                "VirtualDiskNumbers": [virtual.number],
                "VolumeUniqueIds": [volume.unique_id],
            })
        self.volumes.append(volume)

    @staticmethod
    def _partition(disk, number, offset, size, partition_type, volume, gpt_type=None, mbr_type=None):  # pylint: disable=too-many-arguments
        """Get-Partition, with the properties the agent selects."""
        return {
            "DiskNumber": disk.number,
            "PartitionNumber": number,
            "DriveLetter": volume.drive_letter if volume else None,
            "AccessPaths": volume.access_paths() if volume else [],
            "Offset": offset,
            "Size": size,
            "Type": partition_type,
            "GptType": gpt_type,
            "MbrType": mbr_type,
            "IsBoot": bool(volume and volume.is_root),
            "IsSystem": bool(volume and volume.is_root),
            "IsHidden": partition_type == "Reserved",
            "IsOffline": False,
            "IsReadOnly": False,
        }

    def _build_shadow_storage(self, configured):
        for volume in self.volumes:
            self.shadow_storage[volume.guid] = {"diff": volume.guid, "max": volume.size // 10}
        for source, target in configured.items():
            self.set_shadow_storage(source, target)

    # ------------------------------------------------------------------------------------------------ content
    def seed(self):
        """Initial files: a few per volume, the SQL databases and their journal, the IIS sites."""
        with self.blockstore.locked():
            for volume in self.volumes:
                volume.content.initialize_span()
                if volume.is_root:
                    volume.content.write("Windows\\System32\\config\\SYSTEM", b"regf lab hive " + self.hostname.encode())
                    volume.content.write("Windows\\System32\\drivers\\etc\\hosts", b"127.0.0.1 localhost\r\n")
                else:
                    label = volume.label or volume.display_name
                    volume.content.write("README.txt", ("%s on %s (%s)\r\n" % (label, self.hostname, ", ".join(volume.volume_ids))))
                    for index in range(3):
                        volume.content.write("data\\file-%03d.bin" % index, bytes([index]) * (1024 * (index + 1)))
            if "sql" in self.applications:
                self._seed_sql()
            if "iis" in self.applications:
                sites = self.find_volume("D:") or self.find_volume("C:")
                sites.content.write("inetpub\\wwwroot\\index.html", "<html><body>%s</body></html>\r\n" % self.hostname)
        return self

    def _seed_sql(self):
        data = self.find_volume("D:")
        log = self.find_volume("E:")
        if data is None or log is None:
            raise ValueError("%s: the sql application needs a D: (data) and an E: (log) volume" % self.name)
        for database in catalog.SQL_DATABASES[:-1]:
            data.content.write("SQLData\\%s.mdf" % database, ("%s data\r\n" % database).encode())
            log.content.write("SQLLogs\\%s_log.ldf" % database, ("%s log\r\n" % database).encode())
        self.journal = Journal(data.content, log.content)
        self.journal.initialize()

    def write_transaction(self, changes=None):
        """One transaction of the SQL "application" (log on E:, then data on D:); returns its LSN."""
        if self.journal is None:
            raise ValueError("%s runs no SQL application" % self.name)
        return self.journal.write_transaction(changes)

    def find_volume(self, path):
        """The volume holding ``path`` (``D:``, ``D:\\x``, ``C:\\Mounts\\Data\\x`` or ``\\\\?\\Volume{..}\\``), or None."""
        best = None
        best_length = -1
        lowered = path.lower().replace("/", "\\")
        if len(lowered) == 2 and lowered[1] == ":":
            lowered += "\\"
        for volume in self.volumes:
            for access in volume.access_paths():
                candidate = access.lower()
                if (lowered.startswith(candidate) or lowered + "\\" == candidate) and len(candidate) > best_length:
                    best, best_length = volume, len(candidate)
        return best

    def _resolve(self, path):
        volume = self.find_volume(path)
        if volume is None:
            raise ValueError("%s: no volume holds %r" % (self.name, path))
        for access in sorted(volume.access_paths(), key=len, reverse=True):
            if path.lower().replace("/", "\\").startswith(access.lower()):
                return volume, path[len(access):]
        return volume, ""

    def write_file(self, path, data):
        volume, relative = self._resolve(path)
        volume.content.write(relative, data)

    def read_file(self, path):
        exposed = self._exposed_path(path)
        if exposed is not None:
            shadow_id, relative = exposed
            return (self.shadow_content(shadow_id) or {}).get(normalize(relative))
        volume, relative = self._resolve(path)
        return volume.content.read(relative)

    # ------------------------------------------------------------------------------------------------ writers
    def writer(self, name):
        for writer in self.writers:
            if writer.name.lower() == name.lower() or writer.writer_id == name.lower():
                return writer
        raise KeyError("%s has no writer %r" % (self.name, name))

    def set_writer_state(self, name, state, error=None):
        """Set a writer's state at run time (``name`` ``*`` for every writer); returns the writers changed.

        ``state``: a VSS_WRITER_STATE number (0-15) or name (``stable``/``healthy``, ``failed_at_freeze``,
        ``waiting_for_completion``...), or ``timed_out`` (state 9, Timed out), ``not_responding`` (state 0, Not
        responding), ``missing`` (the writer is not listed; ``*`` stops the COM+ Event System service instead, as when
        every writer vanishes) or ``present``. ``error`` (a key of :data:`catalog.ERROR_HRESULTS`) overrides the
        last error, which otherwise defaults per state.
        """
        if error is not None and error not in catalog.ERROR_HRESULTS:
            raise ValueError("error must be one of %s" % ", ".join(catalog.ERROR_HRESULTS))
        with self.lock:
            if name == "*" and state == "missing":
                self.set_service_state("EventSystem", "Stopped")
                return []
            targets = self.writers if name == "*" else [self.writer(name)]
            for writer in targets:
                self._apply_writer_state(writer, state, error)
                self._record_writer(writer, "SetByLab", requested=state if isinstance(state, (int, str)) else str(state))
            return [writer.describe() for writer in targets]

    @staticmethod
    def _apply_writer_state(writer, state, error):
        writer.transient_failure = False
        if state == "missing":
            writer.present = False
            return
        if state == "present":
            writer.present = True
            return
        if state == "timed_out":
            writer.state, writer.error = 9, error or "timed_out"
            return
        if state == "not_responding":
            writer.state, writer.error = 0, error or "not_responding"
            return
        if isinstance(state, str):
            key = state.lower()
            if key.startswith("vss_ws_"):
                key = key[len("vss_ws_"):]
            if key.isdigit():
                number = int(key)
            elif key in WRITER_STATE_ALIASES:
                number = WRITER_STATE_ALIASES[key]
            else:
                raise ValueError("unknown writer state %r" % state)
        else:
            number = int(state)
        if number not in catalog.WRITER_STATE_NAMES:
            raise ValueError("writer state must be 0..15, not %r" % state)
        writer.state = number
        writer.error = error or catalog.DEFAULT_FAILURE_ERROR.get(number, "no_error")

    def visible_writers(self):
        """The writers ``vssadmin list writers`` would list now (none while EventSystem is stopped)."""
        with self.lock:
            if self.services["EventSystem"].status != "Running":
                return []
            visible = []
            for writer in self.writers:
                service = self.services.get(writer.service)
                if not writer.present or service is None:
                    continue
                if writer.service != "VSS" and service.status != "Running":
                    continue
                visible.append(writer)
            return visible

    def start_vss(self):
        """vssadmin and diskshadow start the (demand-start) VSS service when they query writers."""
        with self.lock:
            self.services["VSS"].status = "Running"

    def set_service_state(self, name, status):
        """``Running`` or ``Stopped``; starting a service restarts the writers it hosts (new instance ids)."""
        if status not in ("Running", "Stopped"):
            raise ValueError("status must be Running or Stopped")
        with self.lock:
            service = self.services.get(name)
            if service is None:
                raise KeyError("%s has no service %r" % (self.name, name))
            was = service.status
            service.status = status
            if status == "Running" and was != "Running":
                for writer in self.writers:
                    if writer.service == name:
                        writer.restart()
                        self._record_writer(writer, "Restart", service=name)
            return service.describe()

    def restart_service(self, name):
        with self.lock:
            self.set_service_state(name, "Stopped")
            return self.set_service_state(name, "Running")

    def writer_components(self, writer):
        """The writer's components with the paths and volumes they affect (resolved against this host's volumes)."""
        components = []
        for spec in writer.spec.components:
            paths = []
            volumes = []
            for folder, dummy in spec.files:
                if folder not in paths:
                    paths.append(folder)
                volume = self.find_volume(folder)
                if volume is not None and volume not in volumes:
                    volumes.append(volume)
            components.append({"spec": spec, "paths": paths, "volumes": volumes})
        return components

    # ---------------------------------------------------------------------------------------- shadow storage
    def set_shadow_storage(self, volume, storage_volume, max_space=None):
        """Put ``volume``'s diff area on ``storage_volume`` (both as drive, mount folder or volume name)."""
        with self.lock:
            source = self.find_volume(volume)
            target = self.find_volume(storage_volume)
            if source is None or target is None:
                raise ValueError("%s: no such volume %r or %r" % (self.name, volume, storage_volume))
            self.shadow_storage[source.guid] = {"diff": target.guid, "max": max_space if max_space is not None else target.size // 10}

    def _volume_by_guid(self, guid):
        for volume in self.volumes:
            if volume.guid == guid:
                return volume
        raise KeyError(guid)

    # -------------------------------------------------------------------------------------------- shadows
    def create_shadow_set(self, volumes, *, persistent=True, no_writers=False, client_accessible=False):
        """Shadow copies of ``volumes`` at one point in time; the diff areas (frozen content) go to each volume's
        shadow storage volume, inside its EBS image. Returns ``{"set_id", "shadows": [{"id", "volume"}]}``."""
        with self.lock, self.blockstore.locked():
            targets = []
            for name in volumes:
                volume = self.find_volume(name)
                if volume is None:
                    raise ValueError("%s: no volume %r" % (self.name, name))
                if volume not in targets:
                    targets.append(volume)
            set_id = "{%s}" % uuid.uuid4()
            now = self.clock()
            created = []
            for volume in targets:
                self.shadow_counter += 1
                shadow_id = "{%s}" % uuid.uuid4()
                attributes = []
                if persistent:
                    attributes += ["No_Auto_Release", "Persistent"]
                if client_accessible:
                    attributes.append("Client_accessible")
                if no_writers:
                    attributes.append("No_Writers")
                attributes.append("Differential")
                record = {
                    "ID": shadow_id,
                    "SetID": set_id,
                    "VolumeName": volume.unique_id,
                    "DeviceObject": "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy%d" % self.shadow_counter,
                    "InstallDate": wmi_datetime(now),
                    "ClientAccessible": client_accessible,
                    "Persistent": persistent,
                    "NoAutoRelease": persistent,
                    "NoWriters": no_writers,
                    "ProviderID": catalog.SYSTEM_PROVIDER_ID,
                    "State": 12,
                    "Count": len(targets),
                    "OriginatingMachine": self.hostname,
                    "ServiceMachine": self.hostname,
                    "Attributes": attributes,
                }
                storage = self._volume_by_guid(self.shadow_storage[volume.guid]["diff"])
                frozen = volume.content.files()
                storage.content.image(0).shadows[shadow_id] = frozen
                storage.content.image(0).files[self._diff_area_path(shadow_id)] = json.dumps(record, sort_keys=True).encode("utf-8")
                created.append({"id": shadow_id, "volume": volume.unique_id})
            return {"set_id": set_id, "shadows": created}

    @staticmethod
    def _diff_area_path(shadow_id):
        return SYSTEM_VOLUME_INFORMATION + shadow_id + catalog.DIFF_AREA_SUFFIX

    def list_shadows(self):
        """Win32_ShadowCopy: every shadow copy whose diff area is on one of this host's volumes."""
        shadows = []
        with self.blockstore.locked():
            for volume in self.volumes:
                image = volume.content.image(0)
                for path, data in sorted(image.files.items()):
                    if path.startswith(SYSTEM_VOLUME_INFORMATION) and path.endswith(catalog.DIFF_AREA_SUFFIX):
                        record = json.loads(data)
                        if record["ID"] in image.shadows:
                            shadows.append(record)
        shadows.sort(key=lambda record: (record["InstallDate"], record["DeviceObject"]))
        return shadows

    def delete_shadow(self, shadow_id):
        with self.lock, self.blockstore.locked():
            for volume in self.volumes:
                image = volume.content.image(0)
                if shadow_id in image.shadows:
                    del image.shadows[shadow_id]
                    image.files.pop(self._diff_area_path(shadow_id), None)
                    return True
        return False

    def shadow_content(self, shadow_id):
        """The frozen files of a shadow copy (path -> bytes), or None."""
        with self.blockstore.locked():
            for volume in self.volumes:
                frozen = volume.content.image(0).shadows.get(shadow_id)
                if frozen is not None:
                    return dict(frozen)
        return None

    # ------------------------------------------------------------------------------------------ agent views
    def facts(self):
        ec2 = None
        if self.imds:
            ec2 = {"instance_id": self.instance_id, "region": self.region, "availability_zone": self.availability_zone,
                   "account_id": catalog.LAB_ACCOUNT_ID, "instance_type": self.instance_type}
        return {
            "hostname": self.hostname,
            "os_caption": self.os.caption,
            "os_version": self.os.version,
            "os_build": self.os.build,
            "os_edition": self.os.edition_id,
            "product_type": self.os.product_type,
            "is_server": self.os.is_server,
            "powershell_version": self.os.powershell_version,
            "ui_culture": self.locale.name,
            "oem_code_page": self.locale.oem_code_page,
            "ansi_code_page": self.locale.ansi_code_page,
            "diskshadow_present": self.os.is_server,
            "aws_vss_components_version": self.aws_vss_components_version,
            "ec2": ec2,
        }

    def storage(self):
        with self.lock:
            visible = [disk for disk in self.disks if disk.pool is None or disk.virtual_name]
            disks = sorted(visible, key=lambda disk: disk.unique_id)
            shadow_storage = []
            for volume in self.volumes:
                association = self.shadow_storage.get(volume.guid)
                if association is None:
                    continue
                used = self._diff_area_bytes(volume.guid)
                shadow_storage.append({
                    "Volume": volume.unique_id,
                    "DiffVolume": volume_unique_id(association["diff"]),
                    "UsedSpace": used,
                    "AllocatedSpace": used,
                    "MaxSpace": association["max"],
                })
            dynamic = [
                {"DiskNumber": disk.number,
                 "VolumeUniqueIds": [v.unique_id for v in self.volumes if disk.number in v.disk_numbers]}
                for disk in self.disks if disk.dynamic
            ]
            return {
                "disks": [disk.describe() for disk in disks],
                # Pool members are hidden from Get-Disk, not from Win32_DiskDrive (where Xen's SCSI target ids are).
                "disk_drives": [disk.describe_drive() for disk in sorted(self.disks, key=lambda d: d.number)],
                "partitions": [dict(partition) for partition in self.partitions],
                "volumes": [volume.describe() for volume in self.volumes],
                "shadow_storage": shadow_storage,
                "dynamic_disks": dynamic,
                "storage_pools": [dict(pool) for pool in self.storage_pools],
            }

    def _diff_area_bytes(self, guid):
        used = 0
        for shadow in self.list_shadows():
            volume_guid = shadow["VolumeName"].split("{", 1)[1].split("}", 1)[0]
            if self.shadow_storage.get(volume_guid, {}).get("diff") == guid:
                frozen = self.shadow_content(shadow["ID"]) or {}
                used += sum(len(data) for data in frozen.values())
        return used

    def shadows(self):
        """Win32_ShadowCopy with the properties the agent selects. WMI prints ID and SetID in upper case (capture
        wmi_win32_shadowcopy_get_wmiobject_table_01), vssadmin and diskshadow in lower case."""
        shadows = []
        for record in self.list_shadows():
            attributes = record["Attributes"]
            exposed = self.exposure_of(record["ID"])
            shadows.append({
                "ID": record["ID"].upper(),
                "SetID": record["SetID"].upper(),
                "VolumeName": record["VolumeName"],
                "DeviceObject": record["DeviceObject"],
                "InstallDate": record["InstallDate"],
                "Count": record["Count"],
                "ClientAccessible": record["ClientAccessible"],
                "Persistent": record["Persistent"],
                "NoAutoRelease": record["NoAutoRelease"],
                "NoWriters": record["NoWriters"],
                "Differential": "Differential" in attributes,
                "ExposedLocally": exposed is not None,
                "ExposedRemotely": False,
                "ExposedName": exposed,
                "ExposedPath": exposed,
                "HardwareAssisted": False,
                "Imported": False,
                "Plex": False,
                "Transportable": False,
                "ProviderID": record["ProviderID"].upper(),
                "OriginatingMachine": record["OriginatingMachine"],
                "ServiceMachine": record["ServiceMachine"],
                "State": record["State"],
            })
        return {"shadows": shadows}

    def configure(self, **settings):
        """Run-time switches: ``imds``, ``aws_vss_components_version``, ``agent_code_page``, ``tool_delay_seconds``,
        ``locale``."""
        with self.lock:
            for key, value in settings.items():
                if key == "imds":
                    self.imds = bool(value)
                elif key == "aws_vss_components_version":
                    self.aws_vss_components_version = value
                elif key == "agent_code_page":
                    self.agent_code_page = int(value) if value is not None else None
                elif key == "tool_delay_seconds":
                    value = float(value)
                    if not 0 <= value <= 60:
                        raise ValueError("tool_delay_seconds must be within 0..60")
                    self.tool_delay_seconds = value
                elif key == "locale":
                    self.locale = get_locale(value)
                elif key == "diskshadow_failure_exit_code":
                    self.diskshadow_failure_exit_code = int(value)
                else:
                    raise ValueError("unknown host setting %r" % key)
            return self.settings()

    def settings(self):
        return {
            "imds": self.imds,
            "aws_vss_components_version": self.aws_vss_components_version,
            "agent_code_page": self.agent_code_page,
            "tool_delay_seconds": self.tool_delay_seconds,
            "locale": self.locale.name,
            "diskshadow_failure_exit_code": self.diskshadow_failure_exit_code,
        }

    def journal_summary(self):
        if self.journal is None:
            return None
        state = self.journal.state()
        return {"applied_lsn": state.applied_lsn, "last_log_lsn": state.last_log_lsn, "rows": len(state.rows)}

    def describe(self):
        with self.lock:
            return {
                "name": self.name,
                "hostname": self.hostname,
                "instance_id": self.instance_id,
                "style": self.style,
                "os_caption": self.os.caption,
                "locale": self.locale.name,
                "applications": list(self.applications),
                "settings": self.settings(),
                "writers": [writer.describe() for writer in self.writers],
                "visible_writers": [writer.name for writer in self.visible_writers()],
                "services": [service.describe() for service in self.services.values()],
                "volumes": [
                    {"unique_id": v.unique_id, "drive_letter": v.drive_letter, "mount_paths": list(v.mount_paths),
                     "label": v.label, "volume_ids": v.volume_ids, "span": v.span_kind}
                    for v in self.volumes
                ],
                "shadows": len(self.list_shadows()),
                "journal": self.journal_summary(),
                "application": self.application_state(),
                "vss_faults": [dict(rule) for rule in self.vss_faults],
                "exec_exit_codes": dict(self.exec_exit_codes),
                "exposures": dict(self.exposures),
                "sessions": self.sessions.describe(),
            }

    # ------------------------------------------------------------------------------ VSS activity (shadow engine)
    def _record_writer(self, writer, event, **details):
        writer.history.append({
            "time": self.clock().isoformat(),
            "state": writer.state,
            "state_name": catalog.WRITER_STATE_NAMES.get(writer.state, "UNKNOWN"),
            "error": writer.error,
            "instance_id": writer.instance_id,
            "event": event,
            **details,
        })

    def record_vss_event(self, event, writer=None, **details):
        """One event of the VSS machinery (``BackupComplete``, ``Freeze``, ``Abort``...), numbered and timestamped."""
        entry = {"seq": next(self.event_numbers), "time": self.clock().isoformat(), "event": event,
                 "writer": writer.name if writer is not None else None,
                 "writer_id": writer.writer_id if writer is not None else None}
        entry.update(details)
        with self.lock:
            self.vss_events.append(entry)
        return entry

    def writer_transition(self, writer, state, event, error=None, **details):
        """A writer changes state because of a VSS event (recorded in its history and in the host's events)."""
        with self.lock:
            writer.state = state
            if error is not None:
                writer.error = error
            self._record_writer(writer, event, **details)
        self.record_vss_event(event, writer, state=state, **details)

    def events(self, event=None, writer=None):
        with self.lock:
            entries = list(self.vss_events)
        return [e for e in entries if (event is None or e["event"] == event)
                and (writer is None or writer in (e["writer"], e["writer_id"]))]

    def writer_histories(self, writer=None):
        """``{writer name: [state changes]}`` (one writer when named)."""
        with self.lock:
            targets = self.writers if writer is None else [self.writer(writer)]
            return {w.name: list(w.history) for w in targets}

    def arm_vss_fault(self, kind, writer=None, error=None, times=1, seconds=None, volume=None):
        """A fault of the VSS machinery for the next shadow copy creations (``times``; None: until cleared).

        ``writer_fail_at_freeze`` (``writer``, ``error`` default retryable): the writer fails at Freeze, state 9, and
        ``create`` fails with its error; ``writer_timeout`` (``writer``, ``seconds`` of delay, default 0): the writer
        does not answer the Freeze in time, state 9, Timed out, VSS_E_WRITERERROR_TIMEOUT;
        ``snapshot_set_in_progress``: VSS_E_SNAPSHOT_SET_IN_PROGRESS (another requester is creating a set);
        ``insufficient_storage`` (``volume`` or all): VSS_E_INSUFFICIENT_STORAGE; ``provider_veto``:
        VSS_E_PROVIDER_VETO; ``create_delay`` (``seconds``): the creation takes that long (writers frozen meanwhile).
        """
        if kind not in VSS_FAULT_KINDS:
            raise ValueError("VSS fault kind must be one of %s" % ", ".join(VSS_FAULT_KINDS))
        if kind in ("writer_fail_at_freeze", "writer_timeout"):
            if not writer:
                raise ValueError("a %s fault needs a writer" % kind)
            writer = self.writer(writer).name
        if error is not None and error not in catalog.ERROR_HRESULTS:
            raise ValueError("error must be one of %s" % ", ".join(catalog.ERROR_HRESULTS))
        if times is not None and int(times) < 1:
            raise ValueError("times must be >= 1 or None")
        if seconds is not None and not 0 <= float(seconds) <= 60:
            raise ValueError("seconds must be within 0..60")
        rule = {"kind": kind, "writer": writer, "error": error, "times": None if times is None else int(times),
                "seconds": None if seconds is None else float(seconds), "volume": volume, "fired": 0}
        with self.lock:
            self.vss_faults.append(rule)
        return dict(rule)

    def clear_vss_faults(self):
        with self.lock:
            self.vss_faults = []

    def take_vss_faults(self, kinds):
        """The armed faults of these kinds that fire now (each counted; exhausted ones dropped)."""
        fired = []
        with self.lock:
            for rule in self.vss_faults:
                if rule["kind"] in kinds and (rule["times"] is None or rule["fired"] < rule["times"]):
                    rule["fired"] += 1
                    fired.append(dict(rule))
            self.vss_faults = [r for r in self.vss_faults if r["times"] is None or r["fired"] < r["times"]]
        return fired

    def set_exec_exit_code(self, path, exit_code):
        """The exit code of a file diskshadow ``exec``s that is not one of the collection's scripts (default 0)."""
        with self.lock:
            if exit_code is None:
                self.exec_exit_codes.pop(path.lower(), None)
            else:
                self.exec_exit_codes[path.lower()] = int(exit_code)

    def diff_area_problem(self, volumes):
        """Why the shadow storage of these volumes cannot take a new shadow copy, or None: the storage volume's
        free space and the association's MaxSpace, less what its shadows already use, must hold the initial diff
        area (and at least the frozen copy of the volume's files, which is what the lab stores)."""
        with self.lock, self.blockstore.locked():
            needed = {}
            for volume in volumes:
                association = self.shadow_storage[volume.guid]
                frozen = sum(len(data) for data in volume.content.files().values())
                needed.setdefault(association["diff"], []).append((volume, frozen))
            for guid, entries in needed.items():
                storage = self._volume_by_guid(guid)
                used = self._diff_area_bytes(guid)
                wanted = sum(max(DIFF_AREA_MINIMUM, frozen) for dummy, frozen in entries)
                limits = [storage.size_remaining()]
                for volume, dummy in entries:
                    limits.append(self.shadow_storage[volume.guid]["max"] - used)
                if min(limits) < wanted:
                    return "the shadow storage on %s cannot hold the diff area of %s (needs %d bytes, %d available)" % (
                        storage.display_name, ", ".join(v.display_name for v, dummy in entries), wanted, max(0, min(limits)))
        return None

    # ------------------------------------------------------------------------------------ files and exposures
    def file_exists(self, path):
        return self.read_file(path) is not None

    def list_files(self, folder):
        """Paths (as given, drive-qualified) of the files under ``folder``, sorted."""
        volume, relative = self._resolve(folder)
        prefix = normalize(relative).rstrip("\\")
        prefix = prefix + "\\" if prefix else ""
        root = folder[:len(folder) - len(relative)] if relative else folder.rstrip("\\") + "\\"
        return sorted(root + path for path in volume.content.files(include_system=True)
                      if path.lower().startswith(prefix.lower()))

    def delete_file(self, path):
        volume, relative = self._resolve(path)
        existed = volume.content.read(relative) is not None
        volume.content.delete(relative)
        return existed

    def _exposed_path(self, path):
        lowered = path.replace("/", "\\")
        with self.lock:
            for name, shadow_id in self.exposures.items():
                if lowered.lower().startswith(name.lower()):
                    return shadow_id, lowered[len(name):]
        return None

    def exposure_of(self, shadow_id):
        with self.lock:
            for name, exposed in self.exposures.items():
                if exposed.lower() == shadow_id.lower():
                    return name
        return None

    def shadow_record(self, shadow_id):
        for record in self.list_shadows():
            if record["ID"].lower() == shadow_id.lower():
                return record
        return None

    def delete_shadow_copy(self, shadow_id):
        """Delete a shadow copy and its exposure; True if it existed."""
        with self.lock:
            for name in [n for n, s in self.exposures.items() if s.lower() == shadow_id.lower()]:
                del self.exposures[name]
            return self.delete_shadow(shadow_id)

    def revert_to_shadow(self, shadow_id):
        """The volume's files become the shadow's frozen files; that shadow and the later ones of the volume go."""
        record = self.shadow_record(shadow_id)
        if record is None:
            raise KeyError(shadow_id)
        frozen = self.shadow_content(shadow_id)
        volume = self.find_volume(record["VolumeName"])
        with self.lock, self.blockstore.locked():
            for path in list(volume.content.files()):
                volume.content.delete(path)
            for path, data in frozen.items():
                volume.content.write(path, data)
            later = [r["ID"] for r in self.list_shadows()
                     if r["VolumeName"] == record["VolumeName"] and r["InstallDate"] >= record["InstallDate"]]
            for other in later:
                self.delete_shadow_copy(other)
        return later

    # -------------------------------------------------------------------------------------- the application
    def application_transactions(self, count=1, mode="sync", changes=None):
        """Transactions of the SQL "application" written the way ``mode`` says (sync, lazy, torn)."""
        if self.journal is None:
            raise ValueError("%s runs no SQL application" % self.name)
        return [self.journal.write_transaction(changes, mode=mode) for dummy in range(int(count))]

    def start_application(self, interval=0.01, checkpoint_every=4, torn_pause=0.005):
        if self.journal is None:
            raise ValueError("%s runs no SQL application" % self.name)
        self.journal.start_background(float(interval), int(checkpoint_every), float(torn_pause))
        return self.application_state()

    def stop_application(self):
        if self.journal is not None:
            self.journal.stop_background()
        return self.application_state()

    def application_state(self):
        if self.journal is None:
            return None
        return {"running": self.journal.background_running, "settings": dict(self.journal.background_settings),
                "background_transactions": self.journal.background_count, "frozen": self.journal.frozen}

    def journal_check(self):
        """The invariant checker on the live volumes (the image a crash would leave now)."""
        if self.journal is None:
            raise ValueError("%s runs no SQL application" % self.name)
        return assess_journal(self.journal.data_volume.files(), self.journal.log_volume.files(),
                              self.journal.data_path, self.journal.log_path)

    # ------------------------------------------------------------------------------------------- sessions
    @property
    def sessions(self):
        """The run directories and scheduled tasks of docs/vss-session.md (lab.windows.sessions)."""
        with self.lock:
            if self._sessions is None:
                from .sessions import SessionManager  # pylint: disable=import-outside-toplevel
                self._sessions = SessionManager(self)
            return self._sessions

    def shutdown(self, timeout=5.0):
        """Stop every thread this host runs (scheduled tasks, diskshadow, the application): the lab stops or resets."""
        if self._sessions is not None:
            self._sessions.shutdown(timeout)
        if self.journal is not None:
            self.journal.stop_background(timeout)
