"""The twin's restore ops: ``disk_online``, ``disk_offline``, ``shadow_revert``, ``shadow_expose``, ``shadow_unexpose``
and ``service_set``, carried out on the host's model the way the agent's restore_ops.ps1 carries them out with Set-Disk,
Set-Partition, Add-PartitionAccessPath, diskshadow, vssadmin and the service controller.

Set-Disk brings a disk that collides with an online disk online by re-signing it, as Windows does: the agent (and its
twin) never refuses it; the controller decides whether to ask. ``vssadmin revert shadow`` of a persistent shadow copy
that is not client-accessible answers what the host's ``vssadmin_revert`` setting says (undocumented: FACTS.md).
"""

import re

from ..diskshadow import run_diskshadow
from ..diskshadow.common import HRESULTS
from ..locales import console_bytes
from .protocol import (
    OUTPUT_LIMIT,
    SHADOWSNAP_ROOT,
    AgentError,
    checked_guid,
    diskshadow_command,
    hresult_in_text,
    int_argument,
)
from .read_ops import tool_text
from .session_ops import SERVICE_NAME

SERVICE_STATES = ("stopped", "running")
REVERT_TOOLS = ("diskshadow", "vssadmin")
DRIVE_LETTER = re.compile(r"^[D-Zd-z]$")
EXPOSE_PATH = re.compile(r'^([D-Zd-z]:|[A-Za-z]:\\[^"*?<>|]+)$')
RECORD_ROOT = SHADOWSNAP_ROOT + "\\restores"
RECORD_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _disk_number(value):
    text = "" if value is None else str(value).strip()
    if not re.match(r"^\d+$", text):
        raise AgentError("'%s' is not a disk number" % value, where="at Get-DiskNumberArgument, <No file>")
    return int(text)


def _disk(model, number):
    try:
        return model.storage.disk_by_number(number)
    except KeyError:
        raise AgentError("No MSFT_Disk objects found with property 'Number' equal to '%d'." % number,
                         hresult="0x80041002", where="at Get-DiskState, <No file>") from None


def disk_state(model, disk):
    """Get-DiskState: the disk, its data partition's number, drive letter and access paths."""
    described = disk.describe()
    volume = model.storage.volume_on(disk)
    partitions = [p for p in model.storage.partitions if p["DiskNumber"] == disk.number and p["Type"] in ("Basic", "IFS")]
    partition = max(partitions, key=lambda p: p["Size"]) if partitions else None
    return {
        "number": disk.number,
        "is_offline": disk.offline,
        "is_read_only": disk.read_only,
        "guid": described["Guid"] or "",
        "signature": described["Signature"],
        "partition_number": partition["PartitionNumber"] if partition else None,
        "drive_letter": volume.drive_letter if volume else None,
        "access_paths": list(partition["AccessPaths"]) if partition else [],
    }


def disk_online(host, args):
    model = host.model
    disks = args.get("disks") or []
    if not isinstance(disks, list) or not disks:
        raise AgentError("disk_online needs disks")
    answers = []
    with model.lock, model.blockstore.locked():
        for item in disks:
            item = item if isinstance(item, dict) else {}
            disk = _disk(model, _disk_number(item.get("number")))
            model.storage.set_online(disk, bool(item.get("read_only")))
            volume = model.storage.volume_on(disk)
            letter = str(item.get("drive_letter") or "")
            if volume is not None and letter:
                if not DRIVE_LETTER.match(letter):
                    raise AgentError("'%s' is not a drive letter D..Z" % letter, where="at Invoke-DiskOnline, <No file>")
                if volume.drive_letter != letter.upper():
                    try:
                        model.storage.set_drive_letter(volume, letter)
                    except ValueError as error:
                        raise AgentError("The requested access path is already in use. (%s)" % error,
                                         hresult="0x80070055", where="at Invoke-DiskOnline, <No file>") from error
            for path in item.get("access_paths") or []:
                if volume is not None and path:
                    model.storage.add_access_path(volume, str(path))
            answers.append(disk_state(model, disk))
    return {"disks": answers}


def disk_offline(host, args):
    model = host.model
    numbers = args.get("numbers") or []
    if not isinstance(numbers, list) or not numbers:
        raise AgentError("disk_offline needs numbers")
    answers = []
    with model.lock:
        for value in numbers:
            disk = _disk(model, _disk_number(value))
            model.storage.set_offline(disk)
            answers.append(disk_state(model, disk))
    return {"disks": answers}


def _native_failure(model, command, text, exit_code):
    text = tool_text(model, console_bytes(text, model.locale.oem_code_page))
    return AgentError("%s exited with code %d" % (command, exit_code), hresult=hresult_in_text(text), command=command,
                      exit_code=exit_code, output=text[:OUTPUT_LIMIT], where="at Assert-NativeSuccess, <No file>")


def _vssadmin_revert(model, shadow_id):
    """``vssadmin revert shadow /shadow={id} /ForceDismount /Quiet``: (text, exit code)."""
    banner = "\r\n".join(model.locale.vssadmin_banner) + "\r\n\r\n"
    if not model.os.is_server:
        return banner + "Error: Invalid command.\r\n", 1
    record = model.shadows.record(shadow_id)
    if record is None:
        return banner + "Error: 0x%08x\r\n" % HRESULTS["VSS_E_OBJECT_NOT_FOUND"], 2
    problem = model.shadows.revert_problem(record)
    if problem is not None:
        return banner + "Error: %s: 0x%08x\r\n" % (problem[1], HRESULTS[problem[0]]), 2
    if not record["ClientAccessible"] and model.vssadmin_revert == "refuse":
        return banner + "Error: 0x%08x\r\n" % HRESULTS["VSS_E_UNSUPPORTED_CONTEXT"], 2
    model.shadows.revert(record["ID"])
    return banner, 0


def shadow_revert(host, args):
    model = host.model
    shadow_id = checked_guid(args.get("shadow_id"))
    tool = str(args.get("tool") or "")
    if tool not in REVERT_TOOLS:
        raise AgentError("argument 'tool' may hold %s, not '%s'" % (", ".join(REVERT_TOOLS), tool),
                         where="at Invoke-ShadowRevert, <No file>")
    if tool == "diskshadow":
        if not model.os.is_server:
            raise AgentError("diskshadow.exe is not on this host (it ships with Windows Server only)", command="diskshadow",
                             where="at Invoke-DiskShadow, <No file>")
        command = diskshadow_command()
        result = run_diskshadow(model, "revert %s\r\n" % shadow_id)
        text, exit_code = result.output, result.exit_code
    else:
        command = "vssadmin.exe revert shadow /shadow=%s /ForceDismount /Quiet" % shadow_id
        text, exit_code = _vssadmin_revert(model, shadow_id)
    if exit_code != 0:
        raise _native_failure(model, command, text, exit_code)
    return {"shadow_id": shadow_id, "tool": tool, "command": command,
            "output": tool_text(model, console_bytes(text, model.locale.oem_code_page))[:OUTPUT_LIMIT]}


def _exposure(model, args, function, script):
    """diskshadow ``script`` (an expose or unexpose of ``args.path``) as Invoke-<function> runs it: (path, output)."""
    path = str(args.get("path") or "")
    if not EXPOSE_PATH.match(path):
        raise AgentError("'%s' is neither a drive letter (X:) nor a folder path" % path, where="at %s, <No file>" % function)
    if not model.os.is_server:
        raise AgentError("diskshadow.exe is not on this host (it ships with Windows Server only)", command="diskshadow",
                         where="at Invoke-DiskShadow, <No file>")
    result = run_diskshadow(model, script % path)
    if result.exit_code != 0:
        raise _native_failure(model, diskshadow_command(), result.output, result.exit_code)
    return path, tool_text(model, console_bytes(result.output, model.locale.oem_code_page))[:OUTPUT_LIMIT]


def shadow_expose(host, args):
    shadow_id = checked_guid(args.get("shadow_id"))
    path, output = _exposure(host.model, args, "Invoke-ShadowExpose", 'expose %s "%%s"\r\n' % shadow_id)
    return {"shadow_id": shadow_id, "path": path, "output": output}


def shadow_unexpose(host, args):
    path, output = _exposure(host.model, args, "Invoke-ShadowUnexpose", 'unexpose "%s"\r\n')
    return {"path": path, "output": output}


def _record_path(args):
    """Get-ServiceRecordPath: the file of the services a restore stopped, or None without ``record``."""
    record = args.get("record")
    if record in (None, ""):
        return None
    if not RECORD_NAME.match(str(record)):
        raise AgentError("'%s' is not a service record name" % record, where="at Get-ServiceRecordPath, <No file>")
    return RECORD_ROOT + "\\" + str(record) + ".txt"


def _read_record(model, path):
    data = model.files.read(path) if path else None
    return [line for line in (data or b"").decode("ascii").splitlines() if line]


def service_set(host, args):
    """Invoke-ServiceSet. With ``record``, a stop first adds the services it finds running to the record (written
    before any of them stops), and a start also starts the recorded ones, then removes the record."""
    model = host.model
    state = str(args.get("state") or "")
    if state not in SERVICE_STATES:
        raise AgentError("argument 'state' may hold %s, not '%s'" % (", ".join(SERVICE_STATES), state),
                         where="at Invoke-ServiceSet, <No file>")
    names = args.get("names") or []
    names = [str(name) for name in (names if isinstance(names, list) else [names]) if name is not None]
    record_path = _record_path(args)
    recorded = _read_record(model, record_path)
    if state == "running":
        names += [name for name in recorded if name.lower() not in (n.lower() for n in names)]
    if not names and record_path is None:
        raise AgentError("service_set needs names")
    int_argument("service_set", args, "timeout_seconds")
    found = []
    for name in names:
        if not SERVICE_NAME.match(name):
            raise AgentError("'%s' is not a service name" % name, where="at Invoke-ServiceSet, <No file>")
        service = model.services.find(name)
        if service is None:
            raise AgentError("there is no service '%s' on this host" % name, where="at Invoke-ServiceSet, <No file>")
        found.append(service)
    if state == "stopped" and record_path is not None:
        running = [s.name for s in found if s.status != "Stopped" and s.name.lower() not in (r.lower() for r in recorded)]
        if running:
            recorded += running
            model.files.protect(SHADOWSNAP_ROOT)
            model.files.write(record_path, "".join(name + "\r\n" for name in recorded).encode("ascii"))
    services = []
    for service in found:
        previous = service.status
        model.services.set_state(service.name, "Stopped" if state == "stopped" else "Running")
        services.append({"name": service.name, "previous_status": previous, "status": service.status})
    if state == "running" and record_path is not None and model.files.exists(record_path):
        model.files.delete(record_path)
    return {"services": services, "recorded": recorded}
