"""Every GPU figure the README lacks, in one prepared call on one GPU (about 7 minutes on an H200):
correctness checks, `fast` x 5 seeds, `tutorial-cnn` for its 30,000 steps, `best` x 3 seeds and
their ensemble, training and inference throughput, then, if time remains, two more `best` seeds
and the 5-model ensemble and the other seed recipes at full length.

Each part runs the existing benchmark scripts (or the `lenet` CLI) in a process of its own, one
part after another, with a time limit. Every JSON object a part prints is appended to
OUT/gpu_suite.jsonl as it comes ("event": "result"), and one line per part when it ends ("event":
"part": its results, status and seconds), so a run cut off still leaves what it measured; the
parts' output goes to OUT/gpu_suite.log, a one-screen summary to stdout and OUT/gpu_suite_summary.txt.

Budget: a part not required starts only if the seconds so far plus its expected seconds fit in
--budget-s; no part starts after --deadline-s, and a running part is stopped at its own limit or
at the deadline. --dry-run runs every part on the CPU at tiny sizes (one or a few steps, MNIST cut
to a few hundred images, no compilation: that takes minutes on a small CPU), whatever the budget,
to check every command before a GPU's time is spent on it.

Runs from the source tree with PYTHONPATH=src, installing nothing; a torch outside the package's
pin is reported and used anyway. MNIST: --data-dir or $LENET_DATA_DIR (nothing is downloaded).

Usage: LENET_DATA_DIR=gpu-data/mnist PYTHONPATH=src python3 benchmarks/gpu/gpu_suite.py [--out DIR]
       [--dry-run] [--parts checks,fast,...] [--budget-s 420] [--deadline-s 540] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
REPO = BENCHMARKS.parent
SOURCE = REPO / "src"
# A part's stdout line holding this key is the suite's own bookkeeping, not a benchmark's result.
CONTROL = "gpu_suite"
# --dry-run: how much of MNIST the parts see (train, validation, test), and how many steps they train.
# One step, as a run cut to a few steps starts at its one-cycle peak learning rate: after three
# `best` steps bn-cnn-deep's logits reached ~200, a TTA probability underflowed to 0 and its log to
# -inf, which evaluation refuses; after one, every |logit| was under 10.
DRY_SUBSET = (300, 50, 100)
DRY_STEPS = 1
# No part starts with less than this left before the deadline: start-up alone takes that long.
MIN_PART_S = 20.0


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    what: str
    required: bool
    expected_s: float   # planned seconds on one H200, start-up, compilation and evaluation included
    limit_s: float      # stopped after this long
    needs: str | None = None


# Expected seconds are estimates made without a GPU (no run has measured them yet): compilation
# about 30-60 s per network on a cold cache, the rest from the eager baselines.
PARTS = (
    Part("checks", "CUDA-graph replay with BatchNorm and EMA, --deterministic twice, resume", True, 60, 150),
    Part("fast", "`fast`, 5 seeds, bf16, compiled", True, 80, 150),
    Part("tutorial-cnn", "seed 000's 30,000 steps, compiled", True, 70, 150),
    Part("best", "`best`, 3 seeds, bf16, compiled", True, 150, 240),
    Part("ensemble-3", "`lenet ensemble` of the 3 `best` models, TTA", True, 15, 60, needs="best"),
    Part("throughput", "tutorial-cnn images/s: eager and compiled, fp32 and bf16", True, 100, 200),
    Part("best-more", "`best` seeds 3 and 4", False, 90, 150, needs="best"),
    Part("ensemble-5", "`lenet ensemble` of the 5 `best` models, TTA", False, 15, 60, needs="best-more"),
    Part("seed-recipes", "the other seed recipes, full schedules, compiled", False, 0, 0),
)
# The other seed recipes, cheapest first so that as many as possible fit; expected seconds each.
SEED_RECIPES_EXPECTED_S = {"cnn-adam": 15, "mlp-ema": 40, "deep-mnist": 40, "layers-cnn": 40, "lenet5": 45}
TARGETS = {
    "fast": "mean >= 99.0% with <= 0.25 s of training each",
    "tutorial-cnn": "<= 10 s of training at the eager accuracy (~99.0-99.2%)",
    "best": "mean >= 99.70% with <= 60 s of training each",
}


def part_commands(name: str, dry_run: bool, work_dir: Path, recipes: list[str]) -> list[list[str]]:
    """The commands of part NAME: a benchmark script (or "lenet", the CLI) and its arguments."""
    device = ["--device", "cpu" if dry_run else "cuda"]
    compiled = [] if dry_run else ["--compile"]  # compiling on a small CPU takes minutes
    steps = ["--steps", str(DRY_STEPS)] if dry_run else []

    def seeds(on_gpu: int, dry: int) -> list[str]:
        return ["--seeds", str(dry if dry_run else on_gpu)]

    def ensemble(members: int) -> list[list[str]]:
        dirs = [str(work_dir / "best" / f"seed-{seed}") for seed in range(members)]
        return [["lenet", "ensemble", *dirs, "--tta", "--json", *device]]

    if name == "checks":
        return [["gpu/gpu_checks.py", *device, *compiled, "--steps", "2" if dry_run else "40",
                 "--work-dir", str(work_dir / "checks")]]
    if name == "fast":
        return [["speed/speedrun.py", "--recipe", "fast", *seeds(5, 2), "--target", "0.99", *device,
                 "--precision", "bf16", *compiled, "--tta", *steps]]
    if name == "tutorial-cnn":
        return [["accuracy/reproduce.py", "--recipes", "tutorial-cnn", *device, *compiled,
                 "--out-dir", str(work_dir / "reproduce"), *steps]]
    if name in ("best", "best-more"):
        first = ["--first-seed", str(2 if dry_run else 3)] if name == "best-more" else []
        return [["speed/speedrun.py", "--recipe", "best", *(seeds(3, 2) if name == "best" else seeds(2, 1)), *first,
                 "--target", "0.997", *device, "--precision", "bf16", *compiled, "--tta",
                 "--keep", str(work_dir / "best"), *steps]]
    if name == "ensemble-3":
        return ensemble(2 if dry_run else 3)
    if name == "ensemble-5":
        return ensemble(3 if dry_run else 5)
    if name == "throughput":
        return [["speed/throughput.py", "--recipe", "tutorial-cnn", "--steps", "3" if dry_run else "300", *device,
                 "--precision", precision, *([] if dry_run or not compile_ else ["--compile"]), "--no-onnx"]
                # A dry run drops --compile, so the compiled commands would repeat the eager ones.
                for compile_ in ((False,) if dry_run else (False, True)) for precision in ("fp32", "bf16")]
    if name == "seed-recipes":
        return [["accuracy/reproduce.py", "--recipes", ",".join(recipes), *device, *compiled,
                 "--out-dir", str(work_dir / "reproduce"), *steps]]
    raise ValueError(f"unknown part {name!r}")


def skip_reason(part: Part, elapsed_s: float, statuses: dict[str, str], budget_s: float,
                deadline_s: float) -> str | None:
    """Why PART must not start ELAPSED_S into the run, or None when it may."""
    if part.needs and statuses.get(part.needs) != "ok":
        return f"needs part {part.needs} ({statuses.get(part.needs, 'not run')})"
    if elapsed_s + MIN_PART_S > deadline_s:
        return f"{elapsed_s:.0f} s in, too close to the {deadline_s:.0f} s deadline"
    if not part.required and elapsed_s + part.expected_s > budget_s:
        return f"would exceed the budget: {elapsed_s:.0f} s + {part.expected_s:.0f} s expected > {budget_s:.0f} s"
    return None


def fitting_recipes(elapsed_s: float, budget_s: float) -> list[str]:
    """The seed recipes, cheapest first, whose expected seconds fit in what is left of the budget."""
    chosen, total = [], elapsed_s
    for recipe, seconds in SEED_RECIPES_EXPECTED_S.items():
        if total + seconds > budget_s:
            break
        chosen.append(recipe)
        total += seconds
    return chosen


def _subset_loader(load_dataset, sizes: tuple[int, int, int]):
    """LOAD_MNIST with each split cut to SIZES (train, validation, test): the dry run's data."""
    def load_subset(*args, **kwargs):
        data, (train, val, test) = load_dataset(*args, **kwargs), sizes
        return dataclasses.replace(data, train_images=data.train_images[:train],
                                   train_labels=data.train_labels[:train], val_images=data.val_images[:val],
                                   val_labels=data.val_labels[:val], test_images=data.test_images[:test],
                                   test_labels=data.test_labels[:test])
    return load_subset


def run_child(spec: dict) -> int:
    """A part: run SPEC's commands one after another in this process; 1 if any failed. Each
    command's start and exit code are CONTROL lines on stdout, between which its output passes."""
    if spec.get("subset"):
        # The scripts and the CLI take MNIST from lenet.data.load_dataset, looked up when they run:
        # replaced here, they see the dry run's few hundred images through their own code paths.
        import lenet.data
        lenet.data.load_dataset = _subset_loader(lenet.data.load_dataset, tuple(spec["subset"]))
    failures = 0
    for index, (script, *argv) in enumerate(spec["commands"]):
        print(json.dumps({CONTROL: {"command": index}}), flush=True)
        try:
            if script == "lenet":
                from lenet.cli import main as lenet_main
                code = lenet_main(argv)
            else:
                sys.argv = [str(BENCHMARKS / script), *argv]
                runpy.run_path(str(BENCHMARKS / script), run_name="__main__")
                code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except Exception:  # reported, and the next command still runs
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        print(json.dumps({CONTROL: {"command": index, "returncode": code}}), flush=True)
        failures += code != 0
    return 1 if failures else 0


class Record:
    """OUT/gpu_suite.jsonl and OUT/gpu_suite.log, each line written through to disk at once."""

    def __init__(self, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.results_path, self.log_path = out_dir / "gpu_suite.jsonl", out_dir / "gpu_suite.log"
        self._results, self._log = open(self.results_path, "w"), open(self.log_path, "w")

    def result(self, line: dict) -> None:
        self._results.write(json.dumps(line) + "\n")
        self._results.flush()
        os.fsync(self._results.fileno())

    def log(self, text: str) -> None:
        self._log.write(text + "\n")
        self._log.flush()

    def close(self) -> None:
        self._results.close()
        self._log.close()


@dataclasses.dataclass
class Outcome:
    status: str                       # ok, failed, timeout, skipped, interrupted
    seconds: float = 0.0
    results: list = dataclasses.field(default_factory=list)
    seed_lines: list = dataclasses.field(default_factory=list)  # speedrun's per-seed progress
    warnings: dict = dataclasses.field(default_factory=dict)     # COMPILE_WARNINGS seen, with counts
    reason: str = ""


_SEED_LINE = re.compile(r"^seed (\d+): (\{.*\})$")  # speedrun.py's stderr after each seed
# What torch says on stderr when the compiled path loses its speed: counted per part for the summary.
COMPILE_WARNINGS = ("skipping cudagraphs", "recompile_limit", "cache_size_limit")


def _child_main(spec: dict, stdout_path: str, stderr_path: str) -> None:
    """A part's process: its own process group (stopping the group stops the compile workers it
    starts too), its output into the two files, then run_child."""
    os.setpgrp()
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(target, fd)
        os.close(target)
    sys.exit(run_child(spec))


class _Lines:
    """The complete lines a growing file has gained since the last call."""

    def __init__(self, path: Path):
        path.touch()
        self._file, self._partial = open(path, errors="replace"), ""

    def new(self) -> list[str]:
        *lines, self._partial = (self._partial + self._file.read()).split("\n")
        return lines

    def close(self) -> list[str]:
        rest = [self._partial] if self._partial else []
        self._file.close()
        return rest


def run_part(part: Part, commands: list[list[str]], subset, timeout_s: float, processes, logs_dir: Path,
             record: Record) -> Outcome:
    """Run PART's COMMANDS in a child process for at most TIMEOUT_S seconds, recording as it goes."""
    spec = {"commands": commands, "subset": subset}
    record.log(f"==== {part.name}: {json.dumps(commands)} (limit {timeout_s:.0f} s)")
    outcome, command = Outcome("ok"), [0]

    def on_stdout(line: str) -> None:
        record.log(f"[{part.name}] {line}")
        try:
            value = json.loads(line)
        except ValueError:
            return
        if isinstance(value, dict) and CONTROL in value:
            command[0] = value[CONTROL]["command"]
        elif isinstance(value, dict):
            outcome.results.append({"command": command[0], **value})
            record.result({"event": "result", "part": part.name, "command": command[0], "result": value})

    def on_stderr(line: str) -> None:
        record.log(f"[{part.name}] {line}")
        print(f"[{part.name}] {line}", file=sys.stderr, flush=True)
        for warning in COMPILE_WARNINGS:
            if warning in line:
                outcome.warnings[warning] = outcome.warnings.get(warning, 0) + 1
        if match := _SEED_LINE.match(line):
            try:
                outcome.seed_lines.append(json.loads(match.group(2)))
            except ValueError:
                pass

    outputs = [(_Lines(logs_dir / f"{part.name}.{stream}"), handle)
               for stream, handle in (("stdout", on_stdout), ("stderr", on_stderr))]

    def pump() -> None:
        for lines, handle in outputs:
            for line in lines.new():
                handle(line)
    started = time.monotonic()
    child = processes.Process(target=_child_main, args=(spec, *(str(logs_dir / f"{part.name}.{s}")
                                                               for s in ("stdout", "stderr"))))
    child.start()
    try:
        while child.exitcode is None and time.monotonic() - started < timeout_s:
            child.join(timeout=0.5)
            pump()
        if child.exitcode is None:
            _stop(child)
            outcome.status, outcome.reason = "timeout", f"stopped after {timeout_s:.0f} s"
        else:
            outcome.status = "ok" if child.exitcode == 0 else "failed"
    except KeyboardInterrupt:  # SIGTERM or Ctrl-C in the suite: stop the child, record, return
        _stop(child)
        outcome.status, outcome.reason = "interrupted", "the suite was stopped"
    finally:
        pump()
        for lines, handle in outputs:
            for line in lines.close():
                handle(line)
        outcome.seconds = time.monotonic() - started
        if outcome.status == "failed":
            outcome.reason = f"exit code {child.exitcode}; see gpu_suite.log"
        record.result({"event": "part", "part": part.name, "status": outcome.status,
                       "wall_s": round(outcome.seconds, 1), "limit_s": round(timeout_s),
                       "exit_code": child.exitcode, "reason": outcome.reason, "commands": commands,
                       "results": outcome.results, "seed_lines": outcome.seed_lines, "warnings": outcome.warnings})
    return outcome


def _stop(child) -> None:
    """End CHILD's process group: SIGTERM, then SIGKILL if it has not gone within 10 s."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sent)
        except ProcessLookupError:  # gone, or not yet in its own group
            if child.exitcode is None:
                os.kill(child.pid, sent)
        child.join(timeout=10)
        if child.exitcode is not None:
            return


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.match(r"\d+(?:\.\d+)*", text).group(0).split("."))


def satisfies(version: str, spec: str) -> bool:
    """Whether VERSION (say 2.11.0+cu128) meets a pin such as '>=2.13,<2.14'."""
    compare = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
               "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        operator, bound = re.match(r"(>=|<=|==|!=|<|>)\s*(\S+)", clause).groups()
        have, want = _version(version), _version(bound)
        width = max(len(have), len(want))
        if not compare[operator](have + (0,) * (width - len(have)), want + (0,) * (width - len(want))):
            return False
    return True


def environment(data_dir: Path, args: argparse.Namespace, parts: list[str]) -> dict:
    """What ran where: machine, GPU (from nvidia-smi: this process leaves CUDA alone), torch against
    the package's pin, the lenet source, the data, the plan."""
    import torch

    import lenet
    pin = re.search(r'"torch\s*([^";]+)"', (REPO / "pyproject.toml").read_text())
    pin = pin.group(1).strip() if pin else ""
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        gpu = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": platform.node(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "gpu": gpu, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "torch_pin": pin, "torch_in_pin": satisfies(torch.__version__, pin) if pin else None,
            "lenet_source": str(Path(lenet.__file__).parent), "git_commit": commit, "data_dir": str(data_dir),
            "dry_run": args.dry_run, "parts": parts,
            **{name: None if value == float("inf") else value  # JSON has no infinity
               for name, value in (("budget_s", args.budget_s), ("deadline_s", args.deadline_s))},
            "argv": sys.argv[1:]}


def _percent(value) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) else "?"


def judge(name: str, results: list[dict]) -> dict | None:
    """Part NAME's target, measured against its RESULTS: {"target", "met", "by"}, or None without one."""
    summary = next((r for r in reversed(results) if "runs" in r or "recipe" in r), None)
    if name not in TARGETS or summary is None:
        return None
    if name == "tutorial-cnn":
        seconds, accuracy = summary["train_s"], summary["test_accuracy"]
        met = seconds <= 10 and accuracy >= 0.990
        by = f"{seconds - 10:+.1f} s against 10 s, accuracy {_percent(accuracy)}"
    else:
        accuracy_target, seconds_target = (0.99, 0.25) if name == "fast" else (0.997, 60)
        accuracy, seconds = summary["mean_test_accuracy"], max(r["train_s"] for r in summary["runs"])
        met = accuracy >= accuracy_target and seconds <= seconds_target
        by = (f"mean {100 * (accuracy - accuracy_target):+.2f} points, slowest seed "
              f"{seconds - seconds_target:+.2f} s against the targets")
    return {"target": TARGETS[name], "met": met, "by": by}


def describe_part(name: str, outcome: Outcome) -> list[str]:
    """One to a few summary lines of what part NAME measured."""
    results = outcome.results
    if name == "checks":
        return [f"{'PASS' if r.get('passed') else 'FAIL'} {r['check']}: {r.get('detail', '')}"
                for r in results if "check" in r]
    if name == "throughput":
        return [f"{r['precision']} {'compiled' if r['compile'] else 'eager'}: train {r['train_images_per_s']:,} "
                f"images/s, infer {r['infer_images_per_s']:,} images/s (batch 1,000), compile {r['compile_s']} s"
                for r in results if "train_images_per_s" in r]
    if name.startswith("ensemble"):
        return [f"{_percent(r['accuracy'])} (TTA) of {len(r['members'])}: members "
                + ", ".join(_percent(m["accuracy"]) for m in r["members"])
                + f"; {r['errors_of_every_member']} images wrong in every member"
                for r in results if "members" in r]
    if name in ("tutorial-cnn", "seed-recipes"):
        return [f"{r['recipe']}: test {_percent(r['test_accuracy'])}, train {r['train_s']} s, "
                f"compile {r['compile_s']} s, wall {r['wall_time_s']} s" for r in results if "recipe" in r]
    summaries = [r for r in results if "runs" in r]
    if summaries:
        s = summaries[-1]
        runs = s["runs"]
        compiles = [r["compile_s"] for r in runs]
        line = (f"mean {_percent(s['mean_test_accuracy'])} ({_percent(s['min_test_accuracy'])}-"
                f"{_percent(s['max_test_accuracy'])}), TTA {_percent(s.get('mean_test_accuracy_tta'))}, "
                f"{len(runs)} seeds; train s " + "/".join(f"{r['train_s']:.2f}" for r in runs))
        later = f", then {'/'.join(str(c) for c in compiles[1:])}" if len(compiles) > 1 else ""
        return [line, f"compile s {compiles[0]} first{later}; data load {s['data_load_s']} s"]
    if outcome.seed_lines:  # cut off: what the finished seeds said
        return ["finished seeds: " + ", ".join(f"seed {r['seed']} {_percent(r['test_accuracy'])} in {r['train_s']} s"
                                              for r in outcome.seed_lines)]
    return []


def summary_lines(env: dict, outcomes: dict[str, Outcome], elapsed_s: float, record: Record) -> list[str]:
    pin = "" if env["torch_in_pin"] is not False else f" (outside the pin torch{env['torch_pin']}: ran from source)"
    lines = [f"lenet GPU suite{' DRY RUN (CPU, tiny sizes: no figures, targets not judged)' if env['dry_run'] else ''}"
             f": {env['gpu'] or 'no GPU seen by nvidia-smi'}, torch {env['torch']}{pin}, {env['date_utc']}, "
             f"{elapsed_s:.0f} s" + (f" of a {env['budget_s']:.0f} s budget" if env["budget_s"] else ""),
             f"{'part':<13} {'status':<11} {'wall s':>6}  result"]
    for name, outcome in outcomes.items():
        details = describe_part(name, outcome)
        verdict = None if env["dry_run"] else judge(name, outcome.results)
        if verdict:
            details.append(f"target {verdict['target']}: {'MET' if verdict['met'] else 'MISSED'} ({verdict['by']})")
        if outcome.warnings:
            details.append("torch said: " + ", ".join(f"{count} x '{warning}'" for warning, count in
                                                      outcome.warnings.items()) + " (gpu_suite.log)")
        if outcome.reason:
            details.append(outcome.reason)
        first, *rest = details or [""]
        lines.append(f"{name:<13} {outcome.status:<11} {outcome.seconds:>6.1f}  {first}")
        lines.extend(f"{'':<33}{detail}" for detail in rest)
    lines.append(f"results: {record.results_path}; log: {record.log_path}")
    return lines


def _with_needs(names: list[str]) -> list[str]:
    """NAMES and the parts they need, in the suite's order."""
    by_name, wanted = {p.name: p for p in PARTS}, set(names)
    for name in names:
        while by_name[name].needs:
            name = by_name[name].needs
            wanted.add(name)
    return [p.name for p in PARTS if p.name in wanted]


def _parts_table() -> str:
    rows = [f"  {p.name:<13} {'required' if p.required else 'if time remains':<16}"
            f"{p.expected_s or sum(SEED_RECIPES_EXPECTED_S.values()):>4.0f} s  {p.what}" for p in PARTS]
    return "parts, in order, with their expected seconds on one H200 (estimates):\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, epilog=_parts_table(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="where the results, log and summary go (default: $OUT, else runs/gpu-suite)")
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU at tiny sizes")
    parser.add_argument("--parts", help=f"comma-separated, of {', '.join(p.name for p in PARTS)} "
                                        "(default: all; the parts they need are added)")
    parser.add_argument("--budget-s", type=float,
                        help="optional parts start only if they are expected to end within this "
                             "(default 420; a dry run: none)")
    parser.add_argument("--deadline-s", type=float,
                        help="no part starts after this, and a running one is stopped at it "
                             "(default 540; a dry run: none)")
    parser.add_argument("--data-dir", help="the four MNIST files (default: $LENET_DATA_DIR)")
    parser.add_argument("--work-dir", help="model directories (default: a temporary directory, removed at the end)")
    args = parser.parse_args()
    # A dry run runs every part whatever the budget: what it checks is that each part's commands work.
    if args.budget_s is None:
        args.budget_s = float("inf") if args.dry_run else 420.0
    if args.deadline_s is None:
        args.deadline_s = float("inf") if args.dry_run else 540.0
    sys.path.insert(0, str(SOURCE))  # lenet from this tree, installed or not
    from lenet.data import DATA_DIR_ENV, locate_dataset
    from lenet.errors import LenetError
    known = [p.name for p in PARTS]
    names = args.parts.split(",") if args.parts else known
    if unknown := sorted(set(names) - set(known)):
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(known)}")
    names = _with_needs(names)
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        parser.error(f"say where MNIST is: --data-dir DIR or {DATA_DIR_ENV}=DIR (the suite downloads nothing)")
    try:
        locate_dataset("mnist", data_dir, download=False)
    except LenetError as error:
        parser.error(str(error))
    data_dir = Path(data_dir).resolve()
    out_dir = Path(args.out or os.environ.get("OUT") or REPO / "runs" / "gpu-suite")
    work_dir = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="lenet-gpu-suite-"))
    logs_dir = work_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    # What the parts inherit (the processes they start too: compile workers, the lenet CLI).
    os.environ.update({DATA_DIR_ENV: str(data_dir), "PYTHONUNBUFFERED": "1",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))})
    # Each part is a process forked from a server that has imported torch and nothing else: a part
    # starts in a fraction of a second instead of the seconds importing torch takes, and as the
    # server never touches CUDA, each part initializes CUDA afresh, as a process of its own would.
    processes = multiprocessing.get_context("forkserver")
    processes.set_forkserver_preload(["__main__", "torch"])

    record = Record(out_dir)
    facts = environment(data_dir, args, names)
    record.result({"event": "environment", **facts})
    if facts["torch_in_pin"] is False:
        print(f"gpu_suite: torch {facts['torch']} is outside the package's pin torch{facts['torch_pin']}; "
              f"running lenet from source ({facts['lenet_source']}) anyway", file=sys.stderr, flush=True)

    def stop_on_sigterm(signum, frame):  # the device's time limit: record and summarize what ran
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    by_name, outcomes = {p.name: p for p in PARTS}, {}
    started = time.monotonic()
    try:
        for name in names:
            part, elapsed, recipes = by_name[name], time.monotonic() - started, []
            if name == "seed-recipes":  # as many as fit (in a dry run, all)
                recipes = list(SEED_RECIPES_EXPECTED_S) if args.dry_run else fitting_recipes(elapsed, args.budget_s)
                expected = sum(SEED_RECIPES_EXPECTED_S[r] for r in recipes)
                part = dataclasses.replace(part, expected_s=expected, limit_s=1.5 * expected + 30)
            statuses = {n: o.status for n, o in outcomes.items()}
            reason = skip_reason(part, elapsed, statuses, args.budget_s, args.deadline_s)
            if name == "seed-recipes" and not recipes and not reason:
                reason = f"would exceed the budget: no seed recipe fits in the {args.budget_s - elapsed:.0f} s left"
            if reason:
                outcomes[name] = Outcome("skipped", reason=reason)
                record.result({"event": "part", "part": name, "status": "skipped", "reason": reason})
                continue
            timeout_s = min(part.limit_s, args.deadline_s - elapsed)
            outcomes[name] = run_part(part, part_commands(name, args.dry_run, work_dir, recipes),
                                      list(DRY_SUBSET) if args.dry_run else None, timeout_s, processes, logs_dir,
                                      record)
            if name == "seed-recipes" and (dropped := [r for r in SEED_RECIPES_EXPECTED_S if r not in recipes]):
                outcomes[name].reason = f"not run, for the budget: {', '.join(dropped)}"
            if outcomes[name].status == "interrupted":
                raise KeyboardInterrupt
    except KeyboardInterrupt:  # a part's process, if one ran, has been stopped
        print("gpu_suite: stopped; summarizing what finished", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    lines = summary_lines(facts, outcomes, elapsed, record)
    record.result({"event": "summary", "elapsed_s": round(elapsed, 1),
                   "statuses": {n: o.status for n, o in outcomes.items()}})
    (out_dir / "gpu_suite_summary.txt").write_text("\n".join(lines) + "\n")
    record.close()
    if not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
