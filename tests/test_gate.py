"""The digit gate: training it (lenet.gate_training, at a tiny size), the file it ships in, and using it."""

import io

import numpy as np
import torch
from PIL import Image

from lenet.gate import GATE_FILE, gate_provenance, load_gate
from lenet.gate_training import digit_picture, fit_platt, main


def test_gate_training_writes_a_gate_that_loads_with_its_calibration_and_provenance(mnist, tmp_path, capsys):
    out = tmp_path / "gate.safetensors"
    assert main(["--out", str(out), "--digits", "512", "--digit-pictures", "32", "--negatives", "64",
                 "--validation", "32", "--epochs", "1"]) == 0
    gate = load_gate(path=out)
    probabilities = gate(torch.rand(5, 1, 28, 28))
    assert probabilities.shape == (5,) and bool(((probabilities >= 0) & (probabilities <= 1)).all())
    provenance = gate_provenance(out)
    assert "--negatives 64" in provenance["made_by"] and "validation" in provenance
    assert load_gate(path=tmp_path / "missing.safetensors") is None


def test_a_digit_picture_is_a_readable_picture_larger_than_the_digit():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    picture = Image.open(io.BytesIO(digit_picture(digit, np.random.default_rng(0))))
    assert min(picture.size) > 28


def test_platt_scaling_separates_what_the_logits_separate():
    logits = torch.cat([torch.randn(500) + 4, torch.randn(500) - 4])
    is_digit = torch.cat([torch.ones(500, dtype=torch.bool), torch.zeros(500, dtype=torch.bool)])
    calibration = fit_platt(logits, is_digit)
    probability = torch.sigmoid(calibration.scale * logits + calibration.bias)
    assert calibration.scale > 0 and (probability[:500] > 0.5).float().mean() > 0.95
    assert (probability[500:] < 0.5).float().mean() > 0.95


def test_the_package_ships_a_gate_that_tells_mnist_digits_from_noise(mnist):
    gate = load_gate()
    assert GATE_FILE.exists() and gate is not None
    digits = mnist.test_images[:200].float().div(255).reshape(-1, 1, 28, 28)
    noise = (torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    with torch.no_grad():
        assert (gate(digits) >= 0.5).float().mean() > 0.97 and (gate(noise) < 0.5).float().mean() > 0.97
