"""What every benchmark does around its measurements: a lab of its own in a scratch directory, and the report
printed and kept under docs/benchmarks/ (unless ``--no-save``)."""

import contextlib
import os
import sys
import tempfile

from lab.control import LabClient, start_detached, stop_detached

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def report_path(name):
    return os.path.join(REPO_ROOT, "docs", "benchmarks", name)


@contextlib.contextmanager
def bench_lab(prefix="shadowsnap-bench-"):
    """(lab client, work directory) of a lab started for one benchmark run, stopped whatever happens."""
    work_dir = tempfile.mkdtemp(prefix=prefix)
    state_file = os.path.join(work_dir, "state.json")
    lab = LabClient(start_detached(state_file, os.path.join(work_dir, "lab.log")))
    try:
        yield lab, work_dir
    finally:
        stop_detached(state_file)


def publish(report, path, save=True):
    sys.stdout.write(report + "\n")
    if save:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(report)


ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def playbook_environment(lab, **settings):
    """The environment of a benchmark's ansible-playbook: the lab's AWS settings, this checkout's collection, quiet
    output, and ``settings`` on top."""
    environment = dict(os.environ, **lab.state["environment"])
    environment.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO_ROOT, "build", "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
    })
    environment.update(settings)
    return environment
