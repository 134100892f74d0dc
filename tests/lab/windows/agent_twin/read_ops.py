"""The twin's read ops: ``facts``, ``storage``, ``writers`` and ``shadows``, answered from the host's model with the
properties the agent selects from the cmdlets, WMI classes and native tools it reads."""

import base64

from ..locales import agent_decode, console_bytes
from ..powershell import text_lines
from ..render import diskshadow_list_writers_detailed, diskshadow_list_writers_status, diskshadow_script, vssadmin_list_writers
from .protocol import OUTPUT_LIMIT, WRITER_SOURCES, AgentError, diskshadow_command, get_property, hresult_in_text


def facts(model):
    """Win32_OperatingSystem, the registry's code pages and EditionID, diskshadow's presence, AwsVssComponents, IMDSv2."""
    ec2 = None
    if model.imds:
        ec2 = {"instance_id": model.instance_id, "region": model.region, "availability_zone": model.availability_zone,
               "account_id": model.account_id, "instance_type": model.instance_type}
    return {
        "hostname": model.hostname,
        "os_caption": model.os.caption,
        "os_version": model.os.version,
        "os_build": model.os.build,
        "os_edition": model.os.edition_id,
        "product_type": model.os.product_type,
        "is_server": model.os.is_server,
        "powershell_version": model.os.powershell_version,
        "ui_culture": model.locale.name,
        "oem_code_page": model.locale.oem_code_page,
        "ansi_code_page": model.locale.ansi_code_page,
        "diskshadow_present": model.os.is_server,
        "aws_vss_components_version": model.aws_vss_components_version,
        "ec2": ec2,
    }


def storage(model):
    """Get-Disk, Win32_DiskDrive, Get-Partition, Get-Volume, Win32_ShadowStorage, dynamic disks, storage pools."""
    with model.lock:
        disks = sorted(model.storage.visible_disks(), key=lambda disk: disk.unique_id)
        return {
            "disks": [disk.describe() for disk in disks],
            # Pool members are hidden from Get-Disk, not from Win32_DiskDrive (where Xen's SCSI target ids are).
            "disk_drives": [disk.describe_drive() for disk in sorted(model.storage.disks, key=lambda d: d.number)],
            "partitions": [dict(partition) for partition in model.storage.partitions],
            "volumes": [volume.describe() for volume in model.storage.volumes],
            "shadow_storage": model.shadows.storage_rows(),
            "dynamic_disks": model.storage.dynamic_disks(),
            "storage_pools": [dict(pool) for pool in model.storage.storage_pools],
        }


def shadows(model):
    """Win32_ShadowCopy with the properties the agent selects. WMI prints ID and SetID in upper case (capture
    wmi_win32_shadowcopy_get_wmiobject_table_01), vssadmin and diskshadow in lower case."""
    found = []
    for record in model.shadows.list():
        attributes = record["Attributes"]
        exposed = model.shadows.exposure_of(record["ID"])
        found.append({
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
    return {"shadows": found}


def tool_text(model, raw):
    """What the agent keeps of a native tool's bytes: decoded with the console code page, lines joined with CRLF."""
    code_page = model.agent_code_page or model.locale.oem_code_page
    return "\r\n".join(text_lines(agent_decode(raw, code_page)))


def source_command(source):
    return "vssadmin.exe list writers" if source == "vssadmin" else diskshadow_command()


def render_writers_source(model, source):
    """The console text of one writer listing, rendered from the model."""
    model.services.start_vss()
    writers = model.writers.visible()
    if source == "vssadmin":
        return vssadmin_list_writers(model.locale, writers)
    commands = [("list writers status", diskshadow_list_writers_status(model.locale, writers))]
    if source == "diskshadow_detailed":
        commands.append(("list writers detailed", diskshadow_list_writers_detailed(model.locale, writers, model.writers.components)))
    return diskshadow_script(model.locale, model.hostname, model.clock(), commands)


def writers(host, args):
    """The raw text of ``vssadmin list writers`` and/or diskshadow's ``list writers status``/``detailed``."""
    model = host.model
    sources = get_property(args, "sources", ["vssadmin"])
    if not isinstance(sources, list):
        sources = [sources]
    if not sources:
        sources = ["vssadmin"]
    host.pause(model.tool_delay_seconds)
    outputs = {}
    for source in (str(source) for source in sources):
        if source not in WRITER_SOURCES:
            raise AgentError("unknown writers source '%s' (known: %s)" % (source, ", ".join(WRITER_SOURCES)),
                             where="at Get-WritersResult, <No file>")
        if source != "vssadmin" and not model.os.is_server:
            raise AgentError("diskshadow.exe is not on this host (it ships with Windows Server only)", command="diskshadow",
                             where="at Invoke-DiskShadow, <No file>")
        command = source_command(source)
        replayed = host.replays.take("writers", source)
        if replayed is not None:
            raw = base64.b64decode(replayed["raw_base64"]) if replayed.get("raw_base64") is not None else None
            data = raw if raw is not None else console_bytes(replayed.get("text") or "", model.locale.oem_code_page)
            exit_code = int(replayed.get("exit_code", 0))
        else:
            data, exit_code = console_bytes(render_writers_source(model, source), model.locale.oem_code_page), 0
        text = tool_text(model, data)
        if exit_code != 0:
            raise AgentError("%s exited with code %d" % (command, exit_code), hresult=hresult_in_text(text), command=command,
                             exit_code=exit_code, output=text[:OUTPUT_LIMIT], where="at Assert-NativeSuccess, <No file>")
        outputs[source] = {"command": command, "text": text, "exit_code": exit_code}
    return {"oem_code_page": model.locale.oem_code_page, "outputs": outputs}
