"""Faults injected into one WinRM endpoint on demand, switchable from Python while the server runs.

Every rule is bounded: it fires at most ``times`` times (``None``: until :meth:`FaultPlan.clear`), latency is
capped at :data:`MAX_LATENCY_SECONDS`, and ``clear()`` (or stopping the server) puts the endpoint back to normal.
Faults act on authenticated SOAP requests (``reject_auth`` on every request, before authentication). A rule with
``action`` set only looks at requests of that WS-Man action (``Create``, ``Command``, ``Send``, ``Receive``,
``Signal``, ``Delete``); without it, every SOAP request counts, malformed ones included. ``after`` lets that many
matching requests through first, so ``action="Receive", after=1`` hits the 2nd Receive.
"""

import threading
from dataclasses import dataclass

ACTION_NAMES = ("Create", "Command", "Send", "Receive", "Signal", "Delete")
MAX_LATENCY_SECONDS = 60.0


@dataclass
class FaultRule:
    """One armed fault; ``seen`` and ``fired`` let a test assert that it was hit."""

    kind: str
    action: str | None = None
    after: int = 0
    times: int | None = 1
    status: int | None = None
    seconds: float = 0.0
    seen: int = 0
    fired: int = 0

    @property
    def exhausted(self):
        return self.times is not None and self.fired >= self.times

    def match_request(self, action):
        """Count a matching request and say whether the fault fires on it."""
        if self.exhausted or (self.action is not None and self.action != action):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class FaultDecision:
    """What the endpoint does to one request: wait ``latency`` seconds, then drop it, answer ``status``, or serve it."""

    latency: float = 0.0
    drop: bool = False
    status: int | None = None


def _validate(action, after, times):
    if action is not None and action not in ACTION_NAMES:
        raise ValueError("action must be one of %s or None, not %r" % (", ".join(ACTION_NAMES), action))
    if after < 0:
        raise ValueError("after must be >= 0")
    if times is not None and times < 1:
        raise ValueError("times must be >= 1 or None (until clear())")


class FaultPlan:
    """The faults armed on one endpoint (``server.faults``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []

    def _arm(self, rule):
        with self._lock:
            self._rules.append(rule)
        return rule

    def drop_connection(self, *, action=None, after=0, times=1):
        """Reset the TCP connection instead of answering (the request is read, never processed)."""
        _validate(action, after, times)
        return self._arm(FaultRule("drop", action=action, after=after, times=times))

    def http_error(self, status=500, *, action=None, after=0, times=1):
        """Answer a bare HTTP error (no SOAP body), as a broken front end or overloaded service would."""
        _validate(action, after, times)
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        return self._arm(FaultRule("http_error", action=action, after=after, times=times, status=status))

    def add_latency(self, seconds, *, action=None, after=0, times=None):
        """Delay answers by ``seconds`` (latencies of several matching rules add up)."""
        _validate(action, after, times)
        if not 0 < seconds <= MAX_LATENCY_SECONDS:
            raise ValueError("seconds must be in (0, %s]" % MAX_LATENCY_SECONDS)
        return self._arm(FaultRule("latency", action=action, after=after, times=times, seconds=float(seconds)))

    def reject_auth(self, *, after=0, times=None):
        """Answer 401 to every request, whatever the credentials (a locked-out or changed account)."""
        _validate(None, after, times)
        return self._arm(FaultRule("reject_auth", after=after, times=times))

    def clear(self):
        with self._lock:
            self._rules = []

    @property
    def rules(self):
        with self._lock:
            return list(self._rules)

    def rejects_auth(self):
        """Endpoint side: whether this request must be refused before authentication."""
        rejected = False
        with self._lock:
            for rule in self._rules:
                if rule.kind == "reject_auth" and rule.match_request(None):
                    rejected = True
        return rejected

    def decide(self, action):
        """Endpoint side: the fault decision for one authenticated request of ``action`` (None if not parsed)."""
        latency = 0.0
        drop = False
        status = None
        with self._lock:
            for rule in self._rules:
                if rule.kind == "latency" and rule.match_request(action):
                    latency += rule.seconds
            for rule in self._rules:
                if rule.kind in ("drop", "http_error") and not drop and status is None and rule.match_request(action):
                    drop = rule.kind == "drop"
                    status = rule.status
        return FaultDecision(latency=min(latency, MAX_LATENCY_SECONDS), drop=drop, status=status)
