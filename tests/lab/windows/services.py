"""The services of a simulated Windows Server, and what their state does to the VSS writers they host.

A writer is listed only while its service runs (the in-box writers of the VSS service excepted: listing writers starts
the demand-start VSS service); starting a service again gives its writers new instance ids; stopping the COM+ Event
System hides every writer (FACTS.md: all writers vanishing at once is usually EventSystem).
"""

from collections.abc import Mapping

from . import catalog


class Service:
    def __init__(self, spec):
        self.name = spec.name
        self.display_name = spec.display_name
        self.start_type = spec.start_type
        self.status = spec.status

    def describe(self):
        return {"Name": self.name, "DisplayName": self.display_name, "Status": self.status, "StartType": self.start_type}


class Services(Mapping):
    """The service table of one host (``server.services``), by name; thread-safe under the host's lock."""

    def __init__(self, server, applications):
        self.server = server
        specs = list(catalog.BASE_SERVICES)
        for application in applications:
            specs.extend(catalog.APPLICATION_SERVICES[application])
        self.by_name = {spec.name: Service(spec) for spec in specs}

    def __getitem__(self, name):
        return self.by_name[name]

    def __iter__(self):
        return iter(self.by_name)

    def __len__(self):
        return len(self.by_name)

    def find(self, name):
        """The service of that name, compared as Windows compares service names (case-insensitive), or None."""
        return next((service for service in self.by_name.values() if service.name.lower() == name.lower()), None)

    def running(self, name):
        service = self.by_name.get(name)
        return service is not None and service.status == "Running"

    def start_vss(self):
        """vssadmin and diskshadow start the (demand-start) VSS service when they query writers."""
        with self.server.lock:
            self.by_name["VSS"].status = "Running"

    def set_state(self, name, status):
        """``Running`` or ``Stopped``; starting a service restarts the writers it hosts (new instance ids)."""
        if status not in ("Running", "Stopped"):
            raise ValueError("status must be Running or Stopped")
        with self.server.lock:
            service = self.by_name.get(name)
            if service is None:
                raise KeyError("%s has no service %r" % (self.server.name, name))
            was = service.status
            service.status = status
            if status == "Running" and was != "Running":
                self.server.writers.service_started(name)
            described = service.describe()
        # Outside the host's lock: stopping the application waits for its writer thread, which may need the lock.
        application = getattr(self.server, "application", None)
        if application is not None and was != status:
            application.service_changed(name, status)
        return described

    def restart(self, name):
        with self.server.lock:
            self.set_state(name, "Stopped")
            return self.set_state(name, "Running")

    def describe(self):
        return [service.describe() for service in self.by_name.values()]
