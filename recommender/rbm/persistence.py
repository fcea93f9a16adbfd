"""Persistence: ``weights.safetensors`` plus ``metadata.json`` in a directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from safetensors.torch import load_file, save_file

from .base import RBMBase
from .config import RBMConfig
from .training import FORMAT_VERSION


class PersistenceMixin(RBMBase):
    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """``weights.safetensors`` (W, a, b, prior) plus ``metadata.json`` in ``directory``."""
        self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"W": self.W.detach().cpu().contiguous(), "a": self.a.detach().cpu(),
                   "b": self.b.detach().cpu()}
        if self.prior is not None:
            tensors["prior"] = self.prior.detach().cpu()
        save_file(tensors, str(directory / "weights.safetensors"))
        meta = {
            **self.metadata,
            "format_version": FORMAT_VERSION,
            "model": "ternary-softmax RBM",
            "binarization": {"liked": f">= {self.config.like_threshold:g}",
                             "disliked": f"< {self.config.like_threshold:g}",
                             "unrated": -1, "like_threshold": self.config.like_threshold},
            "config": self.config.to_dict(),
            "history": self.history,
            "item_ids": self.item_ids,
        }
        (directory / "metadata.json").write_text(json.dumps(meta, default=float))
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "auto") -> Self:
        """Load a saved model onto ``device`` (a GPU-trained model loads on CPU too)."""
        directory = Path(directory)
        meta_path = directory / "metadata.json"
        if not meta_path.exists():
            raise ValueError(f"No saved model in {str(directory)!r}: metadata.json is missing")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"Unsupported model format_version "
                             f"{meta.get('format_version')!r}; expected {FORMAT_VERSION}")
        config = RBMConfig.from_dict({**meta["config"], "device": device})
        model = cls(config)
        tensors = load_file(str(directory / "weights.safetensors"), device=str(model.device))
        model.W, model.a, model.b = tensors["W"], tensors["a"], tensors["b"]
        model.prior = tensors.get("prior")  # absent from artifacts saved before it existed
        model.item_ids = list(meta["item_ids"])
        model._item_index = {item: j for j, item in enumerate(model.item_ids)}
        model.history = meta.get("history", {})
        model.metadata = {k: v for k, v in meta.items()
                          if k not in ("item_ids", "history", "config")}
        return model
