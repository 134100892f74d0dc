# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_writer_info: the VSS writers of a Windows host, read with one agent round trip and judged on the controller.

Documentation: plugins/modules/win_vss_writer_info.py.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentError,
    AgentOperationError,
    AgentTransport,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_writers,
    parse_vssadmin_writers,
)

ARGUMENT_SPEC = {
    "source": {"type": "str", "default": "vssadmin", "choices": ["vssadmin", "diskshadow"]},
    "components": {"type": "bool", "default": False},
    "expected_writers": {"type": "list", "elements": "str", "default": []},
    "required_writers": {"type": "list", "elements": "str", "default": []},
    "fail_on_unhealthy": {"type": "bool", "default": False},
}


def agent_source(source: str, components: bool) -> str:
    """The agent's writers source: components come from diskshadow's detailed listing (with its status)."""
    if components:
        return "diskshadow_detailed"
    return "vssadmin" if source == "vssadmin" else "diskshadow_status"


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def describe_writer(writer: dict) -> dict:
    """A parsed writer with what the controller knows about it: the service to restart, failed phase, volumes."""
    described = dict(writer)
    state = writer["state"]
    described["failed"] = vss.writer_state_failed(state)
    described["waiting"] = vss.writer_state_waiting(state)
    described["failed_phase"] = vss.writer_failed_phase(state)
    described["service"] = vss.writer_service(writer["name"])
    if "components" in writer:
        volumes = []
        for component in writer["components"]:
            for volume in component["volumes"]:
                if volume["volume"] not in volumes:
                    volumes.append(volume["volume"])
        described["volumes"] = volumes
    return described


def summarise(writers: list[dict], expected: list[str]) -> dict:
    """Counts by health, the names of failed and waiting writers, and the expected names that are not listed.

    The lists are ``failed_writers`` etc.: ``failed`` is the task's own result key in Ansible.
    """
    listed = {_name_key(writer["name"]) for writer in writers}
    failed = [writer["name"] for writer in writers if writer["failed"]]
    waiting = [writer["name"] for writer in writers if writer["waiting"]]
    healthy = sum(1 for writer in writers if writer["healthy"])
    return {
        "summary": {
            "total": len(writers),
            "healthy": healthy,
            "failed": len(failed),
            "waiting": len(waiting),
            "unknown": len(writers) - healthy - len(failed) - len(waiting),
        },
        "failed_writers": failed,
        "waiting_writers": waiting,
        "missing_writers": [name for name in expected if _name_key(name) not in listed],
    }


def writer_problem(writer: dict) -> str:
    """One line on an unhealthy writer: name, state, last error, and what to do."""
    text = f"{writer['name']!r} is {writer['state_name']} [{writer['state']}]"
    if writer["last_error"]:
        text += f", last error: {writer['last_error']}"
    if writer["waiting"]:
        return text + " (a backup is running or a requester left its session open: wait, do not restart anything)"
    if writer["service"]:
        return text + f"; restart the service {writer['service']} when no backup is running"
    return text + "; no known service for this writer: see its application's documentation"


def unhealthy_reasons(writers: list[dict], required: list[str], fail_on_unhealthy: bool) -> list[str]:
    """Why the task fails: every unhealthy writer (fail_on_unhealthy), every required writer missing or unhealthy."""
    reasons = []
    if fail_on_unhealthy:
        reasons.extend(writer_problem(writer) for writer in writers if not writer["healthy"])
    by_name: dict[str, list[dict]] = {}
    for writer in writers:
        by_name.setdefault(_name_key(writer["name"]), []).append(writer)
    for name in required:
        found = by_name.get(_name_key(name))
        if not found:
            service = vss.writer_service(name)
            hint = f" (is its service {service} running?)" if service else ""
            reasons.append(f"required writer {name!r} is not listed{hint}")
        elif not fail_on_unhealthy:
            reasons.extend(f"required writer {writer_problem(writer)}" for writer in found if not writer["healthy"])
    return reasons


class ActionModule(ActionBase):
    """Reads the VSS writers; fails when asked to and they are not healthy. Read-only, so check mode runs it too."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC)
        started = time.monotonic()
        host = task_vars.get("inventory_hostname")
        transport = AgentTransport(self, host=host)
        source = agent_source(args["source"], args["components"])
        result.update(changed=False, source=source)
        try:
            reply = transport.request("writers", {"sources": [source]})
        except AgentError as exc:
            return self._failed(result, transport, started, str(exc), exc)
        output = (reply.result.get("outputs") or {}).get(source) or {}
        result["oem_code_page"] = reply.result.get("oem_code_page")
        result["command"] = output.get("command")
        text = output.get("text")
        if not isinstance(text, str):
            return self._failed(result, transport, started, f"{transport.host}: the agent returned no {source} text")
        parse = parse_vssadmin_writers if source == "vssadmin" else parse_diskshadow_writers
        try:
            writers = [describe_writer(writer) for writer in parse(text)]
        except VssParseError as exc:
            hint = ""
            if "found none" in str(exc):
                hint = (
                    f" When every writer is gone at once, the COM+ Event System service "
                    f"({vss.SERVICE_WHEN_ALL_WRITERS_MISSING}) is usually the cause: restart it, then the VSS service."
                )
            return self._failed(result, transport, started, f"{transport.host}: {exc}{hint}")
        result["writers"] = writers
        result.update(summarise(writers, args["expected_writers"]))
        reasons = unhealthy_reasons(writers, args["required_writers"], args["fail_on_unhealthy"])
        if reasons:
            result["failed"] = True
            result["msg"] = f"{transport.host}: VSS writers not ready: " + "; ".join(reasons)
        result.update(transport.metadata())
        result["elapsed"] = round(time.monotonic() - started, 3)
        return result

    @staticmethod
    def _failed(result, transport, started, message, exc=None):
        result.update(failed=True, msg=message)
        if isinstance(exc, AgentOperationError):
            result.update(hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error)
        result.update(transport.metadata())
        result["elapsed"] = round(time.monotonic() - started, 3)
        return result
