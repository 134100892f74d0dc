"""Authentication and NTLM message encryption of the lab's WinRM endpoint.

Basic is checked per request. NTLM (offered as ``Negotiate``, like Windows) authenticates the TCP connection
through pyspnego's acceptor; once established, SOAP bodies travel as ``multipart/encrypted`` with protocol
``application/HTTP-SPNEGO-session-encrypted`` [MS-WSMV 2.2.9.1.1], sealed and signed with the session key.

pyspnego's NTLM acceptor only reads accounts from the file named by the ``NTLM_USER_FILE`` environment variable,
so :class:`NtlmAccountFile` keeps one such file for the whole process, holding the accounts of every NTLM-enabled
endpoint that is running, and restores the variable when the last one stops.
"""

import base64
import binascii
import os
import struct
import tempfile
import threading

import spnego
import spnego.channel_bindings
import spnego.exceptions

ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % ENCRYPTED_PROTOCOL
_BOUNDARY = b"--Encrypted Boundary\r\n"
_END_BOUNDARY = b"--Encrypted Boundary--\r\n"
_OCTET_STREAM = b"\tContent-Type: application/octet-stream\r\n"


class MessageEncryptionError(Exception):
    """An encrypted body that cannot be opened: Windows answers 400 Bad Request."""


def basic_credentials(authorization):
    """(username, password) from an ``Authorization: Basic`` header value, or None if it is not valid Basic."""
    scheme, dummy, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, separator, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if separator else None


def same_account(offered, username, machine):
    """Windows matches local account names case-insensitively, also as ``.\\user`` and ``MACHINE\\user``."""
    domain, separator, name = offered.rpartition("\\")
    if separator and domain.upper() not in (".", machine.upper()):
        return False
    return name.lower() == username.lower()


class NtlmAccountFile:
    """The process-wide ``NTLM_USER_FILE`` holding the local accounts of the running NTLM endpoints."""

    def __init__(self):
        self._lock = threading.Lock()
        self._registrations = []
        self._directory = None
        self._previous = None

    def register(self, machine, username, password):
        """Add an endpoint's account (as ``user``, ``.\\user`` and ``MACHINE\\user``); returns a handle for unregister."""
        with self._lock:
            for other_machine, other_user, other_password in self._registrations:
                if other_user.lower() == username.lower() and other_password != password:
                    raise ValueError(
                        "NTLM account %r is already served by %s with another password; pyspnego's acceptor reads one account file per "
                        "process, so lab NTLM endpoints that run together must agree on passwords" % (username, other_machine)
                    )
            registration = (machine, username, password)
            self._registrations.append(registration)
            self._write()
            return registration

    def unregister(self, registration):
        with self._lock:
            self._registrations.remove(registration)
            self._write()

    def _write(self):
        if not self._registrations:
            if self._directory is not None:
                if self._previous is None:
                    os.environ.pop("NTLM_USER_FILE", None)
                else:
                    os.environ["NTLM_USER_FILE"] = self._previous
                self._directory.cleanup()
                self._directory = None
            return
        if self._directory is None:
            self._previous = os.environ.get("NTLM_USER_FILE")
            self._directory = tempfile.TemporaryDirectory(prefix="lab-winrm-ntlm-")  # pylint: disable=consider-using-with
        lines = []
        for machine, username, password in self._registrations:
            for domain in ("", ".", machine):
                lines.append("%s:%s:%s" % (domain, username, password))
        path = os.path.join(self._directory.name, "ntlm_users")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.environ["NTLM_USER_FILE"] = path


NTLM_ACCOUNTS = NtlmAccountFile()


class NtlmSession:
    """The NTLM/Negotiate security context of one TCP connection, and the message sealing that rides on it."""

    def __init__(self, channel_bindings=None):
        bindings = spnego.channel_bindings.GssChannelBindings(application_data=channel_bindings) if channel_bindings else None
        self._context = spnego.server(protocol="negotiate", channel_bindings=bindings)

    @property
    def complete(self):
        return self._context.complete

    @property
    def username(self):
        return self._context.client_principal

    def step(self, token):
        """Feed a client token; returns the token to send back (None when the exchange ends without one).

        Raises :class:`spnego.exceptions.SpnegoError` for a wrong password or a malformed token.
        """
        return self._context.step(token)

    def unwrap(self, body):
        """The SOAP bytes inside an encrypted multipart body."""
        if not body.startswith(_BOUNDARY) or not body.endswith(_END_BOUNDARY):
            raise MessageEncryptionError("not an Encrypted Boundary multipart body")
        header_end = body.find(_BOUNDARY, len(_BOUNDARY))
        if header_end < 0:
            raise MessageEncryptionError("missing the second Encrypted Boundary")
        headers = body[len(_BOUNDARY):header_end]
        try:
            expected_length = int(headers.split(b"Length=")[1].split(b"\r\n")[0])
        except (IndexError, ValueError):
            raise MessageEncryptionError("OriginalContent has no Length") from None
        payload = body[header_end + len(_BOUNDARY):-len(_END_BOUNDARY)]
        if not payload.startswith(_OCTET_STREAM):
            raise MessageEncryptionError("the encrypted part is not application/octet-stream")
        payload = payload[len(_OCTET_STREAM):]
        if len(payload) < 4:
            raise MessageEncryptionError("encrypted part too short")
        signature_length = struct.unpack("<I", payload[:4])[0]
        signature = payload[4:4 + signature_length]
        try:
            message = self._context.unwrap_winrm(signature, payload[4 + signature_length:])
        except spnego.exceptions.SpnegoError as error:
            raise MessageEncryptionError("cannot unseal the message: %s" % error) from None
        if len(message) != expected_length:
            raise MessageEncryptionError("unsealed %d bytes, OriginalContent says %d" % (len(message), expected_length))
        return message

    def wrap(self, message):
        """An encrypted multipart body carrying ``message``."""
        sealed = self._context.wrap_winrm(message)
        return b"".join(
            [
                _BOUNDARY,
                b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n",
                b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n" % (len(message) + sealed.padding_length),
                _BOUNDARY,
                _OCTET_STREAM,
                struct.pack("<I", len(sealed.header)),
                sealed.header,
                sealed.data,
                _END_BOUNDARY,
            ]
        )
