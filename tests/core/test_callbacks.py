"""History and EarlyStopping driven by hand, with a fake model."""

from __future__ import annotations

import pytest

from recommender.core import callbacks


class FakeModel:
    """What callbacks need: stop_training, get_weights, set_weights."""

    def __init__(self) -> None:
        self.stop_training = False
        self.weights = [0]

    def get_weights(self):
        return list(self.weights)

    def set_weights(self, weights):
        self.weights = list(weights)


def _drive(callback, values, monitor="val_loss"):
    """Run epochs until the callback stops training; weight i is set at epoch i."""
    model = FakeModel()
    history = callbacks.History()
    cbs = callbacks.CallbackList([callback, history], model=model)
    cbs.on_train_begin()
    epochs_run = 0
    for epoch, value in enumerate(values):
        model.weights = [epoch]
        cbs.on_epoch_end(epoch, {monitor: value})
        epochs_run += 1
        if model.stop_training:
            break
    cbs.on_train_end()
    return model, history, epochs_run


def test_history_records_every_epoch():
    _, history, _ = _drive(callbacks.Callback(), [3.0, 2.0, 1.0])
    assert history.history == {"val_loss": [3.0, 2.0, 1.0]}
    assert history.epoch == [0, 1, 2]


def test_early_stopping_waits_patience_epochs_without_improvement():
    stopper = callbacks.EarlyStopping(patience=2)
    # best at epoch 1 (0.8); epochs 2 and 3 do not improve -> stop after epoch 3
    model, _, epochs_run = _drive(stopper, [1.0, 0.8, 0.9, 0.85, 0.1])
    assert epochs_run == 4
    assert stopper.stopped_epoch == 3
    assert stopper.best == 0.8
    assert model.weights == [3]  # not restored


def test_restore_best_weights():
    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model, _, _ = _drive(stopper, [1.0, 0.8, 0.9, 0.85, 0.1])
    assert model.weights == [1]


def test_min_delta_and_patience_zero():
    stopper = callbacks.EarlyStopping(patience=0, min_delta=0.1)
    _, _, epochs_run = _drive(stopper, [1.0, 0.95, 0.5])  # 0.95 is not better by 0.1
    assert epochs_run == 2


def test_accuracy_is_maximised_in_auto_mode():
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=1,
                                      restore_best_weights=True)
    model, _, epochs_run = _drive(stopper, [0.5, 0.7, 0.6, 0.9], monitor="val_accuracy")
    assert stopper.mode == "max"
    assert epochs_run == 3
    assert model.weights == [1]


def test_missing_monitor_and_bad_arguments():
    stopper = callbacks.EarlyStopping(monitor="val_loss")
    stopper.set_model(FakeModel())
    with pytest.raises(ValueError, match="'val_loss'.*Available: \\['loss'\\]"):
        stopper.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ValueError, match="patience=-1"):
        callbacks.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode='up'"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="Callback instances"):
        callbacks.CallbackList([object()])
