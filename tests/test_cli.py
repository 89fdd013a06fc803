import json
import os
import signal
import subprocess
import sys

import pytest

from lenet.checkpoint import list_checkpoints
from lenet.cli import main
from lenet.recipes import get_recipe


def test_summary_json_for_lenet5(capsys):
    assert main(["summary", "lenet5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total_params"] == 61_706
    assert set(summary["layers"][0]) >= {"name", "output_shape", "params", "connections"}
    assert summary["layers"][0]["connections"] == 122_304


def test_recipes_lists_every_recipe_with_its_source(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("mlp-ema", "tutorial-cnn", "lenet5", "deep-mnist", "cnn-adam", "layers-cnn"):
        assert name in out
    assert "seed 003" in out and "seed 004" in out
    # Adam's betas are shown where a recipe changes them (fast), not where they are the defaults (seed 001).
    assert "adam 0.01 (betas 0.7/0.9) one-cycle" in out and "adam 0.0001, batch 50" in out


def test_user_errors_are_one_line_and_non_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LENET_DATA_DIR", raising=False)
    assert main(["train", "--model-dir", str(tmp_path / "m"), "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--data-dir" in err and "LENET_DATA_DIR" in err
    assert main(["train", "--recipe", "nope", "--model-dir", str(tmp_path / "m")]) == 1
    assert "known recipes" in capsys.readouterr().err
    assert main(["train", "--model-dir", str(tmp_path / "m"), "--optimizer", "rmsprop"]) == 1
    assert "recipe field optimizer" in capsys.readouterr().err
    assert main(["eval", "--model-dir", str(tmp_path / "nothing"), "--data-dir", str(tmp_path)]) == 1
    # A recipe.json edited by hand into a wrong type is refused before any data is read.
    (tmp_path / "edited").mkdir()
    (tmp_path / "edited" / "recipe.json").write_text(json.dumps({**get_recipe("fast").to_dict(), "total_steps": "x"}))
    capsys.readouterr()
    assert main(["train", "--model-dir", str(tmp_path / "edited")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "recipe.json: recipe field total_steps: expected an integer" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model-dir", "x", "--steps", "many"])
    assert exit_info.value.code == 2


def test_every_recipe_field_is_an_option():
    from dataclasses import fields

    from lenet.cli.parser import build_parser
    from lenet.recipes import Recipe
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in fields(Recipe):
        if f.name not in ("name", "source"):
            assert f"--{f.name.replace('_', '-')}" in help_text


def test_train_eval_resume_through_the_command_line(tmp_path, mnist, capsys):
    model_dir = str(tmp_path / "mlp")
    common = ["--model-dir", model_dir, "--log-every-steps", "20", "--eval-every-steps", "40"]
    assert main(["train", "--recipe", "mlp-ema", "--steps", "40", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"training mlp-ema (mlp) on 55,000 mnist images into {model_dir} for 40 steps")
    assert "step 40: validation accuracy" in out and "test accuracy" in out
    assert main(["train", "--steps", "60", *common, "--json"]) == 0  # resumes the stored recipe
    out, err = capsys.readouterr()
    assert err.splitlines()[0].endswith("for 60 steps on cpu, resuming from step 40") and "step 60:" in err
    result = json.loads(out)  # with --json, stdout holds only the result; the log lines go to stderr
    assert result["step"] == 60
    # fp32: the arithmetic training evaluated in (auto would be bf16 on a CPU with bf16 arithmetic).
    assert main(["eval", "--model-dir", model_dir, "--split", "validation", "--json", "--precision", "fp32"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert {"accuracy", "loss", "step", "split", "per_class", "confusion", "top_5_accuracy"} <= set(evaluation)
    assert evaluation["step"] == 60 and evaluation["split"] == "validation"
    assert evaluation["accuracy"] == pytest.approx(result["validation_accuracy"])
    all_images_dir = str(tmp_path / "all")
    assert main(["train", "--recipe", "mlp-ema", "--steps", "2", "--model-dir", all_images_dir,
                 "--train-on-validation"]) == 0
    assert capsys.readouterr().out.startswith(f"training mlp-ema (mlp) on 60,000 mnist images into {all_images_dir}")


def test_console_script_runs_as_a_process(tmp_path):
    lenet = os.path.join(os.path.dirname(sys.executable), "lenet")
    done = subprocess.run([lenet, "summary", "mlp"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "392,500" in done.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_training_process_saves_a_checkpoint_and_resumes_from_it(tmp_path, mnist, signum):
    # mnist: the process reads real MNIST from $LENET_DATA_DIR.
    lenet = os.path.join(os.path.dirname(sys.executable), "lenet")
    model_dir = tmp_path / "mlp"
    command = [lenet, "train", "--recipe", "mlp-ema", "--model-dir", str(model_dir),
               "--steps", "1000000", "--log-every-steps", "50", "--no-tensorboard"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # wait until training is under way
            if line.startswith("step 50:"):
                break
        if signum == signal.SIGTERM:  # once is enough: a second run into the same directory is refused
            second = subprocess.run(command, capture_output=True, text=True, timeout=120)
            assert second.returncode == 1 and second.stderr.splitlines()[-1] == (
                f"lenet: error: {model_dir}: another training run is writing into this directory "
                f"(process {process.pid}); wait for it to end or use another --model-dir")
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signum
    assert f"{signum.name}: stopping after this step" in err and "run the same command again to resume" in err
    saved = list_checkpoints(model_dir)
    assert len(saved) == 1 and 50 <= saved[0] < 1_000_000 and f"checkpoint {model_dir}" in out
    resumed = subprocess.run([lenet, "train", "--model-dir", str(model_dir), "--steps", str(saved[0] + 10),
                              "--no-tensorboard", "--json"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and f"resuming from step {saved[0]}" in resumed.stderr
    assert json.loads(resumed.stdout)["step"] == saved[0] + 10


def test_plot_command_lists_the_pictures_it_wrote(mnist_model_dir, tmp_path, capsys):
    model_dir, _ = mnist_model_dir
    assert main(["plot", "--model-dir", str(model_dir), "--out", str(tmp_path), "--image", "examples/seven.png"]) == 0
    written = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in written] == [
        "training-curves.png", "reliability.png", "confusion.png", "confident-mistakes.png", "filters.png",
        "feature-maps-01-conv1.png", "feature-maps-02-pool1.png", "feature-maps-03-conv2.png",
        "feature-maps-04-pool2.png"]
    assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000 for p in written)


def test_plot_of_a_missing_image_is_a_one_line_error(mnist_model_dir, tmp_path, capsys):
    model_dir, _ = mnist_model_dir
    missing = tmp_path / "none.png"
    assert main(["plot", "--model-dir", str(model_dir), "--out", str(tmp_path), "--image", str(missing)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lenet: error:") and str(missing) in err
    assert not list(tmp_path.glob("*.png"))  # checked before anything is drawn


def test_bad_paths_and_ports_are_one_line_errors(synthetic_model_dir, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    target = a_file / "model.onnx"
    assert main(["export", "--model-dir", str(synthetic_model_dir), "--format", "onnx", "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lenet: error: cannot write") and str(target) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no temporary file left behind
    assert main(["predict", "--model", str(a_file), "examples/seven.png"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a model directory" in err and str(a_file) in err
    assert main(["serve", "--model-dir", str(synthetic_model_dir), "--port", "70000"]) == 1
    assert "--port must be between 0 and 65535" in capsys.readouterr().err


def test_plot_into_a_path_under_a_file_is_a_one_line_error(synthetic_model_dir, mnist, tmp_path, capsys):
    # mnist: plot loads the test set from $LENET_DATA_DIR before it draws.
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    assert main(["plot", "--model-dir", str(synthetic_model_dir), "--out", str(a_file / "plots")]) == 1
    err = capsys.readouterr().err.strip()  # any OSError is one line naming the file, not a traceback
    assert len(err.splitlines()) == 1 and err.startswith("lenet: error:") and str(a_file) in err


def test_every_subcommand_of_the_parser_runs_a_command():
    from lenet.cli.commands import COMMANDS
    from lenet.cli.parser import build_parser
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


def test_commands_and_options_named_in_help_texts_and_readme_exist():
    import re
    from pathlib import Path

    from lenet.cli.parser import build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    pages = [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
    sources = [*pages, *Path("src/lenet").rglob("*.py")]
    # `lenet COMMAND ...` in backticks, and the pages' indented command lines (before any # comment).
    mentions = [(source.name, command, rest) for source in sources
                for command, rest in re.findall(r"`lenet ([a-z-]+)([^`]*)`", source.read_text())]
    mentions += [(page.name, command, rest.split("#")[0]) for page in pages for command, rest in
                 re.findall(r"(?m)^ {4}(?:\S*/)?lenet ([a-z-]+)(.*)$", page.read_text())]
    named = [(source, command, re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest)) for source, command, rest in mentions]
    top_level = build_parser()._option_string_actions  # `lenet --help`, `lenet --version`
    unknown = [(source, command, option) for source, command, options in named for option in [None, *options]
               if command not in commands and command not in top_level
               or option and option not in commands[command]._option_string_actions]
    assert len(named) > 40 and not unknown, unknown


def test_a_users_idx_set_trains_shows_its_checksums_and_names_its_classes(tmp_path, capsys):
    import hashlib
    from pathlib import Path

    import numpy as np

    from conftest import write_idx_set
    from lenet.data import load_dataset
    from lenet.datasets import IDX_FILES
    names = ["ring", "bar", "dot"]
    data_dir = write_idx_set(tmp_path / "shapes", num_classes=3, classes=names)
    model_dir = str(tmp_path / "m")
    assert main(["train", "--recipe", "mlp-ema", "--dataset", "idx", "--data-dir", str(data_dir), "--model-dir",
                 model_dir, "--steps", "60", "--batch-size", "50", "--learning-rate", "0.1",
                 "--eval-every-steps", "60", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    sha256 = {name: hashlib.sha256((data_dir / name).read_bytes()).hexdigest() for name in IDX_FILES}
    assert "data: 3 classes (ring, bar, dot)" in out and all(f"{s}  {n}" in out for n, s in sha256.items())
    sidecar = json.loads(sorted(Path(model_dir).glob("model-*.json"))[-1].read_text())
    assert sidecar["dataset_sha256"] == sha256 and sidecar["classes"] == names
    assert json.loads((Path(model_dir) / "recipe.json").read_text())["dataset"] == "idx"

    test = load_dataset("idx", data_dir)
    np.save(tmp_path / "six.npy", test.test_images[:6].numpy())
    assert main(["predict", "--model-dir", model_dir, str(tmp_path / "six.npy"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == [names[c] for c in test.test_labels[:6].tolist()]
    assert all([t["label"] for t in r["top_k"]] == [names[t["class"]] for t in r["top_k"]] for r in rows)
    assert len(rows[0]["top_k"]) == 3 and len(rows[0]["probabilities"]) == 3

    assert main(["eval", "--model-dir", model_dir, "--data-dir", str(data_dir), "--json", "--no-tensorboard"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["label"] for row in result["per_class"]] == names and "top_3_accuracy" in result
    assert result["accuracy"] > 0.9
    assert main(["eval", "--model-dir", model_dir]) == 1  # the model's data set, which has no default place
    assert capsys.readouterr().err.strip() == "lenet: error: --dataset idx needs --data-dir DIR, a directory " \
                                              "holding the four IDX files"
    four = write_idx_set(tmp_path / "four", num_classes=4)
    assert main(["eval", "--model-dir", model_dir, "--data-dir", str(four)]) == 1
    assert capsys.readouterr().err.strip() == f"lenet: error: {model_dir}: a model of 3 classes, given data of 4"
    other = write_idx_set(tmp_path / "other", num_classes=3, seed=1)
    assert main(["train", "--model-dir", model_dir, "--data-dir", str(other), "--steps", "90"]) == 1
    assert "trained on other idx files" in capsys.readouterr().err


def test_a_fashion_mnist_model_names_its_classes_and_refuses_mnist(fashion_model_dir, fashion, mnist, tmp_path,
                                                                   capsys):
    import numpy as np

    from lenet.datasets import FASHION_MNIST_CLASSES
    model_dir = str(fashion_model_dir[0])
    np.save(tmp_path / "items.npy", fashion.test_images[:20].numpy())
    assert main(["predict", "--model-dir", model_dir, str(tmp_path / "items.npy"), "--json", "--min-confidence", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # A model of clothes has no digit gate: every item is answered ("item") at threshold 0.
    assert all(r["label"] == FASHION_MNIST_CLASSES[r["class"]] and r["verdict"] == "item"
               and r["digit_probability"] is None for r in rows)
    assert sum(r["class"] == label for r, label in zip(rows, fashion.test_labels[:20].tolist())) >= 15
    assert main(["predict", "--model-dir", model_dir, str(tmp_path / "items.npy"), "--top-k", "2",
                 "--min-confidence", "0"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    best, second = rows[0]["top_k"][:2]
    assert first.startswith(f"{tmp_path / 'items.npy'}[0]: {rows[0]['class']} ({rows[0]['label']}) "
                            f"({best['probability']:.3f})   top-2: "
                            f"{best['label']} ({best['probability']:.3f}), {second['label']}")
    assert main(["eval", "--model-dir", model_dir, "--dataset", "mnist"]) == 1
    assert capsys.readouterr().err.strip() == (f"lenet: error: {model_dir}: a model of fashion-mnist, given mnist "
                                               f"data; pass --dataset fashion-mnist")
    # Its own data set by default; in fp32, the figure training reported.
    assert main(["eval", "--model-dir", model_dir, "--no-tensorboard", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "    9 Ankle boot  " in out and f"accuracy {fashion_model_dir[1]['test_accuracy']:.4f}" in out


def test_eval_and_predict_say_which_damaged_checkpoint_they_passed_over(tmp_path, synthetic, mnist, capsys):
    from test_checkpoint import damage, two_checkpoints
    two_checkpoints(tmp_path, synthetic)
    damage(tmp_path / "model-00000006.safetensors")
    assert main(["eval", "--model-dir", str(tmp_path), "--json", "--no-tensorboard"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["step"] == 4
    warnings = [line for line in err.splitlines() if line.startswith("lenet: warning:")]
    assert warnings == [f"lenet: warning: {tmp_path}: checkpoint 6 is damaged ({tmp_path}/model-00000006.safetensors: "
                        f"missing or does not match the checksum in model-00000006.json); using 4"]
    assert main(["predict", "--model-dir", str(tmp_path), "examples/seven.png"]) == 0
    assert capsys.readouterr().err.splitlines() == warnings


def test_eval_reads_the_next_checkpoint_when_training_pruned_the_one_it_listed(tmp_path, synthetic, mnist,
                                                                               monkeypatch, capsys):
    from test_checkpoint import prune_on_first_read, two_checkpoints
    two_checkpoints(tmp_path, synthetic)
    pruned = prune_on_first_read(monkeypatch, tmp_path, "safetensors")
    assert main(["eval", "--model-dir", str(tmp_path), "--json", "--no-tensorboard"]) == 0
    out, err = capsys.readouterr()
    assert pruned and json.loads(out)["step"] == 8 and "lenet: warning" not in err
