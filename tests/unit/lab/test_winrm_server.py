"""The lab's WinRM endpoint driven by the real clients: pywinrm (Session and Protocol) and pypsrp's WinRS client."""

import base64
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pypsrp.client
import pytest
import requests
import winrm
import xmltodict
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WinRMTransportError, WSManFaultError

from lab.winrm import CommandResult, WinRMServer, decode_powershell_command
from lab.winrm.soap import NS_ADDRESSING, NS_SHELL, NS_SOAP, NS_TRANSFER, NS_WSMAN, NS_WSMAN_FAULT

PASSWORD = "Lab-Passw0rd!"
NS = {"s": NS_SOAP, "a": NS_ADDRESSING, "x": NS_TRANSFER, "w": NS_WSMAN, "rsp": NS_SHELL, "f": NS_WSMAN_FAULT}
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
SHELL_NOT_FOUND = 2150858843
STATUS_CONTROL_C_EXIT = -1073741510
BLOCK_SECONDS = 10


class EchoHost:
    """A host whose commands answer deterministically, so tests can assert exact bytes; it records every call.

    ``echo ARGS`` prints its arguments, ``cat`` prints stdin, ``fail`` writes stderr and exits 7, ``big N`` prints N
    bytes, ``block`` waits for :attr:`release`, ``raise`` is a bug in the host model, PowerShell with
    ``-EncodedCommand`` prints ``ps:`` and the decoded script; anything else is not recognised, as cmd.exe says.
    """

    def __init__(self):
        self.calls = []
        self.release = threading.Event()
        self.blocked = threading.Event()

    def run_command(self, command, arguments, stdin):
        self.calls.append((command, list(arguments), stdin))
        script = decode_powershell_command(command, arguments)
        if script is not None:
            return CommandResult(stdout=("ps:" + script).encode("utf-8"))
        verb = command.split()[0].lower()
        if verb == "echo":
            return CommandResult(stdout=" ".join(command.split()[1:] + arguments).encode() + b"\r\n")
        if verb == "cat":
            return CommandResult(stdout=stdin)
        if verb == "fail":
            return CommandResult(stdout=b"partial\r\n", stderr=b"boom\r\n", exit_code=7)
        if verb == "big":
            size = int(arguments[0])
            return CommandResult(stdout=bytes(index % 251 for index in range(size)))
        if verb == "block":
            self.blocked.set()
            self.release.wait(BLOCK_SECONDS)
            return CommandResult(stdout=b"released\r\n")
        if verb == "raise":
            raise RuntimeError("bug in the host model")
        if verb == "lose":
            return CommandResult(stdout=b"done\r\n", answer_lost=True)
        message = "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n" % verb
        return CommandResult(stderr=message.encode(), exit_code=1)


@pytest.fixture(name="serve")
def serve_fixture():
    """Start lab endpoints; at teardown stop them all and check that no thread and no host error is left over."""
    before = set(threading.enumerate())
    servers = []

    def start(host=None, **options):
        server = WinRMServer(host or EchoHost(), **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if isinstance(server.host, EchoHost):
            server.host.release.set()
        server.stop()
    leaked = [thread for thread in threading.enumerate() if thread not in before]
    assert not leaked, leaked
    assert [server.errors for server in servers if server.errors] == []


def client_options(server, transport, options):
    """pywinrm options that reach ``server``: no encryption for Basic over HTTP, the lab CA for HTTPS."""
    options = dict(options)
    if transport == "basic" and server.scheme == "http":
        options.setdefault("message_encryption", "never")
    if server.scheme == "https" and "server_cert_validation" not in options:
        options.setdefault("ca_trust_path", server.ca_file)
    options.setdefault("ca_trust_path", None)
    return options


def make_protocol(server, transport="basic", password=None, **options):
    return winrm.Protocol(
        server.endpoint, transport=transport, username=server.username, password=password or server.password, **client_options(server, transport, options)
    )


def make_session(server, transport="basic", **options):
    return winrm.Session(server.endpoint, auth=(server.username, server.password), transport=transport, **client_options(server, transport, options))


def signal(protocol, shell_id, command_id, code):
    """A Signal with any code (pywinrm itself only sends terminate)."""
    message = {"env:Envelope": protocol.build_wsman_header(action=NS_SHELL + "/Signal", resource_uri=CMD_URI, shell_id=shell_id)}
    message["env:Envelope"]["env:Body"] = {"rsp:Signal": {"@CommandId": command_id, "rsp:Code": NS_SHELL + "/signal/" + code}}
    protocol.send_message(xmltodict.unparse(message))


def post(server, payload, auth=None):
    return requests.post(server.endpoint, data=payload, auth=auth or (server.username, server.password), timeout=10)


def envelope(action, body="", resource_uri=CMD_URI, shell_id=None, message_id=None):
    selector = '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet>' % shell_id if shell_id else ""
    return (
        '<s:Envelope xmlns:s="%s" xmlns:a="%s" xmlns:w="%s" xmlns:rsp="%s"><s:Header>'
        "<a:Action>%s</a:Action><a:MessageID>%s</a:MessageID><w:ResourceURI>%s</w:ResourceURI><w:OperationTimeout>PT5S</w:OperationTimeout>%s"
        "</s:Header><s:Body>%s</s:Body></s:Envelope>"
        % (NS_SOAP, NS_ADDRESSING, NS_WSMAN, NS_SHELL, action, message_id or "uuid:%s" % uuid.uuid4(), resource_uri, selector, body)
    ).encode()


def fault_of(response):
    root = ET.fromstring(response.content)
    return (
        root.findtext("s:Body/s:Fault/s:Code/s:Value", namespaces=NS),
        root.findtext("s:Body/s:Fault/s:Code/s:Subcode/s:Value", namespaces=NS),
        int(root.find("s:Body/s:Fault/s:Detail/f:WSManFault", NS).get("Code")),
    )


def test_run_cmd_over_http_basic_returns_exact_streams_and_exit_codes(serve):
    server = serve()
    session = make_session(server)

    echoed = session.run_cmd("echo", ["hello", "world"])
    failed = session.run_cmd("fail")
    unknown = session.run_cmd("nosuchtool")

    assert (echoed.std_out, echoed.std_err, echoed.status_code) == (b"hello world\r\n", b"", 0)
    assert (failed.std_out, failed.std_err, failed.status_code) == (b"partial\r\n", b"boom\r\n", 7)
    assert unknown.status_code == 1 and unknown.std_err.startswith(b"'nosuchtool' is not recognized")
    assert server.host.calls[0] == ("echo", ["hello world"], b"")


def test_run_ps_reaches_the_host_as_an_encoded_powershell_command(serve):
    server = serve()

    response = make_session(server).run_ps("Write-Output 'héllo wörld'")

    assert response.std_out.decode("utf-8") == "ps:Write-Output 'héllo wörld'"
    command, arguments, stdin = server.host.calls[0]
    assert command.lower().startswith("powershell -encodedcommand ") and arguments == [] and stdin == b""


@pytest.mark.parametrize("validation", ["ca_file", "ignore"])
def test_https_basic_with_ca_file_or_without_validation(serve, validation):
    server = serve(scheme="https")
    options = {"ca_trust_path": server.ca_file} if validation == "ca_file" else {"server_cert_validation": "ignore"}

    response = make_session(server, **options).run_cmd("echo", ["over", "tls"])

    assert server.endpoint.startswith("https://")
    assert (response.std_out, response.status_code) == (b"over tls\r\n", 0)


def test_https_certificate_is_not_trusted_without_the_ca_file(serve):
    server = serve(scheme="https")
    protocol = winrm.Protocol(server.endpoint, transport="basic", username=server.username, password=server.password, ca_trust_path=None)

    with pytest.raises(requests.exceptions.SSLError):
        protocol.open_shell()


def test_stdin_sent_in_chunks_runs_the_command_once_complete(serve):
    server = serve()
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "cat")

    ansible_style = {"env:Envelope": protocol.build_wsman_header(action=NS_SHELL + "/Send", resource_uri=CMD_URI, shell_id=shell_id)}
    ansible_style["env:Envelope"]["env:Body"] = {
        "rsp:Send": {"rsp:Stream": {"@Name": "stdin", "@CommandId": command_id, "#text": base64.b64encode(b"first ").decode()}}
    }
    protocol.send_message(xmltodict.unparse(ansible_style))
    protocol.send_command_input(shell_id, command_id, b"second ", end=False)
    assert server.host.calls == []
    protocol.send_command_input(shell_id, command_id, b"last", end=True)
    stdout, stderr, exit_code = protocol.get_command_output(shell_id, command_id)
    protocol.cleanup_command(shell_id, command_id)
    protocol.close_shell(shell_id)

    assert (stdout, stderr, exit_code) == (b"first second last", b"", 0)
    assert server.host.calls == [("cat", [], b"first second last")]
    assert server.counters.actions["Send"] == 3
    assert server.open_shells() == []


def test_receive_answers_timed_out_after_operation_timeout_and_the_next_poll_gets_the_result(serve):
    server = serve()
    protocol = make_protocol(server, operation_timeout_sec=1, read_timeout_sec=5)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "block")

    started = time.monotonic()
    with pytest.raises(WinRMOperationTimeoutError):
        protocol.get_command_output_raw(shell_id, command_id)
    waited = time.monotonic() - started
    server.host.release.set()
    stdout, stderr, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)

    assert 1.0 <= waited < 4.0
    assert (stdout, stderr, exit_code, done) == (b"released\r\n", b"", 0, True)
    assert server.counters.receive_timeouts == 1


def test_get_command_output_keeps_polling_through_timeouts(serve):
    server = serve()
    protocol = make_protocol(server, operation_timeout_sec=1, read_timeout_sec=5)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "block")
    releaser = threading.Thread(
        target=lambda: server.counters.wait_for(lambda counts: counts["receive_timeouts"] >= 1, BLOCK_SECONDS) and server.host.release.set()
    )
    releaser.start()

    stdout, stderr, exit_code = protocol.get_command_output(shell_id, command_id)
    releaser.join()

    assert (stdout, stderr, exit_code) == (b"released\r\n", b"", 0)
    assert server.counters.receive_timeouts >= 1
    assert server.counters.actions["Receive"] == server.counters.receive_timeouts + 1


def test_terminate_signal_removes_a_running_command(serve):
    server = serve()
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "block")
    protocol.send_command_input(shell_id, command_id, b"", end=True)
    assert server.host.blocked.wait(BLOCK_SECONDS)

    protocol.cleanup_command(shell_id, command_id)

    with pytest.raises(WSManFaultError) as fault:
        protocol.get_command_output_raw(shell_id, command_id)
    assert fault.value.wsman_fault_code == SHELL_NOT_FOUND
    assert fault.value.fault_subcode == "w:InvalidSelectors"
    assert "command identifier that does not exist" in fault.value.response


def test_ctrl_c_signal_ends_a_running_command_with_status_control_c_exit(serve):
    server = serve()
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "block")
    protocol.send_command_input(shell_id, command_id, b"", end=True)
    assert server.host.blocked.wait(BLOCK_SECONDS)

    signal(protocol, shell_id, command_id, "ctrl_c")
    stdout, stderr, exit_code = protocol.get_command_output(shell_id, command_id)

    assert (stdout, stderr, exit_code) == (b"", b"", STATUS_CONTROL_C_EXIT)


def test_unknown_shell_id_gets_the_windows_invalid_selectors_fault(serve):
    server = serve()
    protocol = make_protocol(server)
    missing = str(uuid.uuid4()).upper()

    with pytest.raises(WSManFaultError) as fault:
        protocol.run_command(missing, "echo")

    assert fault.value.code == 500
    assert (fault.value.fault_code, fault.value.fault_subcode, fault.value.wsman_fault_code) == ("s:Sender", "w:InvalidSelectors", SHELL_NOT_FOUND)
    assert "ShellId %s failed because the shell was not found" % missing in fault.value.response


@pytest.mark.parametrize(
    "payload, subcode, wsman_code",
    [
        pytest.param(b"<s:Envelope", "w:SchemaValidationError", 0x80338043, id="not-xml"),
        pytest.param(b"<hello/>", "w:SchemaValidationError", 0x80338043, id="not-an-envelope"),
        pytest.param(envelope("", message_id=""), "a:MessageInformationHeaderRequired", 0x80338011, id="no-action"),
        pytest.param(envelope(NS_SHELL + "/Dance"), "a:ActionNotSupported", 0x80338013, id="unknown-action"),
        pytest.param(
            envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", resource_uri="http://schemas.microsoft.com/powershell/Microsoft.PowerShell"),
            "a:DestinationUnreachable",
            0x80338000,
            id="psrp-resource",
        ),
        pytest.param(envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"), "w:SchemaValidationError", 0x80338041, id="create-without-shell"),
        pytest.param(envelope(NS_SHELL + "/Command", "<rsp:CommandLine/>"), "w:InvalidSelectors", 0x8033805A, id="no-shell-selector"),
    ],
)
def test_malformed_requests_get_soap_faults(serve, payload, subcode, wsman_code):
    server = serve()

    response = post(server, payload)

    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/soap+xml;charset=UTF-8"
    assert fault_of(response) == ("s:Sender", subcode, wsman_code)


def test_client_proposed_shell_id_is_kept_and_cannot_be_created_twice(serve):
    server = serve()
    shell_id = str(uuid.uuid4()).upper()
    shell_spec = '<rsp:Shell ShellId="%s"><rsp:InputStreams>stdin</rsp:InputStreams></rsp:Shell>' % shell_id
    create = envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", shell_spec)

    first = post(server, create)
    second = post(server, create)

    assert ET.fromstring(first.content).findtext("s:Body/rsp:Shell/rsp:ShellId", namespaces=NS) == shell_id
    assert second.status_code == 500 and fault_of(second) == ("s:Sender", "w:AlreadyExists", 0x80338033)
    assert server.open_shells() == [shell_id]


def test_only_the_wsman_path_is_served(serve):
    server = serve()

    response = requests.post(server.endpoint.replace("/wsman", "/other"), data=b"<x/>", auth=(server.username, server.password), timeout=10)

    assert response.status_code == 404


def test_malformed_request_raises_wsman_fault_in_pywinrm(serve):
    server = serve()

    with pytest.raises(WSManFaultError) as fault:
        make_protocol(server).send_message("<s:Envelope")

    assert fault.value.fault_subcode == "w:SchemaValidationError"


def test_responses_have_the_windows_shapes_strict_clients_parse(serve):
    server = serve()
    create_id = "uuid:%s" % str(uuid.uuid4()).upper()
    shell_spec = "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"

    created = ET.fromstring(post(server, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", shell_spec, message_id=create_id)).content)
    shell_id = created.findtext("s:Body/x:ResourceCreated/a:ReferenceParameters/w:SelectorSet/w:Selector[@Name='ShellId']", namespaces=NS)
    command_body = "<rsp:CommandLine><rsp:Command>fail</rsp:Command></rsp:CommandLine>"
    commanded = ET.fromstring(post(server, envelope(NS_SHELL + "/Command", command_body, shell_id=shell_id)).content)
    command_id = commanded.findtext("s:Body/rsp:CommandResponse/rsp:CommandId", namespaces=NS)
    receive_body = '<rsp:Receive><rsp:DesiredStream CommandId="%s">stdout stderr</rsp:DesiredStream></rsp:Receive>' % command_id
    received = ET.fromstring(post(server, envelope(NS_SHELL + "/Receive", receive_body, shell_id=shell_id)).content)

    assert created.findtext("s:Header/a:Action", namespaces=NS) == "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse"
    assert created.findtext("s:Header/a:RelatesTo", namespaces=NS) == create_id
    assert created.findtext("s:Body/rsp:Shell/rsp:ShellId", namespaces=NS) == shell_id
    assert created.findtext("s:Body/rsp:Shell/rsp:Owner", namespaces=NS) == server.username
    assert created.findtext("s:Body/x:ResourceCreated/a:ReferenceParameters/w:ResourceURI", namespaces=NS) == CMD_URI
    streams = [(stream.get("Name"), stream.get("CommandId"), stream.get("End"), stream.text) for stream in received.iterfind(".//rsp:Stream", NS)]
    assert streams == [
        ("stdout", command_id, None, base64.b64encode(b"partial\r\n").decode()),
        ("stderr", command_id, None, base64.b64encode(b"boom\r\n").decode()),
        ("stdout", command_id, "true", None),
        ("stderr", command_id, "true", None),
    ]
    state = received.find("s:Body/rsp:ReceiveResponse/rsp:CommandState", NS)
    assert (state.get("CommandId"), state.get("State")) == (command_id, NS_SHELL + "/CommandState/Done")
    assert state.findtext("rsp:ExitCode", namespaces=NS) == "7"


def test_large_output_is_handed_out_over_several_receives(serve):
    server = serve()
    size = 400_000

    response = make_session(server).run_cmd("big", [str(size)])

    assert response.std_out == bytes(index % 251 for index in range(size))
    assert server.counters.actions["Receive"] >= 4


def test_host_exception_becomes_an_internal_error_fault_and_is_recorded(serve):
    server = serve()

    with pytest.raises(WSManFaultError) as fault:
        make_session(server).run_cmd("raise")

    assert fault.value.fault_subcode == "w:InternalError"
    assert [type(error) for error in server.errors] == [RuntimeError]
    server.errors.clear()


def test_wrong_password_gets_401(serve):
    server = serve()
    protocol = make_protocol(server, password="wrong")

    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()
    assert server.counters.auth_failures == 1
    assert server.counters.shells_created == 0


def test_counters_count_round_trips_shells_and_bytes_and_reset(serve):
    server = serve()
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    for word in ("one", "two", "three"):
        command_id = protocol.run_command(shell_id, "echo", [word])
        protocol.get_command_output(shell_id, command_id)
        protocol.cleanup_command(shell_id, command_id)
    protocol.close_shell(shell_id)

    counts = server.counters.snapshot()
    server.counters.reset()

    assert (counts["commands"], counts["shells_created"], counts["shells_deleted"]) == (3, 1, 1)
    assert counts["actions"] == {"Create": 1, "Command": 3, "Receive": 3, "Signal": 3, "Delete": 1}
    assert counts["bytes_in"] > 0 and counts["bytes_out"] > 0
    assert server.counters.snapshot() == dict.fromkeys(counts.keys() - {"actions"}, 0) | {"actions": {}}


def test_drop_connection_fault_resets_the_next_request_only(serve):
    server = serve()
    rule = server.faults.drop_connection()

    with pytest.raises(requests.exceptions.ConnectionError):
        make_protocol(server).open_shell()
    shell_id = make_protocol(server).open_shell()

    assert shell_id in server.open_shells()
    assert (rule.fired, server.counters.faults_injected, server.counters.shells_created) == (1, 1, 1)


def test_drop_connection_fault_on_the_second_receive(serve):
    server = serve()
    rule = server.faults.drop_connection(action="Receive", after=1)
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "big", ["300000"])

    with pytest.raises(requests.exceptions.ConnectionError):
        protocol.get_command_output(shell_id, command_id)

    assert (rule.seen, rule.fired) == (2, 1)
    assert server.counters.actions["Receive"] == 2


def test_a_command_whose_answer_the_host_loses_ran_and_resets_the_connection_of_its_receive(serve):
    server = serve()
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()
    command_id = protocol.run_command(shell_id, "lose", [])
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol.get_command_output(shell_id, command_id)
    assert [call[0] for call in server.host.calls] == ["lose"], "the host ran the command"
    assert server.counters.faults_injected == 1 and server.counters.actions["Receive"] == 1
    assert make_protocol(server).run_command(shell_id, "echo", ["again"]), "the shell survives the lost answer"
    assert make_session(server).run_cmd("echo", ["next"]).std_out == b"next\r\n"


def test_http_500_fault_is_a_transport_error_for_the_client(serve):
    server = serve()
    server.faults.http_error(500, action="Command")
    protocol = make_protocol(server)
    shell_id = protocol.open_shell()

    with pytest.raises(WinRMTransportError) as error:
        protocol.run_command(shell_id, "echo", ["lost"])
    command_id = protocol.run_command(shell_id, "echo", ["kept"])

    assert error.value.code == 500
    assert protocol.get_command_output(shell_id, command_id)[0] == b"kept\r\n"
    assert server.counters.commands == 1


def test_reject_auth_fault_answers_401_until_cleared(serve):
    server = serve()
    server.faults.reject_auth()

    with pytest.raises(InvalidCredentialsError):
        make_protocol(server).open_shell()
    with pytest.raises(InvalidCredentialsError):
        make_protocol(server).open_shell()
    server.faults.clear()

    assert make_protocol(server).open_shell() in server.open_shells()
    assert server.counters.auth_failures == 2


def test_latency_fault_delays_matching_answers(serve):
    server = serve()
    rule = server.faults.add_latency(0.4, action="Create", times=1)
    protocol = make_protocol(server)

    started = time.monotonic()
    shell_id = protocol.open_shell()
    delayed = time.monotonic() - started
    protocol.close_shell(shell_id)

    assert 0.4 <= delayed < 2.0
    assert rule.fired == 1 and rule.exhausted


@pytest.mark.parametrize(
    "arm",
    [
        pytest.param(lambda faults: faults.drop_connection(action="Dance"), id="unknown-action"),
        pytest.param(lambda faults: faults.drop_connection(times=0), id="zero-times"),
        pytest.param(lambda faults: faults.http_error(200), id="not-an-error-status"),
        pytest.param(lambda faults: faults.add_latency(3600), id="unbounded-latency"),
        pytest.param(lambda faults: faults.reject_auth(after=-1), id="negative-after"),
    ],
)
def test_faults_are_validated(serve, arm):
    server = serve()

    with pytest.raises(ValueError):
        arm(server.faults)
    assert server.faults.rules == []


def test_ntlm_with_message_encryption_over_http(serve):
    server = serve(auth=("ntlm",))
    session = make_session(server, transport="ntlm")

    response = session.run_cmd("echo", ["sealed"])

    assert session.protocol.transport.encryption is not None
    assert (response.std_out, response.status_code) == (b"sealed\r\n", 0)
    assert server.host.calls == [("echo", ["sealed"], b"")]


def test_ntlm_wrong_password_is_rejected(serve):
    server = serve(auth=("ntlm",))
    protocol = make_protocol(server, transport="ntlm", password="wrong")

    with pytest.raises(InvalidCredentialsError):
        protocol.open_shell()
    assert server.counters.auth_failures == 1


def test_ntlm_over_https_with_channel_binding(serve):
    server = serve(scheme="https", auth=("basic", "ntlm"))

    response = make_session(server, transport="ntlm", ca_trust_path=server.ca_file).run_cmd("echo", ["bound"])

    assert response.std_out == b"bound\r\n"


def test_basic_request_to_an_ntlm_only_endpoint_is_refused(serve):
    server = serve(auth=("ntlm",))

    response = post(server, envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Negotiate"


@pytest.mark.parametrize(
    "auth, options",
    [
        pytest.param(("basic",), {"auth": "basic", "encryption": "never"}, id="basic-http"),
        pytest.param(("ntlm",), {"auth": "negotiate"}, id="negotiate-http-encrypted"),
        pytest.param(("ntlm",), {"auth": "ntlm"}, id="ntlm-http-encrypted"),
    ],
)
def test_pypsrp_execute_cmd(serve, auth, options):
    server = serve(auth=auth)

    with pypsrp.client.Client("127.0.0.1", port=server.port, username=server.username, password=PASSWORD, ssl=False, **options) as client:
        stdout, stderr, exit_code = client.execute_cmd("fail")

    assert (stdout, stderr, exit_code) == ("partial\r\n", "boom\r\n", 7)
    assert server.host.calls == [("fail", [], b"")]
    assert server.counters.actions["Signal"] == 1


def test_stop_closes_idle_keep_alive_connections(serve):
    server = serve()
    protocol = make_protocol(server)
    protocol.open_shell()

    server.stop()

    assert not server.running
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol.open_shell()


def _encoded(script):
    return base64.b64encode(script.encode("utf-16-le")).decode()


@pytest.mark.parametrize(
    "command, arguments, expected",
    [
        pytest.param(
            "PowerShell", ["-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand %s" % _encoded("Get-Date")], "Get-Date", id="ansible"
        ),
        pytest.param("powershell.exe", ["-NoProfile", "-EncodedCommand", _encoded("Get-Date")], "Get-Date", id="separate-elements"),
        pytest.param("powershell -encodedcommand " + _encoded("Get-Date"), [], "Get-Date", id="run_ps"),
        pytest.param('"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -enc ' + _encoded("$x = 1"), [], "$x = 1", id="quoted-path"),
        pytest.param("pwsh", ["/ec", _encoded("exit 3")], "exit 3", id="pwsh-slash-ec"),
        pytest.param("PowerShell", ["-NoProfile -Command -"], None, id="script-on-stdin"),
        pytest.param("cmd.exe", ["/c", "-EncodedCommand", _encoded("Get-Date")], None, id="not-powershell"),
        pytest.param("PowerShell", ["-EncodedCommand"], None, id="missing-value"),
    ],
)
def test_decode_powershell_command(command, arguments, expected):
    assert decode_powershell_command(command, arguments) == expected


def test_decode_powershell_command_rejects_invalid_base64():
    with pytest.raises(ValueError):
        decode_powershell_command("powershell", ["-EncodedCommand", "not*base64"])
