"""Training, shared by the admin router (validation when a retrain is queued) and the job
worker (the run): the RBM configuration a job asks for, distributed training through
``torchrun``, writing an artifact atomically, the checks every artifact passes before it is
served, and publishing an artifact trained elsewhere."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from sqlalchemy.orm import Session

from recommender import store
from recommender.data import Ratings
from recommender.rbm import RBMConfig, RBMRecommender
from recommender.rbm.config import RBMConfigError
from recommender.store.models import ID_LENGTH

from .errors import FieldError
from .settings import Settings
from .validation import json_problem, text_problem


def rbm_config(overrides: Mapping[str, Any], *, settings: Settings) -> RBMConfig:
    """An ``RBMConfig`` from JSON overrides; :class:`FieldError` naming the bad field
    (``config.<name>``, the field RBMConfig's validation reports) and its value.

    The rating scale and like threshold come from the service settings unless overridden.
    """
    known = RBMConfig.model_fields
    for name, value in overrides.items():
        if name not in known:
            raise FieldError(
                f"config.{name}",
                value,
                f"config.{name} is not an RBMConfig field (known: {', '.join(sorted(known))}). "
                f"Received: {name}={value!r}",
                kind="extra_forbidden",
            )
    for name, value in overrides.items():
        # What the job row could not store and give back (PostgreSQL refuses NaN in JSON,
        # SQLite stores it as null; NUL and lone surrogates): 422 before anything is queued.
        found = json_problem(value, f"config.{name}")
        if found is not None:
            field, bad, reason = found
            leaf = field.rsplit(".", 1)[-1]
            raise FieldError(field, bad, f"{field} {reason}. Received: {leaf}={bad!r}")
    service_defaults = {
        "like_threshold": settings.like_threshold,
        "rating_min": settings.rating_min,
        "rating_max": settings.rating_max,
    }
    try:
        return RBMConfig(**(service_defaults | dict(overrides)))
    except RBMConfigError as exc:
        name, value, message = exc.errors[0]
        raise FieldError(f"config.{name}", value, message) from exc


# Epochs of a warm-started retrain when the request does not say (see
# benchmarks/warm_start.py: from a model trained on 90 % of MovieLens-100k by time, 5 epochs
# on all of it come within 2 % of a 30-epoch cold retrain).
WARM_START_EPOCHS = 5


def train_distributed(train: Ratings, config: RBMConfig, processes: int,
                      init_from: Path | None = None) -> RBMRecommender:
    """Train through ``torchrun -m recommender train --distributed`` with ``processes`` ranks.

    The training split goes to a temporary CSV (quoted, so any id survives), every
    hyper-parameter is passed as ``-p KEY=JSON``, and the artifact rank 0 writes is loaded.
    ``init_from``: a model artifact to warm-start from (``--init-from``).
    """
    with tempfile.TemporaryDirectory(prefix="recommender-ddp-") as tmp:
        ratings_path = Path(tmp) / "ratings.csv"
        # Columns, not a Python tuple per rating: ids go out as categoricals over the codes.
        pd.DataFrame({
            "user": pd.Categorical.from_codes(train.user_codes, train.user_ids),
            "item": pd.Categorical.from_codes(train.item_codes, train.item_ids),
            "rating": train.values,
            "timestamp": train.timestamps,
        }).to_csv(ratings_path, index=False, encoding="utf-8")
        out = Path(tmp) / "model"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", "-m", "recommender", "train",
                   "--ratings", str(ratings_path), "--out", str(out), "--distributed"]
        for key, value in config.to_dict().items():
            command += ["-p", f"{key}={json.dumps(value)}"]
        if init_from is not None:
            command += ["--init-from", str(init_from)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"distributed training failed (exit {result.returncode}): "
                               + " | ".join(tail))
        return RBMRecommender.load(out, device=config.device)


def save_atomically(model: RBMRecommender, model_dir: Path, version: str) -> Path:
    """Write the artifact to a temporary folder, then rename it to ``model_dir/version``.

    Readers never see a half-written artifact (rename is atomic on one file system).
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / version
    staging = model_dir / f".{version}.partial-{uuid.uuid4().hex[:8]}"
    try:
        model.save(staging)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """JSON-safe metrics: numbers only, NaN and infinities dropped."""
    out = {}
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[name] = number
    return out


# --------------------------------------------------------------------------------------------
# Artifact checks and publishing a model trained elsewhere
# --------------------------------------------------------------------------------------------

# A published version names its folder in the model directory: letters, digits, ".", "_"
# and "-", starting with a letter or digit (so no "/", no "..", no hidden folder), and fits
# the 64 characters of model_versions.version.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ARTIFACT_FILES = ("metadata.json", "weights.safetensors")


class VersionExistsError(RuntimeError):
    """A model version with this name is already registered (the HTTP layer answers 409)."""


def check_artifact(directory: Path) -> RBMRecommender:
    """Load the artifact in ``directory`` for CPU serving and check that it can be served.

    It must load; its item map must be non-empty, with unique ids that the store can hold
    (1-128 characters, no NUL, no lone surrogate); ``W (2 * items, hidden)``,
    ``a (2 * items,)``, ``b (hidden,)`` and the prior ``(items,)`` must agree with the item
    map and the config's hidden layout, and hold finite numbers. Returns the model, warmed by
    one scoring call; raises :class:`ValueError` saying what is wrong. Every retrain's
    artifact and every published one passes here before a version row points at it.
    """
    directory = Path(directory)
    for name in ARTIFACT_FILES:
        file = directory / name
        if file.is_symlink() or not file.is_file():
            raise ValueError(f"the artifact needs {name} as a regular file (not a link). "
                             f"Received: path={str(file)!r}")
    try:
        model = RBMRecommender.load(directory, device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to load is the artifact's fault
        raise ValueError(f"the artifact does not load: {type(exc).__name__}: {exc}") from exc
    ids = model.item_ids
    if not ids:
        raise ValueError("the artifact's item map is empty. Received: item_ids=[]")
    for item in ids:
        # Ids the store can hold (a retrain's ids come from it): text of 1-128 characters
        # without NUL or lone surrogates. A "/" is allowed: `recommender import` may have
        # stored such ids, and refusing them here would fail every retrain of that store.
        problem: str | None
        if not isinstance(item, str):
            problem = "ids must be text"
        elif not 1 <= len(item) <= ID_LENGTH:
            problem = f"ids must be 1-{ID_LENGTH} characters, got {len(item)}"
        else:
            problem = text_problem(item)
        if problem is not None:
            raise ValueError(f"the artifact's item map holds an id the store cannot hold "
                             f"({problem}). Received: item_id={item!r}")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = None
        for item in ids:
            if item in seen:
                duplicate = item
                break
            seen.add(item)
        raise ValueError(f"the artifact's item map lists an id twice. Received: "
                         f"item_id={duplicate!r}")
    n_items, cfg = len(ids), model.config
    hidden = cfg.n_hidden + cfg.n_preference_hidden
    expected = {"W": (2 * n_items, hidden), "a": (2 * n_items,), "b": (hidden,)}
    if model.prior is not None:
        expected["prior"] = (n_items,)
    for name, shape in expected.items():
        tensor = getattr(model, name)
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for {n_items} items and {hidden} "
                             f"hidden units. Received: {name}.shape={tuple(tensor.shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} holds NaN or infinite values")
    model.recommend([{}], k=1)  # builds the serving weights, as a serving process does
    return model


def publish_model(session: Session, *, model_dir: Path, version: str,
                  activate: bool = False) -> tuple[Any, Any]:
    """Register the artifact in ``model_dir/version`` (made by ``recommender train``,
    ``torchrun ... --distributed`` or copied from another deployment) as a model version,
    after :func:`check_artifact`; ``activate`` makes it the served version in the same
    transaction. Returns ``(row, model)``; the caller commits (a route, a CLI command).

    Raises :class:`FieldError` (field ``version``) for a bad name, a missing folder, a link
    or a bad artifact, and :class:`VersionExistsError` when the version is registered.
    """
    if not isinstance(version, str) or VERSION_PATTERN.fullmatch(version) is None:
        raise FieldError("version", version,
                         "version must be 1-64 letters, digits, '.', '_' or '-', starting with "
                         f"a letter or digit. Received: version={version!r}")
    root = Path(model_dir).resolve()
    path = root / version
    if path.is_symlink() or not path.is_dir():
        raise FieldError("version", version,
                         f"no artifact folder {version!r} in the model directory (copy the "
                         f"folder `recommender train` wrote there first; links are refused). "
                         f"Received: version={version!r}")
    if store.get_model(session, version=version) is not None:
        raise VersionExistsError(f"model version {version!r} already exists. "
                                 f"Received: version={version!r}")
    session.rollback()  # end the read before the (possibly slow) load
    try:
        model = check_artifact(path)
    except ValueError as exc:
        raise FieldError("version", version, f"model {version} cannot be served: {exc}") from exc
    training = model.metadata.get("training") or {}
    try:
        row = store.register_model(
            session,
            version=version,
            params={**model.config.to_dict(), "source": "published",
                    "trained_on": "offline (recommender train)",
                    "fingerprint": training.get("fingerprint")},
            metrics=finite_metrics(model.metadata.get("metrics") or {}),
            n_users=int(training.get("n_users") or 0),
            n_items=model.n_items,
            n_ratings=int(training.get("n_ratings") or 0),
            training_seconds=float(training.get("seconds") or 0.0),
            activate=activate,
        )
    except store.VersionExistsError as exc:  # registered between the check and the insert
        raise VersionExistsError(str(exc)) from exc
    return row, model
