# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_writer_info: the VSS writers of a Windows host, read with one agent round trip and judged on the controller.

The writer knowledge (description, problems, health) is plugin_utils/vss_writers.py's, shared with
win_vss_snapshot_set. Documentation: plugins/modules/win_vss_writer_info.py.
"""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss_writers
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure


def agent_source(source: str, components: bool) -> str:
    """The agent's writers source: components come from diskshadow's detailed listing (with its status)."""
    if components:
        return "diskshadow_detailed"
    return "vssadmin" if source == "vssadmin" else "diskshadow_status"


class ActionModule(AgentAction):
    """Reads the VSS writers; fails when asked to and they are not healthy. Read-only, so check mode runs it too."""

    ARGUMENT_SPEC = {
        "source": {"type": "str", "default": "vssadmin", "choices": ["vssadmin", "diskshadow"]},
        "components": {"type": "bool", "default": False},
        "expected_writers": {"type": "list", "elements": "str", "default": []},
        "required_writers": {"type": "list", "elements": "str", "default": []},
        "fail_on_unhealthy": {"type": "bool", "default": False},
    }

    def run_on_host(self, args, transport, result, task_vars):
        source = agent_source(args["source"], args["components"])
        result["source"] = source
        with self.phase("read"):
            reply = transport.request("writers", {"sources": [source]})
        output = (reply.result.get("outputs") or {}).get(source) or {}
        result.update(oem_code_page=reply.result.get("oem_code_page"), command=output.get("command"))
        try:
            writers = vss_writers.read_writers(reply.result, source)
        except vss_writers.WritersError as exc:
            raise TaskFailure(str(exc)) from exc
        result["writers"] = writers
        result.update(vss_writers.listing_summary(writers, args["expected_writers"]))
        reasons = vss_writers.listing_problems(writers, args["required_writers"], args["fail_on_unhealthy"])
        if reasons:
            raise TaskFailure("VSS writers not ready: " + "; ".join(reasons))
