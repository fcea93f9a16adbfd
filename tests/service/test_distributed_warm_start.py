"""A warm-started retrain on the data-parallel path: the torchrun ranks start from the active
model (``recommender train --distributed --init-from``).

On SQLite only: the database plays no part in what is tested here (the job rows are the same
code on both databases, tested in test_admin_api.py), and each run launches torchrun twice.
"""

import json

import pytest
from service_helpers import ADMIN, post_generated_ratings, wait_for_job


def test_a_warm_start_with_two_processes_continues_the_active_model(make_client, settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the data-parallel path does not depend on the database")
    with make_client(train_processes=2) as client:
        post_generated_ratings(client)
        cold = client.post("/v1/admin/retrain", json={"test_fraction": 0, "config": {
            "n_hidden": 5}}, headers=ADMIN).json()
        first = wait_for_job(client, cold["job_id"], timeout=300)
        assert first["status"] == "succeeded", first
        warm = client.post("/v1/admin/retrain", json={"warm_start": True,
                                                      "warm_start_epochs": 2}, headers=ADMIN)
        job = wait_for_job(client, warm.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded", job
        assert job["progress"]["epoch"] == job["progress"]["epochs"] == 2
        row = next(m for m in client.get("/v1/admin/models", headers=ADMIN).json()["models"]
                   if m["version"] == job["model_version"])
        assert row["params"]["warm_start_from"] == first["model_version"]
    meta = json.loads((settings.model_dir / job["model_version"] / "metadata.json").read_text())
    assert meta["training"]["world_size"] == 2
    assert meta["config"]["n_hidden"] == 5 and meta["config"]["epochs"] == 2
