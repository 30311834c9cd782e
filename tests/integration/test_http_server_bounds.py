"""The HTTP services' connection bounds (sensorpipe.http_server) against the real processes:
the kit gateway of a real stack (Mosquitto, ingest, influxd) and `sensorpipe serve`.

- connections that send nothing take no slot another client needs: one address holds at most
  `max_connections_per_client` (64) connections, the rest are answered 503 at once, and those
  held are closed at `request_timeout_s`, so a kit from another address is still answered;
- one address guessing passwords cannot spend the gateway's budget of password checks;
- a request whose body stalls (Content-Length or chunked) is closed at the deadline.

The attacker's sockets are bound to 127.0.0.2 and the kits post from 127.0.0.1: the bounds
count by client address. No test times anything: each waits, with a generous guard, for what
the bound must bring about.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sensorpipe.gateway.kits.app import AIRROHR_PATH
from sensorpipe.gateway.kits.provision import KitCredentials
from sensorpipe.process import free_ports
from sensorpipe.protocol.registry import Registry, save_registry
from sensorpipe.stack.local import LocalStack
from tests.airrohr_post import SDS_BME280_VALUES, firmware_body, firmware_request
from tests.helpers import kits_address
from tests.integration.conftest import _require_binaries
from tests.integration.live_server import serve_process

pytestmark = pytest.mark.integration

ATTACKER = "127.0.0.2"
REQUEST_TIMEOUT_S = 4  # the gateway's, set in its gateway.toml before `stack up`
SILENT = 300  # connections held open by one address (the attack)
PER_CLIENT = 64  # the default cap


class Gateway:
    def __init__(self, stack: LocalStack, kits: dict[str, KitCredentials]) -> None:
        self.stack = stack
        self.kits = kits
        _, self.host, self.port = kits_address(stack)

    def post(self, name: str, *, password: str | None = None, frm: str | None = None) -> int:
        c = self.kits[name]
        request = firmware_request(
            host=self.host,
            port=self.port,
            path=AIRROHR_PATH,
            chip_id=c.chip_id,
            body=firmware_body(c.chip_id, SDS_BME280_VALUES),
            user=c.device_id,
            password=c.password if password is None else password,
        )
        source = None if frm is None else (frm, 0)
        with socket.create_connection((self.host, self.port), 30, source) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])


GUESSED = [f"guessed-{i}" for i in range(6)]
VICTIMS = [f"victim-{i}" for i in range(3)]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    _require_binaries()
    stack = LocalStack(tmp_path_factory.mktemp("http-bounds") / "stack")
    names = ["steady", *GUESSED, *VICTIMS]
    kits = {
        name: stack.add_airrohr_kit(chip_id=str(7001 + i), site="oost")
        for i, name in enumerate(names)
    }
    # What an operator sets in gateway.toml is kept by `stack up` ([http] included).
    stack.gateway_config_path.parent.mkdir(parents=True, exist_ok=True)
    stack.gateway_config_path.write_text(f"[http]\nrequest_timeout_s = {REQUEST_TIMEOUT_S}\n")
    stack.up(detach=False, serve=False, kits=True)
    try:
        yield Gateway(stack, kits)
    finally:
        stack.down()


def _closed(sock: socket.socket) -> bytes | None:
    """What the server sent before closing `sock`, or None while it is open (nothing sent)."""
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except BlockingIOError:
        return None if not data else data + b"(open)"
    except OSError:  # reset
        return data
    return data


def test_silent_connections_from_one_address_do_not_keep_a_kit_out(gateway: Gateway) -> None:
    held = [
        socket.create_connection((gateway.host, gateway.port), 10, (ATTACKER, 0))
        for _ in range(SILENT)
    ]
    try:
        # A kit from another address is answered as ever, while the attacker holds its 64.
        assert gateway.post("steady") == 200

        # Beyond the cap, the server answered 503 and closed at once; wait to see them all.
        def refused() -> list[socket.socket]:
            out = []
            for s in held:
                answer = _closed(s)
                if answer is not None and answer.startswith(b"HTTP/1.1 503"):
                    out.append(s)
            return out

        give_up = time.monotonic() + 30  # a guard, not a bound
        beyond = refused()
        while len(beyond) < SILENT - PER_CLIENT and time.monotonic() < give_up:
            time.sleep(0.2)
            beyond += refused()
        assert len(beyond) >= SILENT - PER_CLIENT
        # The ones held are closed at the request deadline (408: they never sent a request).
        waiting = [s for s in held if s not in beyond]
        assert len(waiting) <= PER_CLIENT
        give_up = time.monotonic() + 60
        answers: list[bytes] = []
        while waiting and time.monotonic() < give_up:
            time.sleep(0.5)
            for s in list(waiting):
                answer = _closed(s)
                if answer is not None:
                    answers.append(answer)
                    waiting.remove(s)
        assert not waiting, f"{len(waiting)} silent connections still open"
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
        # Their slots are free again: the attacker may connect again, up to the cap.
        again = socket.create_connection((gateway.host, gateway.port), 10, (ATTACKER, 0))
        again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        again.settimeout(10)
        assert again.recv(12) == b"HTTP/1.1 200"
        again.close()
    finally:
        for s in held:
            s.close()


def test_a_dribbled_request_is_closed_at_the_deadline(gateway: Gateway) -> None:
    """A header line at a time, each well within any idle timeout: closed at the deadline of
    the whole request."""
    sock = socket.create_connection((gateway.host, gateway.port), 10, (ATTACKER, 0))
    sock.sendall(f"POST {AIRROHR_PATH} HTTP/1.1\r\n".encode())
    answer = None
    give_up = time.monotonic() + 60
    i = 0
    try:
        while answer is None and time.monotonic() < give_up:
            try:
                sock.sendall(f"X-Dribble-{i}: a\r\n".encode())
            except OSError:
                answer = b""
                break
            i += 1
            time.sleep(0.5)
            answer = _closed(sock)
            sock.setblocking(True)
    finally:
        sock.close()
    assert answer is not None, f"open after {i} header lines"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_one_address_guessing_passwords_cannot_keep_kits_out(gateway: Gateway) -> None:
    """One address cycling wrong passwords over six kit names as fast as it is answered: the
    first posts of three other kits since the gateway started, from another address, pass."""
    stop = threading.Event()
    statuses: list[int] = []

    def guess() -> None:
        i = 0
        while not stop.is_set():
            statuses.append(gateway.post(GUESSED[i % 6], password=f"guess-{i}", frm=ATTACKER))
            i += 1
            time.sleep(0.005)

    attacker = threading.Thread(target=guess, daemon=True)
    attacker.start()
    try:
        give_up = time.monotonic() + 60
        while statuses.count(429) < 20 and time.monotonic() < give_up:
            time.sleep(0.1)  # until the attacker is refused: its budget is spent
        assert statuses.count(429) >= 20
        firsts = [gateway.post(name) for name in VICTIMS]
    finally:
        stop.set()
        attacker.join(30)
    assert firsts == [200] * len(VICTIMS)


# --- `sensorpipe serve`: a body that stalls --------------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`sensorpipe serve` with a deadline of 1 s (its InfluxDB is a closed port: /health
    answers 503 "degraded", at once, which is all these tests need)."""
    tmp = tmp_path_factory.mktemp("serve")
    save_registry(Registry(), tmp / "registry.toml")
    port, dead = free_ports(2)
    config = tmp / "serve.toml"
    config.write_text(
        f'port = {port}\nregistry_path = "{tmp / "registry.toml"}"\nrequest_timeout_s = 1\n'
        f'[influx]\nurl = "http://127.0.0.1:{dead}"\ndatabase = "x"\ntimeout_s = 2\n'
    )
    with serve_process(config, port):
        yield "127.0.0.1", port


@pytest.mark.parametrize(
    "framing",
    ["Content-Length: 1000000000", "Transfer-Encoding: chunked"],
    ids=["length", "chunked"],
)
def test_a_request_whose_body_stalls_is_closed(api: tuple[str, int], framing: str) -> None:
    """The answer comes before the body (the endpoint reads none); one byte of the body, then
    nothing: the connection is closed at the deadline, not kept forever."""
    sock = socket.create_connection(api, timeout=10)
    try:
        sock.sendall(f"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
        head = sock.recv(12)
        assert head.startswith(b"HTTP/1.1 "), head
        sock.sendall(b"1")
        sock.settimeout(0.5)
        closed = False
        give_up = time.monotonic() + 30  # generous: the server is told 1 s
        while not closed and time.monotonic() < give_up:
            try:
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except OSError:  # reset: closed by the server
                closed = True
        assert closed, "the server kept a connection whose body stalled"
    finally:
        sock.close()
