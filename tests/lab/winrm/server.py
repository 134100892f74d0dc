"""A WS-Management (WinRM) endpoint on loopback that stands in for one Windows Server.

Clients — pywinrm, Ansible's ``winrm`` connection, pypsrp's WinRS client — talk to it exactly as to Windows:
SOAP 1.2 over HTTP(S) POST to ``/wsman``, Basic or NTLM (with message encryption) authentication, and the WinRS
shell actions Create, Command, Send, Receive, Signal and Delete (see :mod:`lab.winrm.winrs`).

The host interface
------------------
What runs behind the endpoint is a *host*: any object with ::

    run_command(command: str, arguments: list[str], stdin: bytes) -> CommandResult

``command`` is the ``rsp:Command`` text and ``arguments`` the ``rsp:Arguments`` texts, one string per element, as
the client sent them: pywinrm and Ansible send a single element holding every argument joined by spaces
(``PowerShell`` + ``"-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand <base64>"``), pypsrp
one element per argument, and pywinrm's ``run_ps`` puts everything in ``command``. :func:`decode_powershell_command`
turns any of these into the PowerShell script text. ``stdin`` is everything the client sent through Send requests,
concatenated. The endpoint calls ``run_command`` in a worker thread once stdin is complete (a Send with
``End="true"``) or, when the client sent no stdin, at its first Receive; a slow ``run_command`` is therefore seen by
the client as a long-running process (its Receives time out with ``w:TimedOut`` and are repeated). Ctrl+C or
terminate signals abandon the result but cannot interrupt the call: it must return, because :meth:`WinRMServer.stop`
joins the workers. An exception raised by ``run_command`` is appended to :attr:`WinRMServer.errors` and answered
with a ``w:InternalError`` fault.

Counters and faults
-------------------
``server.counters`` (:class:`lab.winrm.counters.Counters`) counts connections, requests, Command round trips,
shells, Receive timeouts and bytes; ``server.faults`` (:class:`lab.winrm.faults.FaultPlan`) injects dropped
connections, bare HTTP errors, latency and authentication failures while the server runs.
"""

import base64
import binascii
import io
import logging
import ntpath
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import spnego.exceptions

from . import soap
from .auth import ENCRYPTED_CONTENT_TYPE, NTLM_ACCOUNTS, MessageEncryptionError, NtlmSession, basic_credentials, same_account
from .certs import CertificateAuthority, tls_server_end_point
from .counters import Counters
from .faults import FaultPlan
from .winrs import AnswerLost, WinRSService

LOG = logging.getLogger(__name__)
AUTH_METHODS = ("basic", "ntlm")
WORKER_JOIN_SECONDS = 5.0
_POWERSHELL_EXECUTABLES = ("powershell", "powershell.exe", "pwsh", "pwsh.exe")


@dataclass(frozen=True)
class CommandResult:
    """What a process left behind: its output streams (bytes, in the shell's code page) and exit code.

    ``answer_lost``: the process ran, but its output never reaches the client: the endpoint resets the connection of
    the Receive that would carry it (a host's way to lose the answer to one particular command).
    """

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    answer_lost: bool = False


class WindowsHost(Protocol):  # pylint: disable=too-few-public-methods
    """The interface a simulated Windows Server implements to sit behind a :class:`WinRMServer`."""

    def run_command(self, command: str, arguments: list[str], stdin: bytes) -> CommandResult:
        """Run one process to completion and return its output; see the module docstring for the exact contract."""


def _command_line_tokens(text):
    """Split a Windows command line on white space, keeping double-quoted runs together (quotes removed)."""
    tokens = []
    current = []
    quoted = False
    in_token = False
    for char in text:
        if char == '"':
            quoted = not quoted
            in_token = True
        elif char.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
                current = []
                in_token = False
        else:
            current.append(char)
            in_token = True
    if in_token:
        tokens.append("".join(current))
    return tokens


def _parameter_name(token):
    return token[1:].lower() if len(token) > 1 and token[0] in "-/" else None


def decode_powershell_command(command, arguments=()):
    """The script of a ``powershell.exe ... -EncodedCommand <base64 UTF-16LE>`` command line, or None.

    Accepts the flags in ``command`` itself or spread over ``arguments`` (one element holding them all, or one
    element each), PowerShell's abbreviations of the parameter (``-e``, ``-ec``, ``-enc`` ...), ``/`` as prefix and
    a quoted full path to ``powershell.exe``/``pwsh.exe``. Returns None for other programs, for ``-Command``/``-File``
    (including ``-Command -``, whose script arrives on stdin) and when no encoded command is given; raises
    ValueError when the encoded command is not base64 of UTF-16LE text, as powershell.exe would refuse it.
    """
    tokens = _command_line_tokens(command)
    for argument in arguments:
        tokens.extend(_command_line_tokens(argument))
    if not tokens or ntpath.basename(tokens[0]).lower() not in _POWERSHELL_EXECUTABLES:
        return None
    for index, token in enumerate(tokens[1:], start=1):
        name = _parameter_name(token)
        if not name:
            continue
        if "command".startswith(name) or "file".startswith(name):
            return None
        if name == "ec" or "encodedcommand".startswith(name):
            if index + 1 >= len(tokens):
                return None
            try:
                return base64.b64decode(tokens[index + 1], validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError) as error:
                raise ValueError("-EncodedCommand value is not base64 of UTF-16LE text: %s" % error) from error
    return None


class WinRMServer:
    """One simulated Windows Server's WinRM listener on its own free loopback port, served by a thread.

    ``scheme`` is ``http`` (port 5985 on Windows) or ``https`` (5986; a certificate issued at start-up by
    ``certificate_authority``, or by a CA of its own, whose PEM is at :attr:`ca_file`). ``auth`` lists the
    accepted methods: ``basic`` and/or ``ntlm`` (offered as ``Negotiate``, with message encryption over HTTP).
    Use as a context manager or call :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        host,
        *,
        name="WIN-LAB",
        username="Administrator",
        password="Lab-Passw0rd!",
        scheme="http",
        auth=("basic",),
        certificate_authority=None,
        address="127.0.0.1",
        port=0,
    ):
        if scheme not in ("http", "https"):
            raise ValueError("scheme must be http or https")
        auth = tuple(auth)
        if not auth or set(auth) - set(AUTH_METHODS):
            raise ValueError("auth must be a non-empty subset of %s" % (AUTH_METHODS,))
        self.host = host
        self.name = name
        self.username = username
        self.password = password
        self.scheme = scheme
        self.auth = auth
        self.address = address
        self.port = port
        self.counters = Counters()
        self.faults = FaultPlan()
        self.errors = []
        self.ca_file = None
        self.ssl_context = None
        self.channel_bindings = None
        self.winrs = None
        self._certificate_authority = certificate_authority
        self._errors_lock = threading.Lock()
        self._connections = set()
        self._connections_lock = threading.Lock()
        self._httpd = None
        self._serve_thread = None
        self._tls_directory = None
        self._ntlm_registration = None

    @property
    def endpoint(self):
        return "%s://%s:%d/wsman" % (self.scheme, self.address, self.port)

    @property
    def running(self):
        return self._httpd is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        if self._httpd is not None:
            raise RuntimeError("%s is already running on %s" % (self.name, self.endpoint))
        self.winrs = WinRSService(self.host, self.counters, self.record_error)
        try:
            if self.scheme == "https":
                self._set_up_tls()
            if "ntlm" in self.auth:
                self._ntlm_registration = NTLM_ACCOUNTS.register(self.name, self.username, self.password)
            self._httpd = _LabHTTPServer((self.address, self.port), self)
        except BaseException:
            self._release_resources()
            raise
        self.port = self._httpd.server_address[1]
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="lab-winrm-%s" % self.name, daemon=True
        )
        self._serve_thread.start()
        return self

    def _set_up_tls(self):
        authority = self._certificate_authority or CertificateAuthority()
        certificate, key = authority.issue_server_certificate([self.address, "localhost", self.name.lower()])
        self._tls_directory = tempfile.TemporaryDirectory(prefix="lab-winrm-tls-")  # pylint: disable=consider-using-with
        paths = {}
        for filename, content in (("ca.pem", authority.certificate_pem), ("server.pem", certificate), ("server.key", key)):
            paths[filename] = os.path.join(self._tls_directory.name, filename)
            with open(paths[filename], "wb") as handle:
                handle.write(content)
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.load_cert_chain(paths["server.pem"], paths["server.key"])
        self.ca_file = paths["ca.pem"]
        self.channel_bindings = tls_server_end_point(certificate)

    def stop(self):
        """Stop serving: close client connections, wake waiting Receives, join every thread the server started.

        Raises RuntimeError if a host's ``run_command`` is still running after :data:`WORKER_JOIN_SECONDS`.
        """
        if self._httpd is None:
            return
        httpd = self._httpd
        httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.abort()
        stuck = self.winrs.close(WORKER_JOIN_SECONDS)
        httpd.server_close()
        self._serve_thread.join()
        self._httpd = None
        self._serve_thread = None
        self.faults.clear()
        self._release_resources()
        if stuck:
            raise RuntimeError("%s: host run_command still running after stop: %s" % (self.name, ", ".join(thread.name for thread in stuck)))

    def _release_resources(self):
        if self._ntlm_registration is not None:
            NTLM_ACCOUNTS.unregister(self._ntlm_registration)
            self._ntlm_registration = None
        if self._tls_directory is not None:
            self._tls_directory.cleanup()
            self._tls_directory = None
            self.ca_file = None
            self.ssl_context = None

    def record_error(self, error):
        """Keep an exception raised by the host (or by the endpoint itself) for the test to see."""
        LOG.error("lab WinRM %s: %r", self.name, error, exc_info=error)
        with self._errors_lock:
            self.errors.append(error)

    def track(self, connection):
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection):
        with self._connections_lock:
            self._connections.discard(connection)

    def open_shells(self):
        """Ids of the shells clients have created and not deleted."""
        return self.winrs.shell_ids() if self.winrs else []

    def inventory_vars(self, transport=None):
        """Ansible host variables that reach this endpoint with the ``winrm`` connection plugin.

        ``transport`` defaults to ``basic`` when enabled, else ``ntlm``. Basic over HTTP disables message
        encryption (pywinrm would refuse otherwise); HTTPS validates against :attr:`ca_file`.
        """
        transport = transport or ("basic" if "basic" in self.auth else "ntlm")
        variables = {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": self.username,
            "ansible_password": self.password,
            "ansible_connection": "winrm",
            "ansible_winrm_scheme": self.scheme,
            "ansible_winrm_transport": transport,
        }
        if transport == "basic" and self.scheme == "http":
            variables["ansible_winrm_message_encryption"] = "never"
        if self.scheme == "https":
            variables["ansible_winrm_server_cert_validation"] = "validate"
            variables["ansible_winrm_ca_trust_path"] = self.ca_file
        return variables


class _LabHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server whose connection threads are joined on close (no daemon threads left behind)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address, lab):
        self.lab = lab
        super().__init__(address, _WSManHandler)

    def handle_error(self, request, client_address):
        """Socket errors are clients going away (or injected drops); anything else is a bug of the endpoint."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            LOG.debug("lab WinRM %s: connection from %s ended: %r", self.lab.name, client_address, error)
        else:
            self.lab.record_error(error)


class _WSManHandler(BaseHTTPRequestHandler):
    """One client connection: HTTP/1.1 keep-alive, so NTLM can authenticate the connection as on Windows."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 300

    lab = None
    ntlm = None
    ntlm_user = None
    auth_reply = None

    def setup(self):
        self.lab = self.server.lab
        self.lab.track(self)
        self.lab.counters.add("connections")
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.lab.ssl_context is not None:
            self.request.settimeout(self.timeout)
            self.request = self.lab.ssl_context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
            try:
                self.request.do_handshake()
            except OSError:
                self.lab.untrack(self)
                self.request.close()
                raise
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            self.lab.untrack(self)
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.close()

    def abort(self):
        """Server stop: unblock this connection's thread wherever it waits on the socket."""
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, *args):
        """http.server's access log goes to the lab's logger instead of stderr."""
        LOG.debug("lab WinRM %s: %s", self.lab.name, args[0] % args[1:])

    def do_GET(self):  # pylint: disable=invalid-name
        self._read_body()
        self._reply(405)

    def do_POST(self):  # pylint: disable=invalid-name
        lab = self.lab
        lab.counters.add("requests")
        body = self._read_body()
        if body is None:
            self._reply(400)
            return
        if self.path.split("?")[0].rstrip("/").lower() != "/wsman":
            self._reply(404)
            return
        if lab.faults.rejects_auth():
            lab.counters.add("faults_injected")
            self._reject()
            return
        user = self._authenticate()
        if user is None:
            return
        encrypted = self.headers.get("Content-Type", "").lower().startswith("multipart/encrypted")
        payload = body
        if encrypted:
            try:
                if self.ntlm is None or not self.ntlm.complete:
                    raise MessageEncryptionError("no NTLM security context on this connection")
                payload = self.ntlm.unwrap(body)
            except MessageEncryptionError as error:
                LOG.debug("lab WinRM %s: 400 for an encrypted request: %s", lab.name, error)
                self._reply(400)
                return
        if not payload:
            self._reply(200)
            return
        self._serve(payload, user, encrypted)

    def _serve(self, payload, user, encrypted):
        lab = self.lab
        request = None
        fault = None
        try:
            request = soap.parse_request(payload)
        except soap.WSManFault as error:
            fault = error
        action = request.action_name if request is not None else None
        if action is not None:
            lab.counters.add_action(action)
        decision = lab.faults.decide(action)
        if decision.latency:
            lab.winrs.stopping.wait(decision.latency)
        if decision.drop:
            lab.counters.add("faults_injected")
            self._drop()
            return
        if decision.status is not None:
            lab.counters.add("faults_injected")
            self._reply(decision.status)
            return
        response = None
        if fault is None:
            try:
                response = lab.winrs.handle(request, user, self.client_address[0], lab.endpoint)
            except AnswerLost:
                lab.counters.add("faults_injected")
                self._drop()
                return
            except soap.WSManFault as error:
                fault = error
            except Exception as error:  # pylint: disable=broad-exception-caught
                lab.record_error(error)
                fault = soap.provider_failure("The lab endpoint failed: %r " % error)
        if fault is None:
            self._reply(200, response, encrypted)
        else:
            relates_to = request.message_id if request is not None else None
            self._reply(500, soap.fault_envelope(fault, relates_to, lab.name), encrypted)

    def _read_body(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length > 0 else b""
        self.lab.counters.add("bytes_in", len(body))
        return body

    def _authenticate(self):
        """The authenticated user name, or None once a 401 (challenge or refusal) has been sent."""
        lab = self.lab
        authorization = self.headers.get("Authorization", "")
        scheme, dummy, token = authorization.partition(" ")
        if scheme.lower() == "basic" and "basic" in lab.auth:
            credentials = basic_credentials(authorization)
            if credentials and same_account(credentials[0], lab.username, lab.name) and credentials[1] == lab.password:
                return credentials[0]
        elif scheme.lower() in ("negotiate", "ntlm") and "ntlm" in lab.auth:
            return self._step_ntlm(scheme, token)
        elif not authorization:
            if self.ntlm is not None and self.ntlm.complete:
                return self.ntlm_user
            self._reject(failure=False)
            return None
        self._reject()
        return None

    def _step_ntlm(self, scheme, token):
        lab = self.lab
        try:
            in_token = base64.b64decode(token.strip(), validate=True)
            if self.ntlm is None or self.ntlm.complete:
                self.ntlm = NtlmSession(lab.channel_bindings)
                self.ntlm_user = None
            out_token = self.ntlm.step(in_token)
        except (binascii.Error, spnego.exceptions.SpnegoError) as error:
            LOG.debug("lab WinRM %s: NTLM refused: %s", lab.name, error)
            self.ntlm = None
            self._reject()
            return None
        if not self.ntlm.complete:
            self._send_unauthorized(["%s %s" % (scheme, base64.b64encode(out_token or b"").decode("ascii"))])
            return None
        if not same_account(self.ntlm.username or "", lab.username, lab.name):
            self.ntlm = None
            self._reject()
            return None
        self.ntlm_user = self.ntlm.username
        if out_token:
            self.auth_reply = "%s %s" % (scheme, base64.b64encode(out_token).decode("ascii"))
        return self.ntlm_user

    def _reject(self, failure=True):
        """401 with the offered schemes; ``failure`` is False for the normal first leg of a client that has not yet sent credentials."""
        if failure:
            self.lab.counters.add("auth_failures")
        offers = []
        if "ntlm" in self.lab.auth:
            offers.append("Negotiate")
        if "basic" in self.lab.auth:
            offers.append('Basic realm="WSMAN"')
        self._send_unauthorized(offers)

    def _send_unauthorized(self, authenticate_headers):
        self.send_response(401)
        for value in authenticate_headers:
            self.send_header("WWW-Authenticate", value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reply(self, status, body=b"", encrypted=False):
        content_type = None
        if body:
            content_type = "application/soap+xml;charset=UTF-8"
            if encrypted:
                body = self.ntlm.wrap(body)
                content_type = ENCRYPTED_CONTENT_TYPE
        self.send_response(status)
        if self.auth_reply:
            self.send_header("WWW-Authenticate", self.auth_reply)
            self.auth_reply = None
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.lab.counters.add("bytes_out", len(body))

    def _drop(self):
        """Reset the connection (RST, no response), as a crashed service or a middlebox does."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.wfile = io.BytesIO()
        self.connection.close()
