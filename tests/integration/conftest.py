"""Fixtures of the integration tests: the lab (started once, reset per test) and real ansible-playbook runs."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from lab.control import LabClient, start_detached, stop_detached

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS_PATH = os.path.join(REPO_ROOT, "build", "collections")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


@pytest.fixture(scope="session")
def lab_session(tmp_path_factory):
    """The lab of this pytest process (each pytest-xdist worker starts its own, in its own temporary directory)."""
    state_dir = tmp_path_factory.mktemp("lab")
    state_file = str(state_dir / "state.json")
    state = start_detached(state_file, str(state_dir / "lab.log"))
    try:
        yield LabClient(state)
    finally:
        # A lab that is gone before the end died under the tests, or another process stopped it: say so.
        if not stop_detached(state_file):
            raise RuntimeError("the lab was no longer running at the end of the session; see %s" % (state_dir / "lab.log"))


@pytest.fixture
def lab(lab_session):
    """A freshly seeded lab: default topology, no faults, zero counts."""
    lab_session.reset()
    return lab_session


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    tasks: list = field(default_factory=list)

    def result(self, task_name, host="localhost"):
        """The result of the last task with this name on this host."""
        for task in reversed(self.tasks):
            if task["task"]["name"] == task_name and host in task["hosts"]:
                return task["hosts"][host]
        raise KeyError("no task %r ran on %s; tasks: %s" % (task_name, host, [t["task"]["name"] for t in self.tasks]))


def process_tree(root):
    """``root`` and every process below it (ansible's workers start sessions of their own, so a process group is
    not enough to find the module a worker runs)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def kill_controller(process):
    """The controller dies at once, as a crashed controller machine would: SIGKILL to ansible-playbook, its workers
    and the modules they run."""
    for pid in process_tree(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def playbook_command(lab_client, tmp_path, playbook, extra_vars=None, check=False, inventory=None, environment=None):
    """(command, environment) of a real ansible-playbook run against the lab, with the JSON callback."""
    playbook_path = tmp_path / "playbook.yml"
    playbook_path.write_text(playbook, encoding="utf-8")
    if inventory is None:
        inventory = tmp_path / "inventory.ini"
        inventory.write_text("localhost ansible_connection=local\n", encoding="utf-8")
    command = [ANSIBLE_PLAYBOOK, str(playbook_path), "-i", str(inventory)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if check:
        command.append("--check")
    env = dict(os.environ)
    env.update(lab_client.state["environment"])
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS_PATH,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_NOCOLOR": "1",
    })
    env.update(environment or {})
    for name, value in list(env.items()):
        if value is None:
            del env[name]
    return command, env


@pytest.fixture
def ansible_playbook(tmp_path):
    """Run a real ansible-playbook against the lab and return its parsed JSON callback output."""

    def run(lab_client, playbook, extra_vars=None, check=False, inventory=None, environment=None, timeout=600):
        command, env = playbook_command(lab_client, tmp_path, playbook, extra_vars, check, inventory, environment)
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        try:
            document = json.loads(completed.stdout)
        except ValueError as error:
            raise AssertionError("ansible-playbook printed no JSON (rc %d):\n%s\n%s"
                                 % (completed.returncode, completed.stdout, completed.stderr)) from error
        tasks = [task for play in document["plays"] for task in play["tasks"]]
        return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, tasks)

    return run
