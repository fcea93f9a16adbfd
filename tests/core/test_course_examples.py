"""The worked examples of the course this project teaches from, as exact-value tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommender.core import callbacks, layers, models, optimizers


class WeightRecorder(callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.kernels: list[float] = []

    def on_batch_end(self, batch, logs=None):
        self.kernels.append(float(self.model.get_weights()[0][0, 0]))


def test_single_neuron_sgd_course_example():
    """y = x * w, squared error, SGD lr 0.1 from w = 0.5 over (2, 4), (1, 2), (3, 6).

    The course's loss is (y - x w)**2 (no 1/2), so dL/dw = -2 (y - x w) x:
        w1 = 0.5  + 0.1 * 2 * (4 - 2 * 0.5)  * 2 = 1.7
        w2 = 1.7  + 0.1 * 2 * (2 - 1 * 1.7)  * 1 = 1.76
        w3 = 1.76 + 0.1 * 2 * (6 - 3 * 1.76) * 3 = 2.192
    which is exactly Keras's mean_squared_error on batches of one sample.
    """
    model = models.Sequential([layers.Dense(1, use_bias=False, input_shape=(1,))])
    model.set_weights([np.array([[0.5]])])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mean_squared_error")
    recorder = WeightRecorder()
    x = np.array([[2.0], [1.0], [3.0]])
    y = np.array([[4.0], [2.0], [6.0]])
    model.fit(x, y, epochs=1, batch_size=1, shuffle=False, verbose=0, callbacks=[recorder])
    assert recorder.kernels == pytest.approx([1.7, 1.76, 2.192], abs=1e-6)


IMAGE = np.array([[int(c) for c in row] for row in (
    "0000000",
    "0100010",
    "0000000",
    "0001000",
    "0100010",
    "0011100",
    "0000000",
)], dtype=np.float32)

DETECTOR_1 = np.array([[0, 0, 1],
                       [1, 0, 0],
                       [0, 1, 1]], dtype=np.float32)
DETECTOR_2 = np.array([[0, 1, 0],
                       [0, 0, 0],
                       [1, 1, 1]], dtype=np.float32)

# Feature maps computed by hand: out[i, j] = sum over the 3x3 window at (i, j) of image * detector.
FEATURE_MAP_1 = np.array([[0, 1, 0, 0, 0],
                          [0, 1, 1, 1, 0],
                          [1, 0, 0, 2, 1],
                          [1, 4, 2, 1, 0],
                          [0, 0, 1, 2, 1]], dtype=np.float32)
FEATURE_MAP_2 = np.array([[0, 0, 0, 0, 0],
                          [1, 1, 1, 1, 1],
                          [1, 1, 0, 1, 1],
                          [1, 2, 4, 2, 1],
                          [1, 0, 0, 0, 1]], dtype=np.float32)
# 2x2 max pooling, stride 2, "same": the 5x5 map gets one padded row and column at the
# bottom/right, giving 3x3.
POOLED_1 = np.array([[1, 1, 0],
                     [4, 2, 1],
                     [0, 2, 1]], dtype=np.float32)
POOLED_2 = np.array([[1, 1, 1],
                     [2, 4, 1],
                     [1, 0, 1]], dtype=np.float32)


@pytest.mark.parametrize(("detector", "feature_map", "pooled"), [
    (DETECTOR_1, FEATURE_MAP_1, POOLED_1),
    (DETECTOR_2, FEATURE_MAP_2, POOLED_2),
])
def test_seven_by_seven_image_convolution_and_pooling(detector, feature_map, pooled):
    conv = layers.Conv2D(1, 3, strides=1, padding="valid", use_bias=False)
    images = torch.as_tensor(IMAGE)[None, :, :, None]  # (1, 7, 7, 1), channels-last
    conv(images)  # builds the kernel
    conv.set_weights([detector[:, :, None, None]])  # (kh, kw, in, out)
    maps = conv(images)
    assert maps.shape == (1, 5, 5, 1)
    np.testing.assert_array_equal(maps[0, :, :, 0].detach().numpy(), feature_map)

    pool = layers.MaxPooling2D(2, strides=2, padding="same")
    pooled_maps = pool(maps)
    assert pooled_maps.shape == (1, 3, 3, 1)
    np.testing.assert_array_equal(pooled_maps[0, :, :, 0].detach().numpy(), pooled)


def test_both_detectors_in_one_layer_match_the_separate_maps():
    conv = layers.Conv2D(2, (3, 3), use_bias=False, input_shape=(7, 7, 1))
    model = models.Sequential([conv, layers.MaxPooling2D(2, strides=2, padding="same")])
    conv.set_weights([np.stack([DETECTOR_1, DETECTOR_2], axis=-1)[:, :, None, :]])
    pooled = model.predict(IMAGE[None, :, :, None])  # (1, 3, 3, 2)
    np.testing.assert_array_equal(pooled[0, :, :, 0], POOLED_1)
    np.testing.assert_array_equal(pooled[0, :, :, 1], POOLED_2)
