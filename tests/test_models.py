import pytest
import torch
from torch import nn

from lenet.errors import LenetError
from lenet.models import build_model, l2_weights, list_models, model_device, register
from lenet.summary import summarize


@pytest.mark.parametrize("name", list(list_models()))
def test_every_model_maps_a_batch_to_ten_logits_and_backpropagates(name):
    torch.manual_seed(0)
    model = build_model(name)
    images = torch.rand(3, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert summarize(model)["total_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(list_models()))
def test_every_model_takes_the_number_of_classes_of_its_data_set(name):
    torch.manual_seed(0)
    ten, four = build_model(name), build_model(name, num_classes=4)
    assert four(torch.rand(2, 1, 28, 28)).shape == (2, 4)
    # Only the output layer differs: 4 rows of weights and biases instead of 10.
    last = [m for m in ten.modules() if isinstance(m, nn.Linear)][-1]
    assert sum(p.numel() for p in ten.parameters()) - sum(p.numel() for p in four.parameters()) == \
        6 * (last.in_features + 1)


def test_a_summary_says_the_input_shape_its_output_shapes_follow_from():
    summary = summarize(build_model("lenet5"))
    assert summary["input_shape"] == [1, 28, 28] and summary["layers"][0]["output_shape"] == [6, 28, 28]


def test_model_device_is_where_the_parameters_are():
    assert model_device(build_model("mlp")) == torch.device("cpu")
    if torch.cuda.is_available():
        assert model_device(build_model("mlp").cuda()).type == "cuda"


def test_lenet5_parameters_and_connections_match_seed_000():
    layers = summarize(build_model("lenet5"))["layers"]
    params = {layer["name"]: layer["params"] for layer in layers}
    assert [params[n] for n in ("conv1", "conv2", "fc1", "fc2", "fc3")] == [156, 2_416, 48_120, 10_164, 850]
    assert sum(params.values()) == 61_706
    c1 = layers[0]
    assert c1["output_shape"] == [6, 28, 28] and c1["connections"] == 122_304
    # A standard (fully connected) C3: 10*10*16*(5*5*6+1), as SEEDS.md works out.
    assert layers[2]["connections"] == 241_600


def test_tutorial_networks_have_the_seeds_shapes():
    shapes = {layer["name"]: layer["output_shape"] for layer in summarize(build_model("tutorial-cnn"))["layers"]}
    assert shapes["pool1"] == [32, 14, 14] and shapes["pool2"] == [64, 7, 7] and shapes["fc1"] == [512]
    deep = {layer["name"]: layer["params"] for layer in summarize(build_model("deep-mnist"))["layers"]}
    assert deep["fc1"] == 3136 * 1024 + 1024
    # Seed 000: a 500-unit dense layer on 28x28x1 has 392,500 parameters.
    assert summarize(build_model("mlp"))["layers"][0]["params"] == 392_500


def test_initial_biases_follow_each_seed():
    torch.manual_seed(0)
    tutorial = build_model("tutorial-cnn")
    assert torch.all(tutorial.conv1.bias == 0.0) and torch.all(tutorial.fc1.bias == 0.1)
    assert torch.all(build_model("deep-mnist").conv1.bias == 0.1)
    layers_cnn = build_model("layers-cnn")
    assert torch.all(layers_cnn.fc1.bias == 0.0) and layers_cnn.dropout.p == 0.4
    beginner = build_model("beginner-cnn")
    assert 0.9 < beginner.fc1.weight.std().item() < 1.1 and beginner.fc1.bias.std().item() > 0.5


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = build_model("tutorial-cnn")
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_registry_refuses_duplicates_and_lists_known_names():
    with pytest.raises(ValueError, match="twice"):
        register("mlp")(lambda: nn.Linear(1, 1))
    with pytest.raises(LenetError, match="known models: .*tutorial-cnn"):
        build_model("resnet")


def test_l2_covers_the_fully_connected_weights_only():
    model = build_model("tutorial-cnn")
    assert [w.shape for w in l2_weights(model)] == [(512, 3136), (10, 512)]


def test_batchnorm_cnn_names_its_layers_as_saved_checkpoints_expect():
    # Model directories written before the deeper variant existed must still load.
    norm_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = [key for n in (1, 2, 3) for key in [f"conv{n}.weight"] + [f"bn{n}.{k}" for k in norm_keys]]
    assert list(build_model("bn-cnn").state_dict()) == expected + ["fc.weight", "fc.bias"]


def test_deep_batchnorm_cnn_applies_two_convolutions_per_block_then_pools():
    torch.manual_seed(0)
    model = build_model("bn-cnn-deep").eval()
    shapes = {layer["name"]: layer["output_shape"] for layer in summarize(model)["layers"]}
    assert [shapes[f"conv{n}"][0] for n in range(1, 7)] == [32, 32, 64, 64, 128, 128]
    assert shapes["pool3"] == [128, 3, 3]
    x = torch.rand(2, 1, 28, 28)
    expected = x
    for block in range(3):
        for n in (2 * block + 1, 2 * block + 2):
            expected = torch.relu(getattr(model, f"bn{n}")(getattr(model, f"conv{n}")(expected)))
        expected = torch.nn.functional.max_pool2d(expected, 2)
    with torch.no_grad():
        assert torch.allclose(model(x), model.fc(expected.flatten(1)), atol=1e-5)
