"""``recommender serve`` (the HTTP API) and ``recommender worker`` (the training queue)."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from recommender.cli.common import DatabaseOption, configure_logging, load_settings


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

    url = load_settings(database_url=database_url).database_url
    if database_url:
        os.environ["RECOMMENDER_DATABASE_URL"] = database_url  # worker processes read it
    if migrate:
        upgrade_database(url)
    uvicorn.run(
        "recommender.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def worker(
    database_url: DatabaseOption = None,
    once: Annotated[bool, typer.Option(help="Run at most one queued job, then exit.")] = False,
) -> None:
    """Run training jobs from the queue (several workers may share one PostgreSQL)."""
    from recommender.service.jobs import JobWorker
    from recommender.store import make_engine, make_session_factory

    configure_logging()
    settings = load_settings(database_url=database_url)
    engine = make_engine(settings.database_url, busy_timeout_s=settings.db_timeout_s)
    job_worker = JobWorker(make_session_factory(engine), settings)
    try:
        if once:
            job_worker.sweep_stale_jobs()
            ran = job_worker.run_once()
            typer.echo("ran one job" if ran else "no queued job")
            return
        stop = threading.Event()

        def _stop(_signum: int, _frame: FrameType | None) -> None:
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
