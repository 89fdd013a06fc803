"""lenet: the MNIST tutorials' convolutional networks, trained, evaluated and used from Python or the CLI."""

__version__ = "0.1.0"

from .api import Classifier  # noqa: E402
from .data import load_mnist  # noqa: E402
from .errors import LenetError  # noqa: E402
from .models import build_model, list_models  # noqa: E402
from .recipes import RECIPES, Recipe, get_recipe  # noqa: E402

__all__ = ["Classifier", "LenetError", "Recipe", "RECIPES", "build_model", "get_recipe", "list_models",
           "load_mnist", "__version__"]
