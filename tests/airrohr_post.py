"""What an airrohr kit sends to "Send data to custom API", byte for byte, for the tests.

Written from the firmware (opendata-stuttgart/sensors-software, airrohr-firmware.ino, release
NRZ-2024-135): `add_Value2Json` writes each value as `{"value_type":"<t>","value":"<v>"},`
with Arduino's `String(float)` (two decimals); `sendDataToOptionalApis` prepends
`{"esp8266id": "<chip id>", ` to `data_first_part` minus its `{`; `sendData` sends it with the
ESP8266 core's HTTPClient (`sendHeader`: request line, Host with the port unless 80/443,
User-Agent, Connection: close, Accept-Encoding, Authorization, then the added headers, and
Content-Length last).
"""

from __future__ import annotations

import base64
import socket

SOFTWARE_VERSION = "NRZ-2024-135"
MAC = "5ccf7f1a2b3c"

# A kit with an SDS011 and a BME280, as one of them posts it (values in the firmware's order:
# the PM sensor, the climate sensor, then the cycle and the link).
SDS_BME280_VALUES: list[tuple[str, str]] = [
    ("SDS_P1", "12.30"),
    ("SDS_P2", "5.60"),
    ("BME280_temperature", "21.53"),
    ("BME280_pressure", "101325.45"),
    ("BME280_humidity", "54.20"),
    ("samples", "645632"),
    ("min_micro", "28"),
    ("max_micro", "20145"),
    ("interval", "145000"),
    ("signal", "-67"),
]


def firmware_body(chip_id: str, values: list[tuple[str, str]]) -> bytes:
    data = '{"software_version": "' + SOFTWARE_VERSION + '", "sensordatavalues":['
    data += "".join('{"value_type":"' + t + '","value":"' + v + '"},' for t, v in values)
    if data.endswith(","):
        data = data[:-1]
    data += "]}"
    return ('{"esp8266id": "' + chip_id + '", ' + data[1:]).encode()


def firmware_request(
    *,
    host: str,
    port: int,
    path: str,
    chip_id: str,
    body: bytes,
    user: str = "",
    password: str = "",
    board: str = "esp8266",
) -> bytes:
    auth = ""
    if user or password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = f"Authorization: Basic {token}\r\n"
    host_header = host if port in (80, 443) else f"{host}:{port}"
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        f"User-Agent: {SOFTWARE_VERSION}/{chip_id}/{MAC}\r\n"
        "Connection: close\r\n"
        "Accept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\n"
        f"{auth}"
        "Content-Type: application/json\r\n"
        f"X-Sensor: {board}-{chip_id}\r\n"
        f"X-MAC-ID: {board}-{MAC}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def send_raw(host: str, port: int, request: bytes, timeout_s: float = 30.0) -> tuple[int, bytes]:
    """Send `request` as the kit does (one connection, closed after the answer): the status
    and the whole answer."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer
