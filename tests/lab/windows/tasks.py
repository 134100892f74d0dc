r"""The Task Scheduler of a simulated Windows Server: tasks that run a batch file as SYSTEM, with a time limit.

A task's action is ``cmd.exe /d /c <file>``: a worker thread runs the file with lab.windows.batch (a file that is
not one of the collection's batch files exits with the code the host sets for it, default 0). The task scheduler
stops a task that runs past its execution time limit; a stopped task's cmd.exe and the diskshadow it started are
killed. Every thread is bounded, and :meth:`TaskScheduler.shutdown` (the lab stops or resets) stops them all.
"""

import threading
import time

from .batch import BatchStopped, protocol_script_kind, run_batch
from .diskshadow import DiskShadowStopped

# Task Scheduler's LastTaskResult: not run yet (SCHED_S_TASK_HAS_NOT_RUN), running (SCHED_S_TASK_RUNNING), stopped
# (SCHED_S_TASK_TERMINATED).
TASK_NEVER_RAN = 0x00041303
TASK_RUNNING = 0x00041301
SCHED_S_TASK_TERMINATED = 0x00041306


class Task:  # pylint: disable=too-many-instance-attributes
    """One registered task: ``cmd.exe /d /c <action>`` as SYSTEM, with an execution time limit.

    ``run_id`` is the session run the task belongs to (the lab records it with the VSS events diskshadow causes).
    """

    def __init__(self, path, name, action, working_directory, time_limit, run_id=None):  # pylint: disable=too-many-arguments
        self.path = path
        self.name = name
        self.action = action
        self.working_directory = working_directory
        self.time_limit = time_limit
        self.run_id = run_id
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread = None
        self.timer = None
        self.running = False
        self.last_result = TASK_NEVER_RAN
        self.error = None

    @property
    def state(self):
        return "Running" if self.running else "Ready"

    @property
    def active(self):
        """Running, or registered and started but not run yet."""
        return self.running or self.last_result == TASK_NEVER_RAN

    def sleep(self, seconds):
        """How the task's batch files wait (ping): real time, ended early by a wake-up or a stop."""
        self.wake.wait(seconds)
        self.wake.clear()
        if self.stop.is_set():
            raise BatchStopped()

    def describe(self):
        return {"run_id": self.run_id, "task": self.path + self.name, "state": self.state, "last_result": self.last_result,
                "age_seconds": round(time.monotonic() - self.started, 3), "time_limit_seconds": self.time_limit,
                "error": self.error}


class TaskScheduler:
    """The tasks of one host (``server.tasks``), by name; thread-safe. ``changed`` is notified when a task ends."""

    def __init__(self, server):
        self.server = server
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.tasks = {}
        self.closed = False

    def get(self, name):
        return self.tasks.get(name)

    def active(self, exclude=None):
        """The names of the tasks that run (or are about to), but ``exclude``."""
        return [task.name for task in list(self.tasks.values()) if task.name != exclude and task.active]

    def register_and_start(self, path, name, action, working_directory, time_limit, run_id=None):  # pylint: disable=too-many-arguments
        """Register-ScheduledTask + Start-ScheduledTask: the task runs at once in a worker thread."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the host is shutting down")
            task = Task(path, name, action, working_directory, float(time_limit), run_id)
            self.tasks[name] = task
            task.running = True
            task.last_result = TASK_RUNNING
            task.thread = threading.Thread(target=self._run, args=(task,), name="lab-task-%s-%s" % (self.server.name, name),
                                           daemon=True)
            task.timer = threading.Timer(task.time_limit, self._time_limit, args=(task,))
            task.timer.daemon = True
            task.timer.start()
            task.thread.start()
        return task

    def _time_limit(self, task):
        task.error = "the task ran past its execution time limit (%g s) and was stopped" % task.time_limit
        task.stop.set()
        task.wake.set()

    def _run(self, task):
        model = self.server
        try:
            data = model.files.read(task.action) or b""
            if protocol_script_kind(data) is not None:
                result = run_batch(model, task.action, data, {"COMPUTERNAME": model.hostname}, lambda *lines: None,
                                   stop=task.stop, sleep=task.sleep, cwd=task.working_directory, run_id=task.run_id)
            else:
                result = model.exec_exit_codes.get(task.action.lower(), 0)
            task.last_result = result
        except DiskShadowStopped:
            task.last_result = SCHED_S_TASK_TERMINATED
        except Exception as error:  # pylint: disable=broad-except
            task.error = "%s: %s" % (type(error).__name__, error)
            task.last_result = 1
        finally:
            if task.timer is not None:
                task.timer.cancel()
            with self.changed:
                task.running = False
                self.changed.notify_all()

    def wake(self, name):
        """Wake the task's waiting batch file (a file it polls for has appeared)."""
        task = self.tasks.get(name)
        if task is not None:
            task.wake.set()

    def stop(self, name, timeout=10.0):
        """Stop-ScheduledTask: the task and the diskshadow it started are killed."""
        task = self.tasks.get(name)
        if task is None:
            return
        task.stop.set()
        task.wake.set()
        if task.thread is not None and task.thread is not threading.current_thread():
            task.thread.join(timeout)
        if task.timer is not None:
            task.timer.cancel()
            if task.timer.is_alive() and task.timer is not threading.current_thread():
                task.timer.join(timeout)

    def unregister(self, name):
        """Unregister-ScheduledTask (of a task that has ended)."""
        with self.lock:
            task = self.tasks.get(name)
            if task is not None and not task.running:
                del self.tasks[name]

    def wait(self, predicate, seconds, cancel=None, poll=0.05):
        """Wait until ``predicate()`` (evaluated without holding the lock: it reads the model), at most ``seconds``."""
        deadline = time.monotonic() + max(0.0, float(seconds or 0))
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed or (cancel is not None and cancel.is_set()):
                return False
            with self.changed:
                self.changed.wait(min(remaining, poll))
        return True

    def describe(self):
        return [task.describe() for task in list(self.tasks.values())]

    def shutdown(self, timeout=5.0):
        """The lab stops or resets: every task stopped, every thread joined."""
        with self.changed:
            self.closed = True
            names = list(self.tasks)
            self.changed.notify_all()
        for name in names:
            self.stop(name, timeout)
