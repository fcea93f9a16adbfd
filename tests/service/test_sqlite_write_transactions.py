"""On SQLite a transaction that reads and then writes cannot wait for the write lock: if another
connection commits in between, its snapshot is stale and SQLite answers "database is locked"
at once (no busy wait). Routes that check before they write take the write lock first."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy.engine import make_url


def test_retiring_an_item_waits_for_another_writer_instead_of_failing(make_client,
                                                                      db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL row locks wait")
    with make_client(run_worker=False) as client:
        assert client.post("/v1/ratings", json={"user_id": "u", "item_id": "a",
                                                "rating": 4}).status_code == 200
        other = sqlite3.connect(make_url(db_url).database, isolation_level=None,
                                check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock ...
        other.execute("INSERT INTO ratings (user_id, item_id, value, timestamp) "
                      "VALUES ('v', 'b', 3, 0)")

        def commit_later() -> None:  # ... and commits while the DELETE is under way
            time.sleep(0.5)
            other.execute("COMMIT")

        thread = threading.Thread(target=commit_later)
        thread.start()
        try:
            response = client.delete("/v1/items/a")
        finally:
            thread.join()
            other.close()
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
        assert client.get("/v1/items/a").json()["active"] is False
