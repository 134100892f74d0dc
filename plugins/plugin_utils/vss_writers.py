# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller knows about the VSS writers of a host, for every plugin that reads them.

A ``writers`` answer of the agent becomes a list of *described* writers (:func:`read_writers`): the parsed writer
(vss_parse.py) with its failed/waiting flags, the phase it failed in, the service that hosts it, whether it is one of
the operating system's own writers, and the volumes its components touch. On those lists: finding writers by name or
id, one line per unhealthy writer with what to do, the health verdicts of ``win_vss_writer_info`` (a listing) and of
``win_vss_snapshot_set`` (a listing against the shadow set it is about to make).

The rule both plugins apply: a writer that must take part has to be listed and STABLE. WAITING_* means another
backup is running or a requester left its session open - a reason to wait, never to go on; FAILED_* and UNKNOWN
need its service restarted.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid, volume_key
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_writers,
    parse_vssadmin_writers,
)

# The operating system's own writers: never required by default (their components follow service binaries and system
# files onto every volume); diskshadow includes them when all their components are in the set.
INFRASTRUCTURE_WRITERS = frozenset(
    vss.writer_name_key(name)
    for name in (
        "ASR Writer",
        "BITS Writer",
        "COM+ REGDB Writer",
        "MSSearch Service Writer",
        "Performance Counters Writer",
        "Registry Writer",
        "Shadow Copy Optimization Writer",
        "System Writer",
        "Task Scheduler Writer",
        "VSS Metadata Store Writer",
        "WMI Writer",
    )
)


class WritersError(ValueError):
    """The writers answer cannot be trusted (no text, no writer, a garbled block); the message says what to check."""


def is_infrastructure_writer(name: str) -> bool:
    """True for the operating system's own writers (INFRASTRUCTURE_WRITERS)."""
    return vss.writer_name_key(name) in INFRASTRUCTURE_WRITERS


def component_volume_keys(component: dict) -> list[str]:
    r"""The ``\\?\Volume{guid}\`` of every volume the component touches, in listing order."""
    keys: list[str] = []
    for volume in component.get("volumes") or []:
        key = volume_key(volume.get("volume"))
        if key and key not in keys:
            keys.append(key)
    return keys


def writer_volume_keys(writer: dict) -> list[str]:
    r"""The ``\\?\Volume{guid}\`` of every volume the writer's components touch, in listing order."""
    keys: list[str] = []
    for component in writer.get("components") or []:
        keys += [key for key in component_volume_keys(component) if key not in keys]
    return keys


def describe_writer(writer: dict) -> dict:
    """A parsed writer with the service to restart, failed/waiting flags, failed phase and the volumes it touches.

    ``volumes`` (only when the listing had the writer's components) uses the volume keys of the storage mapping, so
    it compares with the volumes of win_ebs_disk_info whatever case a tool printed the GUIDs in.
    """
    described = dict(writer)
    state = writer.get("state")
    described["failed"] = vss.writer_state_failed(state)
    described["waiting"] = vss.writer_state_waiting(state)
    described["failed_phase"] = vss.writer_failed_phase(state)
    described["service"] = vss.writer_service(writer["name"])
    described["infrastructure"] = is_infrastructure_writer(writer["name"])
    if writer.get("components") is not None:
        described["volumes"] = writer_volume_keys(writer)
    return described


def read_writers(answer: dict, source: str) -> list[dict]:
    """The described writers of the agent's ``writers`` answer for ``source`` (vssadmin or a diskshadow listing)."""
    output = (answer.get("outputs") or {}).get(source) or {}
    text = output.get("text")
    if not isinstance(text, str):
        raise WritersError(f"the agent returned no {source} text")
    parse = parse_vssadmin_writers if source == "vssadmin" else parse_diskshadow_writers
    try:
        return [describe_writer(writer) for writer in parse(text)]
    except VssParseError as exc:
        hint = ""
        if "found none" in str(exc):
            hint = (f" When every writer is gone at once, the COM+ Event System service ({vss.SERVICE_WHEN_ALL_WRITERS_MISSING}) "
                    f"is usually the cause: restart it, then the VSS service.")
        raise WritersError(f"{exc}{hint}") from exc


def find_writers(refs: list[str], writers: list[dict]) -> tuple[list[dict], list[str]]:
    """The writers named by ``refs`` (names, or writer/instance ids as GUIDs), and the refs that name none."""
    found: list[dict] = []
    unknown: list[str] = []
    for ref in refs or []:
        guid = normalise_guid(ref)
        matches = [
            writer
            for writer in writers
            if (guid and guid in (writer.get("writer_id"), writer.get("instance_id")))
            or (not guid and vss.writer_name_key(writer["name"]) == vss.writer_name_key(ref))
        ]
        if not matches:
            unknown.append(ref)
        for writer in matches:
            if writer not in found:
                found.append(writer)
    return found, unknown


def service_hint(ref: str) -> str:
    """`` (is its service X running?)`` for a writer that is not listed, when its service is known."""
    service = vss.writer_service(ref)
    return f" (is its service {service} running?)" if service else ""


def writer_problem(writer: dict, restart_option: str | None = None) -> str:
    """One line on an unhealthy writer: name, state, last error, and what to do.

    ``restart_option`` names the plugin option that restarts the service for the user, when the plugin has one.
    """
    state = writer.get("state")
    text = f"{writer['name']!r} is {writer.get('state_name') or vss.writer_state_name(state)} [{state}]"
    if writer.get("last_error"):
        text += f", last error: {writer['last_error']}"
    if vss.writer_state_waiting(state):
        return text + " (a backup is running or a requester left its session open: wait, do not restart anything)"
    service = writer.get("service") or vss.writer_service(writer["name"])
    if not service:
        return text + "; no known service for this writer: see its application's documentation"
    text += f"; restart the service {service} when no backup is running"
    return text + (f" (or set {restart_option}: true)" if restart_option else "")


# --------------------------------------------------------------------------------------------- a listing (info)


def listing_summary(writers: list[dict], expected: list[str]) -> dict:
    """Counts by health, the names of failed and waiting writers, and the expected names that are not listed.

    The lists are ``failed_writers`` etc.: ``failed`` is the task's own result key in Ansible.
    """
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
        "missing_writers": [name for name in expected if not find_writers([name], writers)[0]],
    }


def listing_problems(writers: list[dict], required: list[str], fail_on_unhealthy: bool) -> list[str]:
    """Why a listing fails: every unhealthy writer (fail_on_unhealthy), every required writer missing or not STABLE."""
    reasons = []
    if fail_on_unhealthy:
        reasons.extend(writer_problem(writer) for writer in writers if not writer["healthy"])
    for ref in required:
        found, dummy = find_writers([ref], writers)
        if not found:
            reasons.append(f"required writer {ref!r} is not listed{service_hint(ref)}")
        elif not fail_on_unhealthy:
            reasons.extend(f"required writer {writer_problem(writer)}" for writer in found if not writer["healthy"])
    return reasons


# ------------------------------------------------------------------------------------- against a shadow set plan


@dataclass
class WriterHealth:
    """Which writers stop a shadow set from being made now, and which only earn a warning.

    ``blocking``: required writers that are not STABLE, each with ``problem`` (name, state, last error, what to do);
    ``services``: what to restart for the failed ones; ``waiting``: whether every blocking writer only waits for
    another backup (then listing again later may find them STABLE; restarting would break that backup).
    """

    blocking: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    services: list = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return bool(self.blocking) and all(writer["waiting"] for writer in self.blocking)


def writer_health(writers: list[dict], plan, restart_option: str | None = None) -> WriterHealth:
    """The health of ``writers`` for a shadow set ``plan`` (its ``required_writers`` and ``touching_writers``).

    A required writer must be STABLE: a waiting or failed one blocks. An unhealthy writer that is not required but
    touches the set only earns a warning (diskshadow includes it or leaves it out, and says which).
    """
    required = {entry["instance_id"]: entry for entry in plan.required_writers}
    touching = {vss.writer_name_key(name) for name in plan.touching_writers}
    health = WriterHealth()
    for writer in writers:
        if writer.get("healthy"):
            continue
        described = writer if "service" in writer else describe_writer(writer)
        entry = required.get(writer["instance_id"])
        if entry is not None:
            problem = "required writer " + writer_problem(described, restart_option)
            if entry.get("rule") == "unidentified":
                problem += ("; it lists no components, so the volumes it needs are unknown and the set cannot be "
                            "application-consistent for it; or leave it out with exclude_writers")
            waiting = vss.writer_state_waiting(writer.get("state"))
            health.blocking.append(dict(described, problem=problem, waiting=waiting))
            if not waiting and described.get("service") and described["service"] not in health.services:
                health.services.append(described["service"])
        elif vss.writer_name_key(writer["name"]) in touching:
            health.warnings.append("writer " + writer_problem(described, restart_option))
    return health
