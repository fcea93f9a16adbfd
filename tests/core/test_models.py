"""Sequential and functional models: the issue's snippets, fit/evaluate/predict, summary,
save/load, callbacks and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommender.core import callbacks, layers, models, optimizers, regularizers


def _toy_data(n=64, features=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)  # 3 classes, learnable
    return x, y % classes


def test_issue_snippets_run_as_written():
    model = models.Sequential()
    model.add(layers.Dense(32, activation='relu', input_shape=(784,)))
    model.add(layers.Dense(10, activation='softmax'))
    assert model.output_shape == (None, 10)

    input_tensor = layers.Input(shape=(784,))
    x = layers.Dense(32, activation='relu')(input_tensor)
    output_tensor = layers.Dense(10, activation='softmax')(x)
    model = models.Model(input=input_tensor, output=output_tensor)
    assert model.output_shape == (None, 10)
    same = models.Model(inputs=input_tensor, outputs=output_tensor)
    assert [lay.name for lay in same.layers] == [lay.name for lay in model.layers]

    dense = layers.Dense(16, kernel_regularizer=regularizers.l2(0.001), activation="relu",
                         input_shape=(10,))
    dropout = layers.Dropout(0.5)
    assert dense.units == 16 and dropout.rate == 0.5


def test_sequential_and_functional_give_the_same_outputs():
    sequential = models.Sequential([layers.Dense(8, activation="tanh", input_shape=(5,)),
                                    layers.Dense(2)])
    inputs = layers.Input(shape=(5,))
    outputs = layers.Dense(2)(layers.Dense(8, activation="tanh")(inputs))
    functional = models.Model(inputs=inputs, outputs=outputs)
    functional.set_weights(sequential.get_weights())
    x = np.random.default_rng(0).normal(size=(7, 5))
    np.testing.assert_allclose(functional.predict(x), sequential.predict(x), rtol=1e-6)


def test_fit_returns_history_with_keras_keys():
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(16, activation="relu", input_shape=(10,)),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.history.values())
    assert model.history is history
    # the last epoch's val_loss is what evaluate() gives on the held-out last quarter
    val_loss, val_accuracy = model.evaluate(x[48:], y[48:])
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_accuracy)


def test_training_reduces_the_loss_with_validation_data_and_one_hot_targets():
    x, y = _toy_data(n=128)
    one_hot = np.eye(3)[y]
    model = models.Sequential([layers.Dense(16, activation="relu", input_shape=(10,)),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x[:96], one_hot[:96], epochs=30, verbose=0,
                        validation_data=(x[96:], one_hot[96:]))
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.7  # 32 held-out samples


def test_regularization_penalty_is_added_to_the_loss():
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(10,),
                                            kernel_regularizer=regularizers.l2(0.5))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    kernel = torch.as_tensor(model.get_weights()[0])
    plain = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(10,))])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain.set_weights(model.get_weights())
    penalty = 0.5 * float((kernel ** 2).sum())
    assert model.evaluate(x, y) == pytest.approx(plain.evaluate(x, y) + penalty, rel=1e-5)


def test_binary_and_hinge_models():
    x, y = _toy_data(n=128)
    y = (x[:, 0] > 0).astype(np.float32)
    for activation, loss in (("sigmoid", "binary_crossentropy"), ("linear", "hinge")):
        torch.manual_seed(0)
        model = models.Sequential([layers.Dense(1, activation=activation, input_shape=(10,))])
        model.compile(optimizer=optimizers.Adam(0.05), loss=loss, metrics=["accuracy"])
        history = model.fit(x, y, epochs=20, verbose=0)
        assert history.history["accuracy"][-1] > 0.9, loss


def test_early_stopping_inside_fit_restores_best_weights():
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(10,))])
    model.compile(optimizer=optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")

    class Snapshots(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    # "loss" as monitor, forced to "worsen" after epoch 1 by a tiny patience and a huge min_delta
    stopper = callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0,
                                      restore_best_weights=True)
    snapshots = Snapshots()
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[snapshots, stopper])
    assert len(history.history["loss"]) == 2
    assert model.stop_training
    for restored, first in zip(model.get_weights(), snapshots.weights[0], strict=True):
        np.testing.assert_array_equal(restored, first)


def test_summary_lists_layers_shapes_and_parameter_counts(capsys):
    model = models.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 1), name="conv"),
                               layers.MaxPooling2D(2, name="pool"),
                               layers.Flatten(name="flat"),
                               layers.Dense(10, name="out")], name="digits")
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert 'Model: "digits"' in text
    assert "conv (Conv2D)" in text and "(None, 6, 6, 4)" in text and "40" in text
    assert "pool (MaxPooling2D)" in text and "(None, 3, 3, 4)" in text
    assert "flat (Flatten)" in text and "(None, 36)" in text
    assert "out (Dense)" in text and "370" in text
    assert "Total params: 410" in text and "Trainable params: 410" in text


@pytest.mark.parametrize("kind", ["sequential", "functional", "lstm"])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, kind):
    if kind == "sequential":
        model = models.Sequential([
            layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2)),
            layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.2),
            layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(0.01))])
        x = np.random.default_rng(0).random((5, 6, 6, 2))
    elif kind == "functional":
        inputs = layers.Input(shape=(7,))
        outputs = layers.Dense(2, activation="sigmoid")(layers.Dense(5, activation="tanh")(inputs))
        model = models.Model(inputs=inputs, outputs=outputs)
        x = np.random.default_rng(0).random((5, 7))
    else:
        model = models.Sequential([layers.Embedding(9, 4, input_shape=(3,)),
                                   layers.LSTM(6, return_sequences=True), layers.SimpleRNN(3)])
        x = np.random.default_rng(0).integers(0, 9, (5, 3))
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss="mse")
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = models.load_model(path)
    assert type(loaded) is type(model)
    assert [type(lay).__name__ for lay in loaded.layers] == \
        [type(lay).__name__ for lay in model.layers]
    assert [lay.name for lay in loaded.layers] == [lay.name for lay in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert isinstance(loaded.optimizer, optimizers.SGD) and loaded.optimizer.momentum == 0.9
    assert models.Model.load(path).count_params() == model.count_params()


def test_device_auto_picks_cuda_when_available():
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert models.Sequential(device="cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="device='gpu0'"):
        models.Sequential(device="gpu0")


def test_lazy_sequential_builds_on_first_fit():
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(4, activation="relu"), layers.Dense(1)])
    assert not model.built
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y.astype(np.float32), epochs=1, verbose=0)
    assert model.built and model.output_shape == (None, 1)


def test_progress_bar_when_verbose(capsys):
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(10,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(x, y, epochs=1, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().err
    model.fit(x, y, epochs=1, verbose=2)
    assert "Epoch 1/1 - loss:" in capsys.readouterr().out


def test_bad_input_errors():
    x, y = _toy_data()
    model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(10,))],
                              name="net")
    with pytest.raises(ValueError, match="must be compiled"):
        model.fit(x, y)
    with pytest.raises(ValueError, match="Unknown optimizer: 'adamax'.*'adam'"):
        model.compile(optimizer="adamax", loss="mse")
    with pytest.raises(ValueError, match="Unknown loss: 'ce'.*'categorical_crossentropy'"):
        model.compile(optimizer="adam", loss="ce")
    with pytest.raises(ValueError, match="Unknown metric: 'f1'"):
        model.compile(optimizer="adam", loss="mse", metrics=["f1"])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x has 64 samples, y has 60 samples"):
        model.fit(x, y[:60])
    with pytest.raises(ValueError, match="layer 'net'.*expected shape=\\(None, 10\\).*"
                                         "\\(None, 7\\)"):
        model.fit(x[:, :7], y)
    with pytest.raises(ValueError, match="\\(None, 7\\)"):
        model.predict(x[:, :7])
    with pytest.raises(ValueError, match="batch_size=0"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="validation_split=1.5"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="Only layers can be added.*'dense'"):
        model.add("dense")
    with pytest.raises(ValueError, match="unique names.*'twin'"):
        models.Sequential([layers.Dense(2, name="twin", input_shape=(3,)),
                           layers.Dense(2, name="twin")])
    with pytest.raises(ValueError, match="inputs= and outputs="):
        models.Model()
