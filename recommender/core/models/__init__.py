"""``Sequential`` and functional ``Model``: compile, fit, evaluate, predict, summary, save/load.

Split along Keras's seams:

* ``functional.py``: ``Model``, a chain of layers recovered from symbolic tensors;
* ``sequential.py``: ``Sequential``, a stack of layers added one at a time;
* ``training.py``: ``Trainer``, the loop ``fit -> run_epoch -> train_step`` with callbacks,
  plus ``evaluate`` and ``predict``;
* ``saving.py``: one safetensors file with weights, architecture and compile settings.
"""

from .functional import Model
from .saving import load_model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
