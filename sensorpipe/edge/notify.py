"""systemd's notify protocol (sd_notify(3)), stdlib only: a unit with `Type=notify` learns when
the agent is ready, `WatchdogSec=` restarts an agent whose main loop stopped pinging, and
`systemctl status` shows what it last did.

Each message is one datagram of `KEY=value` lines to the unix socket in $NOTIFY_SOCKET (a name
in the abstract namespace when it starts with '@'). Without $NOTIFY_SOCKET (not started by
systemd, or `NotifyAccess=` refuses), every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._socket: socket.socket | None = None
        # systemd wants a ping at least every WATCHDOG_USEC; half of it leaves room.
        self.watchdog_interval_s = watchdog_usec / 2e6 if watchdog_usec else None
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET") or None
        watchdog: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        # WATCHDOG_PID, when set, names the process the watchdog is meant for.
        pid = env.get("WATCHDOG_PID")
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(raw)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str) -> bool:
        """Send `KEY=value` lines (keyword names as given: READY="1", STATUS="..."); True
        when the datagram went out."""
        if self._address is None:
            return False
        text = "\n".join(f"{key}={value.replace(chr(10), ' ')}" for key, value in fields.items())
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(text.encode(), address)
        except OSError as exc:
            if not self._failed:  # once: a missing socket does not stop the agent
                log.warning("cannot notify systemd at %s: %s", self._address, exc)
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG="1")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING="1", STATUS=status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
