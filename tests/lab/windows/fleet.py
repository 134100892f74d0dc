"""The lab's Windows hosts: one model and one WinRM endpoint per seeded instance, and their control API.

:class:`WindowsFleet` builds a :class:`~lab.windows.model.WindowsServer` per seeded lab instance, seeds its volume
content, and serves it through a :class:`~lab.winrm.WinRMServer` on loopback (Basic over HTTP by default; a host's
topology entry may ask for ``"winrm": {"scheme": "https", "auth": ["basic", "ntlm"]}``). Endpoints start in parallel
and share one certificate authority. :meth:`WindowsFleet.sync` after a reseed keeps the endpoint of every host whose
name survived (same port), swaps its model for the new instance, and clears its faults, replays and counters.
:meth:`WindowsFleet.volume_event` is the fleet's subscription to the AWS half's attach and detach events (the lab
wires it; this half imports nothing of the other): the host of the instance sees the disk appear or go.
:meth:`WindowsFleet.instance_event` is its subscription to the instance events: an instance the lab did not seed that
starts from a restored Windows root volume boots a simulated Windows Server of its own (lab.windows.restored), which
goes down when the instance stops or terminates.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from lab.winrm import CertificateAuthority, WinRMServer

from .host import LabWindowsHost
from .model import WindowsServer
from .restored import loopback_address, restored_server
from .routes import ControlError, WindowsControl

START_WORKERS = 16
FAULT_KINDS = ("drop_connection", "http_error", "latency", "reject_auth", "drop_answer")


class WindowsFleet:
    """Every simulated Windows host of a lab (thread-safe)."""

    def __init__(self, blockstore, region, *, scheme="http", auth=("basic",), username="Administrator",
                 password="Lab-Passw0rd!"):
        self.blockstore = blockstore
        self.region = region
        self.scheme = scheme
        self.auth = tuple(auth)
        self.username = username
        self.password = password
        self.hosts = {}
        self.servers = {}
        # The seeded instances by computer name: what a restored root volume boots as.
        self.seeded = {}
        self._certificate_authority = None
        self._lock = threading.RLock()
        self.control = WindowsControl(self)

    # ------------------------------------------------------------------------------------------ lifecycle
    def _endpoint_options(self, instance):
        winrm = (instance.get("windows") or {}).get("winrm") or {}
        return winrm.get("scheme", self.scheme), tuple(winrm.get("auth", self.auth))

    def _authority(self):
        if self._certificate_authority is None:
            self._certificate_authority = CertificateAuthority()
        return self._certificate_authority

    def _new_server(self, host, instance, address="127.0.0.1", port=0):
        scheme, auth = self._endpoint_options(instance)
        return WinRMServer(
            host,
            name=host.model.hostname,
            username=self.username,
            password=self.password,
            scheme=scheme,
            auth=auth,
            certificate_authority=self._authority() if scheme == "https" else None,
            address=address,
            port=port,
        )

    def build_model(self, instance):
        return WindowsServer(instance, self.blockstore, self.region).seed()

    def sync(self, instances):
        """Models and endpoints for exactly these seeded instances (start, or rebuild after a reseed)."""
        with self._lock:
            models = {instance["name"]: self.build_model(instance) for instance in instances}
            self.seeded = {models[instance["name"]].hostname: instance for instance in instances}
            wanted = {instance["name"]: instance for instance in instances}
            for name in list(self.servers):
                if name not in wanted or self._endpoint_options(wanted[name]) != (self.servers[name].scheme, self.servers[name].auth):
                    self._stop_one(name)
            to_start = []
            for name, instance in wanted.items():
                if name in self.servers:
                    self.hosts[name].reset(models[name])
                    self.servers[name].counters.reset()
                    self.servers[name].faults.clear()
                else:
                    host = LabWindowsHost(models[name])
                    self.hosts[name] = host
                    self.servers[name] = self._new_server(host, instance)
                    to_start.append(self.servers[name])
            if len(to_start) > 1:
                with ThreadPoolExecutor(max_workers=min(START_WORKERS, len(to_start)), thread_name_prefix="lab-win-start") as pool:
                    list(pool.map(lambda server: server.start(), to_start))
            elif to_start:
                to_start[0].start()
            ordered = {name: self.servers[name] for name in wanted}
            self.servers = ordered
            self.hosts = {name: self.hosts[name] for name in wanted}
        return self

    def _stop_one(self, name):
        host = self.hosts.pop(name, None)
        if host is not None:
            host.shutdown()
        server = self.servers.pop(name, None)
        if server is not None:
            server.stop()

    def stop(self):
        with self._lock:
            for host in self.hosts.values():
                host.shutdown()
            servers = list(self.servers.values())
            if servers:
                with ThreadPoolExecutor(max_workers=min(START_WORKERS, len(servers)), thread_name_prefix="lab-win-stop") as pool:
                    list(pool.map(lambda server: server.stop(), servers))
            self.servers = {}
            self.hosts = {}

    def volume_event(self, event):
        """An EBS attach or detach completed (``event``, ``instance_id``, ``volume_id``, ``device``)."""
        with self._lock:
            model = next((host.model for host in self.hosts.values() if host.model.instance_id == event["instance_id"]), None)
        if model is None:
            return
        if event["event"] == "attached":
            model.volume_attached(event["volume_id"], event["device"])
        elif event["event"] == "detached":
            model.volume_detached(event["volume_id"])

    def instance_event(self, event):
        """An instance reached ``running``, ``stopped`` or ``terminated`` (lab.aws.instance_models): one the lab did
        not seed boots from its restored root (behind the original's port at its private IP's loopback address), and
        goes down when it stops or terminates. Seeded hosts are not affected."""
        with self._lock:
            seeded = any(instance["instance_id"] == event["instance_id"] for instance in self.seeded.values())
            if seeded:
                return
            if event["event"] != "running":
                self._stop_one(event["instance_id"])
                return
            if event["instance_id"] in self.hosts:
                return
            model = restored_server(event, self.blockstore, self.region, self.seeded)
            if model is None:
                return
            original = self.servers.get(self.seeded[model.hostname]["name"])
            host = LabWindowsHost(model)
            address = loopback_address(event["private_ip"])
            try:
                server = self._new_server(host, self.seeded[model.hostname], address, original.port if original else 0)
                server.start()
            except OSError:
                server = self._new_server(host, self.seeded[model.hostname], address)
                server.start()
            self.hosts[event["instance_id"]], self.servers[event["instance_id"]] = host, server

    # ---------------------------------------------------------------------------------------------- access
    def host(self, name):
        try:
            return self.hosts[name]
        except KeyError:
            raise ControlError(404, "no lab Windows host named %r (hosts: %s)" % (name, ", ".join(self.hosts))) from None

    def model(self, name):
        return self.host(name).model

    def server(self, name):
        self.host(name)
        return self.servers[name]

    def state(self):
        """Per host: name, instance id, connection info and Ansible inventory vars (see docs/lab-windows.md)."""
        hosts = []
        for name, server in list(self.servers.items()):
            model = self.hosts[name].model
            variables = server.inventory_vars()
            variables["ec2_instance_id"] = model.instance_id
            hosts.append({
                "name": name,
                "hostname": model.hostname,
                "instance_id": model.instance_id,
                "style": model.style,
                "os_caption": model.os.caption,
                "locale": model.locale.name,
                "address": server.address,
                "port": server.port,
                "scheme": server.scheme,
                "endpoint": server.endpoint,
                "auth": list(server.auth),
                "username": server.username,
                "password": server.password,
                "ca_file": server.ca_file,
                "inventory_vars": variables,
            })
        return hosts

    def counters(self, name):
        return {"winrm": self.server(name).counters.snapshot(), "agent": self.host(name).counter_snapshot()}

    def reset_counters(self, name=None):
        for host_name in [name] if name else list(self.hosts):
            self.server(host_name).counters.reset()
            self.host(host_name).counters.reset()

    def arm_fault(self, name, kind, **options):
        """A WinRM fault on one host's endpoint (``kind``: drop_connection, http_error, latency, reject_auth), or
        ``drop_answer``: the answer to the agent op ``op`` is lost after the host carried it out."""
        faults = self.server(name).faults
        if kind == "drop_answer":
            return self.host(name).answer_drops.arm(options.get("op"), **_pick(options, "after", "times")).describe()
        if kind == "drop_connection":
            rule = faults.drop_connection(**_pick(options, "action", "after", "times"))
        elif kind == "http_error":
            rule = faults.http_error(options.get("status", 500), **_pick(options, "action", "after", "times"))
        elif kind == "latency":
            if "seconds" not in options:
                raise ValueError("a latency fault needs seconds")
            rule = faults.add_latency(float(options["seconds"]), **_pick(options, "action", "after", "times"))
        elif kind == "reject_auth":
            rule = faults.reject_auth(**_pick(options, "after", "times"))
        else:
            raise ValueError("fault kind must be one of %s" % ", ".join(FAULT_KINDS))
        return vars(rule)

    def fault_rules(self, name):
        """The faults armed on one host: its endpoint's WinRM rules and its answer drops."""
        return [vars(rule) for rule in self.server(name).faults.rules] + self.host(name).answer_drops.describe()

    def clear_faults(self, name):
        self.server(name).faults.clear()
        self.host(name).answer_drops.clear()

    def handle_control(self, method, path, body):
        """``(status, document)`` for a control request under ``/_lab/windows`` (lab.windows.routes)."""
        return self.control.handle(method, path, body)


def _pick(options, *names):
    return {name: options[name] for name in names if name in options}
