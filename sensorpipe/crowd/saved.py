"""Trained forecasters kept in a models folder (`sensorpipe crowd train` writes them, `crowd
forecast`, the API and the alerts job read them): one entry per training, named for its kind
and series, holding each horizon's LightGBM model as text (`h1.txt`, ...) and `model.json`
(the series, where they are, trained_until, the settings, each horizon's conformal residual
quantiles). LightGBM is imported only when a model is loaded (the optional extra `forecast`).

Retraining the same series replaces it atomically: each training is written to a folder of its
own beside the others (`.<name>.v-<stamp>`, never changed once written) and the entry
`<name>` is a symbolic link to it, replaced in one rename. A reader resolves the link once
(`read`) and loads from that folder, so it never mixes two trainings nor sees none; the
training before the last is removed, the one just replaced kept for readers still loading it.
A training killed before its rename leaves the previous model in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sensorpipe.crowd.forecast import Forecaster, HorizonModel, Settings, Where

FORMAT = 1


class ModelsError(ValueError):
    """A models folder or a saved model that cannot be used (one line: what to do)."""


@dataclass
class SavedModel:
    """A trained forecaster as saved: `kind` ("device" or "area") and what `model.json` says.
    `folder` is its entry (`<kind>-<hash>`), `source` the folder of this training it was read
    from (the entry resolved once) and `stamp` tells this training from another."""

    folder: Path
    kind: str
    names: list[str]
    trained_until: int
    where: Where
    horizons: list[int]
    meta: dict[str, Any]
    source: Path | None = None
    stamp: tuple[str, int, int] = ("", 0, 0)

    def load(self) -> Forecaster:
        """The forecaster with its boosters (needs LightGBM)."""
        import lightgbm as lgb

        fc = Forecaster(list(self.names), self.where, self.trained_until)
        for h in self.horizons:
            q = self.meta["intervals"][str(h)]
            try:
                booster = lgb.Booster(model_file=str((self.source or self.folder) / f"h{h}.txt"))
            except (lgb.basic.LightGBMError, OSError) as exc:
                raise ModelsError(f"{self.folder}/h{h}.txt: cannot load it ({exc})") from None
            fc.models[h] = HorizonModel(h, booster, float(q["low"]), float(q["high"]))
        return fc


def folder_name(kind: str, names: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:10]
    return f"{kind}-{digest}"


def save(fc: Forecaster, models_dir: Path, kind: str, extra: dict[str, Any] | None = None) -> Path:
    """Write `fc` under `models_dir` (written beside, then moved in: a reader never sees half);
    the entry's path, `<kind>-<hash>`."""
    name = folder_name(kind, fc.names)
    version = f".{name}.v-{time.time_ns():x}-{os.getpid()}"
    tmp = models_dir / f"{version}.tmp"
    tmp.mkdir(parents=True)
    try:
        for h, m in fc.models.items():
            (tmp / f"h{h}.txt").write_text(m.booster.model_to_string())
        meta = {
            "format": FORMAT,
            "kind": kind,
            "names": fc.names,
            "trained_until": fc.trained_until,
            "where": asdict(fc.where),
            "horizons": sorted(fc.models),
            "intervals": {str(h): {"low": m.low, "high": m.high} for h, m in fc.models.items()},
            **(extra or {}),
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        return put_in_place(models_dir, name, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone unless it failed before its rename


def put_in_place(models_dir: Path, name: str, written: Path) -> Path:
    """Make the training written in the folder `written` (`<version>.tmp`) the entry `name`:
    renamed to its version, the entry pointed at it in one rename, the trainings before the
    one it replaces removed. Under a lock on the models folder, so two trainings of the same
    series finishing together never remove each other's. An entry that is a folder (saved
    before entries were links) is first moved to a version of its own."""
    import fcntl

    version = written.name.removesuffix(".tmp")
    target = models_dir / name
    with open(models_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.replace(written, models_dir / version)
        before = None
        if target.is_symlink():
            before = os.readlink(target)
        elif target.is_dir():
            before = f".{name}.v-0-moved"
            shutil.rmtree(models_dir / before, ignore_errors=True)
            os.replace(target, models_dir / before)
        link = models_dir / f"{version}.link"
        try:
            link.unlink(missing_ok=True)
            os.symlink(version, link, target_is_directory=True)
            os.replace(link, target)
        except BaseException:
            link.unlink(missing_ok=True)
            raise
        keep = {version, before}
        for old in models_dir.glob(f".{name}.v-*"):
            if old.name not in keep and not old.name.endswith((".tmp", ".link")):
                shutil.rmtree(old, ignore_errors=True)
    return target


def settings_dict(s: Settings) -> dict[str, Any]:
    return asdict(s)


def read(folder: Path) -> SavedModel:
    """The saved model of the entry `folder`, from the training it points to now."""
    source = folder.resolve()
    path = source / "model.json"
    try:
        text = path.read_text()
        st = path.stat()
        meta = json.loads(text)
        return SavedModel(
            folder,
            str(meta["kind"]),
            [str(n) for n in meta["names"]],
            int(meta["trained_until"]),
            Where(**meta["where"]),
            [int(h) for h in meta["horizons"]],
            meta,
            source,
            (source.name, st.st_mtime_ns, st.st_size),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelsError(
            f"{folder / 'model.json'}: not a saved model ({exc}): train it again with "
            "`sensorpipe crowd train`"
        ) from None


def entries(models_dir: Path) -> list[Path]:
    """The saved models' entries of a models folder (none where it does not exist)."""
    if not models_dir.is_dir():
        return []
    return [
        folder
        for folder in sorted(models_dir.iterdir())
        if not folder.name.startswith(".") and (folder / "model.json").is_file()
    ]


def find(models_dir: Path, kind: str, name: str) -> SavedModel | None:
    """The saved model of this device or area (the latest trained where several have it)."""
    found = []
    for folder in entries(models_dir):
        saved = read(folder)
        if saved.kind == kind and name in saved.names:
            found.append(saved)
    return max(found, key=lambda s: s.trained_until) if found else None


class ModelCache:
    """Saved models loaded once and reused (the API's, the alerts job's): loaded again when
    the entry points to another training or its model.json changed (`stamp`: a retraining,
    by hand or by the ingest's schedule)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._loaded: dict[Path, tuple[tuple[str, int, int], Forecaster]] = {}

    def get(self, kind: str, name: str) -> tuple[SavedModel, Forecaster] | None:
        saved = find(self.models_dir, kind, name)
        if saved is None:
            return None
        hit = self._loaded.get(saved.folder)
        if hit is None or hit[0] != saved.stamp:
            hit = (saved.stamp, saved.load())
            self._loaded[saved.folder] = hit
        return saved, hit[1]

    def stamp(self, kind: str, name: str) -> tuple[str, int, int] | None:
        """The stamp of the training that forecasts this device or area now (None: none, or
        one that cannot be read): what a cache of its forecasts is kept under."""
        try:
            saved = find(self.models_dir, kind, name)
        except ModelsError:
            return None
        return None if saved is None else saved.stamp


def remove(models_dir: Path, name: str) -> None:
    """Remove the saved model entry `name` and every training of it (its versions beside it),
    e.g. of an area removed from the registry. ModelsError where there is none."""
    entry = models_dir / name
    if name.startswith(".") or "/" in name or entry not in entries(models_dir):
        raise ModelsError(f"{name}: no saved model in {models_dir} (`crowd models` lists them)")
    if entry.is_symlink():
        entry.unlink()
    else:
        shutil.rmtree(entry)
    for version in models_dir.glob(f".{name}.v-*"):
        shutil.rmtree(version, ignore_errors=True)
