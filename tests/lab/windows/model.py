"""A Python model of one Windows Server on EC2, as the lab's simulated hosts answer for it.

Built from a seeded lab instance (name, instance id, style, volumes with their EBS volume ids) and the topology's
``windows`` settings::

    {"os": "2022", "edition": "Datacenter", "locale": "en-US", "applications": ["sql"],
     "aws_vss_components": "2.3.1", "imds": True, "writer_states": {"SqlServerWriter": "failed_at_freeze"},
     "shadow_storage": {"D:": "F:"}}

:class:`WindowsServer` is the host's identity and settings; what it is made of lives in its parts, one subject each:
``storage`` (lab.windows.storage: disks, volumes) and ``files`` (lab.windows.files: files and folders), ``services``
(lab.windows.services), ``writers``, ``vss_events`` and ``vss_faults`` (lab.windows.writers), ``shadows``
(lab.windows.shadows: shadow copies and their storage), ``tasks`` (lab.windows.tasks: the Task Scheduler) and
``application`` (lab.windows.application: SQL Server's databases and journal, or None). What the agent answers about
it is the agent's twin's (lab.windows.agent_twin).
"""

import threading

from lab.clock import SkewedClock

from . import catalog
from .application import SqlApplication
from .locales import get_locale
from .services import Services
from .shadows import ShadowCopies
from .files import FileSystem
from .storage import SAN_POLICIES, Storage
from .tasks import TaskScheduler
from .writers import VssEvents, VssFaults, Writers

SETTINGS = ("imds", "aws_vss_components_version", "agent_code_page", "tool_delay_seconds", "locale",
            "diskshadow_failure_exit_code", "clock_offset_seconds", "san_policy", "vssadmin_revert",
            "shadow_loss_on_attach", "follow_attachments", "copy_fail_after_files")
# What ``vssadmin revert shadow`` answers for a persistent shadow copy that is not client-accessible (diskshadow's
# context): undocumented (FACTS.md "Revert"), so a lab setting, and the product is tested against both.
VSSADMIN_REVERT_ANSWERS = ("accept", "refuse")


def writer_specs(applications, hostname, sql_system_databases):
    """The host's writers in the order vssadmin lists them: the in-box ones, SqlServerWriter, the IIS writers."""
    specs = list(catalog.BASE_WRITERS)
    if "sql" in applications:
        specs.insert(4, catalog.sql_writer(hostname, sql_system_databases))
    if "iis" in applications:
        specs.extend(catalog.IIS_WRITERS)
    return specs


class WindowsServer:  # pylint: disable=too-many-instance-attributes
    """One simulated Windows host; every part is thread-safe under :attr:`lock`."""

    def __init__(self, instance, blockstore, region="us-east-1", config=None):
        config = dict(instance.get("windows") or {}) if config is None else dict(config)
        self.lock = threading.RLock()
        self.name = instance["name"]
        self.instance_id = instance["instance_id"]
        self.instance_type = instance.get("instance_type")
        self.availability_zone = instance.get("availability_zone", region + "a")
        self.region = region
        self.account_id = catalog.LAB_ACCOUNT_ID
        self.style = instance.get("style", "nitro")
        if self.style not in ("nitro", "xen"):
            raise ValueError("style must be nitro or xen, not %r" % self.style)
        self.blockstore = blockstore
        # The host's clock: the lab's, ``clock_offset_seconds`` ahead (behind when negative).
        self.clock = SkewedClock(config.get("clock_offset_seconds", 0.0))
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
        self.diskshadow_failure_exit_code = int(config.get("diskshadow_failure_exit_code", 1))
        # Exit codes of files diskshadow `exec`s (or a task runs) that are not the collection's batch files.
        self.exec_exit_codes = {}
        self.services = Services(self, self.applications)
        self.storage = Storage(blockstore, self.style, instance["volumes"], instance.get("root_device_name", "/dev/sda1"),
                               config.get("san_policy", "online_all"))
        self.vssadmin_revert = config.get("vssadmin_revert", "accept")
        # volsnap may abort the shadow copies of a volume it re-detects (event 29, KB975803): when set, the shadow
        # copies stored on an attached volume are lost as it arrives.
        self.shadow_loss_on_attach = bool(config.get("shadow_loss_on_attach", False))
        # False: Windows has not noticed EC2's attach and detach changes yet (no rescan): the disks stay as they are.
        self.follow_attachments = bool(config.get("follow_attachments", True))
        # robocopy fails every file copy (disk full) once this many files were copied since it was set (None: never).
        self.copy_fail_after_files = config.get("copy_fail_after_files")
        self.files_copied = 0
        self.files = FileSystem(self)
        self.sql_system_databases = config.get("sql_system_databases", "D:")
        self.writers = Writers(self, writer_specs(self.applications, self.hostname, self.sql_system_databases))
        self.vss_events = VssEvents(self)
        self.vss_faults = VssFaults(self)
        self.shadows = ShadowCopies(self, config.get("shadow_storage") or {})
        self.tasks = TaskScheduler(self)
        self.application = SqlApplication(self, self.sql_system_databases) if "sql" in self.applications else None
        for writer_name, state in (config.get("writer_states") or {}).items():
            if isinstance(state, dict):
                self.writers.set_state(writer_name, **state)
            else:
                self.writers.set_state(writer_name, state)

    def seed(self):
        """Initial files: a few per volume, the SQL databases and their journal, the IIS sites."""
        with self.blockstore.locked():
            for volume in self.storage.volumes:
                volume.content.initialize_span()
                if volume.is_root:
                    volume.content.write("Windows\\System32\\config\\SYSTEM", b"regf lab hive " + self.hostname.encode())
                    volume.content.write("Windows\\System32\\drivers\\etc\\hosts", b"127.0.0.1 localhost\r\n")
                else:
                    label = volume.label or volume.display_name
                    volume.content.write("README.txt", ("%s on %s (%s)\r\n" % (label, self.hostname, ", ".join(volume.volume_ids))))
                    for index in range(3):
                        volume.content.write("data\\file-%03d.bin" % index, bytes([index]) * (1024 * (index + 1)))
            if self.application is not None:
                self.application.seed()
            if "iis" in self.applications:
                sites = self.storage.find_volume("D:") or self.storage.find_volume("C:")
                sites.content.write("inetpub\\wwwroot\\index.html", "<html><body>%s</body></html>\r\n" % self.hostname)
        return self

    def set_exec_exit_code(self, path, exit_code):
        """The exit code of a file diskshadow ``exec``s that is not one of the collection's scripts (default 0)."""
        with self.lock:
            if exit_code is None:
                self.exec_exit_codes.pop(path.lower(), None)
            else:
                self.exec_exit_codes[path.lower()] = int(exit_code)

    def configure(self, **settings):
        """Run-time switches: ``imds``, ``aws_vss_components_version``, ``agent_code_page``, ``tool_delay_seconds``,
        ``locale``, ``diskshadow_failure_exit_code``, ``clock_offset_seconds`` (the host's clock against the lab's)."""
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
                elif key == "clock_offset_seconds":
                    self.clock = SkewedClock(value)
                elif key == "san_policy":
                    if value not in SAN_POLICIES:
                        raise ValueError("san_policy must be one of %s" % ", ".join(SAN_POLICIES))
                    self.storage.san_policy = value
                elif key == "vssadmin_revert":
                    if value not in VSSADMIN_REVERT_ANSWERS:
                        raise ValueError("vssadmin_revert must be one of %s" % ", ".join(VSSADMIN_REVERT_ANSWERS))
                    self.vssadmin_revert = value
                elif key == "shadow_loss_on_attach":
                    self.shadow_loss_on_attach = bool(value)
                elif key == "follow_attachments":
                    self.follow_attachments = bool(value)
                elif key == "copy_fail_after_files":
                    self.copy_fail_after_files = None if value is None else int(value)
                    self.files_copied = 0
                else:
                    raise ValueError("unknown host setting %r (known: %s)" % (key, ", ".join(SETTINGS)))
            return self.settings()

    def settings(self):
        return {
            "imds": self.imds,
            "aws_vss_components_version": self.aws_vss_components_version,
            "agent_code_page": self.agent_code_page,
            "tool_delay_seconds": self.tool_delay_seconds,
            "locale": self.locale.name,
            "diskshadow_failure_exit_code": self.diskshadow_failure_exit_code,
            "clock_offset_seconds": self.clock.offset_seconds,
            "san_policy": self.storage.san_policy,
            "vssadmin_revert": self.vssadmin_revert,
            "shadow_loss_on_attach": self.shadow_loss_on_attach,
            "follow_attachments": self.follow_attachments,
            "copy_fail_after_files": self.copy_fail_after_files,
        }

    def volume_attached(self, volume_id, device):
        """EC2 attached an EBS volume to this instance: a new disk (online, or offline by SAN policy or collision)."""
        with self.lock, self.blockstore.locked():
            if not self.follow_attachments:
                return None
            if self.shadow_loss_on_attach:
                image = self.blockstore.volume(volume_id)
                for shadow_id in list(image.shadows):
                    del image.shadows[shadow_id]
                    self.vss_events.record("shadow_deleted", shadow_id=shadow_id, reason="volume re-detected (event 29)")
            disk = self.storage.attach(volume_id, device)
            return None if disk is None else disk.describe()

    def volume_detached(self, volume_id):
        """EC2 detached an EBS volume: its disk and volume are gone (an exposure of its shadows with them). A disk
        still online when it goes is a ``disk_removed_online`` event."""
        with self.lock:
            if not self.follow_attachments:
                return False
            volume = self.storage.find_volume_of(volume_id)
            if volume is not None:
                # Windows loses what it had not written yet (AWS: unmount before detaching): recorded for tests.
                self.vss_events.record("disk_removed_online", volume_id=volume_id, volume=volume.unique_id)
                for name in [n for n, shadow_id in self.shadows.exposures.items()
                             if (self.shadows.record(shadow_id) or {}).get("VolumeName") == volume.unique_id]:
                    del self.shadows.exposures[name]
            return self.storage.detach(volume_id) is not None

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
                "sql_system_databases": self.sql_system_databases if self.application is not None else None,
                "settings": self.settings(),
                "writers": self.writers.describe(),
                "visible_writers": [writer.name for writer in self.writers.visible()],
                "services": self.services.describe(),
                "volumes": [volume.summary() for volume in self.storage.volumes],
                "disks": [dict(disk.describe(), VolumeId=disk.volume_id, Device=disk.device) for disk in self.storage.disks],
                "shadows": len(self.shadows.list()),
                "journal": self.application.summary() if self.application is not None else None,
                "application": self.application.state() if self.application is not None else None,
                "vss_faults": self.vss_faults.describe(),
                "exec_exit_codes": dict(self.exec_exit_codes),
                "exposures": dict(self.shadows.exposures),
                "sessions": self.tasks.describe(),
            }

    def shutdown(self, timeout=5.0):
        """Stop every thread this host runs (scheduled tasks, diskshadow, the application): the lab stops or resets."""
        self.tasks.shutdown(timeout)
        if self.application is not None:
            self.application.stop(timeout)
