# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ids: the name of one shadow engine session, its run directory and its scheduled task on the host.

``new_run_id`` makes them (``ss-<UTC yyyyMMddTHHmmss>-<8 hex>``, docs/vss-session.md); ``RUN_ID_PATTERN`` is what a
run id may be wherever one arrives (an option, a session file): it becomes a directory and a task name, and goes into
batch files, so it is letters, digits, ``.``, ``_`` and ``-`` only. The run's task is ``TASK_PREFIX`` + run id in the
Task Scheduler folder ``TASK_PATH``. The agent script gets the pattern and the task names from here
(agent_transport.script_constants) for the run ids it is sent and the names it finds on the host.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TASK_PATH = "\\shadowsnap\\"
TASK_PREFIX = "shadowsnap-"
_RUN_ID_RE = re.compile(RUN_ID_PATTERN)


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """``ss-<UTC yyyyMMddTHHmmss>-<8 hex>``: sortable by start time, unique by its random part."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return "ss-%s-%s" % (moment.strftime("%Y%m%dT%H%M%S"), token or secrets.token_hex(4))


def is_run_id(value: object) -> bool:
    """Whether ``value`` may name a run (RUN_ID_PATTERN)."""
    return isinstance(value, str) and bool(_RUN_ID_RE.match(value))
