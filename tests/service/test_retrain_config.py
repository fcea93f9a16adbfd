"""The retrain's ``config`` is validated by RBMConfig itself (issue 11): the error names the
field RBMConfig's validation reports, and /docs shows RBMConfig's schema."""

from __future__ import annotations

from fastapi.testclient import TestClient
from service_helpers import ADMIN

from recommender.rbm import RBMConfig


def test_a_bad_schedule_is_reported_as_the_schedule_not_cd_k(client: TestClient) -> None:
    # The old code guessed the field from the message text: "cd_k" occurs in
    # "cd_k_schedule ...", so this was reported as a bad config.cd_k with value 2.
    body = {"config": {"cd_k": 2, "cd_k_schedule": [[0, 0]]}}
    response = client.post("/v1/admin/retrain", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert error["field"] == "config.cd_k_schedule"
    assert error["value"] == [[0, 0]]
    assert error["message"] == ("cd_k_schedule entries must be (start_epoch >= 0, k >= 1) "
                                "integer pairs. Received: cd_k_schedule=[[0, 0]]")
    # Nothing was queued.
    assert client.get("/v1/admin/models", headers=ADMIN).json()["models"] == []


def test_a_cross_field_error_names_the_field_checked(client: TestClient) -> None:
    response = client.post("/v1/admin/retrain",
                           json={"config": {"rating_max": 3, "like_threshold": 4}}, headers=ADMIN)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "config.like_threshold" and error["value"] == 4
    assert error["message"] == ("like_threshold must be within [rating_min, rating_max]. "
                                "Received: like_threshold=4.0")


def test_the_retrain_schema_is_rbm_configs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    config = schema["components"]["schemas"]["RetrainRequest"]["properties"]["config"]
    assert set(config["properties"]) == set(RBMConfig.model_fields)
    assert config["additionalProperties"] is False
    props = config["properties"]
    assert (props["n_hidden"]["minimum"], props["n_hidden"]["default"]) == (1, 200)
    assert props["n_preference_hidden"]["minimum"] == 0
    assert props["learning_rate"]["exclusiveMinimum"] == 0
    assert (props["momentum"]["minimum"], props["momentum"]["exclusiveMaximum"]) == (0, 1)
    assert props["matmul_dtype"]["enum"] == ["auto", "float32", "bfloat16"]
