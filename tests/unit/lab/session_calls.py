"""Session ops against a lab host the way the controller makes and reads them: ``session_start`` creates the folders
the host's ``sessions`` answer lacks (session_host.folders_to_create), and the twin's raw facts are read by the
collection's session_host.py, which derives the session state and parses created.txt (the twin itself never imports
the collection)."""

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import session_host
from lab.windows.testing import call_agent

# What the controller waits for (shadow_session.WAIT_FOR_CREATED): the set was created, or diskshadow ended.
UNTIL_CREATED = ["created.txt", "exit.txt"]
UNTIL_END = ["exit.txt"]


def agent_call(host, op, args=None):
    """One agent op on a :class:`lab.windows.LabWindowsHost`, its answer document; a ``session_start`` without
    ``create_folders`` gets those the controller would send."""
    args = dict(args or {})
    if op == "session_start" and "create_folders" not in args:
        args["create_folders"] = session_host.folders_to_create(call_agent(host, "sessions")["result"])
    return call_agent(host, op, args)


def session_call(host, op, args=None):
    """The run status of a session op's answer (the op must succeed)."""
    answer = agent_call(host, op, args)
    assert answer["ok"], answer
    return session_host.run_status(answer["result"])


def leftovers(host, older_than):
    """The runs the controller would clean on the host: session_host.leftover_runs of its ``sessions`` answer."""
    return session_host.leftover_runs(call_agent(host, "sessions")["result"], older_than)
