# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counts, per host, the tasks that ran (skipped ones excluded) and the module executions among them (a result that
carries ``invocation``: a module's process ran; set_fact, assert and the collection's Windows action plugins do not
start one; a loop counts each item that ran one), and writes them as JSON to $SHADOWSNAP_BENCH_COUNTS when the playbook ends. Benchmark use only."""

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_counts
type: aggregate
short_description: tasks and module executions per host, for the benchmarks
description: Writes per-host counts of tasks run and module executions to $SHADOWSNAP_BENCH_COUNTS.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_counts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = {}

    def _count(self, result):
        entry = self.counts.setdefault(result._host.get_name(), {"tasks": 0, "modules": 0})
        entry["tasks"] += 1
        items = [item for item in result._result.get("results") or [] if isinstance(item, dict)]
        entry["modules"] += sum(1 for item in items if "invocation" in item) or int("invocation" in result._result)

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("SHADOWSNAP_BENCH_COUNTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.counts, handle)
