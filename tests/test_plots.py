import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import synthetic_mnist
from lenet.cli import main
from lenet.plots import plot_model_dir
from lenet.recipes import get_recipe, override
from lenet.training import train


def _check_png(path, min_width=150, min_height=100):
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert image.width >= min_width and image.height >= min_height, (path, image.size)
    assert pixels.var() > 50, f"{path} looks blank"


@pytest.fixture(scope="module")
def cnn_model_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("plot-cnn")
    recipe = override(get_recipe("lenet5"), total_steps=30, batch_size=20, optimizer="adam", learning_rate=1e-3,
                      ema_decay=0.0, log_every_steps=10, eval_every_steps=15, checkpoint_every_steps=30)
    train(recipe, model_dir, synthetic_mnist(200))
    return model_dir


def _with_wrong_labels(data, count=20):
    """The test split with COUNT labels shifted by one, so that any decent model makes mistakes to draw."""
    labels = data.test_labels.clone()
    labels[:count] = (labels[:count] + 1) % 10
    return dataclasses.replace(data, test_labels=labels)


def test_plot_writes_every_picture_and_one_feature_map_per_conv_and_pool_layer(cnn_model_dir, tmp_path):
    digit = Image.new("RGB", (90, 120), "white")
    ImageDraw.Draw(digit).line([(20, 20), (70, 20), (35, 100)], fill="black", width=9)
    digit.save(tmp_path / "seven.png")
    data = _with_wrong_labels(synthetic_mnist(200))
    paths, notes = plot_model_dir(cnn_model_dir, data, tmp_path / "out", tmp_path / "seven.png")
    names = [p.name for p in paths]
    assert notes == []
    assert names[:5] == ["training-curves.png", "reliability.png", "confusion.png", "confident-mistakes.png",
                         "filters.png"]
    feature_maps = [n for n in names if n.startswith("feature-maps-")]
    assert feature_maps == ["feature-maps-01-conv1.png", "feature-maps-02-pool1.png",
                            "feature-maps-03-conv2.png", "feature-maps-04-pool2.png"]
    for path in paths:
        if path.name == "confident-mistakes.png":  # rows of 56x72 px captioned digits, as many as there are
            _check_png(path, min_width=300, min_height=72)
        else:
            _check_png(path, min_width=300 if path.name in ("training-curves.png", "confusion.png") else 150)


def test_an_mlp_gets_curves_and_confusion_and_a_note_instead_of_feature_maps(synthetic_model_dir, synthetic, tmp_path):
    paths, notes = plot_model_dir(synthetic_model_dir, _with_wrong_labels(synthetic), tmp_path, image=None)
    assert [p.name for p in paths] == ["training-curves.png", "reliability.png", "confusion.png", "confident-mistakes.png"]
    assert len(notes) == 1 and "no convolution layers" in notes[0]


def test_summary_png_draws_the_architecture(tmp_path, capsys):
    assert main(["summary", "tutorial-cnn", "--png", str(tmp_path / "arch.png")]) == 0
    _check_png(tmp_path / "arch.png", min_width=600)


def test_plot_opens_the_model_once(synthetic_model_dir, synthetic, tmp_path, monkeypatch, capsys):
    import lenet.inference
    import lenet.plots
    opened = []
    real_open_model = lenet.inference.open_model

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real_open_model(*args, **kwargs)
    monkeypatch.setattr(lenet.inference, "open_model", counting)
    monkeypatch.setattr(lenet.plots, "open_model", counting)
    monkeypatch.setattr("lenet.data.load_dataset", lambda *args, **kwargs: _with_wrong_labels(synthetic))
    assert main(["plot", "--model-dir", str(synthetic_model_dir), "--out", str(tmp_path)]) == 0
    assert [p.rsplit("/", 1)[1] for p in capsys.readouterr().out.split()] == \
        ["training-curves.png", "reliability.png", "confusion.png", "confident-mistakes.png"]
    assert opened == [str(synthetic_model_dir)]
    opened.clear()
    paths, _ = plot_model_dir(real_open_model(synthetic_model_dir), _with_wrong_labels(synthetic), tmp_path / "again")
    assert opened == [] and [p.parent for p in paths] == [tmp_path / "again"] * 4
