#!/usr/bin/env bash
# Sets up what sensorpipe needs on a Debian / Raspberry Pi OS machine:
# the system packages (mosquitto, influxdb, python3-venv, and chromium with a font for the
# dashboard's browser tests) and a virtualenv with the project.
set -euo pipefail
venv="${1:-.venv}"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || missing+=(mosquitto)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# The dashboard tests drive Debian's chromium with Playwright (Playwright's own browser
# download is not used); a font so that the page's text renders in screenshots.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -eq 0 ]; then
    echo "sensorpipe: installing system packages: $pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $pkgs
  else
    echo "sensorpipe: missing system packages: $pkgs" >&2
    echo "sensorpipe: install them as root, then run make again:" >&2
    echo "    sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
fi

# The Debian packages enable system services; sensorpipe runs its own broker and influxd
# on free loopback ports, so the system ones are left as the administrator configured them.

if [ ! -x "$venv/bin/python" ]; then
  echo "sensorpipe: creating virtualenv in $venv"
  python3 -m venv "$venv"
fi
echo "sensorpipe: installing the project and its dependencies into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'
echo "sensorpipe: ready ($("$venv/bin/python" --version), $(mosquitto -h 2>/dev/null | head -1 || true))"
