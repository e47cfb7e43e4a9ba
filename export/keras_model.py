"""export.keras_model: the contract U-Net in Keras, a size-flexible copy, and .h5 loading."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

from export.errors import ExportError
from lulc_edge.errors import first_line

N_FEATURES = 16
N_CLASSES = 5
EXPECTED_PARAMS = 475_429

# Layer names of the reference architecture, in build order. The ONNX rewrite in export/graph.py
# relies on the conv order (encoder, bottleneck, decoder, head), not on these names.
CONV_LAYERS = (
    "enc1_conv1", "enc1_conv2",
    "enc2_conv1", "enc2_conv2",
    "bottleneck_conv1", "bottleneck_conv2",
    "dec2_conv1", "dec2_conv2",
    "dec1_conv1", "dec1_conv2",
    "head_conv",
)


def build_unet(input_shape: tuple = (64, 64, N_FEATURES),
               n_classes: int = N_CLASSES) -> keras.Model:
    """Build the contract U-Net (475,429 parameters for 16 features and 5 classes).

    Conv(32,32)-pool-Conv(64,64)-pool-Conv(128,128)-up-concat-Conv(64,64)-up-concat-Conv(32,32)
    -Conv1x1(n_classes)+softmax. 3x3 convolutions use padding 'same' and ReLU; pooling is
    MaxPooling2D(2); upsampling is UpSampling2D(2) nearest. Each concatenation puts the upsampled
    tensor FIRST and the encoder skip tensor second: ``concat([upsampled, skip])``.
    """
    def conv(x, filters: int, name: str):
        return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)

    inputs = keras.Input(shape=input_shape, name="features")
    c1 = conv(conv(inputs, 32, "enc1_conv1"), 32, "enc1_conv2")
    p1 = layers.MaxPooling2D(2, name="enc1_pool")(c1)
    c2 = conv(conv(p1, 64, "enc2_conv1"), 64, "enc2_conv2")
    p2 = layers.MaxPooling2D(2, name="enc2_pool")(c2)
    c3 = conv(conv(p2, 128, "bottleneck_conv1"), 128, "bottleneck_conv2")
    u2 = layers.UpSampling2D(2, interpolation="nearest", name="dec2_up")(c3)
    m2 = layers.Concatenate(axis=-1, name="dec2_concat")([u2, c2])
    c4 = conv(conv(m2, 64, "dec2_conv1"), 64, "dec2_conv2")
    u1 = layers.UpSampling2D(2, interpolation="nearest", name="dec1_up")(c4)
    m1 = layers.Concatenate(axis=-1, name="dec1_concat")([u1, c1])
    c5 = conv(conv(m1, 32, "dec1_conv1"), 32, "dec1_conv2")
    outputs = layers.Conv2D(n_classes, 1, activation="softmax", name="head_conv")(c5)
    return keras.Model(inputs, outputs, name="unet")


def flexible_copy(model: keras.Model) -> keras.Model:
    """Rebuild ``model`` from its config with input batch_shape [None, None, None, C], same weights.

    The saved model's input layer is fixed (e.g. 64x64); Keras ``predict`` refuses other sizes.
    """
    config = model.get_config()
    n_channels = model.input_shape[-1]
    found = False
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            cfg = layer["config"]
            cfg.pop("batch_input_shape", None)
            cfg["batch_shape"] = [None, None, None, n_channels]
            found = True
    if not found:
        raise ExportError("model config has no InputLayer; cannot rebuild it with a flexible size")
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


class NearestUpsample(layers.Layer):
    """UpSampling2D(size, 'nearest') as ``tf.image.resize``: tf2onnx turns it into one Resize.

    Keras' UpSampling2D repeats rows and columns (out[i] = in[i // s]); tf2onnx converts that to
    Tile/Reshape plus layout Transposes. tf.image.resize 'nearest' (half-pixel centres) maps
    out[i] to in[floor((i + 0.5) / s)] = in[i // s] for an integer s: the same values.
    Used only in the copy handed to tf2onnx.
    """

    def __init__(self, size: tuple[int, int] = (2, 2), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    def call(self, x):
        shape = tf.shape(x)
        return tf.image.resize(x, [shape[1] * self.size[0], shape[2] * self.size[1]],
                               method="nearest")

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def conversion_copy(model: keras.Model) -> keras.Model:
    """Size-flexible copy for tf2onnx: UpSampling2D layers become NearestUpsample, same weights."""
    flexible = flexible_copy(model)

    def clone(layer: layers.Layer) -> layers.Layer:
        if isinstance(layer, layers.UpSampling2D):
            if layer.interpolation != "nearest" or layer.data_format != "channels_last":
                raise ExportError(f"layer {layer.name}: only nearest, channels_last UpSampling2D "
                                  f"is supported (got {layer.interpolation}, {layer.data_format})")
            return NearestUpsample(size=layer.size, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(flexible, clone_function=clone)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"cannot rebuild the model for conversion: {exc}") from exc
    copy.set_weights(flexible.get_weights())
    return copy


def load_h5(path: str | os.PathLike) -> keras.Model:
    """Load a legacy Keras .h5 model, raising ExportError with a one-line message on failure."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"model file not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic != b"\x89HDF\r\n\x1a\n":
        raise ExportError(f"not an HDF5 file (expected a Keras .h5 model): {path}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many unrelated types here
        raise ExportError(f"cannot load Keras model from {path}: {first_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ExportError(f"{path} does not hold a Keras model")
    return model


def check_model(model: keras.Model) -> None:
    """Check the model maps (H, W, 16) features to 5 classes; raise ExportError otherwise."""
    if isinstance(model.input_shape, list):
        raise ExportError(
            f"model has {len(model.input_shape)} inputs; expected one (H, W, 16) input")
    in_shape = tuple(model.input_shape)
    if len(in_shape) != 4 or in_shape[-1] != N_FEATURES:
        raise ExportError(
            f"model input shape {in_shape[1:]} is not (H, W, {N_FEATURES}) feature channels"
        )
    out_shape = model.output_shape
    if isinstance(out_shape, list) or len(out_shape) != 4 or out_shape[-1] != N_CLASSES:
        raise ExportError(
            f"model output shape {out_shape} is not (H, W, {N_CLASSES}) class probabilities"
        )
