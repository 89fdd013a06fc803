"""lenet: the MNIST tutorials' convolutional networks, trained, evaluated and used from Python or the CLI."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# The public API, imported on first use: `import lenet` (and so `lenet --help`) must not wait for torch.
_PUBLIC = {"Classifier": "api", "LenetError": "errors", "Recipe": "recipes", "RECIPES": "recipes",
           "build_model": "models", "get_recipe": "recipes", "list_models": "models", "load_dataset": "data",
           "open_model": "inference",
           # The answers, each with to_json(): what `--json` prints and the server sends.
           "Prediction": "results", "NumberReading": "results", "Evaluation": "results"}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'lenet' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
