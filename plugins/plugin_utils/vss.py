# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VSS knowledge shared by every part of the collection: writer states, HRESULTs, writer services.

Everything that turns a number printed by vssadmin or diskshadow into a decision (is this writer
healthy, is this failure worth a retry, which service brings a writer back) lives here and nowhere
else, so the action plugins, the parsers and the lab's simulated hosts all agree.

Sources: the VSS_WRITER_STATE enumeration (vss.h), the VSS error codes (vsserror.h) and Microsoft's
guidance on writer errors; the writer-to-service table comes from vendor tables (verify it per
product version).
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
from typing import NamedTuple

# VSS_WRITER_STATE value -> name without the ``VSS_WS_`` prefix.
VSS_WRITER_STATE = {
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

WRITER_STATE_STABLE = 1
WRITER_STATES_WAITING = frozenset((2, 3, 4, 5))
WRITER_STATES_FAILED = frozenset(range(6, 16))


def writer_state_name(state: int) -> str:
    """Name of a writer state; a number outside the enumeration is UNKNOWN (the number itself is kept by callers)."""
    return VSS_WRITER_STATE.get(state, "UNKNOWN")


def writer_state_healthy(state: int) -> bool:
    """Only STABLE is healthy: a writer must be idle and without a failure before a new shadow copy set starts.

    WAITING_* states are transient (a backup is in progress, or a requester left a session open), not failed,
    but a new backup cannot rely on them either; FAILED_AT_* and UNKNOWN are not healthy.
    """
    return state == WRITER_STATE_STABLE


def writer_state_waiting(state: int) -> bool:
    """True for the transient WAITING_* states: wait for the running backup, do not restart anything."""
    return state in WRITER_STATES_WAITING


def writer_state_failed(state: int) -> bool:
    """True for the FAILED_AT_* states (vssadmin prints all of them as the same word, e.g. "Failed")."""
    return state in WRITER_STATES_FAILED


def writer_failed_phase(state: int) -> str | None:
    """The phase a failed writer vetoed or failed in (``FREEZE`` for FAILED_AT_FREEZE), None if it is not failed."""
    if not writer_state_failed(state):
        return None
    return VSS_WRITER_STATE[state].removeprefix("FAILED_AT_")


class HResultInfo(NamedTuple):
    """What an HRESULT means and what to do about it.

    ``retry_after_seconds`` is None when retrying the same operation unchanged will not help.
    """

    name: str
    meaning: str
    advice: str
    retry_after_seconds: int | None = None
    max_retries: int = 0

    @property
    def retryable(self) -> bool:
        """Whether the same operation may succeed later without anyone changing anything."""
        return self.retry_after_seconds is not None


# Microsoft: for OUTOFRESOURCES, TIMEOUT and RETRYABLE writer errors wait about ten minutes, then retry.
WRITER_RETRY_AFTER_SECONDS = 600

# Microsoft: retry such writer errors up to three times.
WRITER_MAX_RETRIES = 3

# Another requester is creating a set; its freeze lasts at most ~60 s, so try again after about that long.
SNAPSHOT_SET_RETRY_AFTER_SECONDS = 60

# Ten retries a minute apart outlast another requester's set creation with room to spare.
SNAPSHOT_SET_MAX_RETRIES = 10

# Another shadow copy set is being created on this host; the agent answers it too when another session of the
# collection runs (the agent script spells it as $InProgressHResult).
VSS_E_SNAPSHOT_SET_IN_PROGRESS = 0x80042316

# HRESULT (as an unsigned 32-bit int) -> what it means and what to do.
HRESULTS = {
    0x800423F0: HResultInfo(
        "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
        "The shadow copy set holds only some of the volumes a selected writer component needs.",
        "Add every volume the writer's components touch to the set (see the writer's component volumes).",
    ),
    0x800423F1: HResultInfo(
        "VSS_E_WRITERERROR_OUTOFRESOURCES",
        "A writer ran out of memory or other system resources.",
        "Wait about 10 minutes and retry (up to 3 times); if it persists, free memory or restart the writer's service.",
        WRITER_RETRY_AFTER_SECONDS,
        WRITER_MAX_RETRIES,
    ),
    0x800423F2: HResultInfo(
        "VSS_E_WRITERERROR_TIMEOUT",
        "A writer timed out between Freeze and Thaw (writers hold I/O for at most ~60 s).",
        "Wait about 10 minutes and retry (up to 3 times); reduce I/O load on the volumes during the backup window.",
        WRITER_RETRY_AFTER_SECONDS,
        WRITER_MAX_RETRIES,
    ),
    0x800423F3: HResultInfo(
        "VSS_E_WRITERERROR_RETRYABLE",
        "A writer failed with a transient error.",
        "Wait about 10 minutes and retry (up to 3 times); if it persists, restart the writer's service.",
        WRITER_RETRY_AFTER_SECONDS,
        WRITER_MAX_RETRIES,
    ),
    0x800423F4: HResultInfo(
        "VSS_E_WRITERERROR_NONRETRYABLE",
        "A writer failed with an error that a retry will not fix.",
        "Read the writer's application event log, fix the cause, then restart the writer's service.",
    ),
    0x800423F5: HResultInfo(
        "VSS_E_WRITERERROR_RECOVERY_FAILED",
        "Auto-recovery of the shadow copy failed in a writer.",
        "Check the writer's event log; exclude the failing writer or fix it, then back up again.",
    ),
    0x80042336: HResultInfo(
        "VSS_E_WRITERERROR_PARTIAL_FAILURE",
        "A writer failed for some of its components only.",
        "Check which components failed (writer status, event log) before trusting the backup of that writer.",
    ),
    0x80042301: HResultInfo(
        "VSS_E_BAD_STATE",
        "The operation was called in the wrong order or the object is in the wrong state.",
        "Start a new diskshadow session; if it repeats, restart the VSS service when no backup is running.",
    ),
    0x80042302: HResultInfo(
        "VSS_E_UNEXPECTED",
        "VSS hit an unexpected error; the code is in the VSS event log.",
        "Read the Application log (source VSS) on the host; restart the VSS service if it is stuck.",
    ),
    0x80042304: HResultInfo(
        "VSS_E_PROVIDER_NOT_REGISTERED",
        "The requested shadow copy provider is not registered.",
        "Use the system provider or reinstall the vendor provider (vssadmin list providers shows what is registered).",
    ),
    0x80042306: HResultInfo(
        "VSS_E_PROVIDER_VETO",
        "The provider refused to create the shadow copy.",
        "Read the System and Application logs (volsnap, VSS, provider events) for the cause; third-party providers "
        "and filter drivers are common culprits.",
    ),
    0x80042308: HResultInfo(
        "VSS_E_OBJECT_NOT_FOUND",
        "The shadow copy, set or volume named does not exist.",
        "Re-read the shadow copies (they may have been deleted, e.g. when the diff area filled) and use current ids.",
    ),
    0x8004230C: HResultInfo(
        "VSS_E_VOLUME_NOT_SUPPORTED",
        "Shadow copies are not supported on this volume.",
        "Persistent shadows need NTFS: leave this volume out of the set or snapshot it crash-consistently.",
    ),
    0x8004230F: HResultInfo(
        "VSS_E_UNEXPECTED_PROVIDER_ERROR",
        "The provider returned an unexpected error.",
        "Read the provider's events in the Application and System logs; retry once the provider is healthy.",
    ),
    0x80042312: HResultInfo(
        "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
        "A shadow copy set holds at most 64 volumes.",
        "Split the volumes into several sets (and several backup runs).",
    ),
    0x80042313: HResultInfo(
        "VSS_E_FLUSH_WRITES_TIMEOUT",
        "The system could not flush I/O for the volumes in time.",
        "Retry when the volumes are less busy (about 10 minutes later).",
        WRITER_RETRY_AFTER_SECONDS,
        WRITER_MAX_RETRIES,
    ),
    0x80042314: HResultInfo(
        "VSS_E_HOLD_WRITES_TIMEOUT",
        "The provider held writes longer than the 10 s VSS allows.",
        "Retry when the volumes are less busy (about 10 minutes later).",
        WRITER_RETRY_AFTER_SECONDS,
        WRITER_MAX_RETRIES,
    ),
    0x80042315: HResultInfo(
        "VSS_E_UNEXPECTED_WRITER_ERROR",
        "A writer returned an unexpected error.",
        "Find the writer in error (list writers), read its event log and restart its service.",
    ),
    VSS_E_SNAPSHOT_SET_IN_PROGRESS: HResultInfo(
        "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
        "Another shadow copy set is being created on this host; VSS creates one at a time.",
        "Retry later, once the other backup has created its set.",
        SNAPSHOT_SET_RETRY_AFTER_SECONDS,
        SNAPSHOT_SET_MAX_RETRIES,
    ),
    0x80042317: HResultInfo(
        "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
        "The volume already has the maximum number of shadow copies (64 client-accessible by default, 512 at most).",
        "Delete old shadow copies of that volume (retention), then back up again.",
    ),
    0x80042318: HResultInfo(
        "VSS_E_WRITER_INFRASTRUCTURE",
        "The writer infrastructure is not working (writers cannot be reached).",
        "Restart the COM+ Event System (EventSystem) and VSS services when no backup is running; check with list writers.",
    ),
    0x80042319: HResultInfo(
        "VSS_E_WRITER_NOT_RESPONDING",
        "A writer did not answer.",
        "Restart the writer's service (see the writer-to-service table), then back up again.",
    ),
    0x8004231B: HResultInfo(
        "VSS_E_UNSUPPORTED_CONTEXT",
        "The shadow copy's context does not allow this operation (diskshadow reverts client-accessible shadows only).",
        "Expose the shadow copy read-only and copy from it instead, or revert with a tool that accepts its context.",
    ),
    0x8004231D: HResultInfo(
        "VSS_E_VOLUME_IN_USE",
        "The volume is in use by another operation and cannot be shadow-copied or reverted now.",
        "Wait for the other operation (another backup, a revert, chkdsk) to finish.",
    ),
    0x8004231F: HResultInfo(
        "VSS_E_INSUFFICIENT_STORAGE",
        "Not enough space for the shadow copy storage (diff area).",
        "Free space on the storage volume or grow it (vssadmin resize shadowstorage), then back up again.",
    ),
    0x80042325: HResultInfo(
        "VSS_E_REVERT_IN_PROGRESS",
        "A revert of this volume is in progress (it resumes after a reboot).",
        "Wait for the revert to finish before any new shadow copy or revert of that volume.",
    ),
    0x800423FE: HResultInfo(
        "VSS_E_CANNOT_REVERT_DISKID",
        "The revert cannot complete because the disk id changed.",
        "Revert is not possible on this disk: restore by exposing the shadow copy and copying files instead.",
    ),
    0x8004230D: HResultInfo(
        "VSS_E_OBJECT_ALREADY_EXISTS",
        "The object (e.g. a shadow storage association or an exposed name) already exists.",
        "Use the existing object or remove it first.",
    ),
    0x8004230E: HResultInfo(
        "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
        "The selected provider does not support this volume.",
        "Use the system provider for this volume or leave it out of the set.",
    ),
    0x80042311: HResultInfo(
        "VSS_E_INVALID_XML_DOCUMENT",
        "A writer metadata or backup components document is invalid (or too long).",
        "Find the writer whose metadata is broken (Application log, list writers detailed) and fix or exclude it.",
    ),
    0x8004232A: HResultInfo(
        "VSS_E_UNSELECTED_VOLUME",
        "The operation names a volume that is not in the shadow copy set.",
        "Add the volume to the set or drop it from the operation.",
    ),
    0x80070005: HResultInfo(
        "E_ACCESSDENIED",
        "Access denied: the caller is not an administrator or lacks backup privileges.",
        "Run diskshadow elevated (Administrators, or SYSTEM through a scheduled task).",
    ),
    0x8007000E: HResultInfo(
        "E_OUTOFMEMORY",
        "Out of memory or other system resources.",
        "Free memory on the host and retry.",
    ),
    0x80070057: HResultInfo(
        "E_INVALIDARG",
        "An argument is not valid (e.g. a malformed volume name or id in the script).",
        "Check the generated diskshadow script for the argument named in the log.",
    ),
}

_HRESULT_TEXT = re.compile(r"^\s*(?:0x)?(?P<hex>[0-9a-f]{8})\s*$", re.IGNORECASE)


def hresult_from_text(text: str) -> int:
    """The HRESULT in ``80042306`` or ``0x80042306`` form (as diskshadow and logs print it) as an unsigned int."""
    match = _HRESULT_TEXT.match(text)
    if not match:
        raise ValueError(f"not an HRESULT (8 hex digits, optional 0x): {text!r}")
    return int(match.group("hex"), 16)


def hresult_info(hresult: int | str) -> HResultInfo | None:
    """What an HRESULT means, by int (signed or unsigned) or hex text; None for a code not in the table."""
    code = hresult_from_text(hresult) if isinstance(hresult, str) else hresult & 0xFFFFFFFF
    return HRESULTS.get(code)


def hresult_name(hresult: int | str) -> str | None:
    """Symbolic name such as ``VSS_E_PROVIDER_VETO``; None for a code not in the table."""
    info = hresult_info(hresult)
    return info.name if info else None


def format_hresult(hresult: int) -> str:
    """``0x80042306 (VSS_E_PROVIDER_VETO)``: errors show the name, not just hex."""
    code = hresult & 0xFFFFFFFF
    name = hresult_name(code)
    return f"0x{code:08X} ({name})" if name else f"0x{code:08X}"


# Writer name (as vssadmin prints it) -> service to restart when the writer is failed (vendor tables).
# The Microsoft Exchange Writer lives in MSExchangeRepl from Exchange 2013 on (the only versions that run on
# Windows Server 2016+); on Exchange 2010 and earlier it lived in the Information Store (EXCHANGE_2010_WRITER_SERVICE).
WRITER_SERVICES = {
    "ASR Writer": "VSS",
    "COM+ REGDB Writer": "VSS",
    "Registry Writer": "VSS",
    "Shadow Copy Optimization Writer": "VSS",
    "System Writer": "CryptSvc",
    "WMI Writer": "Winmgmt",
    "BITS Writer": "BITS",
    "SqlServerWriter": "SQLWriter",
    "IIS Config Writer": "AppHostSvc",
    "IIS Metabase Writer": "IISADMIN",
    "NTDS": "NTDS",
    "DFS Replication service writer": "DFSR",
    "DHCP Jet Writer": "DHCPServer",
    "FRS Writer": "NtFrs",
    "FSRM writer": "srmsvc",
    "Microsoft Hyper-V VSS Writer": "vmms",
    "MSMQ Writer": "MSMQ",
    "MSSearch Service Writer": "WSearch",
    "NPS VSS Writer": "EventSystem",
    "Certificate Authority": "CertSvc",
    "Microsoft Exchange Writer": "MSExchangeRepl",
    "Microsoft Exchange Replica Writer": "MSExchangeRepl",
    "WIDWriter": "WIDWriter",
    "TermServLicensing": "TermServLicensing",
    "WDS VSS Writer": "WDSServer",
    "WINS Jet Writer": "WINS",
    "SharePoint Services Writer": "SPWriter",
    "OSearch15 VSS Writer": "OSearch15",
    "SPSearch4 VSS Writer": "SPSearch4",
    "SMS Writer": "SMS_SITE_VSS_WRITER",
    "Task Scheduler Writer": "Schedule",
}

# Writer name -> the services that write the data its components protect, where that is not the writer's own service:
# what an in-place restore stops before the volumes go offline (SQL Server's writer is a service of its own; the
# engine of a named instance is MSSQL$<instance>, named by the user). Stop-Service -Force stops their dependents
# (SQLSERVERAGENT) too.
WRITER_APPLICATION_SERVICES = {
    "SqlServerWriter": ("MSSQLSERVER",),
    "Microsoft Exchange Writer": ("MSExchangeIS",),
    "Microsoft Exchange Replica Writer": ("MSExchangeIS",),
    "IIS Config Writer": ("W3SVC",),
    "IIS Metabase Writer": ("W3SVC",),
}

# Service hosting the Microsoft Exchange Writer on Exchange 2010 and earlier.
EXCHANGE_2010_WRITER_SERVICE = "MSExchangeIS"

# When every writer vanishes from the listing at once, the COM+ Event System service is usually the cause.
SERVICE_WHEN_ALL_WRITERS_MISSING = "EventSystem"

# Writers whose name carries an instance name, and the service name built from it.
_WRITER_SERVICE_PATTERNS = (
    (re.compile(r"^ADAM (?P<instance>.+) Writer$", re.IGNORECASE), "ADAM_{instance}"),
)


def writer_name_key(name: str) -> str:
    """A writer name as the collection compares it: without case, runs of spaces collapsed (tools and users differ)."""
    return " ".join(str(name).split()).casefold()


_WRITER_SERVICES_BY_KEY = {writer_name_key(name): service for name, service in WRITER_SERVICES.items()}


def writer_application_services(writer_name: str) -> list[str]:
    """The services that own the writer's data: WRITER_APPLICATION_SERVICES, else the writer's own service."""
    for name, services in WRITER_APPLICATION_SERVICES.items():
        if writer_name_key(name) == writer_name_key(writer_name):
            return list(services)
    service = writer_service(writer_name)
    return [service] if service else []


def writer_service(writer_name: str) -> str | None:
    """The service to restart for a failed writer, or None when the writer is not in the table (see writer_name_key)."""
    normalized = " ".join(writer_name.split())
    service = _WRITER_SERVICES_BY_KEY.get(writer_name_key(writer_name))
    if service:
        return service
    for pattern, template in _WRITER_SERVICE_PATTERNS:
        match = pattern.match(normalized)
        if match:
            return template.format(**match.groupdict())
    return None
