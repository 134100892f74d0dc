# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of every ``win_*`` action plugin: options, the agent transport, failures, timings - so each one is
orchestration only.

An action plugin subclasses :class:`AgentAction`, sets ``ARGUMENT_SPEC`` (and ``ARGUMENT_RULES``, the keyword
arguments of ``validate_argument_spec`` such as ``required_if``) and implements :meth:`AgentAction.run_on_host`. The
base class validates the options before anything runs (unknown options and bad values fail the task), sets up the
agent transport on the host's own connection (agent_transport.py), turns a :class:`TaskFailure` or an agent error into
the task's failure fields (``msg`` naming the host; ``hresult``, ``hresult_name`` and ``agent_error`` when the agent
reported one), and adds ``round_trips``, ``timings`` (seconds per phase, :meth:`AgentAction.phase`, and ``total``) and
``elapsed`` to every result, failed or not. The documentation of these results and of the attributes they share is the
``shadowsnap.ec2.windows_agent`` doc fragment.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

from ansible.plugins.action import ActionBase

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentError,
    AgentOperationError,
    AgentTransport,
)


class TaskFailure(Exception):
    """Ends the task with ``msg`` (the host's name is put in front); ``extra`` goes into the result."""

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


class AgentAction(ActionBase):
    """Runs one task against a Windows host through the collection's agent (see the module docstring)."""

    ARGUMENT_SPEC: dict = {}
    ARGUMENT_RULES: dict = {}
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False
    _started = 0.0
    _timings: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._VALID_ARGS = frozenset(cls.ARGUMENT_SPEC) | frozenset(
            alias for spec in cls.ARGUMENT_SPEC.values() for alias in spec.get("aliases", ())
        )

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(self.ARGUMENT_SPEC, **self.ARGUMENT_RULES)
        self._started = time.monotonic()
        self._timings = {}
        transport = AgentTransport(self, host=task_vars.get("inventory_hostname"))
        result["changed"] = False
        try:
            self.run_on_host(args, transport, result, task_vars)
        except TaskFailure as exc:
            result.update(exc.extra)
            result.update(failed=True, msg=f"{transport.host}: {exc}")
        except AgentError as exc:
            result.update(failed=True, msg=str(exc))
            if isinstance(exc, AgentOperationError):
                result.update(hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error)
        result.update(transport.metadata())
        self._timings["total"] = round(time.monotonic() - self._started, 3)
        result["timings"] = dict(self._timings)
        result["elapsed"] = self._timings["total"]
        return result

    def run_on_host(self, args: dict, transport: AgentTransport, result: dict, task_vars: dict) -> None:
        """The plugin's own work: fill ``result``; raise TaskFailure (or let an AgentError through) to fail."""
        raise NotImplementedError

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Adds the seconds the block takes to ``timings[name]`` (also when it fails, so slow failures show)."""
        since = time.monotonic()
        try:
            yield
        finally:
            self._timings[name] = round(self._timings.get(name, 0) + time.monotonic() - since, 3)

    def explicit_option(self, name: str) -> Any:
        """The option as the task (or module_defaults) set it, by its name or an alias; None when it was not set.

        Validated options also carry environment fallbacks (``region`` from AWS_REGION...); this tells them apart.
        """
        spec = self.ARGUMENT_SPEC[name]
        for key in (name, *spec.get("aliases", ())):
            if self._task.args.get(key) is not None:
                return self._task.args[key]
        return None

    @staticmethod
    def require_at_least(args: dict, minimum: int, *names: str) -> None:
        """TaskFailure unless every option in ``names`` is ``minimum`` or more."""
        for name in names:
            if args[name] is not None and args[name] < minimum:
                raise TaskFailure(f"{name} must be {minimum} or more, not {args[name]}")
