"""The SSM state of the lab: AWS's own VSS path (``AWSEC2-CreateVssSnapshot``) emulated on the Windows models.

moto 5 stores a SendCommand and answers every invocation ``Success`` at once, with no effect; it knows neither
DescribeInstanceInformation nor ListCommandInvocations. :class:`SsmBehaviour` is what moto's SSM backend runs in the
lab process instead (lab.aws.ssm_responses installs it), so that the AWS-owned document ``AWSEC2-CreateVssSnapshot``
does what AWS documents (EC2 User Guide, "Create VSS based snapshots using Systems Manager command documents", and
FACTS.md):

* its parameters are strings (``ExcludeBootVolume``, ``NoWriters``, ``CopyOnly``, ``CreateAmi``, ``description``,
  ``tags``, ``executionTimeout``...); ``tags`` is ``Key=K,Value=V;Key=...``, and naming a reserved tag (``Device``,
  ``AppConsistent``, ``AwsVssConfig``) is an error;
* it needs AwsVssComponents on the instance (the model's ``aws_vss_components_version``) and is unsupported on
  t2/t3/t3a nano and micro;
* it freezes the writers (unless ``NoWriters``; SqlServerWriter flushes its journal and holds it), calls
  CreateSnapshots for all volumes, or all but boot, inside the freeze (through moto's backend, so the data plane
  captures the content), thaws, sends BackupComplete for a full backup (``CopyOnly`` ``False``, AWS's default), and
  tags every snapshot ``Device``, ``AppConsistent=true``, ``AwsVssConfig`` and ``Name`` (empty unless given);
* the invocation answers ``InProgress`` for ``run_seconds`` and then its terminal status, with StandardOutputContent.

What AWS does not document, and the lab therefore chose (lab wording, not AWS's): the text of StandardOutputContent,
the format of the ``AwsVssConfig`` value (AWS says only that it holds "meta information such as the AwsVssComponents
version"; the lab writes ``Version=<v>;SnapshotSetId=<guid>;CopyOnly=<b>;NoWriters=<b>``), and a writer that fails at
Freeze: by default the command fails and no snapshot is created (``on_writer_failure: fail``); with
``crash_fallback`` the snapshots are created anyway and tagged ``AppConsistent=false``, so a test can show what a
caller must do with a verdict that is not ``true``.
"""

import datetime
import threading
import time
import uuid
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends

DOCUMENT_NAME = "AWSEC2-CreateVssSnapshot"
RESERVED_TAGS = ("Device", "AppConsistent", "AwsVssConfig")
UNSUPPORTED_TYPES = ("t2.nano", "t2.micro", "t3.nano", "t3.micro", "t3a.nano", "t3a.micro")
AGENT_VERSION = "3.3.1345.0"
PLUGIN_NAME = "CreateVssSnapshot"
SQL_WRITER_NAME = "SqlServerWriter"
# Writer states (vss.h VSS_WRITER_STATE): stable 1, waiting for freeze 2, for thaw 3, for post-snapshot 4, for
# backup complete 5, failed at freeze 9.
STABLE, WAITING_FOR_FREEZE, WAITING_FOR_THAW, WAITING_FOR_POST_SNAPSHOT, WAITING_FOR_BACKUP_COMPLETE = 1, 2, 3, 4, 5
FAILED_AT_FREEZE = 9


@dataclass
class SsmSettings:
    """Switchable at run time through the lab's control API (``PUT /_lab/ssm``)."""

    run_seconds: float = 1.0
    on_writer_failure: str = "fail"
    unmanaged: tuple = ()


class DocumentFailure(Exception):
    """The document's step failed on the instance: the invocation ends ``Failed`` with this output."""


def parse_tags(text):
    """``Key=Environment,Value=Test;Key=User,Value=TestUser1`` -> dict (the document's ``tags`` parameter)."""
    tags = {}
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        fields = dict(part.split("=", 1) for part in item.split(",") if "=" in part)
        if "Key" not in fields:
            raise DocumentFailure("Invalid tags parameter %r: expected Key=<key>,Value=<value>" % item)
        tags[fields["Key"].strip()] = fields.get("Value", "").strip()
    return tags


def _flag(parameters, name, default="False"):
    values = parameters.get(name) or [default]
    value = values[0] if isinstance(values, list) else values
    if str(value) not in ("True", "False"):
        raise DocumentFailure("Parameter %s must be True or False, not %r" % (name, value))
    return str(value) == "True"


def _writer_failed(writer):
    return 6 <= writer.state <= 15 or writer.error != "no_error"


class SsmBehaviour:
    """Installs the emulation of ``AWSEC2-CreateVssSnapshot`` into moto's SSM backend of this process."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.settings = SsmSettings()
        self._lock = threading.RLock()
        self._results = {}

    def reset(self):
        with self._lock:
            self.settings = SsmSettings()
            self._results.clear()

    def configure(self, **values):
        with self._lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown SSM setting %r" % name)
                if name == "on_writer_failure" and value not in ("fail", "crash_fallback"):
                    raise ValueError("on_writer_failure must be fail or crash_fallback")
                setattr(self.settings, name, tuple(value) if name == "unmanaged" else type(getattr(self.settings, name))(value))

    def describe(self):
        with self._lock:
            return {"run_seconds": self.settings.run_seconds, "on_writer_failure": self.settings.on_writer_failure,
                    "unmanaged": list(self.settings.unmanaged)}

    # ------------------------------------------------------------------------------------------ the hosts
    def _model(self, instance_id):
        for host in list(self.fleet.hosts.values()):
            if host.model.instance_id == instance_id:
                return host.model
        return None

    def managed(self, instance_id):
        return self._model(instance_id) is not None and instance_id not in self.settings.unmanaged

    def instance_information(self, ec2_backend, instance_ids=None):
        """DescribeInstanceInformation items: every lab Windows host with a running instance (SSM agent online)."""
        items = []
        for host in list(self.fleet.hosts.values()):
            model = host.model
            if instance_ids and model.instance_id not in instance_ids:
                continue
            if model.instance_id in self.settings.unmanaged:
                continue
            try:
                instance = ec2_backend.get_instance(model.instance_id)
            except Exception:  # pylint: disable=broad-except
                continue
            if instance._state.name != "running":  # pylint: disable=protected-access
                continue
            items.append({
                "InstanceId": model.instance_id, "PingStatus": "Online", "LastPingDateTime": datetime.datetime.now(datetime.timezone.utc),
                "AgentVersion": AGENT_VERSION, "IsLatestVersion": True, "PlatformType": "Windows",
                "PlatformName": model.os.caption if hasattr(model.os, "caption") else "Microsoft Windows Server",
                "ResourceType": "EC2Instance", "ComputerName": model.hostname, "IPAddress": "10.0.0.10",
            })
        return items

    # --------------------------------------------------------------------------------------- the document
    def run_document(self, ec2_backend, instance_id, parameters):
        """The document's effect on one instance: (status, output, snapshot ids)."""
        model = self._model(instance_id)
        try:
            instance = ec2_backend.get_instance(instance_id)
            if instance.instance_type in UNSUPPORTED_TYPES:
                raise DocumentFailure("Instance type %s is not supported for VSS-enabled snapshots. Use an instance type "
                                      "larger than nano or micro." % instance.instance_type)
            if not model.aws_vss_components_version:
                raise DocumentFailure("AwsVssComponents is not installed on this instance. Install the AwsVssComponents "
                                      "package (AWS-ConfigureAWSPackage) or run AWSEC2-VssInstallAndSnapshot.")
            if _flag(parameters, "CreateAmi"):
                raise DocumentFailure("CreateAmi=True is not emulated by the lab")
            user_tags = parse_tags((parameters.get("tags") or [""])[0])
            reserved = sorted(set(user_tags) & set(RESERVED_TAGS))
            if reserved:
                raise DocumentFailure("The tags parameter must not contain the reserved tag(s) %s." % ", ".join(reserved))
            snapshots, app_consistent, set_id = self._snapshot(
                ec2_backend, instance, model, exclude_boot=_flag(parameters, "ExcludeBootVolume"),
                no_writers=_flag(parameters, "NoWriters"), copy_only=_flag(parameters, "CopyOnly"),
                description=(parameters.get("description") or [""])[0], user_tags=user_tags)
        except DocumentFailure as failure:
            return "Failed", "ERROR: %s\r\n" % failure, []
        lines = ["Creating VSS snapshot set %s of instance %s." % (set_id, instance_id)]
        lines += ["Snapshot %s of volume %s (%s) created." % (s.id, s.volume.id, s.device) for s in snapshots]
        lines.append("AppConsistent=%s" % ("true" if app_consistent else "false"))
        return "Success", "\r\n".join(lines) + "\r\n", [s.id for s in snapshots]

    # pylint: disable-next=too-many-arguments,too-many-locals
    def _snapshot(self, ec2_backend, instance, model, exclude_boot, no_writers, copy_only, description, user_tags):
        set_id = "{%s}" % uuid.uuid4()
        details = {"requester": "ec2-vss-agent", "set_id": set_id, "backup_type": "copy" if copy_only else "full"}
        writers = [] if no_writers else model.writers.visible()
        faulted = {rule["writer"] for rule in model.vss_faults.take(("writer_fail_at_freeze", "writer_timeout"))}
        failed = [w for w in writers if _writer_failed(w) or w.name in faulted]
        healthy = [w for w in writers if w not in failed]
        if failed and self.settings.on_writer_failure == "fail":
            for writer in failed:
                model.writers.transition(writer, FAILED_AT_FREEZE, "Freeze", error="retryable", failed=True, **details)
            for writer in healthy:
                model.writers.transition(writer, STABLE, "Abort", **details)
            raise DocumentFailure("VSS snapshot set creation failed: the writer '%s' failed at Freeze "
                                  "(VSS_E_WRITERERROR_RETRYABLE). No snapshot was created." % failed[0].name)
        journal = None
        for writer in healthy:
            model.writers.transition(writer, STABLE, "PrepareForBackup", error="no_error", **details)
            model.writers.transition(writer, WAITING_FOR_FREEZE, "PrepareForSnapshot", **details)
        try:
            for writer in healthy:
                if writer.name == SQL_WRITER_NAME and model.application.journal is not None:
                    model.application.journal.freeze()
                    journal = model.application.journal
                model.writers.transition(writer, WAITING_FOR_THAW, "Freeze", **details)
            spec = {"InstanceId": instance.id, "ExcludeBootVolume": "true" if exclude_boot else "false"}
            try:
                snapshots = ec2_backend.create_snapshots(spec, description, {})
            except EC2ClientError as error:
                for writer in healthy:
                    model.writers.transition(writer, STABLE, "Abort", **details)
                raise DocumentFailure("CreateSnapshots failed: %s" % error) from error
        finally:
            if journal is not None:
                journal.thaw()
        for writer in healthy:
            model.writers.transition(writer, WAITING_FOR_POST_SNAPSHOT, "Thaw", **details)
            model.writers.transition(writer, WAITING_FOR_BACKUP_COMPLETE, "PostSnapshot", **details)
            model.writers.transition(writer, STABLE, "BackupShutdown" if copy_only else "BackupComplete", **details)
        app_consistent = not failed
        model.vss_events.record("SnapshotSetCreated", set_id=set_id, no_writers=no_writers,
                                writers=[w.name for w in healthy], **{k: v for k, v in details.items() if k != "set_id"})
        devices = {m.volume_id: name for name, m in instance.block_device_mapping.items()}
        config = "Version=%s;SnapshotSetId=%s;CopyOnly=%s;NoWriters=%s" % (
            model.aws_vss_components_version, set_id, copy_only, no_writers)
        for snapshot in snapshots:
            snapshot.device = devices.get(snapshot.volume.id, "")
            tags = {"Name": ""}
            tags.update(user_tags)
            tags.update({"Device": snapshot.device, "AppConsistent": "true" if app_consistent else "false",
                         "AwsVssConfig": config})
            snapshot.add_tags(tags)
        return snapshots, app_consistent, set_id

    # ------------------------------------------------------------------------------------------- invocations
    def send_command(self, backend, command):
        """After moto stored a SendCommand of the document: run it and keep each invocation's terminal answer."""
        ec2_backend = ec2_backends[backend.account_id][backend.region_name]
        started = time.monotonic()
        finals = {}
        for instance_id in command.instance_ids:
            status, output, snapshot_ids = self.run_document(ec2_backend, instance_id, command.parameters)
            finals[instance_id] = {"Status": status, "StatusDetails": status, "ResponseCode": 0 if status == "Success" else 1,
                                   "StandardOutputContent": output, "snapshot_ids": snapshot_ids}
        with self._lock:
            self._results[command.command_id] = (started + self.settings.run_seconds, finals)

    def invocation(self, command, instance_id):
        """GetCommandInvocation's answer: InProgress until the run time has passed, then the terminal one."""
        invocation = dict(command.get_invocation(instance_id, None))
        with self._lock:
            entry = self._results.get(command.command_id)
        if entry is None:
            return invocation
        ready_at, finals = entry
        invocation["PluginName"] = PLUGIN_NAME
        requested = command.requested_date_time
        invocation["ExecutionStartDateTime"] = requested.isoformat()
        if time.monotonic() < ready_at:
            invocation.update({"Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1,
                               "StandardOutputContent": "", "ExecutionEndDateTime": "", "ExecutionElapsedTime": ""})
            return invocation
        final = finals[instance_id]
        invocation.update({key: value for key, value in final.items() if key != "snapshot_ids"})
        end = requested + datetime.timedelta(seconds=self.settings.run_seconds)
        invocation["ExecutionEndDateTime"] = end.isoformat()
        invocation["ExecutionElapsedTime"] = "PT%.3fS" % self.settings.run_seconds
        return invocation
