"""The `lenet` command line: one parser per subcommand, the options they share, and the recipe overrides.

Only constants come from the library here (data set names, precisions, export formats, the Recipe
fields), none of which loads torch: building the parser is what `lenet --help` waits for.
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import __version__
from ..datasets import DATASET_NAMES
from ..execution import PRECISIONS
from ..export import FORMATS as EXPORT_FORMATS
from ..recipes import Recipe
from ..serving.limits import Limits

# Short spellings the seeds' readers expect, besides the generated --total-steps / --learning-rate.
_ALIASES = {"total_steps": ["--steps"], "learning_rate": ["--lr"]}
# Set by the recipe table, not by a run.
_NOT_OVERRIDABLE = {"name", "source"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenet", description="Train, evaluate and use the MNIST tutorials' "
                                                               "convolutional networks.")
    parser.add_argument("--version", action="version", version=f"lenet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (_add_train, _add_eval, _add_ensemble, _add_predict, _add_export, _add_serve, _add_summary,
                        _add_plot, _add_models, _add_recipes):
        add_command(commands)
    return parser


def recipe_overrides(args: argparse.Namespace) -> dict:
    """The Recipe fields given on the command line (by the options _add_recipe_overrides made)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
            if f.name not in _NOT_OVERRIDABLE and getattr(args, f.name) is not None}


def _add_train(commands) -> None:
    p = commands.add_parser("train", help="train a recipe into a model directory (resumes if it exists)")
    p.add_argument("--recipe", help="recipe name (default: the directory's recipe when resuming, else tutorial-cnn)")
    p.add_argument("--model-dir", required=True, help="where checkpoints and recipe.json go")
    p.add_argument("--json", action="store_true",
                   help="print the final result as JSON on stdout (log lines then go to stderr)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write TensorBoard events under MODEL_DIR/events (default: on)")
    p.add_argument("--histogram-every", type=int, default=1000, metavar="N",
                   help="steps between weight/gradient histograms in the events (default 1000, 0: none)")
    _training_speed_options(p)
    _training_process_options(p)
    _data_options(p, dataset=False)
    _add_recipe_overrides(p)


def _training_speed_options(p: argparse.ArgumentParser) -> None:
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


def _training_process_options(p: argparse.ArgumentParser) -> None:
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


def _add_eval(commands) -> None:
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


def _add_ensemble(commands) -> None:
    p = commands.add_parser("ensemble", help="evaluate the mean probabilities of several model directories "
                                             "(or exported ONNX files)")
    p.add_argument("model_dirs", nargs="+", metavar="DIR_OR_ONNX")
    _scoring_options(p, "print the result as one JSON object", "test-time augmentation in every member (see eval)")
    _data_options(p)
    _inference_precision_option(p)


def _add_predict(commands) -> None:
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
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="answer only where lenet is at least P sure, from 0 to 1, that the picture is a "
                        "digit and which one; otherwise say 'not a digit' or 'unsure' (default: the "
                        "model's own, chosen on its validation split; 0 answers everything)")
    _device_option(p)
    _inference_precision_option(p)


def _add_export(commands) -> None:
    p = commands.add_parser("export", help="export the evaluation weights to ONNX, torch.export (.pt2) or TorchScript")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="onnx (onnxruntime; what predict/serve/eval take), pt2 (torch.export.load), "
                        "torchscript (deprecated by PyTorch)")
    p.add_argument("-o", "--output", required=True, metavar="FILE")


def _add_serve(commands) -> None:
    p = commands.add_parser("serve", help="HTTP API and draw-a-digit page for a model directory or ONNX file")
    _model_option(p, "a model directory, or an ONNX file made by `lenet export`")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only). A request must name the server "
                        "in its Host header (any port): localhost, 127.0.0.1, [::1], this address, the address "
                        "the request came in on (so with 0.0.0.0, the machine's own addresses), or a name given "
                        "with --allow-host; else it is refused (421), so that a web page whose DNS name is "
                        "rebound to this machine cannot use the server")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name clients reach the server by, e.g. its DNS name on the network (repeatable)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web page's origin (scheme://host[:port]) allowed to send requests and read the "
                        "answers (repeatable). By default only the server's own page may: a request whose Origin "
                        "header is another site's is refused (403); requests without one (curl, scripts) are served")
    # The defaults are Limits' own: written once, there.
    p.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes, metavar="N",
                   help=f"largest request body accepted (default {Limits.max_body_bytes // 2**20} MiB)")
    p.add_argument("--max-image-pixels", type=int, default=Limits.max_image_pixels, metavar="N",
                   help=f"largest image (width x height) accepted (default {Limits.max_image_pixels:,})")
    p.add_argument("--max-batch", type=int, default=Limits.max_batch, metavar="N",
                   help=f"most images per request and per forward pass (default {Limits.max_batch})")
    p.add_argument("--header-timeout-s", type=float, default=Limits.header_timeout_s, metavar="S",
                   help=f"a request's headers must arrive within S seconds, else it is dropped "
                        f"(default {Limits.header_timeout_s:g})")
    p.add_argument("--request-timeout-s", type=float, default=Limits.request_timeout_s, metavar="S",
                   help=f"a request's headers and body must arrive within S seconds, else it is answered 408 "
                        f"and dropped (default {Limits.request_timeout_s:g})")
    p.add_argument("--compute-timeout-s", type=float, default=Limits.compute_timeout_s, metavar="S",
                   help=f"a request's answer must be computed within S seconds of its body arriving, else it "
                        f"is answered 503 (default {Limits.compute_timeout_s:g})")
    p.add_argument("--max-connections", type=int, default=Limits.max_connections, metavar="N",
                   help=f"requests in progress at once (from their headers to their answer); past N, one is "
                        f"answered 503 when its headers arrive. Connections still waiting for their headers "
                        f"are not counted (default {Limits.max_connections})")
    p.add_argument("--max-uploads", type=int, default=Limits.max_uploads, metavar="N",
                   help=f"of those, requests with a body; past N, one is answered 503 when its headers arrive "
                        f"(default {Limits.max_uploads}; below --max-connections)")
    p.add_argument("--max-waiting-connections", type=int, default=Limits.max_waiting_connections, metavar="N",
                   help=f"connections waiting for a request's headers; past N, the one waiting longest is closed "
                        f"for the new one (default {Limits.max_waiting_connections})")
    _device_option(p)
    _inference_precision_option(p)


def _add_summary(commands) -> None:
    p = commands.add_parser("summary", help="layers, output shapes, parameters and connections of a model")
    # No argparse choices: listing the registry would load torch for every `lenet --help`;
    # build_model refuses an unknown name, listing the known ones.
    p.add_argument("model", metavar="MODEL", help="a registered network (see `lenet models`)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--png", metavar="FILE", help="also draw the architecture as a diagram into FILE")


def _add_plot(commands) -> None:
    p = commands.add_parser("plot", help="draw curves, confusion, mistakes, filters and feature maps as PNGs")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--out", help="output directory (default: MODEL_DIR/plots)")
    p.add_argument("--image", help="draw the feature maps of this picture (or first image of a .npy/IDX file)")
    _data_options(p)


def _add_models(commands) -> None:
    commands.add_parser("models", help="list the registered networks")


def _add_recipes(commands) -> None:
    p = commands.add_parser("recipes", help="list the training recipes and the tutorials they come from")
    p.add_argument("--json", action="store_true", help="every field of every recipe")


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
