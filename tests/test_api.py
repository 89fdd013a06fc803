import numpy as np

from lenet import Classifier


def test_classifier_fits_evaluates_and_predicts_like_the_cli(tmp_path, synthetic):
    # Training measures its test accuracy in fp32; fp32 inference gives exactly that figure on any CPU.
    clf = Classifier("mlp-ema", tmp_path / "m", precision="fp32", total_steps=40, batch_size=50, learning_rate=0.1,
                     log_every_steps=20, eval_every_steps=40, checkpoint_every_steps=40)
    clf._data = synthetic  # the fixture's data instead of MNIST; everything else is the real path
    result = clf.fit()
    assert result["step"] == 40
    evaluation = clf.evaluate("test")
    assert evaluation.metrics.accuracy == result["test_accuracy"]
    # The synthetic digits are no handwriting: answered at threshold 0, as lenet answered before it declined.
    predictions = clf.predict(synthetic.test_images[:8].numpy(), min_confidence=0)
    assert len(predictions) == 8 and all(p.verdict == "digit" for p in predictions)
    probabilities = np.array([p.probabilities for p in predictions])
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5) and [p.index for p in predictions] == list(range(8))
    assert (np.array([p.class_ for p in predictions]) == synthetic.test_labels[:8].numpy()).mean() >= 0.75
    # A picture, as `lenet predict` reads it: a file's path or its bytes, the same answer.
    (seven,) = clf.predict("examples/seven.png", min_confidence=0)
    (from_bytes,) = clf.predict(open("examples/seven.png", "rb").read(), min_confidence=0)
    assert seven.file == "examples/seven.png" and from_bytes.file is None
    assert seven.to_json() == {"file": "examples/seven.png", "index": None, **from_bytes.to_json()}
    reopened = Classifier(model_dir=tmp_path / "m")
    assert reopened.recipe == clf.recipe


def test_classifier_reads_a_number_as_predict_number_does(tmp_path, mnist, mnist_model_dir):
    from test_predict import _number_picture
    from lenet.inference import open_model
    from lenet.predict import read_number_files
    truth = _number_picture(mnist, [0, 1, 2], tmp_path / "n.png")
    clf = Classifier(model_dir=mnist_model_dir[0])
    result = clf.read(tmp_path / "n.png")
    assert clf.read((tmp_path / "n.png").read_bytes()).number == result.number
    (expected,) = read_number_files(open_model(mnist_model_dir[0]), [tmp_path / "n.png"])
    assert result.number == expected.number and len(result.number) == len(truth)
    assert [d.box for d in result.digits] == [d.box for d in expected.digits]
    assert result.to_json() == expected.to_json()  # the same answer, field for field
    import pytest
    from lenet import LenetError
    with pytest.raises(LenetError, match="missing.png: cannot read"):
        clf.read(tmp_path / "missing.png")
