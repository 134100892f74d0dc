"""The lab's Windows hosts: one model and one WinRM endpoint per seeded instance, and their control API.

:class:`WindowsFleet` builds a :class:`~lab.windows.model.WindowsServer` per seeded lab instance, seeds its volume
content, and serves it through a :class:`~lab.winrm.WinRMServer` on loopback (Basic over HTTP by default; a host's
topology entry may ask for ``"winrm": {"scheme": "https", "auth": ["basic", "ntlm"]}``). Endpoints start in parallel
and share one certificate authority. :meth:`WindowsFleet.sync` after a reseed keeps the endpoint of every host whose
name survived (same port), swaps its model for the new instance, and clears its faults, replays and counters.
"""

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs

from lab.winrm import CertificateAuthority, WinRMServer

from .content import SYSTEM_VOLUME_INFORMATION, assess_journal, normalize
from .host import LabWindowsHost
from .model import WindowsServer

START_WORKERS = 16
FAULT_KINDS = ("drop_connection", "http_error", "latency", "reject_auth")


class ControlError(Exception):
    """A control API request that cannot be served: ``status`` 400 or 404."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class WindowsFleet:
    """Every simulated Windows host of a lab (thread-safe)."""

    def __init__(self, blockstore, region, *, scheme="http", auth=("basic",), username="Administrator",
                 password="Lab-Passw0rd!", clock=None):  # pylint: disable=too-many-arguments
        self.blockstore = blockstore
        self.region = region
        self.scheme = scheme
        self.auth = tuple(auth)
        self.username = username
        self.password = password
        self.clock = clock
        self.hosts = {}
        self.servers = {}
        self._certificate_authority = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------ lifecycle
    def _endpoint_options(self, instance):
        winrm = (instance.get("windows") or {}).get("winrm") or {}
        return winrm.get("scheme", self.scheme), tuple(winrm.get("auth", self.auth))

    def _authority(self):
        if self._certificate_authority is None:
            self._certificate_authority = CertificateAuthority()
        return self._certificate_authority

    def _new_server(self, host, instance):
        scheme, auth = self._endpoint_options(instance)
        return WinRMServer(
            host,
            name=host.model.hostname,
            username=self.username,
            password=self.password,
            scheme=scheme,
            auth=auth,
            certificate_authority=self._authority() if scheme == "https" else None,
        )

    def build_model(self, instance):
        return WindowsServer(instance, self.blockstore, self.region, clock=self.clock).seed()

    def sync(self, instances):
        """Models and endpoints for exactly these seeded instances (start, or rebuild after a reseed)."""
        with self._lock:
            models = {instance["name"]: self.build_model(instance) for instance in instances}
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
        """A WinRM fault on one host's endpoint (``kind``: drop_connection, http_error, latency, reject_auth)."""
        faults = self.server(name).faults
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

    # ----------------------------------------------------------------------------------------- control API
    def handle_control(self, method, path, body):
        """``(status, document)`` for a control request under ``/_lab/windows`` (see docs/lab-windows.md)."""
        try:
            request = json.loads(body) if body else {}
            if not isinstance(request, dict):
                raise ValueError("the request body must be a JSON object")
            route, dummy, query = path.partition("?")
            parts = [part for part in route.split("/") if part][2:]
            return 200, self._route(method, parts, request, parse_qs(query))
        except ControlError as error:
            return error.status, {"error": str(error)}
        except KeyError as error:
            return 404, {"error": str(error.args[0] if error.args else error)}
        except (TypeError, ValueError) as error:
            return 400, {"error": str(error)}

    def _route(self, method, parts, request, query):  # pylint: disable=too-many-return-statements,too-many-branches
        if not parts:
            if method == "GET":
                return self.state()
            raise ControlError(404, "no such control endpoint: %s /_lab/windows" % method)
        if parts == ["counters"]:
            if method == "GET":
                return {name: self.counters(name) for name in self.hosts}
            if method in ("DELETE", "POST"):
                self.reset_counters()
                return {}
        if parts[0] == "snapshots" and len(parts) == 2 and method == "GET":
            return self.snapshot_content(parts[1], _first(query, "shadow"), _first(query, "system") == "1")
        if parts == ["consistency"] and method in ("POST", "PUT"):
            return self.check_consistency(request.get("data") or {}, request.get("log") or {})
        name = parts[0]
        host = self.host(name)
        model = host.model
        action = parts[1] if len(parts) > 1 else None
        if action is None and method == "GET":
            return dict(model.describe(), counters=self.counters(name), faults=[vars(r) for r in self.server(name).faults.rules],
                        replays=host.replays.describe())
        if action == "faults":
            if method in ("PUT", "POST"):
                options = dict(request)
                kind = options.pop("kind", None)
                self.arm_fault(name, kind, **options)
                return [vars(rule) for rule in self.server(name).faults.rules]
            if method == "DELETE":
                self.server(name).faults.clear()
                return []
            if method == "GET":
                return [vars(rule) for rule in self.server(name).faults.rules]
        if action == "writers":
            if method == "PUT":
                return model.set_writer_state(request.get("writer", "*"), request["state"], request.get("error"))
            if method == "GET":
                return [writer.describe() for writer in model.writers]
        if action == "services":
            if method == "PUT":
                state = request["state"]
                if state == "Restart":
                    return model.restart_service(request["service"])
                return model.set_service_state(request["service"], state)
            if method == "GET":
                return [service.describe() for service in model.services.values()]
        if action == "replay":
            if method in ("PUT", "POST"):
                options = dict(request)
                op = options.pop("op", None)
                host.replays.arm(op, **options)
                return host.replays.describe()
            if method == "DELETE":
                host.replays.clear(request.get("op"))
                return host.replays.describe()
            if method == "GET":
                return host.replays.describe()
        if action == "counters":
            if method == "GET":
                return self.counters(name)
            if method in ("DELETE", "POST"):
                self.reset_counters(name)
                return {}
        if action == "settings" and method == "PUT":
            return model.configure(**request)
        if action == "shadow_storage" and method == "PUT":
            model.set_shadow_storage(request["volume"], request["storage_volume"], request.get("max_space"))
            return model.storage()["shadow_storage"]
        if action == "transactions" and method == "POST":
            lsns = [model.write_transaction(request.get("changes")) for dummy in range(int(request.get("count", 1)))]
            return {"lsns": lsns, "journal": model.journal_summary()}
        if action == "files":
            if method == "PUT":
                data = request["text"].encode("utf-8") if "text" in request else base64.b64decode(request["base64"])
                model.write_file(request["path"], data)
                return {"path": request["path"], "bytes": len(data)}
            if method == "GET":
                data = model.read_file(query.get("path", [""])[0])
                return {"exists": data is not None, "text": data.decode("utf-8", "replace") if data is not None else None,
                        "base64": base64.b64encode(data).decode("ascii") if data is not None else None}
        result = self._route_shadow_engine(method, action, parts, request, query, model)
        if result is not None:
            return result
        raise ControlError(404, "no such control endpoint: %s /_lab/windows/%s" % (method, "/".join(parts)))

    # ------------------------------------------------------------------------------- the shadow engine's lab side
    # pylint: disable-next=too-many-arguments,too-many-return-statements,too-many-branches
    def _route_shadow_engine(self, method, action, parts, request, query, model):
        """Routes of docs/lab-windows.md "The shadow engine": VSS faults, events, writer histories, the application,
        sessions, exec exit codes. None when the route is not one of them."""
        if action == "vss_faults":
            if method in ("PUT", "POST"):
                options = dict(request)
                model.arm_vss_fault(options.pop("kind", None), **options)
                return [dict(rule) for rule in model.vss_faults]
            if method == "DELETE":
                model.clear_vss_faults()
                return []
            if method == "GET":
                return [dict(rule) for rule in model.vss_faults]
        if action == "events" and method == "GET":
            return model.events(_first(query, "event"), _first(query, "writer"))
        if action == "writer_history" and method == "GET":
            return model.writer_histories(_first(query, "writer"))
        if action == "exec_exit_codes" and method in ("PUT", "POST"):
            model.set_exec_exit_code(request["path"], request.get("exit_code"))
            return dict(model.exec_exit_codes)
        if action == "sessions" and method == "GET":
            return model.sessions.describe()
        if action == "application":
            sub = parts[2] if len(parts) > 2 else None
            if sub == "check" and method == "GET":
                return model.journal_check()
            if method == "GET":
                return dict(model.application_state() or {}, journal=model.journal_summary())
            if method in ("PUT", "POST"):
                what = request.get("action", "write")
                if what == "start":
                    return model.start_application(request.get("interval", 0.01), request.get("checkpoint_every", 4),
                                                   request.get("torn_pause", 0.005))
                if what == "stop":
                    return model.stop_application()
                if what == "checkpoint":
                    lsn = model.journal.checkpoint() if model.journal is not None else None
                    return {"checkpoint_lsn": lsn, "journal": model.journal_summary()}
                if what == "write":
                    lsns = model.application_transactions(request.get("count", 1), request.get("mode", "sync"), request.get("changes"))
                    return {"lsns": lsns, "journal": model.journal_summary()}
                raise ValueError("application action must be start, stop, checkpoint or write")
        return None

    def _image(self, snapshot_id):
        image = self.blockstore.snapshot(snapshot_id)
        if image is None:
            raise ControlError(404, "the lab's data plane has no snapshot %r" % snapshot_id)
        return image

    def snapshot_content(self, snapshot_id, shadow_id=None, include_system=False):
        """An EBS snapshot's content: its files (the crash image a restored volume starts with), or with ``shadow_id``
        the frozen files of a shadow copy embedded in it (what the restored volume holds after reverting to it)."""
        image = self._image(snapshot_id)
        with self.blockstore.locked():
            shadows = sorted(image.shadows)
            if shadow_id is not None:
                found = next((key for key in image.shadows if key.lower() == shadow_id.lower()), None)
                if found is None:
                    raise ControlError(404, "snapshot %s carries no shadow copy %s (it carries: %s)" % (
                        snapshot_id, shadow_id, ", ".join(shadows) or "none"))
                files = dict(image.shadows[found])
            else:
                files = {path: data for path, data in image.files.items()
                         if include_system or not (path.startswith(SYSTEM_VOLUME_INFORMATION) or path.startswith("$LAB\\"))}
        return {"snapshot_id": snapshot_id, "shadow_id": shadow_id, "shadows": shadows,
                "files": {path: base64.b64encode(data).decode("ascii") for path, data in sorted(files.items())}}

    def _files_of(self, source):
        if source.get("snapshot_id"):
            image = self._image(source["snapshot_id"])
            with self.blockstore.locked():
                if source.get("shadow_id"):
                    found = next((key for key in image.shadows if key.lower() == source["shadow_id"].lower()), None)
                    if found is None:
                        raise ControlError(404, "snapshot %s carries no shadow copy %s" % (source["snapshot_id"], source["shadow_id"]))
                    return dict(image.shadows[found])
                return dict(image.files)
        if source.get("host") and source.get("volume"):
            model = self.model(source["host"])
            if source.get("shadow_id"):
                return model.shadow_content(source["shadow_id"]) or {}
            volume = model.find_volume(source["volume"])
            if volume is None:
                raise ControlError(404, "%s has no volume %s" % (source["host"], source["volume"]))
            return volume.content.files()
        raise ValueError("name a source as {snapshot_id[, shadow_id]} or {host, volume[, shadow_id]}")

    def check_consistency(self, data, log):
        """The invariant checker (lab.windows.content.assess_journal) on two images named by snapshot/shadow ids."""
        return assess_journal(self._files_of(data), self._files_of(log),
                              normalize(data.get("path", "SQLData\\shop.mdf")), normalize(log.get("path", "SQLLogs\\shop_log.ldf")))


def _first(query, name):
    values = query.get(name)
    return values[0] if values else None


def _pick(options, *names):
    return {name: options[name] for name in names if name in options}
