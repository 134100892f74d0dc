# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_service_set: stop or start the services that own volumes (the application writers' services and a list).

With ``volumes``, one round trip reads the writers (diskshadow's detailed listing) and the storage; the
writer -> service knowledge is plugin_utils/vss_writers.py's. One round trip stops or starts them. With ``record``
the host keeps, in that same round trip, which services the stop found running, so that a start after a controller
died (a re-run that finds them stopped) still starts them.
Documentation: plugins/modules/win_service_set.py.
"""

from __future__ import annotations

import hashlib

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import restore_windows, vss_writers
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure

SOURCE = "diskshadow_detailed"


class ActionModule(AgentAction):
    """Stops or starts services; the writers' services of the given volumes are found on the host."""

    ARGUMENT_SPEC = {
        "names": {"type": "list", "elements": "str", "default": []},
        "volumes": {"type": "list", "elements": "str", "default": []},
        "state": {"type": "str", "required": True, "choices": ["stopped", "started"]},
        "timeout": {"type": "int", "default": 60},
        "record": {"type": "str", "default": ""},
    }

    def run_on_host(self, args, transport, result, task_vars):
        self.require_at_least(args, 1, "timeout")
        names = list(args["names"])
        result["writer_services"] = []
        if args["volumes"]:
            with self.phase("read"):
                writers_answer, storage = transport.request_many([("writers", {"sources": [SOURCE]}), ("storage", None)]).results
            try:
                writers = vss_writers.read_writers(writers_answer, SOURCE)
            except vss_writers.WritersError as exc:
                raise TaskFailure(f"cannot tell which services own {', '.join(args['volumes'])}: {exc}") from exc
            services, unknown = restore_windows.services_for_volumes(writers, storage, args["volumes"])
            if unknown:
                raise TaskFailure(f"the writers {', '.join(unknown)} have files on {', '.join(args['volumes'])} but their "
                                  f"service is not known: name it in names")
            result["writer_services"] = services
            names += [name for name in services if name.lower() not in (n.lower() for n in names)]
        result["names"] = names
        result["services"] = []
        if not (names or args["record"]) or self._task.check_mode:
            result["changed"] = bool(names)
            return
        state = "stopped" if args["state"] == "stopped" else "running"
        request = {"names": names, "state": state, "timeout_seconds": args["timeout"]}
        if args["record"]:
            request["record"] = record_name(args["record"])
        with self.phase(args["state"]):
            reply = transport.request("service_set", request)
        result["services"] = reply.result.get("services") or []
        result["changed"] = any(service.get("previous_status") != service.get("status") for service in result["services"])
        # What a later start should start again: the services this stop found running, and those the host's record
        # says an earlier stop of the same restore found running.
        result["were_running"] = [service["name"] for service in result["services"] if service.get("previous_status") == "Running"]
        result["recorded"] = list(reply.result.get("recorded") or [])
        result["were_running"] += [name for name in result["recorded"] if name not in result["were_running"]]


def record_name(record: str) -> str:
    """The host's file name of a record (any text, such as a restore id, maps to a name the agent accepts)."""
    return "restore-" + hashlib.sha256(record.encode("utf-8")).hexdigest()[:32]
