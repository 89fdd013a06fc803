import dataclasses

import pytest

from lenet.errors import LenetError
from lenet.models import list_models
from lenet.recipes import RECIPES, SEED_RECIPES, Recipe, get_recipe, override


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_valid_and_round_trips_through_json(name):
    recipe = get_recipe(name)
    assert recipe.model in list_models() and recipe.source.startswith(("seed 00", "lenet: "))
    assert Recipe.from_dict(recipe.to_dict(), "test") == recipe


def test_recipes_carry_the_seeds_hyperparameters():
    # Seed 003 (and seed 000's CNN chapter, base rate 0.01): SEEDS.md.
    mlp = get_recipe("mlp-ema")
    assert (mlp.learning_rate, mlp.lr_decay_rate, mlp.lr_decay_steps, mlp.lr_staircase) == (0.8, 0.99, 550, True)
    assert (mlp.batch_size, mlp.total_steps, mlp.l2_rate, mlp.ema_decay) == (100, 30_000, 1e-4, 0.99)
    cnn = get_recipe("tutorial-cnn")
    assert (cnn.model, cnn.optimizer, cnn.learning_rate, cnn.batch_size) == ("tutorial-cnn", "sgd", 0.01, 100)
    assert (cnn.l2_rate, cnn.ema_decay, cnn.lr_decay_steps) == (1e-4, 0.99, 550)
    deep = get_recipe("deep-mnist")
    assert (deep.optimizer, deep.learning_rate, deep.batch_size, deep.total_steps) == ("adam", 1e-4, 50, 20_000)
    adam = get_recipe("cnn-adam")
    assert (adam.model, adam.learning_rate, adam.batch_size, adam.total_steps) == ("beginner-cnn", 1e-3, 128, 500)
    layers = get_recipe("layers-cnn")
    assert (layers.optimizer, layers.learning_rate, layers.batch_size, layers.total_steps) == ("sgd", 1e-3, 100, 20_000)


@pytest.mark.parametrize("field, value, message", [
    ("optimizer", "rmsprop", "optimizer: 'rmsprop' is not one of sgd, momentum, nesterov, adam"),
    ("lr_schedule", "cosine", "lr_schedule: 'cosine' is not one of exponential, one-cycle"),
    ("augment", "mixup", "augment: 'mixup' is not one of none, affine, elastic"),
    ("label_smoothing", 1.0, r"label_smoothing: must be in \[0, 1\)"),
    ("weight_decay", -1e-4, "weight_decay: must be >= 0"),
    ("batch_size", 0, "batch_size: must be positive"),
    ("ema_decay", 1.0, r"ema_decay: must be in \[0, 1\)"),
    ("adam_beta1", 1.0, r"adam_beta1: must be in \[0, 1\)"),
    ("adam_beta2", -0.1, r"adam_beta2: must be in \[0, 1\)"),
    ("model", "vgg", "model: unknown model 'vgg'"),
    ("loss_reduction", "max", "loss_reduction"),
    ("l2_rate", -1.0, "l2_rate: must be >= 0"),
])
def test_bad_fields_fail_naming_the_field(field, value, message):
    with pytest.raises(LenetError, match=message):
        override(get_recipe("tutorial-cnn"), **{field: value})


@pytest.mark.parametrize("field, value, expected", [
    ("total_steps", "x", "total_steps: expected an integer, got 'x'"),
    ("total_steps", 10.5, "total_steps: expected an integer"),
    ("learning_rate", None, "learning_rate: expected a finite number, got None"),
    ("l2_rate", True, "l2_rate: expected a finite number, got True"),
    ("momentum", float("nan"), "momentum: expected a finite number, got nan"),
    ("weight_decay", float("inf"), "weight_decay: expected a finite number, got inf"),
    ("lr_staircase", 1, "lr_staircase: expected true or false"),
    ("model", 5, "model: expected a string"),
])
def test_a_hand_edited_recipe_with_wrong_types_is_refused_naming_file_and_field(field, value, expected):
    values = {**get_recipe("tutorial-cnn").to_dict(), field: value}
    with pytest.raises(LenetError, match=f"^runs/x/recipe.json: recipe field {expected}"):
        Recipe.from_dict(values, "runs/x/recipe.json")


def test_a_recipe_json_that_is_not_an_object_or_lacks_fields_is_refused():
    with pytest.raises(LenetError, match="^r.json: the recipe is not a JSON object"):
        Recipe.from_dict([1, 2], "r.json")
    values = get_recipe("tutorial-cnn").to_dict()
    del values["learning_rate"]
    with pytest.raises(LenetError, match="^r.json: .*learning_rate"):
        Recipe.from_dict(values, "r.json")
    # An integer is a valid value of a float field (JSON writes 1.0 as 1 in some tools).
    assert Recipe.from_dict({**values, "learning_rate": 1}, "r.json").learning_rate == 1


def test_unknown_names_and_fields_are_errors():
    with pytest.raises(LenetError, match="known recipes: .*layers-cnn"):
        get_recipe("nope")
    with pytest.raises(LenetError, match="unknown recipe field"):
        override(get_recipe("mlp-ema"), keep_prob=0.5)
    with pytest.raises(LenetError, match="unknown recipe field"):
        Recipe.from_dict({**get_recipe("mlp-ema").to_dict(), "extra": 1}, "test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_recipe("mlp-ema").total_steps = 5


def test_seed_recipes_are_the_ones_whose_source_is_a_seed():
    assert set(SEED_RECIPES) == {name for name, r in RECIPES.items() if r.source.startswith("seed ")}
    assert set(RECIPES) - set(SEED_RECIPES) == {"fast", "best"}


@pytest.mark.parametrize("field, value", [("seed", 20_000_000_000_000), ("seed", 18446744073709551616),
                                          ("log_every_steps", 1_000_000_000_000), ("learning_rate", 1e308),
                                          ("batch_size", 10 ** 9)])
def test_numbers_too_large_to_mean_anything_are_refused_naming_the_field(field, value):
    with pytest.raises(LenetError, match=f"recipe field {field}: must be at most"):
        override(get_recipe("tutorial-cnn"), **{field: value})
