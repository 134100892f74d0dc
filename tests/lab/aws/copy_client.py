"""The DR-copy part of the lab's control API as LabClient calls it (lab.control.LabClient inherits it)."""


class CopyLabClient:
    """Needs ``self._call(method, path, payload)`` of lab.control.LabClient."""

    def copy_settings(self, **settings):
        """``copy_seconds`` (how long a copy stays pending) and ``max_concurrent_copies`` (per destination)."""
        return self._call("PUT", "/copies", settings)

    def copies(self):
        """Every CopySnapshot the lab accepted (``snapshot_id``, ``account_id``, ``region``, the source's, ``started``
        and ``ends`` on the lab's monotonic clock, ``state``), ``max_in_flight`` per ``account/Region`` (the most
        pending copies ever), ``refused`` (ResourceLimitExceeded answers) and the lab's ``now``."""
        return self._call("GET", "/copies")

    def encrypt_set(self, set_id, key_id=None, region=None, account_id=None):
        """A set's snapshots as if taken of volumes encrypted with ``key_id`` (the AWS managed aws/ebs when None)."""
        request = {"set_id": set_id, "key_id": key_id, "region": region, "account_id": account_id}
        return self._call("POST", "/copies/encrypt", request)["snapshot_ids"]
