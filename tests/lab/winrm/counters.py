"""Per-host traffic counters of the lab's WinRM endpoint, read by tests and benchmarks."""

import threading

COUNTER_NAMES = (
    "connections",
    "requests",
    "commands",
    "shells_created",
    "shells_deleted",
    "receive_timeouts",
    "bytes_in",
    "bytes_out",
    "auth_failures",
    "faults_injected",
)


class Counters:
    """Thread-safe counters of one endpoint.

    ``commands`` counts accepted Command requests: one per process started on the host, i.e. one controller round
    trip in the agent protocol. ``bytes_in``/``bytes_out`` count HTTP bodies as they cross the wire (encrypted
    when NTLM message encryption is on). ``requests`` counts every HTTP request, authentication legs included;
    ``actions`` counts parsed WS-Man requests per action (``Create``, ``Command``, ``Send``, ``Receive``,
    ``Signal``, ``Delete``). ``auth_failures`` counts 401s for wrong or refused credentials, not the 401 that
    opens every NTLM handshake. Read the attributes directly, or take :meth:`snapshot` for a consistent copy.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self.actions = {}
        for name in COUNTER_NAMES:
            setattr(self, name, 0)

    def add(self, name, amount=1):
        if name not in COUNTER_NAMES:
            raise KeyError(name)
        with self._changed:
            setattr(self, name, getattr(self, name) + amount)
            self._changed.notify_all()

    def add_action(self, action_name):
        with self._changed:
            self.actions[action_name] = self.actions.get(action_name, 0) + 1
            self._changed.notify_all()

    def snapshot(self):
        """A plain dict of every counter (``actions`` as a nested dict), taken atomically."""
        with self._changed:
            values = {name: getattr(self, name) for name in COUNTER_NAMES}
            values["actions"] = dict(self.actions)
            return values

    def reset(self):
        with self._changed:
            for name in COUNTER_NAMES:
                setattr(self, name, 0)
            self.actions = {}
            self._changed.notify_all()

    def wait_for(self, predicate, timeout):
        """Block until ``predicate(snapshot)`` holds; True if it did within ``timeout`` seconds.

        Lets a test synchronise on server-side progress (e.g. "a Receive has timed out") instead of sleeping.
        """
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.snapshot()), timeout)
