"""Layer outputs against torch.nn reference ops with the weights copied, Keras weight layouts,
augmentation behaviour, and bad-argument errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recommender.core import layers


def test_dense_matches_linear_and_keeps_keras_layout():
    dense = layers.Dense(3, activation="relu")
    x = torch.randn(5, 4)
    out = dense(x)
    kernel, bias = dense.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    reference = torch.relu(F.linear(x, torch.as_tensor(kernel).t(), torch.as_tensor(bias)))
    torch.testing.assert_close(out, reference)
    assert dense.count_params() == 15


def test_dense_applies_to_last_axis_of_3d_input():
    dense = layers.Dense(2, use_bias=False)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(dense(x), x @ dense.kernel)


@pytest.mark.parametrize(("padding", "strides", "kernel_size", "size"), [
    ("valid", 1, 3, 7), ("same", 1, 3, 7), ("same", 2, 3, 8), ("same", 2, 2, 7),
    ("valid", 2, (3, 2), 9),
])
def test_conv2d_matches_torch_conv(padding, strides, kernel_size, size):
    conv = layers.Conv2D(4, kernel_size, strides=strides, padding=padding)
    x = torch.randn(2, size, size, 3)  # channels-last
    out = conv(x)
    kernel, bias = conv.get_weights()
    kh, kw = conv.kernel_size
    assert kernel.shape == (kh, kw, 3, 4)
    reference = torch.nn.Conv2d(3, 4, (kh, kw), stride=strides)
    with torch.no_grad():
        reference.weight.copy_(torch.as_tensor(kernel).permute(3, 2, 0, 1))
        reference.bias.copy_(torch.as_tensor(bias))
    x_nchw = x.permute(0, 3, 1, 2)
    if padding == "same":
        # Keras: output ceil(size / stride), the odd padding pixel at the bottom/right.
        out_size = -(-size // strides)
        pad_h = max((out_size - 1) * strides + kh - size, 0)
        pad_w = max((out_size - 1) * strides + kw - size, 0)
        x_nchw = F.pad(x_nchw, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    expected = reference(x_nchw).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("pool", "strides", "padding", "expected_size"), [
    (2, None, "valid", 3), (2, 2, "same", 4), (3, 1, "same", 7), (3, 2, "valid", 3),
])
def test_max_pooling_matches_torch(pool, strides, padding, expected_size):
    x = torch.randn(2, 7, 7, 3)
    out = layers.MaxPooling2D(pool, strides=strides, padding=padding)(x)
    assert out.shape == (2, expected_size, expected_size, 3)
    if padding == "valid":
        reference = F.max_pool2d(x.permute(0, 3, 1, 2), pool, strides or pool)
        torch.testing.assert_close(out, reference.permute(0, 2, 3, 1))


def _keras_lstm_numpy(x, kernel, recurrent, bias):
    """Keras's LSTM equations in numpy, gate order i, f, c, o."""
    def sigmoid(z):
        return 1 / (1 + np.exp(-z))
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def test_lstm_matches_keras_equations_and_torch_lstm():
    lstm = layers.LSTM(5, return_sequences=True)
    x = torch.randn(3, 4, 2, dtype=torch.float32)
    out = lstm(x)
    kernel, recurrent, bias = lstm.get_weights()
    assert (kernel.shape, recurrent.shape, bias.shape) == ((2, 20), (5, 20), (20,))
    assert np.all(bias[5:10] == 1.0)  # unit_forget_bias
    expected = _keras_lstm_numpy(x.double().numpy(), kernel, recurrent, bias)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)

    reference = _torch_reference(torch.nn.LSTM(2, 5, batch_first=True), kernel, recurrent, bias)
    torch.testing.assert_close(out, reference(x)[0])

    last = layers.LSTM(5)
    last(x)
    last.set_weights([kernel, recurrent, bias])
    torch.testing.assert_close(last(x), out[:, -1])


def test_lstm_loop_path_equals_fused_path():
    fused = layers.LSTM(4, return_sequences=True)
    loop = layers.LSTM(4, activation=torch.tanh, return_sequences=True)  # not the built-in
    x = torch.randn(2, 5, 3)
    fused(x)
    loop(x)
    loop.set_weights(fused.get_weights())
    assert fused.uses_fused_kernel and not loop.uses_fused_kernel
    torch.testing.assert_close(loop(x), fused(x))


def _torch_reference(module, kernel, recurrent, bias):
    """A torch.nn recurrent layer given our Keras-layout weights (one bias: torch's second
    bias set to zero)."""
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.as_tensor(kernel).t())
        module.weight_hh_l0.copy_(torch.as_tensor(recurrent).t())
        module.bias_ih_l0.copy_(torch.as_tensor(bias))
        module.bias_hh_l0.zero_()
    return module


def test_simple_rnn_matches_torch_rnn():
    rnn = layers.SimpleRNN(4, return_sequences=True)
    x = torch.randn(2, 5, 3)
    out = rnn(x)
    kernel, recurrent, bias = rnn.get_weights()
    reference = _torch_reference(torch.nn.RNN(3, 4, batch_first=True), kernel, recurrent, bias)
    torch.testing.assert_close(out, reference(x)[0])


def test_embedding_looks_up_rows():
    embedding = layers.Embedding(10, 3)
    ids = torch.tensor([[1, 2], [9, 1]])
    out = embedding(ids)
    table = embedding.get_weights()[0]
    assert table.shape == (10, 3) and np.all(np.abs(table) <= 0.05)
    np.testing.assert_array_equal(out.detach().numpy(), table[ids.numpy()])


def test_flatten_is_channels_last_order():
    x = torch.arange(24.0).reshape(2, 2, 3, 2)
    torch.testing.assert_close(layers.Flatten()(x), x.reshape(2, 12))


def test_dropout_only_while_training():
    dropout = layers.Dropout(0.5, seed=1)
    x = torch.ones(1000)[None]
    assert torch.equal(dropout(x), x)
    out = dropout(x, training=True)
    kept = out != 0
    assert 400 < int(kept.sum()) < 600
    assert torch.all(out[kept] == 2.0)  # survivors scaled by 1 / (1 - rate)


@pytest.mark.parametrize("layer", [
    layers.RandomFlip(seed=0), layers.RandomTranslation(0.3, 0.3, seed=0),
    layers.RandomRotation(0.2, seed=0), layers.RandomZoom(0.3, seed=0),
])
def test_augmentation_only_while_training(layer):
    images = torch.rand(4, 8, 8, 1)
    assert torch.equal(layer(images), images)
    augmented = layer(images, training=True)
    assert augmented.shape == images.shape
    assert not torch.equal(augmented, images)


def test_random_flip_flips_whole_images():
    images = torch.rand(16, 5, 5, 2)
    out = layers.RandomFlip("horizontal", seed=3)(images, training=True)
    for original, flipped in zip(images, out, strict=True):
        assert torch.equal(flipped, original) or torch.equal(flipped, original.flip(1))


def test_translation_by_whole_pixels_shifts_content():
    image = torch.zeros(1, 4, 4, 1)
    image[0, 1, 1, 0] = 1.0
    layer = layers.RandomTranslation((0.25, 0.25), (0.0, 0.0), fill_mode="constant",
                                     interpolation="nearest")
    out = layer(image, training=True)  # always one pixel down
    assert out[0, 2, 1, 0] == 1.0 and out.sum() == 1.0


def test_zero_rotation_and_zoom_are_identity():
    images = torch.rand(2, 6, 6, 3)
    rotated = layers.RandomRotation((0.0, 0.0))(images, training=True)
    zoomed = layers.RandomZoom((0.0, 0.0))(images, training=True)
    torch.testing.assert_close(rotated, images)
    torch.testing.assert_close(zoomed, images)


def test_get_set_weights_round_trip_and_shape_check():
    conv = layers.Conv2D(2, 3, input_shape=(5, 5, 1))
    conv(torch.zeros(1, 5, 5, 1))
    weights = [np.arange(18.0).reshape(3, 3, 1, 2), np.array([1.0, 2.0])]
    conv.set_weights(weights)
    np.testing.assert_array_equal(conv.get_weights()[0], weights[0])
    with pytest.raises(ValueError, match=r"weight 'kernel' has shape \(3, 3, 1, 2\)"):
        conv.set_weights([np.zeros((3, 3, 2, 1)), np.zeros(2)])


@pytest.mark.parametrize(("make", "message"), [
    (lambda: layers.Dense(0), "units=0"),
    (lambda: layers.Dense(-3), "units=-3"),
    (lambda: layers.LSTM(0), "units=0"),
    (lambda: layers.Conv2D(0, 3), "filters=0"),
    (lambda: layers.Dropout(1.5), r"rate must be in \[0, 1\). Received: rate=1.5"),
    (lambda: layers.Dropout(-0.1), "rate=-0.1"),
    (lambda: layers.Dense(3, activation="swish"), "Unknown activation: 'swish'.*'relu'"),
    (lambda: layers.Conv2D(2, 3, padding="full"), "padding='full'"),
    (lambda: layers.MaxPooling2D(0), "pool_size"),
    (lambda: layers.Dense(2, input_shape=(0,)), "input_shape=\\(0,\\)"),
    (lambda: layers.RandomFlip("diagonal"), "mode='diagonal'"),
    (lambda: layers.RandomZoom(-1.5), "height_factor"),
])
def test_bad_arguments_name_the_argument_and_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_input_shape_names_the_layer():
    dense = layers.Dense(4, name="hidden")
    dense(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="layer 'hidden'.*axis -1.*value 3.*\\(None, 5\\)"):
        dense(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"layer 'conv'.*Received: input_shape=\(None, 5, 5\)"):
        layers.Conv2D(2, 3, name="conv")(torch.zeros(2, 5, 5))


def test_kernel_layers_with_an_input_of_the_wrong_rank_say_which_axes_they_expect():
    conv = layers.Conv2D(2, 3, name="conv")
    with pytest.raises(ValueError, match=re.escape(
            "Input 0 of layer 'conv' is incompatible with the layer: expected (batch, height, "
            "width, channels) with known channels. Received: input_shape=(None, 5, 5)")):
        conv(torch.zeros(2, 5, 5))
    lstm = layers.LSTM(2, name="rnn")
    with pytest.raises(ValueError, match=re.escape(
            "Input 0 of layer 'rnn' is incompatible with the layer: expected (batch, timesteps, "
            "features) with known features. Received: input_shape=(None, 4)")):
        lstm(torch.zeros(2, 4))


def test_kernel_layers_config_lists_the_shared_options_and_rebuilds_the_layer():
    shared = {"activation": "relu", "use_bias": False, "kernel_initializer": "ones",
              "bias_initializer": "zeros", "kernel_regularizer": {"class_name": "l2",
                                                                  "config": {"l2": 0.5}},
              "bias_regularizer": None}
    dense = layers.Dense(3, activation="relu", use_bias=False, kernel_initializer="ones",
                         kernel_regularizer=shared["kernel_regularizer"], name="d")
    assert {k: v for k, v in dense.get_config().items() if k in shared} == shared
    dense(torch.zeros(1, 2))
    assert dense.bias is None and [w.shape for w in dense.get_weights()] == [(2, 3)]
    conv = layers.Conv2D(2, 3, activation="relu", use_bias=True, bias_initializer="ones")
    conv(torch.zeros(1, 4, 4, 1))
    np.testing.assert_array_equal(conv.get_weights()[1], [1.0, 1.0])
    config = layers.LSTM(2, recurrent_initializer="zeros", recurrent_regularizer="l1",
                         name="rnn").get_config()
    assert config["recurrent_initializer"] == "zeros"
    assert config["recurrent_regularizer"]["class_name"] == "l1"
    rebuilt = layers.deserialize(layers.serialize(layers.LSTM.from_config(config)))
    assert rebuilt.get_config() == config
