"""End-to-end accuracy on scikit-learn's bundled digits (8x8 images, 1,797 samples).

Stratified 80/20 split with a fixed seed; each model is seeded, so the numbers are
reproducible on a given torch build. Thresholds are the issue's: MLP >= 0.97, CNN >= 0.98,
row-by-row LSTM >= 0.95.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from recommender.core import layers, models, optimizers


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    return train_test_split(x, data.target, test_size=0.2, stratify=data.target,
                            random_state=0)


def test_mlp_reaches_97_percent(digits):
    x_train, x_test, y_train, y_test = digits
    torch.manual_seed(1)
    model = models.Sequential([
        layers.Flatten(input_shape=(8, 8)),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(0.003), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test)
    assert history.history["accuracy"][-1] > 0.99
    assert accuracy >= 0.97


def test_cnn_reaches_98_percent(digits):
    x_train, x_test, y_train, y_test = digits
    torch.manual_seed(1)
    model = models.Sequential([
        layers.Conv2D(32, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2),  # (batch, 4, 4, 32)
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(0.002), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # (batch, 8, 8) -> (batch, 8, 8, 1): channels-last images
    model.fit(x_train[..., None], y_train, epochs=20, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test[..., None], y_test)
    assert accuracy >= 0.98


def test_lstm_reading_rows_reaches_95_percent(digits):
    x_train, x_test, y_train, y_test = digits
    torch.manual_seed(1)
    inputs = layers.Input(shape=(8, 8))  # 8 time steps (rows) of 8 features (pixels)
    hidden = layers.LSTM(64)(inputs)
    outputs = layers.Dense(10, activation="softmax")(hidden)
    model = models.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=25, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.95


def test_next_word_lstm_predicts_every_next_token():
    corpus = "Steven saw Mark . Mark saw John . John saw Steven .".lower().split()
    vocabulary = sorted(set(corpus))
    ids = np.array([vocabulary.index(word) for word in corpus])
    x = ids[None, :-1]  # (1, 11): the corpus read as one sequence
    y = ids[None, 1:]   # (1, 11): the token that follows each position
    torch.manual_seed(0)
    model = models.Sequential([
        layers.Embedding(len(vocabulary), 8, input_shape=(None,)),
        layers.LSTM(32, return_sequences=True),
        layers.Dense(len(vocabulary), activation="softmax"),
    ])
    model.compile(optimizer=optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=150, batch_size=1, verbose=0)
    predicted = model.predict(x).argmax(axis=-1)[0]  # (11,)
    assert [vocabulary[i] for i in predicted] == corpus[1:]
    assert history.history["accuracy"][-1] == 1.0


def _gap(model, x_train, y_train, x_val, y_val) -> float:
    """Validation loss minus training loss, both measured in inference mode."""
    return model.evaluate(x_val, y_val) - model.evaluate(x_train, y_train)


def _overparameterised_mlp(dropout: float = 0.0, l2: float = 0.0):
    from recommender.core import regularizers

    regularizer = regularizers.l2(l2) if l2 else None
    stack = [layers.Dense(512, activation="relu", input_shape=(64,),
                          kernel_regularizer=regularizer)]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack += [layers.Dense(512, activation="relu", kernel_regularizer=regularizer)]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(10, activation="softmax", kernel_regularizer=regularizer))
    model = models.Sequential(stack)
    model.compile(optimizer=optimizers.Adam(0.001), loss="sparse_categorical_crossentropy")
    return model


def test_dropout_and_l2_shrink_the_generalisation_gap(digits):
    x_train, x_test, y_train, y_test = digits
    # Few samples, many weights: the plain MLP memorises them.
    x_small, y_small = x_train[:150].reshape(150, 64), y_train[:150]
    x_val = x_test.reshape(len(x_test), 64)
    gaps = {}
    for label, kwargs in (("plain", {}), ("dropout", {"dropout": 0.5}), ("l2", {"l2": 1e-3})):
        torch.manual_seed(0)
        model = _overparameterised_mlp(**kwargs)
        model.fit(x_small, y_small, epochs=60, batch_size=16, verbose=0)
        gaps[label] = _gap(model, x_small, y_small, x_val, y_test)
    assert gaps["dropout"] < gaps["plain"]
    assert gaps["l2"] < gaps["plain"]
