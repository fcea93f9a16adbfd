"""``recommender models``: publish a model trained offline, list the versions, activate one."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Annotated

import typer

from recommender.cli.common import DatabaseOption, fail, load_settings, store_session

models_app = typer.Typer(
    help="Model versions: publish a model trained offline, list them, activate one.",
    no_args_is_help=True,
)

ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Overrides RECOMMENDER_MODEL_DIR (the folder every "
                 "serving process loads models from).", show_default=False),
]


@models_app.command("publish")
def models_publish(
    directory: Annotated[Path, typer.Argument(
        exists=True, file_okay=False,
        help="A saved model folder (weights.safetensors + metadata.json), e.g. from "
        "`recommender train --out DIR`.")],
    activate: Annotated[bool, typer.Option(
        "--activate", help="Serve it: running servers follow within their model poll "
        "interval (RECOMMENDER_MODEL_POLL_INTERVAL_S).")] = False,
    version: Annotated[str | None, typer.Option(
        help="Version name (letters, digits, '.', '_', '-'); default: a new timestamped one.",
        show_default=False)] = None,
    database_url: DatabaseOption = None,
    model_dir: ModelDirOption = None,
) -> None:
    """Copy a model into the model directory, check it as a retrain's artifact is checked
    (it loads, its item map is sane) and register it as a model version."""

    from recommender.service.errors import FieldError
    from recommender.service.training import (
        ARTIFACT_FILES,
        VERSION_PATTERN,
        VersionExistsError,
        publish_model,
    )
    from recommender.store import new_version_name

    settings = load_settings(database_url=database_url, model_dir=model_dir)
    version = version or new_version_name()
    if VERSION_PATTERN.fullmatch(version) is None:
        fail("version must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
             f"or digit. Received: version={version!r}")
    root = Path(settings.model_dir)
    target = root / version
    if target.exists():
        fail(f"{target} already exists: pick another --version")
    missing = [name for name in ARTIFACT_FILES if not (directory / name).is_file()]
    if missing:
        fail(f"{directory} is not a saved model: {', '.join(missing)} missing")
    # Copied to a hidden staging folder, then renamed: a reader never sees half a model.
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{version}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name in ARTIFACT_FILES:
            shutil.copyfile(directory / name, staging / name)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        with store_session(settings.database_url) as session:
            row, _model = publish_model(session, model_dir=root, version=version,
                                        activate=activate)
            session.commit()
    except (FieldError, VersionExistsError) as exc:
        shutil.rmtree(target, ignore_errors=True)  # no row points at it
        fail(str(exc))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    state = "active" if activate else "not active (recommender models activate VERSION)"
    typer.echo(f"published {row.version}: {row.n_items} items, {row.n_users} users, "
               f"{row.n_ratings} ratings; {state}")


@models_app.command("list")
def models_list(database_url: DatabaseOption = None) -> None:
    """Every model version, newest first; * marks the active one."""
    from recommender.store import active_version, list_models

    with store_session(load_settings(database_url=database_url).database_url) as session:
        active = active_version(session)
        rows = list_models(session)
    typer.echo(f"  {'version':<28} {'source':<10} {'items':>7} {'users':>7} {'ratings':>9} "
               f"{'ndcg':>6}  created")
    for m in rows:
        source = f"job {m.job_id}" if m.job_id is not None else (m.params or {}).get(
            "source", "-")
        ndcg = (m.metrics or {}).get("ndcg")
        typer.echo(f"{'*' if m.version == active else ' '} {m.version:<28} {source:<10} "
                   f"{m.n_items:>7} {m.n_users:>7} {m.n_ratings:>9} "
                   f"{'-' if ndcg is None else f'{ndcg:.3f}':>6}  "
                   f"{m.created_at:%Y-%m-%d %H:%M:%S}")


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="A registered version (`models list`).")],
    database_url: DatabaseOption = None,
    model_dir: ModelDirOption = None,
) -> None:
    """Serve VERSION (roll back or forward) after checking that its artifact can be served;
    running servers follow within their model poll interval."""
    from recommender.service.training import check_artifact
    from recommender.store import activate_model, get_model

    settings = load_settings(database_url=database_url, model_dir=model_dir)
    with store_session(settings.database_url) as session:
        if get_model(session, version=version) is None:
            fail(f"no model version {version!r} (see `recommender models list`)")
        session.rollback()
        try:
            check_artifact(Path(settings.model_dir) / version)
        except ValueError as exc:
            fail(f"model {version} cannot be served, nothing changed: {exc}")
        activate_model(session, version=version)
        session.commit()
    typer.echo(f"model {version} active")
