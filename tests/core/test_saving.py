"""``models/saving.py``: what a saved file holds and how a bad file is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from recommender.core import layers, models
from recommender.core.models import saving


def _model() -> models.Sequential:
    model = models.Sequential([layers.Dense(2, input_shape=(3,), name="out")], name="tiny")
    model.set_weights([np.arange(6.0).reshape(3, 2), np.array([0.5, -0.5])])
    return model


def test_the_file_holds_keras_layout_tensors_and_the_config_as_metadata(tmp_path):
    model = _model()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    path = tmp_path / "m.safetensors"
    model.save(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        assert sorted(handle.keys()) == ["out/bias", "out/kernel"]
        np.testing.assert_array_equal(handle.get_tensor("out/kernel").numpy(),
                                      np.arange(6.0).reshape(3, 2))
    assert metadata["format"] == "recommender.core.model" and metadata["version"] == "1"
    document = json.loads(metadata["model"])
    assert document["class_name"] == "Sequential"
    assert document["compile"]["loss"] == "mse" and document["compile"]["metrics"] == ["mae"]
    assert document["compile"]["optimizer"]["class_name"] == "sgd"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_an_uncompiled_or_custom_loss_model_loads_uncompiled(tmp_path):
    model = _model()
    assert saving.compile_config(model) is None
    model.compile(optimizer="sgd", loss=lambda y, p: ((y - p) ** 2).mean())
    assert saving.compile_config(model) is None
    model.save(tmp_path / "m.safetensors")
    loaded = models.load_model(tmp_path / "m.safetensors")
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 3))), [[6.5, 8.5]])


def test_both_model_classes_are_registered_for_loading():
    assert saving._MODEL_CLASSES == {"Model": models.Model, "Sequential": models.Sequential}


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError, match=re.escape(f"No saved model at {str(path)!r}")):
        models.load_model(path)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=re.escape(
            f"{str(path)!r} is not a model saved by recommender.core (format='pt').")):
        models.load_model(path)


def _rewrite(path, tensors=None, class_name=None):
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        stored = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    document = json.loads(metadata["model"])
    if class_name is not None:
        document["class_name"] = class_name
    metadata["model"] = json.dumps(document)
    save_file(stored if tensors is None else tensors(stored), str(path), metadata=metadata)


def test_an_unknown_class_or_a_missing_tensor_is_refused_naming_it(tmp_path):
    path = tmp_path / "m.safetensors"
    _model().save(path)
    _rewrite(path, class_name="Graph")
    with pytest.raises(ValueError, match=re.escape(
            f"Unknown model class in {str(path)!r}: 'Graph'")):
        models.load_model(path)
    _model().save(path)
    _rewrite(path, tensors=lambda stored: {"out/kernel": stored["out/kernel"]})
    with pytest.raises(ValueError, match=re.escape(f"{str(path)!r} has no tensor 'out/bias'.")):
        models.load_model(path)


def test_an_unbuilt_model_is_not_saved_and_an_existing_file_is_kept(tmp_path):
    path = tmp_path / "m.safetensors"
    _model().save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="Model 'empty' is not built yet: nothing to save."):
        models.Sequential([layers.Dense(2)], name="empty").save(path)
    assert path.read_bytes() == before
