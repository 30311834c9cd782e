"""Real footage for evaluation, fetched from the Debian package that ships it.

`vtest.avi` (768x576, 10 fps, 79.5 s: people walking across a university plaza, two parked
vans) is OpenCV's sample clip, shipped by Debian's `opencv-doc` package under
/usr/share/doc/opencv-doc/examples/data/. Its crossings of the line x = 0.4 are annotated
by hand in the repository's eval/vtest/truth.csv (see the model card for how).

    python -m sensorpipe.edge.counting.clips [DIR]   # fetch it (default: $SENSORPIPE_DIR/clips,
                                                     # or .sensorpipe/clips in this directory)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("SENSORPIPE_DIR") or ".sensorpipe") / "clips"
VTEST_PACKAGE = "opencv-doc"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
VTEST_LINE = (0.4, 0.0, 0.4, 1.0)


class ClipUnavailable(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_vtest(directory: Path = DEFAULT_DIR) -> Path:
    """The clip, downloaded once (about 96 MB of package) and checked against its sha256."""
    target = (directory / "vtest.avi").resolve()
    if target.is_file() and _sha256(target) == VTEST_SHA256:
        return target
    installed = Path("/") / VTEST_MEMBER
    directory.mkdir(parents=True, exist_ok=True)
    if installed.is_file() and _sha256(installed) == VTEST_SHA256:
        shutil.copyfile(installed, target)
        return target
    for tool in ("apt-get", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            raise ClipUnavailable(f"fetching {VTEST_PACKAGE} needs {tool} (a Debian system)")
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", VTEST_PACKAGE], cwd=tmp, capture_output=True, text=True
        )
        debs = list(Path(tmp).glob(f"{VTEST_PACKAGE}_*.deb"))
        if got.returncode != 0 or not debs:
            raise ClipUnavailable(
                f"apt-get download {VTEST_PACKAGE} failed ({got.stderr.strip()[-300:]}); "
                f"run 'apt-get update' first if the package lists are missing"
            )
        unpacked = Path(tmp) / "root"
        unpacked.mkdir()
        fsys = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["tar", "-x", "-C", str(unpacked), VTEST_MEMBER], stdin=fsys.stdout, check=True
        )
        fsys.wait()
        shutil.move(str(unpacked / VTEST_MEMBER), target)
    digest = _sha256(target)
    if digest != VTEST_SHA256:
        target.unlink()
        raise ClipUnavailable(
            f"vtest.avi from {VTEST_PACKAGE} has sha256 {digest}, expected {VTEST_SHA256}"
        )
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sensorpipe.edge.counting.clips",
        description="Fetch OpenCV's vtest.avi from Debian's opencv-doc package, check its "
        "sha256 and print its path.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        help="where to keep it (default: $SENSORPIPE_DIR/clips or .sensorpipe/clips)",
    )
    args = parser.parse_args(argv)
    try:
        print(fetch_vtest(args.directory))
    except ClipUnavailable as exc:
        sys.exit(f"sensorpipe: {exc}")


if __name__ == "__main__":
    main()
