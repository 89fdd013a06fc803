"""The subcommands: each takes its parsed arguments, calls one library function and prints its view.

Each command imports what it runs when it runs: `lenet --help` and `lenet predict --model x.onnx`
must not wait for torch to load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ..errors import LenetError
from ..execution import Execution
from ..recipes import RECIPES
from ..results import FileError, NumberReading, Prediction
from . import views
from .parser import recipe_overrides
from .progress import CountProgress, TrainingProgress
from .signals import StopRequests


def cmd_train(args: argparse.Namespace) -> int:
    from ..checkpoint import resolve_recipe
    from ..distributed import from_environment
    from ..execution import resolve_device
    from ..training import TrainingDiverged, train
    if args.seeds is not None:
        return _train_seeds(args)
    if args.parallel is not None:
        raise LenetError("--parallel goes with --seeds")
    distributed = from_environment()
    recipe = resolve_recipe(args.model_dir, args.recipe, **recipe_overrides(args))
    execution = Execution(args.precision, args.channels_last, args.compile, args.deterministic)
    resolve_device(args.device)  # before the data is loaded
    data = _load_data(args, recipe.dataset)
    log = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only the result
    if data.name == "idx":
        print(views.idx_data(data), file=log)
    speaks = distributed is None or distributed.is_main  # other ranks print nothing unless they fail
    with StopRequests(speaks) as stop:
        progress = TrainingProgress(recipe, args.model_dir, log)
        try:
            result = train(recipe, args.model_dir, data, args.device, progress, stop,
                           args.tensorboard, args.histogram_every, execution, distributed, args.dist_timeout)
        except TrainingDiverged:
            if speaks:
                raise
            return 1  # every rank sees the same reduced loss; rank 0 says it once for the run
        finally:
            progress.close()
    if stop.signum is not None:
        if speaks:
            print(f"interrupted at step {result['step']}; run the same command again to resume", file=sys.stderr)
        return 128 + stop.signum  # the shell's code for death by that signal: 130 for Ctrl-C
    if speaks:
        print(views.train_done(result, args.json))
    return 0


def _train_seeds(args: argparse.Namespace) -> int:
    """`lenet train --seeds 0-4 --model-dir runs/x/seed-{seed}`: one process per seed, --parallel at a time."""
    from ..sweep import parse_seeds, run_seeds
    seeds = parse_seeds(args.seeds)
    parallel = args.parallel or min(len(seeds), _default_parallel(args.device))
    argv = _without_options(args.argv, ("--seeds", "--parallel", "--seed"))
    print(f"training seeds {', '.join(map(str, seeds))}, {parallel} at a time", file=sys.stderr, flush=True)
    codes = run_seeds(argv, seeds, parallel, args.device)
    print(views.seeds_done(codes), flush=True)
    return 1 if any(code != 0 for code in codes.values()) else 0


def _default_parallel(device: str) -> int:
    """One run per GPU, or per two CPU cores (a run uses both well, so this is at least one)."""
    if device == "cuda":
        import torch
        return max(torch.cuda.device_count(), 1)
    import os
    return max(len(os.sched_getaffinity(0)) // 2 if hasattr(os, "sched_getaffinity") else 1, 1)


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


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_model, watch_checkpoints
    from ..inference import check_top_k
    if not args.watch:
        model = _open_model(args.model_dir, args.device, precision=args.precision)
        check_top_k(args.top_k, model.num_classes)  # before the data is loaded
        result = evaluate_model(model, _load_data(args, model.info.dataset), args.split, args.top_k, args.tensorboard,
                                CountProgress(f"evaluating {args.split}"), args.tta)
        print(views.evaluation(result, args.json, f"{model.label}, {model.precision}"), flush=True)
        return 0
    from ..checkpoint import stored_recipe
    check_top_k(args.top_k)  # checked again against each checkpoint's classes
    checkpoints = watch_checkpoints(args.model_dir, args.poll_seconds, args.split)
    recipe = stored_recipe(args.model_dir)  # None before the first run has written it: MNIST, unless --dataset
    data = _load_data(args, recipe.dataset if recipe else None)
    print(f"watching {args.model_dir} for new checkpoints (Ctrl-C to stop)", file=sys.stderr)
    try:
        for step in checkpoints:
            try:
                model = _open_model(args.model_dir, args.device, step, args.precision)
                result = evaluate_model(model, data, args.split, args.top_k, args.tensorboard,
                                        CountProgress(f"evaluating step {step}"), args.tta)
            except LenetError as error:  # e.g. pruned by the trainer between listing and reading
                print(f"lenet: skipping step {step}: {error}", file=sys.stderr)
                continue
            print(views.evaluation(result, args.json, f"step {step}, {model.precision}"), flush=True)
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_ensemble
    from ..inference import check_top_k
    members = [_open_model(source, args.device, precision=args.precision) for source in args.model_dirs]
    check_top_k(args.top_k, members[0].num_classes)
    # The first member's data set is the default; every member is checked against the data.
    data = _load_data(args, members[0].info.dataset)
    result = evaluate_ensemble(members, data, args.split, args.device, args.top_k, args.tta,
                               CountProgress("evaluating models"), args.precision)
    print(views.ensemble(result, args.json), flush=True)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..predict import predict_files, read_number_files
    model = _open_model(args.model_dir, args.device, precision=args.precision)
    # predict_files and read_number_files check --top-k (and that the model reads numbers) before any file.
    failures, shown = 0, set()
    results = (read_number_files if args.number else predict_files)(model, args.files, args.top_k, args.min_confidence)
    for result in results:
        if isinstance(result, FileError):
            failures += 1
            print(f"lenet: error: {result.error}", file=sys.stderr)
            continue
        if args.show_input and _has_input(result):
            try:
                _show_inputs(result, args.show_input, shown)
            except LenetError as error:  # the answer stands; only its picture is missing
                failures += 1
                print(f"lenet: error: {error}", file=sys.stderr)
        print(views.answer(result, args.json))
    return 1 if failures else 0


def _has_input(result: Prediction | NumberReading) -> bool:
    """Whether the network saw anything of RESULT (not a picture without ink, or of several digits)."""
    return bool(result.digits) if isinstance(result, NumberReading) else result.input is not None


def _show_inputs(result: Prediction | NumberReading, directory: str, shown: set[str]) -> None:
    """--show-input: the 28x28 each picture (or each digit of a number) became, as PNGs in DIRECTORY."""
    from ..predict import write_input_picture
    stem = Path(result.file).stem
    if isinstance(result, NumberReading):
        for position, digit in enumerate(result.digits):
            write_input_picture(digit.prediction.input, directory, f"{stem}-digit{position}", shown)
    else:
        write_input_picture(result.input, directory, f"{stem}{'' if result.index is None else f'-{result.index}'}",
                            shown)


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_model
    # An export holds the fp32 weights, whatever precision the model would infer in.
    path = export_model(_open_model(args.model_dir, precision="fp32"), args.format, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serving.access import Access
    from ..serving.app import serve
    from ..serving.limits import Limits
    limits = Limits(args.max_body_bytes, args.max_image_pixels, args.max_batch,
                    request_timeout_s=args.request_timeout_s, max_connections=args.max_connections,
                    header_timeout_s=args.header_timeout_s, compute_timeout_s=args.compute_timeout_s,
                    max_uploads=args.max_uploads, max_waiting_connections=args.max_waiting_connections)
    access = Access(hosts=tuple(args.allow_host), origins=tuple(args.allow_origin))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"lenet: warning: serving on {args.host}, reachable from other machines", file=sys.stderr)
    serve(args.model_dir, args.host, args.port, limits, args.device, args.precision, access)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from ..models import build_model
    from ..summary import summarize
    summary = summarize(build_model(args.model))
    print(views.model_summary(summary, args.model, args.json))
    if args.png:
        from ..plots import architecture_diagram
        print(f"wrote {architecture_diagram(summary, args.model, Path(args.png))}", file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ..plots import plot_model_dir
    model = _open_model(args.model_dir, args.device)  # opened once: its data set is the default
    paths, notes = plot_model_dir(model, _load_data(args, model.info.dataset), args.out, args.image,
                                  progress=CountProgress("drawing feature maps (layers)", period_s=0))
    for note in notes:
        print(f"lenet: note: {note}", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_models
    print(views.models(list_models()))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    print(views.recipes(RECIPES, args.json))
    return 0


# What each subcommand of parser.build_parser runs.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "eval": cmd_eval, "ensemble": cmd_ensemble, "predict": cmd_predict, "export": cmd_export,
    "serve": cmd_serve, "summary": cmd_summary, "plot": cmd_plot, "models": cmd_models, "recipes": cmd_recipes,
}


def _open_model(source: str, device: str = "cpu", step: int | None = None, precision: str = "auto"):
    """inference.open_model, saying on stderr what it passed over (a damaged checkpoint, say)."""
    from ..inference import open_model
    model = open_model(source, device, step, precision)
    for warning in model.warnings:
        print(f"lenet: warning: {warning}", file=sys.stderr, flush=True)
    return model


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_data(args: argparse.Namespace, dataset: str | None = None):
    """The data set --dataset names, else DATASET (the model's), else MNIST, from --data-dir, the
    set's variable, a system package or the cache (downloading there, saying so)."""
    from ..data import load_dataset
    return load_dataset(args.dataset or dataset or "mnist", args.data_dir, log=_log)

