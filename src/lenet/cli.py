"""The `lenet` command: each subcommand parses its arguments, calls one library function, prints.

The library refuses bad values itself (with the messages printed here); this module only parses,
prints and sets the exit code. Each command imports what it runs when it runs: `lenet --help` and
`lenet predict --model x.onnx` must not wait for torch to load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from . import __version__
from .datasets import DATASET_NAMES
from .errors import LenetError
from .execution import PRECISIONS, Execution
from .export import FORMATS as EXPORT_FORMATS
from .recipes import RECIPES, Recipe

# Short spellings the seeds' readers expect, besides the generated --total-steps / --learning-rate.
_ALIASES = {"total_steps": ["--steps"], "learning_rate": ["--lr"]}
# Set by the recipe table, not by a run.
_NOT_OVERRIDABLE = {"name", "source"}


def _add_recipe_overrides(parser: argparse.ArgumentParser) -> None:
    """One option per Recipe field, generated so that a new field is overridable the day it exists."""
    group = parser.add_argument_group("recipe overrides (default: the recipe's value)")
    for f in dataclasses.fields(Recipe):
        if f.name in _NOT_OVERRIDABLE:
            continue
        flags = [f"--{f.name.replace('_', '-')}", *_ALIASES.get(f.name, [])]
        kind = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str)
                                                                       else f.type.__name__]
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["help"])
        else:
            group.add_argument(*flags, dest=f.name, type=kind, default=None, metavar=kind.__name__.upper(),
                               help=f.metadata["help"])


def _overrides(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
            if f.name not in _NOT_OVERRIDABLE and getattr(args, f.name) is not None}


class _Progress:
    """A progress bar with log lines above it on a terminal; plain lines otherwise (CI logs). The
    lines go to OUT: stdout, or stderr when stdout carries JSON. The bar starts at the start event,
    where training does."""

    def __init__(self, recipe: Recipe, model_dir: str, out: TextIO):
        self.recipe, self.model_dir, self.out = recipe, model_dir, out
        self.bar, self.last_step = None, 0

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self.last_step = event["step"]
            line = (f"training {self.recipe.name} ({self.recipe.model}) on {event['images']:,} "
                    f"{self.recipe.dataset} images into "
                    f"{self.model_dir} for {self.recipe.total_steps} steps on {event['device']}" +
                    (f" in {event['precision']}" if event["precision"] != "fp32" else "") +
                    (f" with {event['ranks']} ranks" if event["ranks"] > 1 else "") +
                    (f", resuming from step {event['step']}" if event["step"] else ""))
            if sys.stderr.isatty():
                from tqdm import tqdm
                self.bar = tqdm(total=self.recipe.total_steps, initial=event["step"], unit="step",
                                dynamic_ncols=True, leave=False)
        elif kind == "log":
            line = (f"step {event['step']}: loss {event['total_loss']:.4f} "
                    f"(cross-entropy {event['cross_entropy']:.4f}), batch accuracy {event['batch_accuracy']:.3f}, "
                    f"lr {event['learning_rate']:.3g}, {event['images_per_s']:.0f} images/s")
            if self.bar is not None:
                self.bar.update(event["step"] - self.last_step)
            self.last_step = event["step"]
        elif kind == "validation":
            line = f"step {event['step']}: validation accuracy {event['accuracy']:.4f}"
        elif kind == "test":
            line = f"step {event['step']}: test accuracy {event['accuracy']:.4f}"
        elif kind == "compile":
            line = f"compiled the network in {event['seconds']:.1f} s (not counted in images/s)"
        else:
            line = f"step {event['step']}: checkpoint {event['path']}"
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Count:
    """Progress of a counted task (images evaluated, layers drawn): a bar on a terminal, else a line
    at most every PERIOD seconds and at the end."""

    def __init__(self, label: str, period_s: float = 10.0):
        self.label, self.period_s, self.bar, self.last = label, period_s, None, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=self.label, leave=False, dynamic_ncols=True)
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
                self.bar = None
        elif done >= total or time.monotonic() - self.last >= self.period_s:
            self.last = time.monotonic()
            print(f"{self.label}: {done}/{total}", file=sys.stderr, flush=True)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_data(args: argparse.Namespace, dataset: str | None = None):
    """The data set --dataset names, else DATASET (the model's), else MNIST, from --data-dir, the
    set's variable, a system package or the cache (downloading there, saying so)."""
    from .data import load_dataset
    return load_dataset(args.dataset or dataset or "mnist", args.data_dir, log=_log)


def _show_data(data, out: TextIO) -> None:
    """For a user's IDX set: its classes and its files' checksums, which are recorded, not verified."""
    if data.name != "idx":
        return
    print(f"data: {len(data.classes)} classes ({', '.join(data.classes)}); SHA-256 of the files, recorded "
          f"in each checkpoint:", file=out)
    for name, sha256 in data.sha256.items():
        print(f"  {sha256}  {name}", file=out)


def _without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """ARGV with each of OPTIONS and its value taken out (both `--x v` and `--x=v`)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in options)):
            kept.append(arg)
    return kept


def _train_seeds(args: argparse.Namespace) -> int:
    """`lenet train --seeds 0-4 --model-dir runs/x/seed-{seed}`: one process per seed, --parallel at a time."""
    from .sweep import parse_seeds, run_seeds
    seeds = parse_seeds(args.seeds)
    parallel = args.parallel or min(len(seeds), _default_parallel(args.device))
    argv = _without_options(args.argv, ("--seeds", "--parallel", "--seed"))
    print(f"training seeds {', '.join(map(str, seeds))}, {parallel} at a time", file=sys.stderr, flush=True)
    codes = run_seeds(argv, seeds, parallel, args.device)
    failed = [seed for seed, code in codes.items() if code != 0]
    print(f"done: {len(codes) - len(failed)} of {len(codes)} seeds trained"
          + (f"; failed: {', '.join(map(str, sorted(failed)))}" if failed else ""), flush=True)
    return 1 if failed else 0


def _default_parallel(device: str) -> int:
    """One run per GPU, or per two CPU cores (a run uses both well, so this is at least one)."""
    if device == "cuda":
        import torch
        return max(torch.cuda.device_count(), 1)
    import os
    return max(len(os.sched_getaffinity(0)) // 2 if hasattr(os, "sched_getaffinity") else 1, 1)


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import resolve_recipe
    from .distributed import from_environment
    from .execution import resolve_device
    from .training import TrainingDiverged, train
    if args.seeds is not None:
        return _train_seeds(args)
    if args.parallel is not None:
        raise LenetError("--parallel goes with --seeds")
    distributed = from_environment()
    recipe = resolve_recipe(args.model_dir, args.recipe, **_overrides(args))
    execution = Execution(args.precision, args.channels_last, args.compile, args.deterministic)
    resolve_device(args.device)  # before the data is loaded
    data = _load_data(args, recipe.dataset)
    log = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the result
    _show_data(data, log)
    speaks = distributed is None or distributed.is_main  # other ranks print nothing unless they fail
    interrupted = []

    def request_stop(signum, frame):
        if interrupted:  # a second Ctrl-C (or kill) stops at once
            raise KeyboardInterrupt
        interrupted.append(signum)
        if speaks:
            print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                  f"(Ctrl-C again to abort)", file=sys.stderr)

    # Ctrl-C, and the SIGTERM of `kill`, job schedulers and containers stopping, save the run.
    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    progress = _Progress(recipe, args.model_dir, log)
    try:
        result = train(recipe, args.model_dir, data, args.device, progress, lambda: bool(interrupted),
                       args.tensorboard, args.histogram_every, execution, distributed, args.dist_timeout)
    except TrainingDiverged:
        if speaks:
            raise
        return 1  # every rank sees the same reduced loss; rank 0 says it once for the run
    finally:
        progress.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if interrupted:
        if speaks:
            print(f"interrupted at step {result['step']}; run the same command again to resume", file=sys.stderr)
        return 128 + interrupted[0]  # the shell's code for death by that signal: 130 for Ctrl-C
    if not speaks:
        return 0
    print(json.dumps(result) if args.json else
          f"done: step {result['step']}, test accuracy {result.get('test_accuracy', float('nan')):.4f}; "
          f"{result['train_seconds']:.1f} s training" +
          (f", {result['compile_seconds']:.1f} s compiling" if result["compile_seconds"] else ""))
    return 0


def _print_eval(result: dict, as_json: bool, what: str) -> None:
    """RESULT of evaluation.metrics_from_logits, as JSON or as text headed by WHAT was evaluated."""
    if as_json:
        print(json.dumps(result), flush=True)
        return
    top_k_key = next(k for k in result if k.startswith("top_"))
    print(f"{what} on {result['split']} ({result['examples']} images"
          f"{', test-time augmented' if result.get('tta') else ''}): "
          f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}, "
          f"{top_k_key.replace('_', '-')} {result[top_k_key]:.4f}")
    # Named classes (not the digits) get a column for their names, cut to 12 characters.
    named = any(label != str(c) for c, label in enumerate(result["classes"]))
    name = (lambda c: f" {result['classes'][c][:12]:<12}") if named else (lambda c: "")
    print(f"class{' label       ' if named else ''}  precision  recall  support")
    for row in result["per_class"]:
        print(f"{row['class']:>5}{name(row['class'])}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  "
              f"{row['support']:>7}")
    print("confusion (rows: true class, columns: predicted)")
    for true_class, row in enumerate(result["confusion"]):
        print(f"{true_class:>3}{name(true_class)} " + " ".join(f"{n:>5}" for n in row))
    sys.stdout.flush()


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_model, watch_checkpoints
    from .inference import check_top_k, open_model
    if not args.watch:
        model = open_model(args.model_dir, args.device, precision=args.precision)
        check_top_k(args.top_k, model.num_classes)  # before the data is loaded
        result = evaluate_model(model, _load_data(args, model.info.dataset), args.split, args.top_k, args.tensorboard,
                                _Count(f"evaluating {args.split}"), args.tta)
        _print_eval(result, args.json, f"{model.label}, {model.precision}")
        return 0
    from .checkpoint import stored_recipe
    check_top_k(args.top_k)  # checked again against each checkpoint's classes
    checkpoints = watch_checkpoints(args.model_dir, args.poll_seconds, args.split)
    recipe = stored_recipe(args.model_dir)  # None before the first run has written it: MNIST, unless --dataset
    data = _load_data(args, recipe.dataset if recipe else None)
    print(f"watching {args.model_dir} for new checkpoints (Ctrl-C to stop)", file=sys.stderr)
    try:
        for step in checkpoints:
            try:
                model = open_model(args.model_dir, args.device, step, args.precision)
                result = evaluate_model(model, data, args.split,
                                        args.top_k, args.tensorboard, _Count(f"evaluating step {step}"), args.tta)
            except LenetError as error:  # e.g. pruned by the trainer between listing and reading
                print(f"lenet: skipping step {step}: {error}", file=sys.stderr)
                continue
            _print_eval(result, args.json, f"step {step}, {model.precision}")
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_ensemble
    from .inference import check_top_k, open_model
    first = open_model(args.model_dirs[0])  # its data set is the default; the members are checked against the data
    check_top_k(args.top_k, first.num_classes)
    data = _load_data(args, first.info.dataset)
    result = evaluate_ensemble(args.model_dirs, data, args.split, args.device, args.top_k, args.tta,
                               _Count("evaluating models"), args.precision)
    if not args.json:
        for member in result["members"]:
            print(f"{member['model_dir']} (step {member['step']}): accuracy {member['accuracy']:.4f}, "
                  f"{member['errors']} errors")
        print(f"{result['errors_of_every_member']} images are misclassified by every member")
    _print_eval(result, args.json, f"ensemble of {len(result['members'])}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import check_top_k, open_model
    from .predict import predict_files, read_number_files, write_input_picture
    model = open_model(args.model_dir, args.device, precision=args.precision)
    check_top_k(args.top_k, model.num_classes)
    failures, shown = 0, set()
    results = (read_number_files if args.number else predict_files)(model, args.files, args.top_k)
    for result in results:
        if "error" in result:
            failures += 1
            print(f"lenet: error: {result['error']}", file=sys.stderr)
            continue
        stem = Path(result["file"]).stem
        if args.show_input and args.number:
            for position, digit in enumerate(result["digits"]):
                write_input_picture(digit.pop("input"), args.show_input, f"{stem}-digit{position}", shown)
        elif args.show_input:
            index = "" if result["index"] is None else f"-{result['index']}"
            write_input_picture(result["input"], args.show_input, f"{stem}{index}", shown)
        if args.number:
            _print_number(result, args.json, args.top_k)
            continue
        classes = model.info.classes
        if args.json:
            print(json.dumps({k: v for k, v in result.items() if k not in ("top_k", "input")} |
                             {"top_k": [{"class": c, "label": classes[c], "probability": p}
                                        for c, p in result["top_k"]]}))
        else:
            where = result["file"] if result["index"] is None else f"{result['file']}[{result['index']}]"
            # The digits are their own names; other classes are shown by name.
            named = result["label"] != str(result["class"])
            answer = f"{result['class']} ({result['label']})" if named else result["label"]
            ranked = ", ".join(f"{classes[c] if named else c} ({p:.3f})" for c, p in result["top_k"])
            print(f"{where}: {answer}   top-{len(result['top_k'])}: {ranked}")
    return 1 if failures else 0


def _print_number(result: dict, as_json: bool, k: int) -> None:
    """A result of predict.read_number_files as one JSON line, or as the number and each digit's top-K."""
    digits = [{"class": d["class"], "probabilities": d["probabilities"], "box": d["box"],
               "top_k": [{"class": c, "probability": p} for c, p in d["top_k"]]} for d in result["digits"]]
    if as_json:
        print(json.dumps({"file": result["file"], "number": result["number"], "digits": digits}))
        return
    ranked = "; ".join(", ".join(f"{c} ({p:.3f})" for c, p in d["top_k"]) for d in result["digits"])
    print(f"{result['file']}: {result['number']}   top-{k or 3} per digit: {ranked}")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_model
    path = export_model(args.model_dir, args.format, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serving import Limits, serve
    limits = Limits(args.max_body_bytes, args.max_image_pixels, args.max_batch,
                    request_timeout_s=args.request_timeout_s, max_connections=args.max_connections)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"lenet: warning: serving on {args.host}, reachable from other machines", file=sys.stderr)
    serve(args.model_dir, args.host, args.port, limits, args.device, args.precision)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .models import build_model
    from .summary import format_summary, summarize
    summary = summarize(build_model(args.model))
    print(json.dumps({"model": args.model, **summary}) if args.json else format_summary(summary, args.model))
    if args.png:
        from .plots import architecture_diagram
        print(f"wrote {architecture_diagram(summary, args.model, Path(args.png))}", file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .inference import open_model
    from .plots import plot_model_dir
    model = open_model(args.model_dir, args.device)
    paths, notes = plot_model_dir(model, _load_data(args, model.info.dataset), args.out, args.image,
                                  progress=_Count("drawing feature maps (layers)", period_s=0))
    for note in notes:
        print(f"lenet: note: {note}", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models
    for name, description in list_models().items():
        print(f"{name:<14} {description}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({name: recipe.to_dict() for name, recipe in RECIPES.items()}, indent=2))
        return 0
    for name, recipe in RECIPES.items():
        schedule = (f"{recipe.optimizer} {recipe.learning_rate:g}"
                    + (" one-cycle" if recipe.lr_schedule == "one-cycle" else "")
                    + (f" x{recipe.lr_decay_rate:g}/{recipe.lr_decay_steps}" if recipe.lr_decay_rate != 1 else "")
                    + f", batch {recipe.batch_size}, {recipe.total_steps:,} steps"
                    + (f", L2 {recipe.l2_rate:g}" if recipe.l2_rate else "")
                    + (f", EMA {recipe.ema_decay:g}" if recipe.ema_decay else "")
                    + (f", {recipe.augment} distortions" if recipe.augment != "none" else "")
                    + (f", label smoothing {recipe.label_smoothing:g}" if recipe.label_smoothing else ""))
        print(f"{name:<13} {recipe.model:<13} {schedule}\n{'':<13} {recipe.source}")
    return 0


def _model_option(p: argparse.ArgumentParser, what: str = "a model directory, or an ONNX file made by "
                                                                 "`lenet export` (run by onnxruntime)") -> None:
    p.add_argument("--model-dir", "--model", dest="model_dir", required=True, metavar="DIR_OR_ONNX", help=what)


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def _inference_precision_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of a model directory's network: auto (default) is bf16 where the CPU or GPU "
                        "has bf16 arithmetic (AMX, AVX512-BF16), 2-3x as fast as fp32 there, the same classes on 99.97%% of "
                        "the MNIST test set; fp32 gives exactly the figures training reported. ONNX files run in fp32")


def _data_options(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    """--data-dir and --device; and --dataset, except for train, whose --dataset is a recipe field."""
    if dataset:
        p.add_argument("--dataset", choices=DATASET_NAMES,
                       help="the data to measure on (default: the model's data set); a model refuses another's")
    p.add_argument("--data-dir", help="directory with the data set's four IDX files (default: $LENET_DATA_DIR "
                                      "for mnist, $LENET_FASHION_MNIST_DIR or Debian's dataset-fashion-mnist for "
                                      "fashion-mnist, else the download cache; required for idx)")
    _device_option(p)


def _scoring_options(p: argparse.ArgumentParser, json_help: str, tta_help: str) -> None:
    """What eval and ensemble measure and how they print it."""
    p.add_argument("--split", default="test", choices=["test", "validation"])
    p.add_argument("--top-k", type=int, help="k for top-k accuracy (default 5, or the number of classes when fewer)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.add_argument("--tta", action="store_true", help=tta_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet", description="Train, evaluate and use the MNIST tutorials' "
                                                               "convolutional networks.")
    parser.add_argument("--version", action="version", version=f"lenet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a recipe into a model directory (resumes if it exists)")
    p.add_argument("--recipe", help="recipe name (default: the directory's recipe when resuming, else tutorial-cnn)")
    p.add_argument("--model-dir", required=True, help="where checkpoints and recipe.json go")
    p.add_argument("--json", action="store_true",
                   help="print the final result as JSON on stdout (log lines then go to stderr)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write TensorBoard events under MODEL_DIR/events (default: on)")
    p.add_argument("--histogram-every", type=int, default=1000, metavar="N",
                   help="steps between weight/gradient histograms in the events (default 1000, 0: none)")
    speed = p.add_argument_group("how to compute (same results up to rounding; may change on resume)")
    speed.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="bf16 autocasts convolutions and matrix products (fast on AMX/AVX512-BF16 CPUs and GPUs); "
                            "auto: bf16 where the CPU or GPU has bf16 arithmetic, else fp32 (default fp32)")
    speed.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                       help="NHWC memory layout (default: on)")
    speed.add_argument("--compile", action="store_true",
                       help="torch.compile the network (compile time reported apart); pays on GPUs; "
                            "CPU training measured slower than eager here")
    speed.add_argument("--deterministic", action="store_true", help="bitwise-reproducible kernels only")
    parallel = p.add_argument_group("several processes (data-parallel ranks: launch with torchrun; see the README)")
    parallel.add_argument("--dist-timeout", type=float, default=300.0, metavar="SECONDS",
                          help="under torchrun: how long a rank waits for the others before the run stops "
                               "(default 300)")
    parallel.add_argument("--seeds", metavar="LIST",
                          help="train these seeds as independent runs side by side, e.g. 0-4 or 1,3,7; "
                               "--model-dir must contain {seed}")
    parallel.add_argument("--parallel", type=int, metavar="N",
                          help="with --seeds: runs at a time, each pinned to its share of the CPU cores or "
                               "to one GPU (default: one per GPU, or per 2 cores)")
    _data_options(p, dataset=False)
    _add_recipe_overrides(p)
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("eval", help="evaluate a model directory's newest checkpoint, or an exported ONNX file")
    _model_option(p)
    _scoring_options(p, "print one JSON object per evaluation",
                     "test-time augmentation: average each image's probabilities with its 1-pixel shifts")
    p.add_argument("--watch", action="store_true", help="re-evaluate each new checkpoint until interrupted")
    p.add_argument("--poll-seconds", type=float, default=5.0, help="how often --watch looks (default 5)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="also write the results as TensorBoard events under MODEL_DIR/events (default: on)")
    _data_options(p)
    _inference_precision_option(p)
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("ensemble", help="evaluate the mean probabilities of several model directories "
                                             "(or exported ONNX files)")
    p.add_argument("model_dirs", nargs="+", metavar="DIR_OR_ONNX")
    _scoring_options(p, "print the result as one JSON object", "test-time augmentation in every member (see eval)")
    _data_options(p)
    _inference_precision_option(p)
    p.set_defaults(run=cmd_ensemble)

    p = commands.add_parser("predict", help="classify image, .npy or IDX files, or read numbers (--number)")
    _model_option(p, "a model directory, or an ONNX file made by `lenet export`")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--top-k", type=int, help="how many ranked classes to show (default 3, or the number of "
                                             "classes when fewer)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--number", action="store_true",
                   help="each FILE is a picture of digits written on one line (a meter, an amount): "
                        "read them left to right and print the number, with each digit's box")
    p.add_argument("--show-input", metavar="DIR",
                   help="write the 28x28 input each picture (or digit) became into DIR as PNG, "
                        "to see why a picture was misread")
    _device_option(p)
    _inference_precision_option(p)
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("export", help="export the evaluation weights to ONNX, torch.export (.pt2) or TorchScript")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="onnx (onnxruntime; what predict/serve/eval take), pt2 (torch.export.load), "
                        "torchscript (deprecated by PyTorch)")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("serve", help="HTTP API and draw-a-digit page for a model directory or ONNX file")
    _model_option(p, "a model directory, or an ONNX file made by `lenet export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, metavar="N",
                   help="largest request body accepted (default 4 MiB)")
    p.add_argument("--max-image-pixels", type=int, default=16_000_000, metavar="N",
                   help="largest image (width x height) accepted (default 16,000,000)")
    p.add_argument("--max-batch", type=int, default=64, metavar="N",
                   help="most images per request and per forward pass (default 64)")
    p.add_argument("--request-timeout-s", type=float, default=10.0, metavar="S",
                   help="a request's headers and body must arrive within S seconds, else it is dropped (default 10)")
    p.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="open connections past N are answered 503 (default 64)")
    _device_option(p)
    _inference_precision_option(p)
    p.set_defaults(run=cmd_serve)

    p = commands.add_parser("summary", help="layers, output shapes, parameters and connections of a model")
    # No argparse choices: listing the registry would load torch for every `lenet --help`;
    # build_model refuses an unknown name, listing the known ones.
    p.add_argument("model", metavar="MODEL", help="a registered network (see `lenet models`)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--png", metavar="FILE", help="also draw the architecture as a diagram into FILE")
    p.set_defaults(run=cmd_summary)

    p = commands.add_parser("plot", help="draw curves, confusion, mistakes, filters and feature maps as PNGs")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--out", help="output directory (default: MODEL_DIR/plots)")
    p.add_argument("--image", help="draw the feature maps of this picture (or first image of a .npy/IDX file)")
    _data_options(p)
    p.set_defaults(run=cmd_plot)

    p = commands.add_parser("models", help="list the registered networks")
    p.set_defaults(run=cmd_models)

    p = commands.add_parser("recipes", help="list the training recipes and the tutorials they come from")
    p.add_argument("--json", action="store_true", help="every field of every recipe")
    p.set_defaults(run=cmd_recipes)
    return parser


def _rank_prefix() -> str:
    """'rank R: ' in a run started by torchrun, so that a failing rank says which it is."""
    from .distributed import from_environment
    try:
        distributed = from_environment()
    except LenetError:
        return ""
    return f"rank {distributed.rank}: " if distributed and distributed.world_size > 1 else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[argv.index(args.command) + 1:]  # the command's own options, for --seeds to pass on
    try:
        return args.run(args)
    except LenetError as error:
        print(f"lenet: error: {_rank_prefix()}{error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as error:  # a directory that cannot be made, a file that cannot be written, ...
        where = f"{error.filename}: " if error.filename else ""
        print(f"lenet: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
