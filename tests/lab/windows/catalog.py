"""What a simulated Windows host is made of: operating systems, services, VSS writers and their components.

Writer names and ids are the real ones: from Microsoft's "In-Box VSS Writers" documentation and from real
``vssadmin list writers`` captures (see docs/lab-windows.md for each source). The writer-to-service table is the one
of FACTS.md. Component layouts follow diskshadow's metadata listing (KB 3098315, the restic capture); their paths are
the usual install locations, simplified.
"""

import uuid
from dataclasses import dataclass, field

LAB_NAMESPACE = uuid.UUID("6b1f8a52-3c2e-4e59-9d0c-5a4c1e7f0b11")
SYSTEM_PROVIDER_ID = "{b5946137-7b9f-4925-af80-51abd60b20d5}"
DIFF_AREA_SUFFIX = "{3808876b-c176-4e48-b7ae-04046e6cc752}"

# key -> (caption without edition, version, build, product type, PowerShell version)
OPERATING_SYSTEMS = {
    "2016": ("Microsoft Windows Server 2016", "10.0.14393", 3, "5.1.14393.7428"),
    "2019": ("Microsoft Windows Server 2019", "10.0.17763", 3, "5.1.17763.6414"),
    "2022": ("Microsoft Windows Server 2022", "10.0.20348", 3, "5.1.20348.2849"),
    "2025": ("Microsoft Windows Server 2025", "10.0.26100", 3, "5.1.26100.2161"),
    "win10": ("Microsoft Windows 10", "10.0.19045", 1, "5.1.19041.5247"),
    "win11": ("Microsoft Windows 11", "10.0.22631", 1, "5.1.22621.4391"),
}
SERVER_EDITIONS = ("Datacenter", "Standard")
CLIENT_EDITIONS = ("Pro", "Enterprise")
# Registry EditionID (HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion) per edition.
EDITION_IDS = {"Datacenter": "ServerDatacenter", "Standard": "ServerStandard", "Pro": "Professional", "Enterprise": "Enterprise"}
LAB_ACCOUNT_ID = "123456789012"


def stable_guid(*parts):
    """A GUID derived from the parts: the same host, volume or writer gets the same id after every reseed."""
    return str(uuid.uuid5(LAB_NAMESPACE, ":".join(str(part) for part in parts)))


@dataclass(frozen=True)
class OperatingSystem:
    key: str
    caption: str
    version: str
    product_type: int
    powershell_version: str
    edition_id: str = ""

    @property
    def build(self):
        return self.version.rsplit(".", 1)[-1]

    @property
    def is_server(self):
        return self.product_type != 1


def operating_system(key="2022", edition=None):
    """``2016``, ``2019``, ``2022``, ``2025`` (Windows Server) or ``win10``/``win11`` (client, for negative tests)."""
    key = str(key)
    if key not in OPERATING_SYSTEMS:
        raise ValueError("unknown os %r (the lab knows %s)" % (key, ", ".join(OPERATING_SYSTEMS)))
    caption, version, product_type, powershell = OPERATING_SYSTEMS[key]
    editions = SERVER_EDITIONS if product_type != 1 else CLIENT_EDITIONS
    edition = edition or editions[0]
    if edition not in editions:
        raise ValueError("edition of %s must be one of %s" % (key, ", ".join(editions)))
    return OperatingSystem(key, "%s %s" % (caption, edition), version, product_type, powershell, EDITION_IDS[edition])


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    display_name: str
    start_type: str = "Automatic"
    status: str = "Running"


BASE_SERVICES = (
    ServiceSpec("VSS", "Volume Shadow Copy", "Manual", "Stopped"),
    ServiceSpec("swprv", "Microsoft Software Shadow Copy Provider", "Manual", "Stopped"),
    ServiceSpec("EventSystem", "COM+ Event System"),
    ServiceSpec("CryptSvc", "Cryptographic Services"),
    ServiceSpec("Winmgmt", "Windows Management Instrumentation"),
    ServiceSpec("BITS", "Background Intelligent Transfer Service", "Manual"),
    ServiceSpec("Schedule", "Task Scheduler"),
    ServiceSpec("WinRM", "Windows Remote Management (WS-Management)"),
    ServiceSpec("AmazonSSMAgent", "Amazon SSM Agent"),
)
APPLICATION_SERVICES = {
    "sql": (
        ServiceSpec("MSSQLSERVER", "SQL Server (MSSQLSERVER)"),
        ServiceSpec("SQLSERVERAGENT", "SQL Server Agent (MSSQLSERVER)"),
        ServiceSpec("SQLWriter", "SQL Server VSS Writer"),
    ),
    "iis": (
        ServiceSpec("W3SVC", "World Wide Web Publishing Service"),
        ServiceSpec("WAS", "Windows Process Activation Service", "Manual"),
        ServiceSpec("AppHostSvc", "Application Host Helper Service"),
        ServiceSpec("IISADMIN", "IIS Admin Service"),
    ),
}


@dataclass(frozen=True)
class ComponentSpec:
    """One writer component: ``logical_path`` and ``name`` make ``\\logical\\name``; files are (folder, filespec)."""

    name: str
    logical_path: str = ""
    caption: str = ""
    component_type: str = "VSS_CT_FILEGROUP [2]"
    selectable: bool = False
    notify_on_backup_complete: bool = False
    files: tuple = ()

    @property
    def full_path(self):
        return "\\" + "\\".join(part for part in (self.logical_path, self.name) if part)


@dataclass(frozen=True)
class WriterSpec:
    name: str
    writer_id: str
    service: str
    components: tuple = field(default_factory=tuple)
    restore_method: str = "VSS_RME_RESTORE_IF_CAN_REPLACE"
    restore_conditions: str = "VSS_WRE_ALWAYS"
    reboot_after_restore: bool = False


# The writers of a Windows Server (2012 R2 and later), in the order vssadmin lists them in the captures.
BASE_WRITERS = (
    WriterSpec(
        "Task Scheduler Writer",
        "{d61d61c8-d73a-4eee-8cdd-f6f9786b7124}",
        "Schedule",
        (ComponentSpec("TasksStore", caption="Task Scheduler Writer", files=(("C:\\Windows\\system32\\tasks", "*"),)),),
    ),
    WriterSpec(
        "VSS Metadata Store Writer",
        "{75dfb225-e2e4-4d39-9ac9-ffaff65ddf06}",
        "VSS",
        (ComponentSpec("WriterMetadataStore", caption="VSS Express Writer Metadata Store",
                       files=(("C:\\Windows\\system32\\config\\VssMetadataStore", "*"),)),),
    ),
    WriterSpec(
        "Performance Counters Writer",
        "{0bada1de-01a9-4625-8278-69e735f39dd2}",
        "VSS",
        (ComponentSpec("PerformanceCounters", caption="Performance Counters",
                       files=(("C:\\Windows\\system32", "perf?00?.dat"),)),),
    ),
    WriterSpec(
        "System Writer",
        "{e8132975-6f93-4464-a53e-1050253ae220}",
        "CryptSvc",
        (ComponentSpec("System Files", caption="System Files", files=(("C:\\Windows\\system32", "*.dll"),)),),
        restore_method="VSS_RME_CUSTOM",
        reboot_after_restore=True,
    ),
    WriterSpec(
        "ASR Writer",
        "{be000cbe-11fe-4426-9c58-531aa6355fc4}",
        "VSS",
        (ComponentSpec("BCD", logical_path="BCD", caption="This is the path to the boot BCD store and the boot managers.",
                       files=(("C:\\Boot", "BCD"),)),),
        restore_method="VSS_RME_CUSTOM",
    ),
    WriterSpec(
        "Shadow Copy Optimization Writer",
        "{4dc3bdd4-ab48-4d07-adb0-3bee2926fd7f}",
        "VSS",
        (ComponentSpec("Shadow Copy Optimization", caption="Shadow Copy Optimization Writer",
                       files=(("C:\\Windows\\CSC", "*"),)),),
    ),
    WriterSpec(
        "Registry Writer",
        "{afbab4a2-367d-4d15-a586-71dbb18f8485}",
        "VSS",
        (ComponentSpec("Registry", caption="Registry", files=(("C:\\Windows\\system32\\config", "*"),)),),
        restore_method="VSS_RME_CUSTOM",
        reboot_after_restore=True,
    ),
    WriterSpec(
        "BITS Writer",
        "{4969d978-be47-48b0-b100-f328f07ac1e0}",
        "BITS",
        (ComponentSpec("BITS_temporary_files", caption="BITS_temporary_files",
                       files=(("C:\\ProgramData\\Microsoft\\Network\\Downloader", "*"),)),),
    ),
    WriterSpec(
        "WMI Writer",
        "{a6ad56c2-b509-4e6c-bb19-49d8f43532f0}",
        "Winmgmt",
        (ComponentSpec("WMI", caption="Windows Management Instrumentation",
                       files=(("C:\\Windows\\system32\\wbem\\repository", "*"),)),),
    ),
    WriterSpec(
        "COM+ REGDB Writer",
        "{542da469-d3e1-473c-9f4f-7847f01fc64f}",
        "VSS",
        (ComponentSpec("COM+ REGDB", caption="COM+ REGDB", files=(("C:\\Windows\\Registration", "*"),)),),
    ),
)

SQL_WRITER_ID = "{a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}"
SQL_DATABASES = ("master", "model", "msdb", "shop")
SQL_SYSTEM_DATABASES = ("master", "model", "msdb")
SQL_DATA_FOLDER = "D:\\SQLData"
SQL_LOG_FOLDER = "E:\\SQLLogs"
# Where SQL Server 2022 Setup puts a default instance's system databases, and their file names there.
SQL_INSTANCE_DATA_FOLDER = "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\DATA"
SQL_SYSTEM_FILES = {"master": ("master.mdf", "mastlog.ldf"), "model": ("model.mdf", "modellog.ldf"),
                    "msdb": ("MSDBData.mdf", "MSDBLog.ldf")}
SQL_SYSTEM_DATABASE_PLACES = ("D:", "C:")


def sql_database_files(system_databases="D:"):
    """``{database: ((data folder, data file), (log folder, log file))}``. User databases keep their data on D: and
    their logs on E:; the system databases too when ``system_databases`` is ``D:`` (relocated), or where Setup puts
    them when it is ``C:`` (the instance's DATA folder on C:, as real installs leave them)."""
    if system_databases not in SQL_SYSTEM_DATABASE_PLACES:
        raise ValueError("sql_system_databases must be one of %s, not %r" % (", ".join(SQL_SYSTEM_DATABASE_PLACES), system_databases))
    files = {}
    for database in SQL_DATABASES:
        if database in SQL_SYSTEM_DATABASES and system_databases == "C:":
            data, log = SQL_SYSTEM_FILES[database]
            files[database] = ((SQL_INSTANCE_DATA_FOLDER, data), (SQL_INSTANCE_DATA_FOLDER, log))
        else:
            files[database] = ((SQL_DATA_FOLDER, "%s.mdf" % database), (SQL_LOG_FOLDER, "%s_log.ldf" % database))
    return files


def sql_writer(hostname, system_databases="D:"):
    """SqlServerWriter of a default instance: one component per database, with its data and log files."""
    components = tuple(
        ComponentSpec(
            database,
            logical_path=hostname,
            component_type="VSS_CT_FILEGROUP [2]",
            selectable=True,
            notify_on_backup_complete=True,
            files=files,
        )
        for database, files in sql_database_files(system_databases).items()
    )
    return WriterSpec("SqlServerWriter", SQL_WRITER_ID, "SQLWriter", components, restore_method="VSS_RME_RESTORE_IF_NOT_THERE")


IIS_WRITERS = (
    WriterSpec(
        "IIS Config Writer",
        "{2a40fd15-dfca-4aa8-a654-1f8c654603f6}",
        "AppHostSvc",
        (ComponentSpec("IISCONFIG", caption="IIS Configuration", files=(("C:\\Windows\\system32\\inetsrv\\config", "*"),)),),
    ),
    WriterSpec(
        "IIS Metabase Writer",
        "{59b1f0cf-90ef-465f-9609-6ca8b2938366}",
        "IISADMIN",
        (ComponentSpec("IISMETABASE", caption="IIS Metabase", files=(("C:\\Windows\\system32\\inetsrv", "MetaBase.xml"),)),),
    ),
)

APPLICATIONS = ("sql", "iis")

# Default error (a key of the locales' error words) per failed state, when a test does not name one. Grounded in
# captures where one exists: [7] Retryable error (Exchange), [8] Inconsistent shadow copy (Hyper-V), [9]/[10] Timed out.
DEFAULT_FAILURE_ERROR = {
    6: "out_of_resources",
    7: "retryable",
    8: "inconsistent",
    9: "timed_out",
    10: "timed_out",
    11: "retryable",
    12: "retryable",
    13: "non_retryable",
    14: "non_retryable",
    15: "non_retryable",
}

# Writer failure code (diskshadow prints it, vssadmin prints the word) per error.
ERROR_HRESULTS = {
    "no_error": 0x00000000,
    "inconsistent": 0x800423F0,
    "out_of_resources": 0x800423F1,
    "timed_out": 0x800423F2,
    "retryable": 0x800423F3,
    "non_retryable": 0x800423F4,
    "not_responding": 0x80042319,
    "unexpected": 0x80042315,
}
HRESULT_SYMBOLS = {
    0x00000000: "S_OK",
    0x800423F0: "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
    0x800423F1: "VSS_E_WRITERERROR_OUTOFRESOURCES",
    0x800423F2: "VSS_E_WRITERERROR_TIMEOUT",
    0x800423F3: "VSS_E_WRITERERROR_RETRYABLE",
    0x800423F4: "VSS_E_WRITERERROR_NONRETRYABLE",
    0x80042319: "VSS_E_WRITER_NOT_RESPONDING",
    0x80042315: "VSS_E_UNEXPECTED_WRITER_ERROR",
}

# VSS_WRITER_STATE names (vss.h), printed by diskshadow as VSS_WS_<name>.
WRITER_STATE_NAMES = {
    0: "UNKNOWN",
    1: "STABLE",
    2: "WAITING_FOR_FREEZE",
    3: "WAITING_FOR_THAW",
    4: "WAITING_FOR_POST_SNAPSHOT",
    5: "WAITING_FOR_BACKUP_COMPLETE",
    6: "FAILED_AT_IDENTIFY",
    7: "FAILED_AT_PREPARE_BACKUP",
    8: "FAILED_AT_PREPARE_SNAPSHOT",
    9: "FAILED_AT_FREEZE",
    10: "FAILED_AT_THAW",
    11: "FAILED_AT_POST_SNAPSHOT",
    12: "FAILED_AT_BACKUP_COMPLETE",
    13: "FAILED_AT_PRE_RESTORE",
    14: "FAILED_AT_POST_RESTORE",
    15: "FAILED_AT_BACKUPSHUTDOWN",
}
