"""The VSS writers of a simulated Windows Server, the VSS events they go through, and the faults a test can arm.

Writers have their real names and ids (lab.windows.catalog); their state and last error are settable at run time
(:meth:`Writers.set_state`) and change as the VSS machinery sends them events (:meth:`Writers.transition`, called by
the simulated diskshadow and by the SSM emulation). Every change is kept in the writer's history and in the host's
event log (:class:`VssEvents`), numbered and timestamped, so a test can prove the order of Freeze, the EBS snapshots
and BackupComplete.
"""

import collections
import itertools

from lab.clock import iso, lab_now

from . import catalog

WRITER_STATE_ALIASES = {
    "healthy": 1,
    "stable": 1,
    "unknown": 0,
    "waiting_for_freeze": 2,
    "waiting_for_thaw": 3,
    "waiting_for_post_snapshot": 4,
    "waiting_for_completion": 5,
    "waiting_for_backup_complete": 5,
}
for _number, _name in catalog.WRITER_STATE_NAMES.items():
    WRITER_STATE_ALIASES.setdefault(_name.lower(), _number)
del _number, _name
HISTORY_LIMIT = 500
EVENT_LIMIT = 2000
# Faults of the VSS machinery a test can arm per host (see VssFaults.arm and docs/lab-windows.md).
VSS_FAULT_KINDS = ("writer_fail_at_freeze", "writer_timeout", "writer_vanishes", "snapshot_set_in_progress",
                   "insufficient_storage", "provider_veto", "create_delay")
WRITER_FAULT_KINDS = ("writer_fail_at_freeze", "writer_timeout", "writer_vanishes")


class Writer:
    """One VSS writer: identity from the catalog, state and last error settable at run time."""

    def __init__(self, spec, hostname):
        self.spec = spec
        self.hostname = hostname
        self.generation = 0
        self.state = 1
        self.error = "no_error"
        self.present = True
        # State changes with their cause: (time, state, error, event, details); see Writers.transition.
        self.history = collections.deque(maxlen=HISTORY_LIMIT)
        # True when the failed state came from a fault armed for one shadow copy creation (the next one resets it).
        self.transient_failure = False

    @property
    def name(self):
        return self.spec.name

    @property
    def writer_id(self):
        return self.spec.writer_id

    @property
    def service(self):
        return self.spec.service

    @property
    def instance_id(self):
        return "{%s}" % catalog.stable_guid("writer-instance", self.hostname, self.spec.name, self.generation)

    def restart(self):
        """The writer's process started again: a new instance id, stable, no error."""
        self.generation += 1
        self.state = 1
        self.error = "no_error"
        self.present = True
        self.transient_failure = False

    @property
    def failure_code(self):
        return catalog.ERROR_HRESULTS[self.error]

    def describe(self):
        return {
            "name": self.name,
            "writer_id": self.writer_id,
            "instance_id": self.instance_id,
            "state": self.state,
            "state_name": catalog.WRITER_STATE_NAMES.get(self.state, "UNKNOWN"),
            "error": self.error,
            "failure_code": "0x%08x" % self.failure_code,
            "present": self.present,
            "service": self.service,
        }


def writer_state_number(state):
    """A VSS_WRITER_STATE number from a number, ``VSS_WS_<NAME>``, a state name or an alias (``healthy``)."""
    if isinstance(state, str):
        key = state.lower()
        if key.startswith("vss_ws_"):
            key = key[len("vss_ws_"):]
        if key.isdigit():
            number = int(key)
        elif key in WRITER_STATE_ALIASES:
            number = WRITER_STATE_ALIASES[key]
        else:
            raise ValueError("unknown writer state %r" % state)
    else:
        number = int(state)
    if number not in catalog.WRITER_STATE_NAMES:
        raise ValueError("writer state must be 0..15, not %r" % state)
    return number


class VssEvents:
    """The host's log of VSS events (``BackupComplete``, ``Freeze``, ``Abort``...), numbered and timestamped: ``time``
    on the host's clock, ``lab_time`` on the lab's (the clock of the EBS snapshots' ``lab_time``), both with
    microseconds."""

    def __init__(self, server):
        self.server = server
        self._entries = collections.deque(maxlen=EVENT_LIMIT)
        self._numbers = itertools.count(1)

    def record(self, event, writer=None, **details):
        moment = lab_now()
        entry = {"seq": next(self._numbers), "time": iso(self.server.clock.at(moment)), "lab_time": iso(moment), "event": event,
                 "writer": writer.name if writer is not None else None,
                 "writer_id": writer.writer_id if writer is not None else None}
        entry.update(details)
        with self.server.lock:
            self._entries.append(entry)
        return entry

    def select(self, event=None, writer=None):
        """The events in order, of one event name and one writer (name or id) when given."""
        with self.server.lock:
            entries = list(self._entries)
        return [e for e in entries if (event is None or e["event"] == event)
                and (writer is None or writer in (e["writer"], e["writer_id"]))]


class VssFaults:
    """Faults of the VSS machinery armed for the next shadow copy creations on one host."""

    def __init__(self, server):
        self.server = server
        self.rules = []

    def arm(self, kind, writer=None, error=None, times=1, seconds=None, volume=None):
        """``writer_fail_at_freeze`` (``writer``, ``error`` default retryable): the writer fails at Freeze, state 9;
        ``writer_timeout`` (``writer``, ``seconds`` of delay, default 0): the writer does not answer the Freeze in
        time, state 9, Timed out, VSS_E_WRITERERROR_TIMEOUT; ``writer_vanishes`` (``writer``): the writer is listed
        until a shadow copy set is created, then it is gone (its process ended: not listed until its service restarts
        or the lab sets it ``present``), as after a pre-flight that saw it; ``snapshot_set_in_progress``:
        VSS_E_SNAPSHOT_SET_IN_PROGRESS (another requester is creating a set); ``insufficient_storage`` (``volume`` or
        all): VSS_E_INSUFFICIENT_STORAGE; ``provider_veto``: VSS_E_PROVIDER_VETO; ``create_delay`` (``seconds``):
        the creation takes that long (writers frozen meanwhile). ``times``: how many creations (None: until cleared).
        """
        if kind not in VSS_FAULT_KINDS:
            raise ValueError("VSS fault kind must be one of %s" % ", ".join(VSS_FAULT_KINDS))
        if kind in WRITER_FAULT_KINDS:
            if not writer:
                raise ValueError("a %s fault needs a writer" % kind)
            writer = self.server.writers.get(writer).name
        if error is not None and error not in catalog.ERROR_HRESULTS:
            raise ValueError("error must be one of %s" % ", ".join(catalog.ERROR_HRESULTS))
        if times is not None and int(times) < 1:
            raise ValueError("times must be >= 1 or None")
        if seconds is not None and not 0 <= float(seconds) <= 60:
            raise ValueError("seconds must be within 0..60")
        rule = {"kind": kind, "writer": writer, "error": error, "times": None if times is None else int(times),
                "seconds": None if seconds is None else float(seconds), "volume": volume, "fired": 0}
        with self.server.lock:
            self.rules.append(rule)
        return dict(rule)

    def clear(self):
        with self.server.lock:
            self.rules = []

    def take(self, kinds):
        """The armed faults of these kinds that fire now (each counted; exhausted ones dropped)."""
        fired = []
        with self.server.lock:
            for rule in self.rules:
                if rule["kind"] in kinds and (rule["times"] is None or rule["fired"] < rule["times"]):
                    rule["fired"] += 1
                    fired.append(dict(rule))
            self.rules = [r for r in self.rules if r["times"] is None or r["fired"] < r["times"]]
        return fired

    def describe(self):
        with self.server.lock:
            return [dict(rule) for rule in self.rules]


class Writers:
    """The writers of one host (``server.writers``), in the order vssadmin lists them; thread-safe."""

    def __init__(self, server, specs):
        self.server = server
        self.all = [Writer(spec, server.hostname) for spec in specs]

    def __iter__(self):
        return iter(list(self.all))

    def __len__(self):
        return len(self.all)

    def get(self, name):
        """A writer by name (case-insensitive) or id; KeyError when the host has none."""
        for writer in self.all:
            if writer.name.lower() == name.lower() or writer.writer_id == name.lower():
                return writer
        raise KeyError("%s has no writer %r" % (self.server.name, name))

    def _record(self, writer, event, **details):
        moment = lab_now()
        writer.history.append({
            "time": iso(self.server.clock.at(moment)),
            "lab_time": iso(moment),
            "state": writer.state,
            "state_name": catalog.WRITER_STATE_NAMES.get(writer.state, "UNKNOWN"),
            "error": writer.error,
            "instance_id": writer.instance_id,
            "event": event,
            **details,
        })

    def set_state(self, name, state, error=None):
        """Set a writer's state at run time (``name`` ``*`` for every writer); returns the writers changed.

        ``state``: a VSS_WRITER_STATE number (0-15) or name (``stable``/``healthy``, ``failed_at_freeze``,
        ``waiting_for_completion``...), or ``timed_out`` (state 9, Timed out), ``not_responding`` (state 0, Not
        responding), ``missing`` (the writer is not listed; ``*`` stops the COM+ Event System service instead, as when
        every writer vanishes) or ``present``. ``error`` (a key of :data:`catalog.ERROR_HRESULTS`) overrides the
        last error, which otherwise defaults per state.
        """
        if error is not None and error not in catalog.ERROR_HRESULTS:
            raise ValueError("error must be one of %s" % ", ".join(catalog.ERROR_HRESULTS))
        with self.server.lock:
            if name == "*" and state == "missing":
                self.server.services.set_state("EventSystem", "Stopped")
                return []
            targets = self.all if name == "*" else [self.get(name)]
            for writer in targets:
                self._apply_state(writer, state, error)
                self._record(writer, "SetByLab", requested=state if isinstance(state, (int, str)) else str(state))
            return [writer.describe() for writer in targets]

    @staticmethod
    def _apply_state(writer, state, error):
        writer.transient_failure = False
        if state == "missing":
            writer.present = False
        elif state == "present":
            writer.present = True
        elif state == "timed_out":
            writer.state, writer.error = 9, error or "timed_out"
        elif state == "not_responding":
            writer.state, writer.error = 0, error or "not_responding"
        else:
            number = writer_state_number(state)
            writer.state = number
            writer.error = error or catalog.DEFAULT_FAILURE_ERROR.get(number, "no_error")

    def service_started(self, service):
        """The service started again: the writers it hosts restart (new instance ids, stable)."""
        with self.server.lock:
            for writer in self.all:
                if writer.service == service:
                    writer.restart()
                    self._record(writer, "Restart", service=service)

    def vanish(self, writer, **details):
        """The writer's process ended: it is not listed any more (until its service restarts)."""
        with self.server.lock:
            writer.present = False
            self._record(writer, "Vanished", **details)
        self.server.vss_events.record("WriterVanished", writer, **details)

    def visible(self):
        """The writers ``vssadmin list writers`` would list now (none while EventSystem is stopped)."""
        services = self.server.services
        with self.server.lock:
            if not services.running("EventSystem"):
                return []
            visible = []
            for writer in self.all:
                service = services.get(writer.service)
                if not writer.present or service is None:
                    continue
                if writer.service != "VSS" and service.status != "Running":
                    continue
                visible.append(writer)
            return visible

    def components(self, writer):
        """The writer's components with the paths and volumes they affect (resolved against this host's volumes)."""
        components = []
        for spec in writer.spec.components:
            paths = []
            volumes = []
            for folder, dummy in spec.files:
                if folder not in paths:
                    paths.append(folder)
                volume = self.server.storage.find_volume(folder)
                if volume is not None and volume not in volumes:
                    volumes.append(volume)
            components.append({"spec": spec, "paths": paths, "volumes": volumes})
        return components

    def transition(self, writer, state, event, error=None, **details):
        """A writer changes state because of a VSS event (recorded in its history and in the host's events)."""
        with self.server.lock:
            writer.state = state
            if error is not None:
                writer.error = error
            self._record(writer, event, **details)
        self.server.vss_events.record(event, writer, state=state, **details)

    def histories(self, writer=None):
        """``{writer name: [state changes]}`` (one writer when named)."""
        with self.server.lock:
            targets = self.all if writer is None else [self.get(writer)]
            return {w.name: list(w.history) for w in targets}

    def describe(self):
        return [writer.describe() for writer in self.all]
