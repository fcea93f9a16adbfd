"""recommender.core: a small Keras-like deep-learning library on torch tensors and autograd.

The optimizers and regularizers here are the ones the RBM trains with; there is no second copy.

    from recommender.core import models, layers, regularizers

    model = models.Sequential()
    model.add(layers.Dense(32, activation="relu", input_shape=(784,)))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
"""

from . import (
    activations,
    callbacks,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
)

__all__ = [
    "activations", "callbacks", "initializers", "layers", "losses", "metrics", "models",
    "optimizers", "regularizers",
]
