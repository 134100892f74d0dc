# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_restore_files: copy files and folders back from restored volumes - an exposed shadow copy or a volume mounted
read-only - with their data, time stamps, security and owner.

The decisions (which volume holds a path, robocopy's arguments, what its answers mean) are
plugin_utils/file_restore.py's. Paths go in bounded batches, one round trip each, and the plugin prints the progress
between them (on standard error, so that a machine-readable callback on standard output stays intact), so a large
restore shows how far it got. Documentation: plugins/modules/win_restore_files.py.
"""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import file_restore
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure

MAX_BATCH_PATHS = 32


class ActionModule(AgentAction):
    """Copies the given paths from the restored volumes into a folder, or back in place."""

    ARGUMENT_SPEC = {
        "paths": {"type": "list", "elements": "str", "required": True},
        "sources": {"type": "list", "elements": "dict", "required": True, "options": {
            "volume_path": {"type": "str", "required": True},
            "read_from": {"type": "str", "required": True},
        }},
        "target": {"type": "str"},
        "in_place": {"type": "bool", "default": False},
        "overwrite": {"type": "bool", "default": False},
        "batch_size": {"type": "int", "default": 8},
        "fail_on_not_found": {"type": "bool", "default": True},
    }

    def run_on_host(self, args, transport, result, task_vars):
        self.require_at_least(args, 1, "batch_size")
        if args["batch_size"] > MAX_BATCH_PATHS:
            raise TaskFailure(f"batch_size may be {MAX_BATCH_PATHS} at most, not {args['batch_size']}")
        if args["in_place"] == bool(args["target"]):
            raise TaskFailure("give either target (a folder) or in_place=true")
        reading = {file_restore.clean_path(source["volume_path"]): file_restore.clean_path(source["read_from"])
                   for source in args["sources"]}
        target = None if args["in_place"] else file_restore.clean_path(args["target"] or "")
        if target is not None and not file_restore.ABSOLUTE.match(target) and not target.startswith("\\\\"):
            raise TaskFailure(f"target {args['target']!r} is neither an absolute folder (C:\\Restore) nor a share (\\\\server\\share)")
        try:
            volumes = file_restore.check_paths(args["paths"], list(reading))
        except file_restore.FileRestoreError as exc:
            raise TaskFailure(str(exc)) from exc
        plans = [(path, file_restore.plan_jobs(path, reading[file_restore.clean_path(volume)], volume, target,
                                               args["overwrite"])) for path, volume in volumes.items()]
        entries = []
        if self._task.check_mode:
            result["paths"] = [{"path": path, "destination": file_restore.destination_of(path, target), "status": "planned"}
                               for path, dummy in plans]
            result["changed"] = bool(plans)
            return
        for start in range(0, len(plans), args["batch_size"]):
            batch = plans[start:start + args["batch_size"]]
            jobs = [job for dummy, path_jobs in batch for job in path_jobs]
            with self.phase("copy"):
                answers = transport.request("files_copy", {"jobs": [{"arguments": job["arguments"]} for job in jobs]}).result
            answered = iter(answers.get("jobs") or [])
            for path, path_jobs in batch:
                entries.append(file_restore.judge_path(path, file_restore.destination_of(path, target),
                                                       [next(answered, {}) for dummy in path_jobs], path_jobs, args["overwrite"]))
            self._display.display(
                f"{transport.host}: restored {len(entries)}/{len(plans)} paths, "
                f"{sum(entry['files_copied'] for entry in entries)} files, "
                f"{sum(entry['bytes_copied'] for entry in entries)} bytes", stderr=True)
        self._summarise(result, entries, args)

    @staticmethod
    def _summarise(result, entries, args):
        result["paths"] = entries
        result["files_copied"] = sum(entry["files_copied"] for entry in entries)
        result["bytes_copied"] = sum(entry["bytes_copied"] for entry in entries)
        result["changed"] = any(entry["files_copied"] or entry["folders_copied"] for entry in entries)
        failed = [entry for entry in entries if entry["status"] == "failed"]
        missing = [entry["path"] for entry in entries if entry["status"] == "not_found"]
        problems = [f"{entry['path']}: " + "; ".join(
            f"{failure['path'] or 'robocopy'}: {failure['message']}" + (f" ({failure['hresult']})" if failure["hresult"] else "")
            for failure in entry["failures"][:5]) for entry in failed]
        if missing and args["fail_on_not_found"]:
            problems.append("not in the backup: " + ", ".join(missing))
        if problems:
            raise TaskFailure("the restore of files is incomplete: " + " | ".join(problems)
                              + f" ({result['files_copied']} files copied)", **result)
