"""A retrain job on the data-parallel path: two torchrun ranks (gloo on CPU) train the model."""

from service_helpers import ADMIN, post_generated_ratings, train


def test_retrain_with_two_processes_serves_the_distributed_model(make_client, settings):
    with make_client(train_processes=2) as client:
        post_generated_ratings(client)
        job = train(client)
        assert job["status"] == "succeeded", job
        assert job["progress"]["epoch"] == job["progress"]["epochs"]
        version = job["model_version"]
        models = client.get("/v1/admin/models", headers=ADMIN).json()
        assert version in str(models)
    # The artifact was written by rank 0 of a two-rank run.
    import json

    meta = json.loads((settings.model_dir / version / "metadata.json").read_text())
    assert meta["training"]["world_size"] == 2
