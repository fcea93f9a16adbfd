"""The ``recommender`` command line: one Typer app (``recommender --help``).

serve, worker, db upgrade, import, demo, models (publish / list / activate), and the
engine's train / evaluate commands.
Configuration comes from the ``RECOMMENDER_*`` environment variables (see
:class:`recommender.service.Settings`); options given here win.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import threading
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

# The recommender, SQLAlchemy, uvicorn and tqdm imports stay inside the commands: they load
# torch and the service, and `recommender --help` takes 0.29 s with them lazy against 8.5 s
# for `import recommender.service.app` (measured on the 2-core dev machine, /usr/bin/time).

app = typer.Typer(
    name="recommender",
    help="RBM recommender: HTTP service, training worker, data import, demo.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

IMPORT_BATCH = 10_000  # ratings per upsert statement (the HTTP batch limit, too)
IMPORT_CHUNK = 500_000  # rows per COPY / JSON chunk of a file import (a progress step)


def _settings(**changes: Any) -> Any:
    from recommender.service import Settings

    changes = {name: value for name, value in changes.items() if value is not None}
    return Settings(**changes)


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides RECOMMENDER_DATABASE_URL.", show_default=False),
]


# --------------------------------------------------------------------------------------------
# db
# --------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the schema (idempotent)."""
    from recommender.store import upgrade_database

    settings = _settings(database_url=database_url)
    upgrade_database(settings.database_url, revision)
    typer.echo(f"database at revision {revision}: {_redact(settings.database_url)}")


# --------------------------------------------------------------------------------------------
# serve / worker
# --------------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Run the migrations before serving.")] = True,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the HTTP API (uvicorn). Settings come from RECOMMENDER_* variables."""

    import uvicorn

    from recommender.store import upgrade_database

    settings = _settings(database_url=database_url)
    if database_url:
        os.environ["RECOMMENDER_DATABASE_URL"] = database_url  # worker processes read it
    if migrate:
        upgrade_database(settings.database_url)
    uvicorn.run(
        "recommender.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command()
def worker(
    database_url: DatabaseOption = None,
    once: Annotated[bool, typer.Option(help="Run at most one queued job, then exit.")] = False,
) -> None:
    """Run training jobs from the queue (several workers may share one PostgreSQL)."""
    from recommender.service.jobs import JobWorker
    from recommender.store import make_engine, make_session_factory

    _logging()
    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url, busy_timeout_s=settings.db_timeout_s)
    job_worker = JobWorker(make_session_factory(engine), settings)
    try:
        if once:
            job_worker.sweep_stale_jobs()
            ran = job_worker.run_once()
            typer.echo("ran one job" if ran else "no queued job")
            return
        stop = threading.Event()

        def _stop(_signum: int, _frame: Any) -> None:
            typer.echo("stopping after the current epoch...")
            stop.set()
            job_worker.stop(timeout=0)

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        job_worker.start()
        typer.echo(f"worker {job_worker.worker_id} waiting for jobs (Ctrl-C to stop)")
        stop.wait()
        job_worker.stop()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# import
# --------------------------------------------------------------------------------------------


@app.command("import")
def import_ratings(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="u.data, ratings.csv, ratings.dat or a CSV user,item,rating[,timestamp].",
        ),
    ],
    database_url: DatabaseOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Ratings per chunk written (one transaction in all).")
    ] = IMPORT_CHUNK,
) -> None:
    """Load ratings (and the titles next to them) into the store; re-importing is harmless.

    The whole file is checked before anything is written (a bad row is refused with its
    file:line) and written in one transaction: all of it or nothing. A (user, item) rated
    twice keeps the rating with the latest timestamp, in the file and against the store.
    """
    from recommender.data import read_ratings
    from recommender.store import upgrade_database

    settings = _settings(database_url=database_url)
    try:
        ratings = read_ratings(path, rating_min=settings.rating_min,
                               rating_max=settings.rating_max)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        typer.echo("error: nothing was imported", err=True)
        raise typer.Exit(2) from exc
    upgrade_database(settings.database_url)
    titles = _read_titles(path)
    written, items = _load(settings.database_url, ratings, titles, batch_size, show_progress=True)
    typer.echo(f"imported {written} ratings and {items} item titles from {path}")


def _read_titles(path: Path) -> dict[str, str]:
    from recommender.data import read_item_titles

    return read_item_titles(path)


def _load(
    database_url: str,
    ratings: Any,
    titles: dict[str, str],
    batch_size: int,
    *,
    show_progress: bool,
) -> tuple[int, int]:
    """Write ``ratings`` in one transaction (chunks of ``batch_size``: COPY on PostgreSQL,
    JSON batches on SQLite, :func:`recommender.store.bulk.import_ratings`), then ``titles``.

    Returns (distinct (user, item) pairs written, titles written).
    """
    from tqdm.auto import tqdm

    from recommender.store import (
        ItemRow,
        make_engine,
        make_session_factory,
        refresh_statistics,
        upsert_items,
    )
    from recommender.store.bulk import import_ratings as bulk_import

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with tqdm(total=len(ratings), unit="rating", unit_scale=True, desc="import",
                  disable=not show_progress) as bar:
            written = bulk_import(engine, ratings, progress=bar.update, chunk=batch_size)
        rows = [ItemRow(item_id, title) for item_id, title in titles.items()]
        for start in range(0, len(rows), IMPORT_BATCH):
            with sessions() as session:
                upsert_items(session, items=rows[start : start + IMPORT_BATCH])
                session.commit()
        with sessions() as session:
            refresh_statistics(session)
            session.commit()
    finally:
        engine.dispose()
    return written, len(titles)


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------


@app.command()
def demo(
    movielens: Annotated[
        Path | None,
        typer.Option(
            exists=True, file_okay=False, help="A MovieLens folder (u.data, ratings.csv/.dat)."
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo database and models go.")
    ] = Path("./recommender-demo"),
    host: str = "127.0.0.1",
    port: int = 8000,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
    n_hidden: Annotated[int | None, typer.Option(min=1, help="Hidden units.")] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server after training.")
    ] = True,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Delete the demo's database and models in --dir first and start clean "
            "(without it, a second run reuses them).",
        ),
    ] = False,
) -> None:
    """SQLite store + ratings (generated, or MovieLens) + one training run + the server.

    Run again, it reuses the store in --dir (its ratings and its active model) and says so;
    --fresh starts clean.
    """
    from recommender.data import generate_ratings, read_ratings
    from recommender.service.jobs import JobWorker
    from recommender.store import (
        active_version,
        count_ratings,
        enqueue_job,
        get_job,
        make_engine,
        make_session_factory,
        upgrade_database,
    )

    database = directory / "recommender.db"
    if fresh:
        _remove_demo_store(directory)
    reusing = database.exists()
    directory.mkdir(parents=True, exist_ok=True)
    admin_token = secrets.token_urlsafe(18)
    train_config: dict[str, Any] = {}
    if epochs is not None:
        train_config["epochs"] = epochs
    if n_hidden is not None:
        train_config["n_hidden"] = n_hidden
    settings = _settings(
        database_url=f"sqlite:///{database.resolve()}",
        model_dir=(directory / "models").resolve(),
        admin_token=admin_token,
        train_config=train_config,
    )
    upgrade_database(settings.database_url)

    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            stored, version = count_ratings(session), active_version(session)
        if reusing and stored:
            typer.echo(
                f"reusing the demo store in {directory}: {stored} ratings, "
                + (f"model {version} active" if version else "no model yet")
                + " (`recommender demo --fresh` starts clean"
                + (", and loads --movielens" if movielens is not None else "")
                + ")"
            )
        else:
            ratings, titles = _demo_data(movielens, generate_ratings, read_ratings)
            _load(settings.database_url, ratings, titles, IMPORT_BATCH, show_progress=True)
            version = None
        if version is None:
            with sessions() as session:
                job, _ = enqueue_job(session, params={})
            with typer.progressbar(length=1, label="training") as bar:

                def progress(epoch: int, total: int, _logs: Any) -> None:
                    bar.length = total
                    bar.update(1)

                JobWorker(sessions, settings, on_epoch=progress).run_once()
            with sessions() as session:
                finished = get_job(session, job_id=job.id)
                assert finished is not None
                if finished.status != "succeeded":
                    typer.echo(f"training failed: {finished.error}", err=True)
                    raise typer.Exit(1)
                metrics = finished.metrics or {}
                version = finished.model_version
            summary = ", ".join(f"{name}={value:.3f}" for name, value in metrics.items())
            typer.echo(f"model {version} active; held-out {summary}")
        with sessions() as session:
            user, item = _demo_examples(session)
    finally:
        engine.dispose()

    base = f"http://{host}:{port}"
    typer.echo(
        "\n".join(
            [
                "",
                f"admin token: {admin_token}",
                f"  curl '{base}/v1/users/{user}/recommendations?k=5'",
                f"  curl {base}/v1/items/{item}",
                f"  curl -X POST {base}/v1/admin/retrain -H 'Authorization: Bearer {admin_token}'",
                f"  docs: {base}/docs",
            ]
        )
    )
    if serve_after:
        import uvicorn

        from recommender.service import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _remove_demo_store(directory: Path) -> None:
    """What ``demo`` writes in ``directory``: the SQLite file with its WAL and shared-memory
    files, and the model folder. Nothing else there is touched."""

    removed = []
    for name in ("recommender.db", "recommender.db-wal", "recommender.db-shm"):
        if (directory / name).exists():
            (directory / name).unlink()
            removed.append(name)
    if (directory / "models").is_dir():
        shutil.rmtree(directory / "models")
        removed.append("models/")
    if removed:
        typer.echo(f"--fresh: removed {', '.join(removed)} from {directory}")


def _demo_data(movielens: Path | None, generate_ratings: Any, read_ratings: Any) -> tuple:
    """Ratings and item titles: a MovieLens folder's, or a generated set with made-up titles."""
    if movielens is not None:
        source = next(
            (
                movielens / name
                for name in ("u.data", "ratings.csv", "ratings.dat")
                if (movielens / name).exists()
            ),
            None,
        )
        if source is None:
            raise typer.BadParameter(
                f"no u.data, ratings.csv or ratings.dat in the folder. Received: {movielens}",
                param_hint="--movielens",
            )
        ratings = read_ratings(source)
        typer.echo(f"MovieLens: {len(ratings)} ratings from {source}")
        return ratings, _read_titles(source)
    ratings = generate_ratings(seed=0)
    typer.echo(
        f"generated {len(ratings)} ratings ({ratings.n_users} users, {ratings.n_items} items)"
    )
    return ratings, demo_titles(sorted(set(ratings.items)))


_TITLE_WORDS = (
    ("Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Distant", "Midnight", "Lost",
     "Electric", "Quiet", "Wild", "Frozen", "Secret", "Burning", "Paper", "Iron", "Blue",
     "Hollow", "Bright"),
    ("Harbor", "Garden", "Summer", "River", "Machine", "Kingdom", "Letter", "Station", "Forest",
     "Orchestra", "Mirror", "Voyage", "Island", "Window", "Circus", "Empire", "Lantern",
     "Mountain", "Signal", "Archive"),
)


def demo_titles(item_ids: list[str]) -> dict[str, str]:
    """Made-up, distinct titles for generated items (``i17`` -> ``The Midnight Kingdom
    (1977)``), so that the demo's items and recommendations read like a catalogue."""
    adjectives, nouns = _TITLE_WORDS
    titles = {}
    for position, item_id in enumerate(item_ids):
        digits = "".join(ch for ch in item_id if ch.isdigit())
        n = int(digits) if digits else position
        adjective = adjectives[n % len(adjectives)]
        noun = nouns[(n // len(adjectives)) % len(nouns)]
        cycle = n // (len(adjectives) * len(nouns))  # beyond 400 items: numbered sequels
        sequel = f" {cycle + 1}" if cycle else ""
        titles[item_id] = f"The {adjective} {noun}{sequel} ({1960 + (n * 7) % 60})"
    return titles


def _demo_examples(session: Any) -> tuple[str, str]:
    """A user and an item the store has, for the printed curl lines."""
    from sqlalchemy import select

    from recommender.store import Item, Rating

    user = session.scalar(select(Rating.user_id).order_by(Rating.user_id).limit(1))
    item = session.scalar(
        select(Item.item_id).where(Item.title.is_not(None)).order_by(Item.item_id).limit(1)
    )
    return user or "u0", item or "i0"


# --------------------------------------------------------------------------------------------
# train / evaluate (the engine, without the service)
# --------------------------------------------------------------------------------------------

RatingsOption = Annotated[
    Path,
    typer.Option("--ratings", help="MovieLens u.data / ratings.csv / ratings.dat, or a CSV "
                 "user,item,rating[,timestamp].", exists=True, dir_okay=True, readable=True),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="RBM hyper-parameter override KEY=VALUE (repeatable), "
                 "e.g. -p n_hidden=300 -p epochs=20."),
]


def _rbm_config(params: list[str] | None, epochs: int | None, device: str | None,
                base: Any = None) -> Any:
    """Defaults of RBMConfig (or ``base``), then --param overrides, parsed as JSON where
    possible."""

    from recommender.rbm import RBMConfig

    overrides: dict[str, Any] = {}
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            typer.echo(f"error: --param expects KEY=VALUE. Received: {item!r}", err=True)
            raise typer.Exit(2)
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    if epochs is not None:
        overrides["epochs"] = epochs
    if device is not None:
        overrides["device"] = device
    try:
        return (base or RBMConfig()).replace(**overrides)
    except (ValueError, TypeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def evaluate(
    ratings: RatingsOption,
    k: Annotated[int, typer.Option(min=1, help="Length of the top-k lists.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the per-user 75/25 split.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    params: ParamOption = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda[:n].")] = None,
    cold_start: Annotated[list[int] | None, typer.Option(
        "--cold-start", min=1,
        help="Also rank for users folded in from only this many ratings (repeatable).")
    ] = None,
) -> None:
    """Train the RBM on a per-user 75/25 split and print it beside the popularity baseline."""

    from recommender.data import read_ratings
    from recommender.evaluation import format_table, run_protocol

    config = _rbm_config(params, epochs, device)
    try:
        data = read_ratings(ratings)
        result = run_protocol(data, k=k, seed=seed, config=config, verbose=0 if as_json else 1,
                              cold_start=tuple(cold_start or ()))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(result, indent=2) if as_json else format_table(result))


@app.command()
def train(
    ratings: RatingsOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for the saved model.")],
    params: ParamOption = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda[:n].")] = None,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Data-parallel over torch.distributed (launch with torchrun).")
    ] = False,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", exists=True, file_okay=False,
        help="Warm start from this saved model: its hyper-parameters (-p overrides apply) and "
        "weights; new items start fresh. --epochs then counts added epochs (default 5).")
    ] = None,
) -> None:
    """Train the RBM on all ratings and save it (weights.safetensors + metadata.json)."""
    from recommender.data import read_ratings
    from recommender.rbm import RBMRecommender

    initial = None
    if init_from is not None:
        from recommender.service.training import WARM_START_EPOCHS

        try:
            initial = RBMRecommender.load(init_from, device="cpu")
        except (ValueError, OSError, KeyError) as exc:
            typer.echo(f"error: --init-from {init_from}: {exc}", err=True)
            raise typer.Exit(2) from exc
    # A warm start keeps the saved model's hyper-parameters, with fewer epochs by default;
    # -p and --epochs override them as usual.
    base = (initial.config.replace(device="auto", epochs=WARM_START_EPOCHS) if initial
            else None)
    config = _rbm_config(params, epochs, device, base=base)
    try:
        data = read_ratings(ratings)
        model = RBMRecommender(config)
        if distributed:
            from recommender.rbm.distributed import fit_distributed

            rank = fit_distributed(model, data, verbose=1, initial_model=initial)
        else:
            model.fit(data, verbose=1, initial_model=initial)
            rank = 0
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if rank == 0:
        model.save(out)
        info = model.metadata["training"]
        typer.echo(f"saved to {out}: {info['n_users']} users, {info['n_items']} items, "
                   f"{info['n_ratings']} ratings, {info['epochs_run']} epochs in "
                   f"{info['seconds']:.1f} s on {info['device']}")


# --------------------------------------------------------------------------------------------
# models: publish an offline-trained model, list, activate
# --------------------------------------------------------------------------------------------

models_app = typer.Typer(
    help="Model versions: publish a model trained offline, list them, activate one.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

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
    from recommender.store import make_engine, make_session_factory, new_version_name

    settings = _settings(database_url=database_url, model_dir=model_dir)
    version = version or new_version_name()
    if VERSION_PATTERN.fullmatch(version) is None:
        typer.echo("error: version must be 1-64 letters, digits, '.', '_' or '-', starting "
                   f"with a letter or digit. Received: version={version!r}", err=True)
        raise typer.Exit(2)
    root = Path(settings.model_dir)
    target = root / version
    if target.exists():
        typer.echo(f"error: {target} already exists: pick another --version", err=True)
        raise typer.Exit(2)
    missing = [name for name in ARTIFACT_FILES if not (directory / name).is_file()]
    if missing:
        typer.echo(f"error: {directory} is not a saved model: {', '.join(missing)} missing",
                   err=True)
        raise typer.Exit(2)
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
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            row, _model = publish_model(session, model_dir=root, version=version,
                                        activate=activate)
    except (FieldError, VersionExistsError) as exc:
        shutil.rmtree(target, ignore_errors=True)  # no row points at it
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        engine.dispose()
    state = "active" if activate else "not active (recommender models activate VERSION)"
    typer.echo(f"published {row.version}: {row.n_items} items, {row.n_users} users, "
               f"{row.n_ratings} ratings; {state}")


@models_app.command("list")
def models_list(database_url: DatabaseOption = None) -> None:
    """Every model version, newest first; * marks the active one."""
    from recommender.store import active_version, list_models, make_engine, make_session_factory

    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            active = active_version(session)
            rows = list_models(session)
    finally:
        engine.dispose()
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
    from recommender.store import activate_model, get_model, make_engine, make_session_factory

    settings = _settings(database_url=database_url, model_dir=model_dir)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if get_model(session, version=version) is None:
                typer.echo(f"error: no model version {version!r} (see `recommender models "
                           "list`)", err=True)
                raise typer.Exit(2)
            session.rollback()
            try:
                check_artifact(Path(settings.model_dir) / version)
            except ValueError as exc:
                typer.echo(f"error: model {version} cannot be served, nothing changed: {exc}",
                           err=True)
                raise typer.Exit(2) from exc
            activate_model(session, version=version)
    finally:
        engine.dispose()
    typer.echo(f"model {version} active")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:  # pragma: no cover - console entry point
    app()
