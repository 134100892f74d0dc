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
        with self.phase(args["state"]):
            reply = transport.request("service_set", restore_windows.service_set_request(names, state, args["timeout"], args["record"]))
        result.update(restore_windows.services_set(reply.result))
        result["changed"] = any(service.get("previous_status") != service.get("status") for service in result["services"])
