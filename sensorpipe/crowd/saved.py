"""Trained forecasters kept in a models folder (`sensorpipe crowd train` writes them, `crowd
forecast`, the API and the alerts job read them): one folder per training, named for its kind
and series, holding each horizon's LightGBM model as text (`h1.txt`, ...) and `model.json`
(the series, where they are, trained_until, the settings, each horizon's conformal residual
quantiles). Retraining the same series replaces the folder. LightGBM is imported only when a
model is loaded (the optional extra `forecast`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sensorpipe.crowd.forecast import Forecaster, HorizonModel, Settings, Where

FORMAT = 1


class ModelsError(ValueError):
    """A models folder or a saved model that cannot be used (one line: what to do)."""


@dataclass
class SavedModel:
    """A trained forecaster as saved: `kind` ("device" or "area") and what `model.json` says."""

    folder: Path
    kind: str
    names: list[str]
    trained_until: int
    where: Where
    horizons: list[int]
    meta: dict[str, Any]

    def load(self) -> Forecaster:
        """The forecaster with its boosters (needs LightGBM)."""
        import lightgbm as lgb

        fc = Forecaster(list(self.names), self.where, self.trained_until)
        for h in self.horizons:
            q = self.meta["intervals"][str(h)]
            try:
                booster = lgb.Booster(model_file=str(self.folder / f"h{h}.txt"))
            except (lgb.basic.LightGBMError, OSError) as exc:
                raise ModelsError(f"{self.folder}/h{h}.txt: cannot load it ({exc})") from None
            fc.models[h] = HorizonModel(h, booster, float(q["low"]), float(q["high"]))
        return fc


def folder_name(kind: str, names: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:10]
    return f"{kind}-{digest}"


def save(fc: Forecaster, models_dir: Path, kind: str, extra: dict[str, Any] | None = None) -> Path:
    """Write `fc` under `models_dir` (written beside, then moved in: a reader never sees half)."""
    target = models_dir / folder_name(kind, fc.names)
    tmp = models_dir / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
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
    old = models_dir / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def settings_dict(s: Settings) -> dict[str, Any]:
    return asdict(s)


def read(folder: Path) -> SavedModel:
    path = folder / "model.json"
    try:
        meta = json.loads(path.read_text())
        return SavedModel(
            folder,
            str(meta["kind"]),
            [str(n) for n in meta["names"]],
            int(meta["trained_until"]),
            Where(**meta["where"]),
            [int(h) for h in meta["horizons"]],
            meta,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelsError(
            f"{path}: not a saved model ({exc}): train it again with `sensorpipe crowd train`"
        ) from None


def find(models_dir: Path, kind: str, name: str) -> SavedModel | None:
    """The saved model of this device or area (the latest trained where several have it)."""
    if not models_dir.is_dir():
        return None
    found = []
    for folder in sorted(models_dir.iterdir()):
        if folder.name.startswith(".") or not (folder / "model.json").is_file():
            continue
        saved = read(folder)
        if saved.kind == kind and name in saved.names:
            found.append(saved)
    return max(found, key=lambda s: s.trained_until) if found else None


class ModelCache:
    """Saved models loaded once and reused (the API's): loaded again only when a model's
    file changes (a new `crowd train`)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._loaded: dict[Path, tuple[float, Forecaster]] = {}

    def get(self, kind: str, name: str) -> tuple[SavedModel, Forecaster] | None:
        saved = find(self.models_dir, kind, name)
        if saved is None:
            return None
        stamp = (saved.folder / "model.json").stat().st_mtime
        hit = self._loaded.get(saved.folder)
        if hit is None or hit[0] != stamp:
            hit = (stamp, saved.load())
            self._loaded[saved.folder] = hit
        return saved, hit[1]
