"""Service tests: the real app over real databases (SQLite file and PostgreSQL), through
FastAPI's TestClient, or a real uvicorn server on a loopback port where it matters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_TOKEN, TINY_RBM

from recommender.service import Settings, create_app


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        model_dir=tmp_path / "models",
        admin_token=ADMIN_TOKEN,
        job_poll_interval_s=0.05,
        job_heartbeat_s=0.5,
        model_poll_interval_s=0.2,
        popular_cache_s=0,
        # The default. A shorter one turned a healthy write that waited behind another on a
        # loaded machine into a 503 (seen at load average ~11); the tests about timeouts set
        # their own.
        db_timeout_s=5.0,
        train_config=TINY_RBM,
        min_ratings_to_train=1,
        # Process-wide tunings meant for a server, not for a pytest process that goes on to
        # run other tests: leave torch's threads and the garbage collector alone.
        torch_threads=None,
        scoring_threads=None,
        gc_freeze=False,
    )


ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def make_client(settings: Settings) -> ClientFactory:
    """``with make_client(run_worker=False) as client:``: an app with settings changed."""

    @contextmanager
    def factory(**changes) -> Iterator[TestClient]:
        app = create_app(settings.model_copy(update=changes))
        with TestClient(app) as client:
            yield client

    return factory


@pytest.fixture
def client(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client() as client:
        yield client
