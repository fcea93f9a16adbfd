"""A retrain job on the data-parallel path: two torchrun ranks (gloo on CPU) train the model."""

from service_helpers import ADMIN, post_generated_ratings, wait_for_job, wait_for_model


def test_retrain_with_two_processes_serves_the_distributed_model(make_client, settings):
    with make_client(train_processes=2) as client:
        post_generated_ratings(client)
        # Two torchrun launches (the evaluation fit, then the final fit on every rating), each
        # starting two Python processes: minutes on a busy 2-core machine.
        response = client.post("/v1/admin/retrain", headers=ADMIN)
        job = wait_for_job(client, response.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded", job
        assert job["params"]["phases"] == [["evaluation", 3], ["final", 3]] and job["metrics"]
        wait_for_model(client, job["model_version"])
        assert job["progress"]["epoch"] == job["progress"]["epochs"]
        version = job["model_version"]
        models = client.get("/v1/admin/models", headers=ADMIN).json()
        assert version in str(models)
    # The artifact was written by rank 0 of a two-rank run.
    import json

    meta = json.loads((settings.model_dir / version / "metadata.json").read_text())
    assert meta["training"]["world_size"] == 2
