"""RBMConfig as a frozen pydantic model (issue 11): errors name the field, saved configs load."""

from __future__ import annotations

import pydantic
import pytest

from recommender.rbm import RBMConfig
from recommender.rbm.config import RBMConfigError


def test_frozen_and_comparable() -> None:
    config = RBMConfig(n_hidden=8)
    with pytest.raises(pydantic.ValidationError):
        config.n_hidden = 9  # type: ignore[misc]
    assert config == RBMConfig(n_hidden=8, extra={"note": "not compared"})
    assert hash(config) == hash(RBMConfig(n_hidden=8))
    assert config != RBMConfig(n_hidden=9)


def test_round_trip_through_a_saved_dict() -> None:
    config = RBMConfig(cd_k_schedule=[[10, 3], [0.0, 1]], learning_rate=1, extra={"x": (1, 2)})
    data = config.to_dict()
    assert data["cd_k_schedule"] == [[0, 1], [10, 3]]  # sorted, JSON lists
    assert data["extra"] == {"x": [1, 2]}
    assert RBMConfig.from_dict(data) == config
    assert config.replace(cd_k=2).cd_k == 2 and config.replace(cd_k=2).k_at(10) == 3


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"cd_k": 2, "cd_k_schedule": [[0, 0]]}, "cd_k_schedule",
     "cd_k_schedule entries must be (start_epoch >= 0, k >= 1) integer pairs. "
     "Received: cd_k_schedule=[[0, 0]]"),
    ({"n_hidden": True}, "n_hidden",
     "n_hidden must be a positive integer. Received: n_hidden=True"),
    ({"epochs": 3.0}, "epochs", "epochs must be a positive integer. Received: epochs=3.0"),
    ({"learning_rate": float("inf")}, "learning_rate",
     "learning_rate must be a finite number > 0. Received: learning_rate=inf"),
    ({"weight_decay": "0.1"}, "weight_decay",
     "weight_decay must be a finite number >= 0. Received: weight_decay='0.1'"),
    ({"rating_min": 5, "rating_max": 5}, "rating_max",
     "rating_min must be < rating_max. Received: rating_min=5.0, rating_max=5"),
    ({"device": "tpu"}, "device",
     "device must be 'auto', 'cpu' or 'cuda[:n]'. Received: device='tpu'"),
    ({"n_hiden": 5}, "n_hiden", "Unknown RBM hyper-parameter(s): ['n_hiden']"),
])
def test_errors_name_the_field(values: dict, field: str, message: str) -> None:
    with pytest.raises(RBMConfigError) as caught:
        RBMConfig(**values)
    ((name, _value, text),) = caught.value.errors
    assert name == field
    assert text.startswith(message)
    assert isinstance(caught.value, ValueError) and str(caught.value) == text
