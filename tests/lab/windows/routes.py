"""The control API of the lab's Windows hosts, under ``/_lab/windows`` (docs/lab-windows.md): the routes to the
host models, their endpoints' faults, replays and counters, and the data plane's snapshot images."""

import base64
import json
from urllib.parse import parse_qs

from .agent_twin.protocol import SHADOWSNAP_ROOT
from .application import assess_journal
from .storage import SYSTEM_VOLUME_INFORMATION, normalize


class ControlError(Exception):
    """A control API request that cannot be served: ``status`` 400 or 404."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def sql_application(model):
    """The host's SQL application, or ValueError for a host that runs none."""
    if model.application is None or model.application.journal is None:
        raise ValueError("%s runs no SQL application" % model.name)
    return model.application


class WindowsControl:
    """Serves the ``/_lab/windows`` routes of one :class:`lab.windows.fleet.WindowsFleet`."""

    def __init__(self, fleet):
        self.fleet = fleet

    def handle(self, method, path, body):
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
                return self.fleet.state()
            raise ControlError(404, "no such control endpoint: %s /_lab/windows" % method)
        if parts == ["counters"]:
            if method == "GET":
                return {name: self.fleet.counters(name) for name in self.fleet.hosts}
            if method in ("DELETE", "POST"):
                self.fleet.reset_counters()
                return {}
        if parts[0] == "snapshots" and len(parts) == 2 and method == "GET":
            return self.snapshot_content(parts[1], _first(query, "shadow"), _first(query, "system") == "1")
        if parts == ["consistency"] and method in ("POST", "PUT"):
            return self.check_consistency(request.get("data") or {}, request.get("log") or {})
        name = parts[0]
        host = self.fleet.host(name)
        model = host.model
        action = parts[1] if len(parts) > 1 else None
        if action is None and method == "GET":
            return dict(model.describe(), counters=self.fleet.counters(name), faults=self.fleet.fault_rules(name),
                        replays=host.replays.describe())
        if action == "faults":
            if method in ("PUT", "POST"):
                options = dict(request)
                kind = options.pop("kind", None)
                self.fleet.arm_fault(name, kind, **options)
                return self.fleet.fault_rules(name)
            if method == "DELETE":
                self.fleet.clear_faults(name)
                return []
            if method == "GET":
                return self.fleet.fault_rules(name)
        if action == "writers":
            if method == "PUT":
                return model.writers.set_state(request.get("writer", "*"), request["state"], request.get("error"))
            if method == "GET":
                return model.writers.describe()
        if action == "services":
            if method == "PUT":
                state = request["state"]
                if state == "Restart":
                    return model.services.restart(request["service"])
                return model.services.set_state(request["service"], state)
            if method == "GET":
                return model.services.describe()
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
                return self.fleet.counters(name)
            if method in ("DELETE", "POST"):
                self.fleet.reset_counters(name)
                return {}
        if action == "settings" and method == "PUT":
            return model.configure(**request)
        if action == "shadow_storage" and method == "PUT":
            model.shadows.set_storage(request["volume"], request["storage_volume"], request.get("max_space"))
            return model.shadows.storage_rows()
        if action == "transactions" and method == "POST":
            application = sql_application(model)
            lsns = [application.write_transaction(request.get("changes")) for dummy in range(int(request.get("count", 1)))]
            return {"lsns": lsns, "journal": application.summary()}
        if action == "folders":
            if method == "GET":
                return model.files.security(_first(query, "path") or SHADOWSNAP_ROOT)
            if method == "PUT":
                if request.get("hostile"):
                    return model.files.make_hostile(request["hostile"], request.get("path") or SHADOWSNAP_ROOT)
                return model.files.set_security(request["path"], owner=request.get("owner"), protected=request.get("protected"),
                                                add_aces=request.get("add_aces") or (), junction_to=request.get("junction_to"))
        if action == "files":
            if method == "PUT":
                data = request["text"].encode("utf-8") if "text" in request else base64.b64decode(request["base64"])
                model.files.write(request["path"], data)
                return {"path": request["path"], "bytes": len(data)}
            if method == "GET":
                data = model.files.read(query.get("path", [""])[0])
                return {"exists": data is not None, "text": data.decode("utf-8", "replace") if data is not None else None,
                        "base64": base64.b64encode(data).decode("ascii") if data is not None else None}
            if method == "DELETE":
                model.files.remove_tree(_first(query, "path"))
                return {"path": _first(query, "path")}
        if action == "file_info":
            if method == "PUT":
                fields = dict(request)
                return model.files.set_info(fields.pop("path"), **fields)
            if method == "GET":
                return model.files.info(_first(query, "path"))
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
                model.vss_faults.arm(options.pop("kind", None), **options)
                return model.vss_faults.describe()
            if method == "DELETE":
                model.vss_faults.clear()
                return []
            if method == "GET":
                return model.vss_faults.describe()
        if action == "events" and method == "GET":
            return model.vss_events.select(_first(query, "event"), _first(query, "writer"))
        if action == "writer_history" and method == "GET":
            return model.writers.histories(_first(query, "writer"))
        if action == "exec_exit_codes" and method in ("PUT", "POST"):
            model.set_exec_exit_code(request["path"], request.get("exit_code"))
            return dict(model.exec_exit_codes)
        if action == "sessions" and method == "GET":
            return model.tasks.describe()
        if action == "application":
            sub = parts[2] if len(parts) > 2 else None
            if method in ("PUT", "POST") and request.get("action") == "stop":
                return model.application.stop() if model.application is not None else None
            application = sql_application(model)
            if sub == "check" and method == "GET":
                return application.check()
            if method == "GET":
                return dict(application.state(), journal=application.summary())
            if method in ("PUT", "POST"):
                what = request.get("action", "write")
                if what == "start":
                    return application.start(request.get("interval", 0.01), request.get("checkpoint_every", 4),
                                             request.get("torn_pause", 0.005))
                if what == "checkpoint":
                    return {"checkpoint_lsn": application.journal.checkpoint(), "journal": application.summary()}
                if what == "write":
                    lsns = application.transactions(request.get("count", 1), request.get("mode", "sync"), request.get("changes"))
                    return {"lsns": lsns, "journal": application.summary()}
                raise ValueError("application action must be start, stop, checkpoint or write")
        return None

    def _image(self, snapshot_id):
        image = self.fleet.blockstore.snapshot(snapshot_id)
        if image is None:
            raise ControlError(404, "the lab's data plane has no snapshot %r" % snapshot_id)
        return image

    def snapshot_content(self, snapshot_id, shadow_id=None, include_system=False):
        """An EBS snapshot's content: its files (the crash image a restored volume starts with), or with ``shadow_id``
        the frozen files of a shadow copy embedded in it (what the restored volume holds after reverting to it)."""
        image = self._image(snapshot_id)
        with self.fleet.blockstore.locked():
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
            with self.fleet.blockstore.locked():
                if source.get("shadow_id"):
                    found = next((key for key in image.shadows if key.lower() == source["shadow_id"].lower()), None)
                    if found is None:
                        raise ControlError(404, "snapshot %s carries no shadow copy %s" % (source["snapshot_id"], source["shadow_id"]))
                    return dict(image.shadows[found])
                return dict(image.files)
        if source.get("host") and source.get("volume"):
            model = self.fleet.model(source["host"])
            if source.get("shadow_id"):
                return model.shadows.content(source["shadow_id"]) or {}
            volume = model.storage.find_volume(source["volume"])
            if volume is None:
                raise ControlError(404, "%s has no volume %s" % (source["host"], source["volume"]))
            return volume.content.files()
        raise ValueError("name a source as {snapshot_id[, shadow_id]} or {host, volume[, shadow_id]}")

    def check_consistency(self, data, log):
        """The invariant checker (lab.windows.application.assess_journal) on two images named by snapshot/shadow ids."""
        return assess_journal(self._files_of(data), self._files_of(log),
                              normalize(data.get("path", "SQLData\\shop.mdf")), normalize(log.get("path", "SQLLogs\\shop_log.ldf")))


def _first(query, name):
    values = query.get(name)
    return values[0] if values else None


def _pick(options, *names):
    return {name: options[name] for name in names if name in options}
