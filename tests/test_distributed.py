"""Data-parallel training: 2 gloo ranks on the CPU, started by torchrun's own launcher."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lenet.checkpoint import list_checkpoints, read_checkpoint
from lenet.cli import main
from lenet.distributed import Distributed
from lenet.errors import LenetError
from lenet.recipes import get_recipe, override
from lenet.sweep import parse_seeds
from lenet.tensorboard import LOG_SCALARS, read_training_scalars
from lenet.training import train

# mlp-ema: no dropout and no distortions, so 2 ranks must follow 1 process exactly (up to rounding).
STEPS = 200
OPTIONS = ["--recipe", "mlp-ema", "--steps", str(STEPS), "--log-every-steps", "10", "--eval-every-steps", "200",
           "--checkpoint-every-steps", "20"]


def _launch(model_dir: Path, log_dir: Path, *extra: str) -> subprocess.Popen:
    """torchrun --standalone --nproc-per-node 2 -m lenet train ..., each rank's output in its own log file."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--log-dir", str(log_dir), "--redirects", "3", "-m", "lenet", "train", "--model-dir", str(model_dir),
               *OPTIONS, *extra]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rank_output(log_dir: Path, rank: int) -> str:
    return "".join(p.read_text() for p in sorted(log_dir.glob(f"**/attempt_0/{rank}/std*.log")))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, mnist) -> Path:
    """An uninterrupted 2-rank run of STEPS steps."""
    model_dir, log_dir = tmp_path_factory.mktemp("two-ranks") / "model", tmp_path_factory.mktemp("logs")
    process = _launch(model_dir, log_dir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return model_dir, log_dir


def test_two_ranks_give_the_loss_curve_and_weights_of_one_process_with_the_global_batch(two_ranks, mnist, tmp_path):
    model_dir, log_dir = two_ranks
    recipe = override(get_recipe("mlp-ema"), total_steps=STEPS, log_every_steps=10, eval_every_steps=200,
                      checkpoint_every_steps=20)
    train(recipe, tmp_path / "one", mnist)
    # Tolerance: each rank averages its 50 images' losses and the ranks' gradients are then
    # averaged, where one process averages 100 at once: in float32 that changes the last bits of
    # each gradient, as running one process on 1 thread instead of 2 does. Measured at 200 steps:
    # 6e-7 between 2 ranks and 1 process, 5e-7 between 1 and 2 threads of one process. (By step 300
    # of this recipe's rate 0.8 both grow to 1e-2 at once, a ReLU flipping, so the run stops at 200.)
    one, two = read_checkpoint(tmp_path / "one"), read_checkpoint(model_dir)
    assert one[0].step == two[0].step == STEPS
    for weights_one, weights_two in ((one[1], two[1]), (one[2], two[2])):
        for name in weights_one:
            if weights_one[name].is_floating_point() and not name.startswith("rng"):
                assert torch.allclose(weights_one[name], weights_two[name], atol=1e-5), name
    curve_one = read_training_scalars(tmp_path / "one")[LOG_SCALARS["total_loss"]]
    curve_two = read_training_scalars(model_dir)[LOG_SCALARS["total_loss"]]
    assert [s for s, _ in curve_one] == [s for s, _ in curve_two] and len(curve_one) > 20
    assert all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for (_, a), (_, b) in zip(curve_one, curve_two))
    # Rank 0 alone wrote and spoke: one events file, rank 1 silent; the directory is an ordinary one.
    assert len(list((model_dir / "events" / "train").glob("events.out.tfevents.*"))) == 1
    assert "training mlp-ema (mlp) on 55,000 mnist images" in _rank_output(log_dir, 0)
    assert _rank_output(log_dir, 1) == ""
    assert main(["eval", "--model-dir", str(model_dir), "--no-tensorboard", "--json"]) == 0


def test_sigterm_on_the_launcher_saves_a_checkpoint_and_the_resumed_run_matches(two_ranks, tmp_path):
    uninterrupted, _ = two_ranks
    process = _launch(tmp_path / "m", tmp_path / "logs-1")
    deadline = time.monotonic() + 120
    while not list_checkpoints(tmp_path / "m") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # as `kill` or a job scheduler would
    process.communicate(timeout=120)
    stopped_at = list_checkpoints(tmp_path / "m")[-1]
    assert stopped_at < STEPS, "the run ended before the signal: make it longer"
    resumed = _launch(tmp_path / "m", tmp_path / "logs-2")
    assert resumed.wait(timeout=300) == 0
    assert f"resuming from step {stopped_at}" in _rank_output(tmp_path / "logs-2", 0)
    straight, again = read_checkpoint(uninterrupted), read_checkpoint(tmp_path / "m")
    assert again[0].step == STEPS
    assert all(torch.equal(straight[1][k], again[1][k]) for k in straight[1])  # bitwise: same ranks, same order
    assert all(torch.equal(straight[2][k], again[2][k]) for k in straight[2])


def test_a_rank_that_dies_stops_the_run_and_one_process_resumes_it(tmp_path, mnist):
    process = _launch(tmp_path / "m", tmp_path / "logs", "--steps", "100000")
    deadline = time.monotonic() + 120
    while not list_checkpoints(tmp_path / "m") and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    rank_1 = [pid for pid in workers if "RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")]
    os.kill(int(rank_1[0]), signal.SIGKILL)
    killed = time.monotonic()
    process.communicate(timeout=120)
    assert process.returncode != 0 and time.monotonic() - killed < 60  # no hang on a collective
    errors = [line for line in _rank_output(tmp_path / "logs", 0).splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("lenet: error: rank 0: lost contact with another rank"), errors
    assert "Traceback" not in _rank_output(tmp_path / "logs", 0)
    kept = list_checkpoints(tmp_path / "m")[-1]
    # The newest checkpoint is intact, and a single process resumes it with the same global batch.
    result = train(override(get_recipe("mlp-ema"), total_steps=kept + 10, log_every_steps=10,
                            eval_every_steps=200, checkpoint_every_steps=20), tmp_path / "m", mnist, tensorboard=False)
    assert result["step"] == kept + 10


def test_a_batch_that_does_not_split_over_the_ranks_is_refused_before_anything_is_written(tmp_path, synthetic):
    recipe = override(get_recipe("mlp-ema"), batch_size=101)
    with pytest.raises(LenetError, match="batch_size: 101 images do not split evenly over 2 ranks"):
        train(recipe, tmp_path / "m", synthetic, distributed=Distributed(rank=0, world_size=2, local_rank=0))
    assert not (tmp_path / "m").exists()


def test_seed_lists_parse_and_bad_ones_are_refused():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("1,3,7-8") == [1, 3, 7, 8]
    for bad in ("", "a", "3-1", "1,1", "0-5000"):
        with pytest.raises(LenetError, match="--seeds"):
            parse_seeds(bad)


def test_seeds_train_side_by_side_into_their_own_directories(tmp_path, capsys):
    code = main(["train", "--seeds", "0-1", "--parallel", "2", "--model-dir", str(tmp_path / "seed-{seed}"),
                 "--recipe", "mlp-ema", "--steps", "20", "--checkpoint-every-steps", "20", "--eval-every-steps", "20",
                 "--no-tensorboard"])
    out = capsys.readouterr().out
    assert code == 0 and "done: 2 of 2 seeds trained" in out
    assert "[seed 0] done: step 20" in out and "[seed 1] done: step 20" in out
    seeds = [read_checkpoint(tmp_path / f"seed-{s}")[0].recipe.seed for s in (0, 1)]
    assert seeds == [0, 1]
    assert main(["ensemble", str(tmp_path / "seed-0"), str(tmp_path / "seed-1")]) == 0
    assert main(["train", "--seeds", "0-1", "--model-dir", str(tmp_path / "same")]) == 1
    assert "--model-dir must contain {seed}" in capsys.readouterr().err


def test_scaling_benchmark_reports_each_launch(mnist):
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    done = subprocess.run([sys.executable, str(benchmarks / "speed" / "scaling.py"), "--recipe", "mlp-ema",
                           "--steps", "5", "--ranks", "2", "--seeds", "0"],
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(r["launch"], r["ranks"]) for r in result["data_parallel"]] == [("lenet train", 1), ("torchrun", 2)]
    assert all(r["train_images_per_s"] > 0 and r["wall_s"] > 0 for r in result["data_parallel"])
    assert result["machine"]["cpu_family"] is not None and isinstance(result["machine"]["cpu_flags"], list)
