"""Starts, seeds, resets and stops the lab; the one entry point for the tests, the benchmarks and ``make demo``.

The lab runs in one process: moto (a thread), the fault proxy (a thread) with the control API under ``/_lab/`` on the
same port, the data plane, and one simulated Windows Server per seeded instance, each behind its own WinRM endpoint
(lab.windows). Clients reach AWS through the proxy with ``AWS_ENDPOINT_URL`` and the Windows hosts with the connection
info of ``state()["windows_hosts"]``; tests and benchmarks switch faults, writer states and replays and read counts
through :class:`LabClient`.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3

from lab.aws import (CopyBehaviour, CopyLabClient, EbsBehaviour, EbsVolumes, FaultProxy, InstanceStates, MotoServer,
                     RetentionBehaviour, RetentionLabClient, SsmBehaviour, install_into_moto, instance_responses,
                     volume_responses)
from lab.dataplane import BlockStore
from lab.topology import DEFAULT_TOPOLOGY, fleet_topology
from lab.windows import WindowsFleet, write_inventory

REGION = "us-east-1"
LAB_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lab-access-key", "AWS_SECRET_ACCESS_KEY": "lab-secret-key"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def windows_image_id(ec2):
    images = ec2.describe_images(Filters=[{"Name": "platform", "Values": ["windows"]}])["Images"]
    if not images:
        raise RuntimeError("moto offers no Windows AMI to seed from")
    return sorted(images, key=lambda image: image["ImageId"])[0]["ImageId"]


def seed_instances(ec2, topology):
    """Create the topology's instances with their volumes at the given device names, encrypted with the account's
    aws/ebs key (EBS encryption by default); return their descriptions."""
    image_id = windows_image_id(ec2)
    seeded = []
    for host in topology:
        mappings = [
            {"DeviceName": v["device"],
             "Ebs": {"VolumeSize": v["size"], "VolumeType": "gp3", "DeleteOnTermination": True, "Encrypted": True}}
            for v in host["volumes"]
        ]
        reservation = ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType=host["instance_type"],
            BlockDeviceMappings=mappings,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": host["name"]}]}],
            **({"Placement": {"AvailabilityZone": host["availability_zone"]}} if host.get("availability_zone") else {}),
        )
        instance = reservation["Instances"][0]
        attached = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
        volumes = []
        for volume in host["volumes"]:
            entry = dict(volume)
            entry["volume_id"] = attached[volume["device"]]
            volumes.append(entry)
        seeded.append(
            {
                "name": host["name"],
                "instance_id": instance["InstanceId"],
                "instance_type": host["instance_type"],
                "style": host["style"],
                "availability_zone": instance["Placement"]["AvailabilityZone"],
                "root_device_name": instance["RootDeviceName"],
                "volumes": volumes,
                "windows": dict(host.get("windows") or {}),
            }
        )
    return seeded


class Lab:
    """The lab in this process.

    ``windows_scheme``/``windows_auth`` are the defaults of the Windows hosts' WinRM endpoints (Basic over HTTP; a
    topology host may override them with ``windows.winrm``).
    """

    def __init__(self, topology=None, windows_scheme="http", windows_auth=("basic",)):
        self.topology = topology or DEFAULT_TOPOLOGY
        self.blockstore = BlockStore()
        self.ebs = EbsBehaviour(self.blockstore)
        self.volumes = EbsVolumes(self.blockstore)
        self.instance_states = InstanceStates()
        self.moto = MotoServer(free_port())
        self.proxy = FaultProxy(self.moto.port, control=self.handle_control)
        self.windows = WindowsFleet(self.blockstore, REGION, scheme=windows_scheme, auth=windows_auth)
        # The Windows hosts follow their disks through EC2's attach and detach events.
        self.volumes.subscribe(self.windows.volume_event)
        # An instance started from a restored Windows root boots a Windows host of its own.
        self.instance_states.subscribe(self.windows.instance_event)
        self.ssm = SsmBehaviour(self.windows)
        self.retention = RetentionBehaviour(self.blockstore, self.ebs, REGION)
        self.proxy.services.update(self.retention.services)
        self.copies = CopyBehaviour(self.blockstore)
        self.instances = []
        self._lock = threading.Lock()

    def start(self):
        install_into_moto(self.ebs, self.ssm, self.volumes, self.instance_states, self.retention, self.copies)
        self.moto.start()
        self.proxy.start()
        self.seed()
        self.windows.sync(self.instances)
        return self

    def stop(self):
        self.windows.stop()
        self.proxy.stop()
        self.moto.stop()

    def ec2(self):
        """A client that talks to moto directly: set-up traffic is not counted by the proxy."""
        return boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=self.moto.url,
            aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def seed(self):
        self.instances = seed_instances(self.ec2(), self.topology)

    def reset(self, topology=None):
        """Back to a freshly seeded lab (the default topology unless one is given): moto state, EBS settings, faults,
        counts and volume content.

        The Windows hosts are rebuilt for the reseeded instances (new volume ids); a host whose name survives keeps its
        WinRM endpoint and port, with faults, replays and counters cleared.
        """
        with self._lock:
            urllib.request.urlopen(urllib.request.Request(self.moto.url + "/moto-api/reset", method="POST"), timeout=30).close()
            self.ebs.reset()
            self.volumes.reset()
            self.instance_states.reset()
            self.ssm.reset()
            self.retention.reset()
            self.copies.reset()
            self.proxy.plan.clear()
            self.proxy.counter.reset()
            self.blockstore.reset()
            self.topology = topology or DEFAULT_TOPOLOGY
            self.seed()
            self.windows.sync(self.instances)

    def state(self):
        return {
            "pid": os.getpid(),
            "region": REGION,
            "aws_endpoint_url": self.proxy.url,
            "moto_endpoint_url": self.moto.url,
            "control_url": self.proxy.url + "/_lab",
            "environment": dict(LAB_CREDENTIALS, AWS_ENDPOINT_URL=self.proxy.url, AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION),
            "instances": self.instances,
            "windows_hosts": self.windows.state(),
        }

    def write_inventory(self, path, fmt=None):
        """An Ansible inventory (INI or YAML, from the extension) of the Windows hosts; see docs/lab-windows.md."""
        return write_inventory(path, self.windows.state(), fmt)

    def handle_control(self, method, path, body):
        """The control API: small JSON documents over HTTP, used by :class:`LabClient`."""
        if path.split("?")[0].rstrip("/") == "/_lab/windows" or path.startswith("/_lab/windows/"):
            status, result = self.windows.handle_control(method, path, body)
            return status, json.dumps(result).encode()
        if path.startswith("/_lab/retention/"):
            status, result = self.retention.handle_control(method, path, body)
            return status, json.dumps(result).encode()
        if path.split("?")[0].rstrip("/") == "/_lab/copies" or path.startswith("/_lab/copies/"):
            status, result = self.copies.handle_control(method, path, body)
            return status, json.dumps(result).encode()
        try:
            request = json.loads(body) if body else {}
            route = (method, path.split("?")[0].rstrip("/"))
            if route == ("GET", "/_lab/state"):
                result = self.state()
            elif route == ("GET", "/_lab/counts"):
                result = self.proxy.counter.snapshot()
            elif route == ("POST", "/_lab/counts/reset"):
                self.proxy.counter.reset()
                result = {}
            elif route == ("PUT", "/_lab/faults"):
                self.proxy.plan.configure(**request)
                result = self.proxy.plan.describe()
            elif route == ("DELETE", "/_lab/faults"):
                self.proxy.plan.clear()
                result = {}
            elif route == ("PUT", "/_lab/ebs"):
                self.ebs.configure(**request)
                result = vars(self.ebs.settings)
            elif route == ("GET", "/_lab/ebs/snapshots"):
                wanted = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).get("snapshot_id")
                result = self.ebs.points_in_time(wanted)
            elif route[1].startswith("/_lab/volumes/"):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
                result = volume_responses.control(self.volumes, method, route[1], query, request)
            elif route[1].startswith("/_lab/instances/"):
                result = instance_responses.control(self.instance_states, method, route[1], request)
            elif route == ("PUT", "/_lab/ssm"):
                self.ssm.configure(**request)
                result = self.ssm.describe()
            elif route == ("POST", "/_lab/reset"):
                topology = request.get("topology")
                if request.get("fleet"):
                    topology = fleet_topology(**request["fleet"])
                self.reset(topology)
                result = self.state()
            else:
                return 404, json.dumps({"error": "no such control endpoint: %s %s" % route}).encode()
            return 200, json.dumps(result).encode()
        except (TypeError, ValueError, KeyError) as error:
            return 400, json.dumps({"error": str(error)}).encode()


class LabClient(RetentionLabClient, CopyLabClient):
    """Talks to a running lab's control API (its retention calls: lab.aws.retention_client; its DR-copy calls:
    lab.aws.copy_client)."""

    def __init__(self, state):
        self.state = state
        self.url = state["control_url"]

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError("lab control %s %s failed: %s" % (method, path, error.read().decode())) from error

    def refresh(self):
        self.state = self._call("GET", "/state")
        return self.state

    def counts(self):
        return self._call("GET", "/counts")

    def reset_counts(self):
        self._call("POST", "/counts/reset", {})

    def faults(self, rules=(), latency_ms=0, rate_limits=None):
        return self._call("PUT", "/faults", {"rules": list(rules), "latency_ms": latency_ms, "rate_limits": rate_limits})

    def clear_faults(self):
        self._call("DELETE", "/faults")

    def ebs(self, **settings):
        """EBS behaviour: ``pending_seconds``, ``per_volume_interval``, ``max_pending_per_volume``,
        ``clock_offset_seconds`` (EC2's clock ahead of the lab's), ``describe_delay_seconds`` and
        ``describe_delay_calls`` (DescribeSnapshots eventually consistent for the collection's calls)."""
        return self._call("PUT", "/ebs", settings)

    def snapshot_points(self, snapshot_ids=None):
        """``{snapshot id: record}`` of the EBS snapshots' points in time with microseconds: ``point_in_time`` on EC2's
        clock, ``lab_time`` on the lab's (compare with the VSS events' ``lab_time``), moto's ``start_time`` (cut to the
        second), ``action``, ``volume_id``, ``describe_calls`` (client DescribeSnapshots calls it was hidden from)."""
        query = "?" + urllib.parse.urlencode([("snapshot_id", i) for i in snapshot_ids]) if snapshot_ids else ""
        return self._call("GET", "/ebs/snapshots" + query)

    def volumes(self, **settings):
        """EBS volume behaviour (lab.aws.volume_models): ``creating_seconds`` (CreateVolume to ``available``),
        ``attaching_seconds``, ``detaching_seconds``, ``storage_limit_gib`` (the Region's storage quota: beyond it
        CreateVolume answers VolumeLimitExceeded; None: no limit). Answers all of them."""
        return self._call("PUT", "/volumes/settings", settings)

    def instances(self, **settings):
        """EC2 instance behaviour (lab.aws.instance_models): ``pending_seconds`` (RunInstances and StartInstances to
        ``running``), ``stopping_seconds`` (StopInstances to ``stopped``). Answers both."""
        return self._call("PUT", "/instances/settings", settings)

    def attachments(self, instance_id=None):
        """``{instance id: [{device, volume_id, state, root}]}``: what each instance has attached now (``state``
        ``attaching``, ``attached`` or ``detaching``), as the Windows side of the instance sees its disks."""
        query = "?instance_id=%s" % urllib.parse.quote(instance_id) if instance_id else ""
        return self._call("GET", "/volumes/attachments" + query)

    def attachment_events(self, instance_id=None):
        """Completed attaches and detaches in order: ``seq``, ``event`` (``attached``, ``detached``), ``instance_id``,
        ``volume_id``, ``device``, ``lab_time``."""
        query = "?instance_id=%s" % urllib.parse.quote(instance_id) if instance_id else ""
        return self._call("GET", "/volumes/events" + query)

    def volume_content(self, volume_id):
        """A volume's image in the data plane: ``files`` (path -> bytes) and ``shadows`` (the shadow ids stored in it)."""
        document = self._call("GET", "/volumes/content?volume_id=%s" % urllib.parse.quote(volume_id))
        document["files"] = {path: base64.b64decode(data) for path, data in document["files"].items()}
        return document

    def ssm(self, **settings):
        """AWSEC2-CreateVssSnapshot's emulation (lab.aws.ssm_models): ``run_seconds`` (InProgress time),
        ``on_writer_failure`` (``fail`` or ``crash_fallback``), ``unmanaged`` (instance ids the SSM agent ignores)."""
        return self._call("PUT", "/ssm", settings)

    def reset(self, topology=None, fleet=None):
        payload = {}
        if topology is not None:
            payload["topology"] = topology
        if fleet is not None:
            payload["fleet"] = fleet
        self.state = self._call("POST", "/reset", payload)
        return self.state

    def ec2(self):
        """An EC2 client that talks to moto directly: what a test reads back is not counted by the proxy."""
        return boto3.client("ec2", region_name=self.state["region"], endpoint_url=self.state["moto_endpoint_url"],
                            aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def instance(self, name):
        for instance in self.state["instances"]:
            if instance["name"] == name:
                return instance
        raise KeyError("no lab instance named %s" % name)

    # The Windows hosts (see docs/lab-windows.md).
    def windows_host(self, name):
        """The connection info of one Windows host, from the state this client holds."""
        for host in self.state["windows_hosts"]:
            if host["name"] == name:
                return host
        raise KeyError("no lab Windows host named %s" % name)

    def write_inventory(self, path, fmt=None):
        """An Ansible inventory of the Windows hosts (INI for .ini/.cfg, else YAML)."""
        return write_inventory(path, self.state["windows_hosts"], fmt)

    def host_state(self, name):
        """The model of one host: writers, services, volumes, settings, counters, faults, replays."""
        return self._call("GET", "/windows/%s" % name)

    def host_fault(self, name, kind, **options):
        """Arm a WinRM fault on one host: ``drop_connection``, ``http_error`` (status), ``latency`` (seconds) or
        ``reject_auth``, with ``action``/``after``/``times`` as in lab.winrm.faults; or ``drop_answer`` (``op``,
        ``after``, ``times``): the host carries out the agent op, and the answer is lost (the connection is reset).
        Returns the armed rules."""
        return self._call("PUT", "/windows/%s/faults" % name, dict(options, kind=kind))

    def clear_host_faults(self, name):
        self._call("DELETE", "/windows/%s/faults" % name, {})

    def set_writer_state(self, name, writer, state, error=None):
        """``writer`` by name or id (``*``: all; ``*`` + ``missing`` stops EventSystem); ``state`` a number 0-15, a
        VSS_WS name, ``healthy``, ``timed_out``, ``not_responding``, ``missing`` or ``present``."""
        return self._call("PUT", "/windows/%s/writers" % name, {"writer": writer, "state": state, "error": error})

    def set_service_state(self, name, service, state):
        """``Running``, ``Stopped`` or ``Restart`` (starting a writer's service gives it a new instance id)."""
        return self._call("PUT", "/windows/%s/services" % name, {"service": service, "state": state})

    def replay(self, name, op, **recorded):
        """Answer ``op`` with recorded output: ``source`` + ``text`` (or ``raw`` base64) for writers, ``result``,
        ``error``, or ``stdout``/``stderr``/``exit_code``; ``times`` (default 1, None: until cleared)."""
        return self._call("PUT", "/windows/%s/replay" % name, dict(recorded, op=op))

    def clear_replay(self, name, op=None):
        return self._call("DELETE", "/windows/%s/replay" % name, {"op": op})

    def host_counters(self, name=None):
        """``{"winrm": endpoint counters, "agent": round trips, per-op counts...}`` of one host, or of all by name."""
        return self._call("GET", "/windows/%s/counters" % name if name else "/windows/counters")

    def reset_host_counters(self, name=None):
        self._call("DELETE", "/windows/%s/counters" % name if name else "/windows/counters", {})

    def configure_host(self, name, **settings):
        """Run-time switches: imds, aws_vss_components_version, agent_code_page, tool_delay_seconds, locale."""
        return self._call("PUT", "/windows/%s/settings" % name, settings)

    def set_shadow_storage(self, name, volume, storage_volume, max_space=None):
        return self._call("PUT", "/windows/%s/shadow_storage" % name,
                          {"volume": volume, "storage_volume": storage_volume, "max_space": max_space})

    def write_transactions(self, name, count=1, changes=None):
        """Transactions of the host's SQL "application" (journal on D: and E:); returns their LSNs and the journal."""
        return self._call("POST", "/windows/%s/transactions" % name, {"count": count, "changes": changes})

    def write_file(self, name, path, text):
        return self._call("PUT", "/windows/%s/files" % name, {"path": path, "text": text})

    def set_folder_security(self, name, path, owner=None, protected=None, add_aces=(), junction_to=None):
        """What another account did to a folder of a host (created when missing): ``owner`` (a SID), ``protected``
        (inheritance off), ``add_aces`` (explicit entries: ``identity`` SID, ``rights``, ``type``, ``inheritance``),
        ``junction_to`` (the folder becomes a junction to that path). Returns the folder's security."""
        return self._call("PUT", "/windows/%s/folders" % name, {"path": path, "owner": owner, "protected": protected,
                                                                "add_aces": list(add_aces), "junction_to": junction_to})

    def hostile_session_directory(self, name, kind, path=None):
        """``%ProgramData%\\shadowsnap`` (or ``path``) prepared by the host's non-admin user ``lab-user`` before the
        agent ran: ``foreign_owner``, ``junction`` or ``extra_ace`` (see lab.windows.files); returns its security."""
        return self._call("PUT", "/windows/%s/folders" % name, {"hostile": kind, "path": path})

    def folder_security(self, name, path=None):
        """``{"root", "folders"}``: owner, reparse point (junction target) and explicit access entries of a host's
        folder (default ``%ProgramData%\\shadowsnap``) and of every folder created below it."""
        query = "?path=%s" % urllib.parse.quote(path) if path else ""
        return self._call("GET", "/windows/%s/folders%s" % (name, query))

    def read_file(self, name, path):
        return self._call("GET", "/windows/%s/files?path=%s" % (name, urllib.parse.quote(path)))

    def remove_files(self, name, path):
        """Remove-Item -Recurse of a host's file or folder (its files and their NTFS metadata)."""
        return self._call("DELETE", "/windows/%s/files?path=%s" % (name, urllib.parse.quote(path)))

    def set_file_info(self, name, path, **fields):
        """A file's or folder's own NTFS metadata on a host: ``owner`` (SID), ``aces`` (explicit entries: ``identity``,
        ``rights``, ``type``, ``inheritance``), ``protected`` (inheritance off), ``created``, ``modified`` (ISO)."""
        return self._call("PUT", "/windows/%s/file_info" % name, dict(fields, path=path))

    def file_info(self, name, path):
        """What Windows shows of a file or folder: exists, folder, size, owner, protected, times and ``access`` (the
        explicit and inherited entries, each with ``inherited``)."""
        return self._call("GET", "/windows/%s/file_info?path=%s" % (name, urllib.parse.quote(path)))

    # The shadow engine's lab side (see docs/lab-windows.md "The shadow engine").
    def read_file_bytes(self, name, path):
        """A file of a host's model file system as bytes (None when absent), e.g. a session's metadata .cab."""
        document = self.read_file(name, path)
        return base64.b64decode(document["base64"]) if document.get("base64") is not None else None

    def vss_fault(self, name, kind, **options):
        """Arm a VSS fault for the next shadow copy creations on a host: ``writer_fail_at_freeze`` (writer, error),
        ``writer_timeout`` (writer, seconds), ``snapshot_set_in_progress``, ``insufficient_storage`` (volume),
        ``provider_veto``, ``create_delay`` (seconds); ``times`` (default 1, None: until cleared)."""
        return self._call("PUT", "/windows/%s/vss_faults" % name, dict(options, kind=kind))

    def clear_vss_faults(self, name):
        return self._call("DELETE", "/windows/%s/vss_faults" % name, {})

    def vss_events(self, name, event=None, writer=None):
        """The host's VSS events in order (``seq``, ``time``, ``event``, ``writer``, ``set_id``, ``run_id``,
        ``backup_type``...): PrepareForBackup, PrepareForSnapshot, Freeze, Thaw, PostSnapshot, BackupComplete,
        BackupShutdown, Abort, SnapshotSetCreated, the failure phases; filtered by event name and writer."""
        query = urllib.parse.urlencode({key: value for key, value in (("event", event), ("writer", writer)) if value})
        return self._call("GET", "/windows/%s/events%s" % (name, "?" + query if query else ""))

    def writer_history(self, name, writer=None):
        """``{writer name: [state changes with time, state, event, run and set ids]}`` of a host (one writer if named)."""
        query = "?writer=%s" % urllib.parse.quote(writer) if writer else ""
        return self._call("GET", "/windows/%s/writer_history%s" % (name, query))

    def set_exec_exit_code(self, name, path, exit_code):
        """The exit code of a file diskshadow ``exec``s that is not one of the collection's scripts (None: back to 0)."""
        return self._call("PUT", "/windows/%s/exec_exit_codes" % name, {"path": path, "exit_code": exit_code})

    def sessions(self, name):
        """The host's session runs and their scheduled tasks (state, last result, age, time limit)."""
        return self._call("GET", "/windows/%s/sessions" % name)

    def start_application(self, name, interval=0.01, checkpoint_every=4, torn_pause=0.005):
        """The SQL "application" keeps writing in the background: lazy transactions, a checkpoint every few, written
        in two halves (a torn page on disk for ``torn_pause`` seconds)."""
        return self._call("POST", "/windows/%s/application" % name, {"action": "start", "interval": interval,
                                                                     "checkpoint_every": checkpoint_every, "torn_pause": torn_pause})

    def stop_application(self, name):
        return self._call("POST", "/windows/%s/application" % name, {"action": "stop"})

    def application_transactions(self, name, count=1, mode="sync", changes=None):
        """Transactions written as ``mode`` says: ``sync`` (data page right after the log), ``lazy`` (log only: the
        log runs ahead of the data), ``torn`` (the data page left half written)."""
        return self._call("POST", "/windows/%s/application" % name, {"action": "write", "count": count, "mode": mode, "changes": changes})

    def application_checkpoint(self, name):
        return self._call("POST", "/windows/%s/application" % name, {"action": "checkpoint"})

    def journal_check(self, name):
        """The invariant checker on the host's live D: and E: (the image a crash would leave now)."""
        return self._call("GET", "/windows/%s/application/check" % name)

    def snapshot_content(self, snapshot_id, shadow_id=None, include_system=False):
        """An EBS snapshot's files (path -> bytes), or those of the shadow copy ``shadow_id`` embedded in it (what the
        restored volume holds once reverted to that shadow); also ``shadows``: the shadow ids the snapshot carries."""
        query = {"shadow": shadow_id} if shadow_id else {}
        if include_system:
            query["system"] = "1"
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        document = self._call("GET", "/windows/snapshots/%s%s" % (snapshot_id, suffix))
        document["files"] = {path: base64.b64decode(data) for path, data in document["files"].items()}
        return document

    def snapshot_shadow_ids(self, snapshot_id):
        return self.snapshot_content(snapshot_id)["shadows"]

    def check_consistency(self, data, log):
        """The invariant checker on two images, each ``{"snapshot_id": ..., "shadow_id": ...}`` (an EBS snapshot, or
        a shadow copy embedded in one) or ``{"host": ..., "volume": "D:", "shadow_id": ...}`` (live or a shadow):
        ``{"consistent", "recoverable", "reasons", "applied_lsn", "last_log_lsn", "torn", "rows"}``."""
        return self._call("POST", "/windows/consistency", {"data": data, "log": log})


def serve(state_file):
    """Run the lab in the foreground until SIGTERM/SIGINT; the state file tells clients where it is."""
    lab = Lab().start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    temporary = state_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(lab.state(), handle, indent=2)
    os.replace(temporary, state_file)
    try:
        stopping.wait()
    finally:
        lab.stop()
        if os.path.exists(state_file):
            os.remove(state_file)


def start_detached(state_file, log_file, timeout=60):
    """Start the lab as a background process and wait until it has written its state file."""
    if os.path.exists(state_file):
        os.remove(state_file)
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
    with open(log_file, "ab") as log:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "lab", "serve", "--state", state_file],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as handle:
                return json.load(handle)
        if process.poll() is not None:
            raise RuntimeError("the lab exited with status %s; see %s" % (process.returncode, log_file))
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the lab did not start within %d s; see %s" % (timeout, log_file))


def stop_detached(state_file, timeout=30):
    if not os.path.exists(state_file):
        return False
    with open(state_file, encoding="utf-8") as handle:
        pid = json.load(handle)["pid"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        os.remove(state_file)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(state_file):
        time.sleep(0.1)
    return True
