"""What the commands print: each result of the library as text or JSON, a pure function returning a string.

The commands choose where it goes (stdout, or stderr beside JSON) and when; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from ..recipes import Recipe
from ..decline import SEVERAL_DIGITS
from ..results import (CheckpointSaved, Compiled, EnsembleEvaluation, Evaluation, NumberReading, Prediction,
                       StepLogged, Tested, TrainingEvent, TrainingStarted, Validated)


def train_done(result: dict, as_json: bool) -> str:
    """The result of training.train: the whole of it as JSON, or the step, test accuracy and times."""
    if as_json:
        return json.dumps(result)
    return (f"done: step {result['step']}, test accuracy {result.get('test_accuracy', float('nan')):.4f}; "
            f"{result['train_seconds']:.1f} s training" +
            (f", {result['compile_seconds']:.1f} s compiling" if result["compile_seconds"] else ""))


def seeds_done(codes: Mapping[int, int]) -> str:
    """The exit codes of sweep.run_seeds, by seed: how many trained, and which failed."""
    failed = [seed for seed, code in codes.items() if code != 0]
    return (f"done: {len(codes) - len(failed)} of {len(codes)} seeds trained"
            + (f"; failed: {', '.join(map(str, sorted(failed)))}" if failed else ""))


def idx_data(data) -> str:
    """For a user's IDX set: its classes and its files' checksums, which are recorded, not verified."""
    return "\n".join([f"data: {len(data.classes)} classes ({', '.join(data.classes)}); SHA-256 of the files, "
                      f"recorded in each checkpoint:",
                      *(f"  {sha256}  {name}" for name, sha256 in data.sha256.items())])


def evaluation(result: Evaluation | EnsembleEvaluation, as_json: bool, what: str) -> str:
    """An evaluation as JSON, or as text headed by WHAT was evaluated."""
    if as_json:
        return json.dumps(result.to_json())
    metrics = result.metrics
    lines = [f"{what} on {result.split} ({metrics.examples} images"
             f"{', test-time augmented' if result.tta else ''}): "
             f"accuracy {metrics.accuracy:.4f}, loss {metrics.loss:.4f}, "
             f"top-{metrics.top_k}-accuracy {metrics.top_k_accuracy:.4f}"]
    if isinstance(result, Evaluation) and (calibration := result.calibration):
        lines.append(f"calibrated (temperature {calibration.temperature:.3f}): NLL {calibration.nll:.4f}, "
                     f"ECE {calibration.ece:.4f}; declined {calibration.declined:.2%} at min-confidence "
                     f"{calibration.min_confidence:.3f}")
    # Named classes (not the digits) get a column for their names, cut to 12 characters.
    named = any(label != str(c) for c, label in enumerate(metrics.classes))
    name = (lambda c: f" {metrics.classes[c][:12]:<12}") if named else (lambda c: "")
    lines.append(f"class{' label       ' if named else ''}  precision  recall  support")
    for row in metrics.per_class:
        lines.append(f"{row.class_:>5}{name(row.class_)}  {row.precision:>9.4f}  {row.recall:>6.4f}  "
                     f"{row.support:>7}")
    lines.append("confusion (rows: true class, columns: predicted)")
    for true_class, row in enumerate(metrics.confusion):
        lines.append(f"{true_class:>3}{name(true_class)} " + " ".join(f"{n:>5}" for n in row))
    return "\n".join(lines)


def ensemble(result: EnsembleEvaluation, as_json: bool) -> str:
    """An ensemble's evaluation: each member's accuracy, then the ensemble's own."""
    if as_json:
        return json.dumps(result.to_json())
    members = [f"{member.model_dir} (step {member.step}): accuracy {member.accuracy:.4f}, "
               f"{member.errors} errors" for member in result.members]
    return "\n".join([*members, f"{result.errors_of_every_member} images are misclassified by every member",
                      evaluation(result, as_json, f"ensemble of {len(result.members)}")])


def answer(result: Prediction | NumberReading, as_json: bool) -> str:
    """A prediction or a number reading as one JSON line, or as one line of text."""
    if as_json:
        return json.dumps(result.to_json())
    return number(result) if isinstance(result, NumberReading) else prediction(result)


def prediction(result: Prediction) -> str:
    """'digit.png: 7 (0.981)   top-3: 7 (0.981), 1 (0.012), 9 (0.004)', or why it was declined:
    'x.png: not a digit (closest: 8, 0.61)   top-3: ...'."""
    # The digits are their own names; other classes are shown by name.
    closest = result.closest
    named = closest is not None and closest.label != str(closest.class_)
    if not result.top_k:  # never reached the network
        hint = "; `lenet predict --number` reads numbers" if result.verdict == SEVERAL_DIGITS else ""
        return f"{result.where}: {result.verdict}{hint}"
    shown = f"{closest.class_} ({closest.label})" if named else closest.label
    said = (f"{shown} ({result.confidence:.3f})" if result.answered
            else f"{result.verdict} (closest: {shown}, {result.confidence:.2f})")
    return f"{result.where}: {said}   top-{len(result.top_k)}: {_ranked(result, named)}"


def number(result: NumberReading) -> str:
    """'meter.jpg: 407   top-3 per digit: ...': the number, then each digit's ranked classes; a
    declined position is a '?' and says why: 'meter.jpg: 4?7 (position 2: not a digit)'."""
    if not result.digits:
        return f"{result.file}: {result.verdict}"
    ranked = "; ".join(_ranked(digit.prediction, False) for digit in result.digits)
    k = len(result.digits[0].prediction.top_k)
    doubts = [f"position {i + 1}: {d.prediction.verdict}" for i, d in enumerate(result.digits) if not d.prediction.answered]
    said = result.number if result.number is not None else f"{result.reading} ({', '.join(doubts)})"
    return f"{result.file}: {said}   top-{k} per digit: {ranked}"


def _ranked(result: Prediction, named: bool) -> str:
    return ", ".join(f"{ranked.label if named else ranked.class_} ({ranked.probability:.3f})"
                     for ranked in result.top_k)


def training_event(event: TrainingEvent, recipe: Recipe, model_dir: str) -> str:
    """One line of training's progress for EVENT, of RECIPE trained into MODEL_DIR."""
    match event:
        case TrainingStarted():
            return (f"training {recipe.name} ({recipe.model}) on {event.images:,} {recipe.dataset} images into "
                    f"{model_dir} for {recipe.total_steps} steps on {event.device}" +
                    (f" in {event.precision}" if event.precision != "fp32" else "") +
                    (f" with {event.ranks} ranks" if event.ranks > 1 else "") +
                    (f", resuming from step {event.step}" if event.step else ""))
        case StepLogged():
            return (f"step {event.step}: loss {event.total_loss:.4f} "
                    f"(cross-entropy {event.cross_entropy:.4f}), batch accuracy {event.batch_accuracy:.3f}, "
                    f"lr {event.learning_rate:.3g}, {event.images_per_s:.0f} images/s")
        case Validated():
            return f"step {event.step}: validation accuracy {event.accuracy:.4f}"
        case Tested():
            return f"step {event.step}: test accuracy {event.accuracy:.4f}"
        case Compiled():
            return f"compiled the network in {event.seconds:.1f} s (not counted in images/s)"
        case CheckpointSaved():
            return f"step {event.step}: checkpoint {event.path}"
    raise TypeError(f"not a training event: {event!r}")


def model_summary(summary: dict, model: str, as_json: bool) -> str:
    """The result of summary.summarize for the network MODEL, as JSON or as its table."""
    if as_json:
        return json.dumps({"model": model, **summary})
    from ..summary import format_summary  # loads torch, which summarize has already done
    return format_summary(summary, model)


def models(descriptions: Mapping[str, str]) -> str:
    """The registered networks (models.list_models), one per line with its description."""
    return "\n".join(f"{name:<14} {description}" for name, description in descriptions.items())


def recipes(table: Mapping[str, Recipe], as_json: bool) -> str:
    """The recipe table: every field as JSON, or each recipe's network, schedule and source."""
    if as_json:
        return json.dumps({name: recipe.to_dict() for name, recipe in table.items()}, indent=2)
    return "\n".join(f"{name:<13} {recipe.model:<13} {_schedule(recipe)}\n{'':<13} {recipe.source}"
                     for name, recipe in table.items())


def _schedule(recipe: Recipe) -> str:
    betas = (recipe.adam_beta1, recipe.adam_beta2)
    default_betas = tuple(f.default for f in dataclasses.fields(Recipe) if f.name in ("adam_beta1", "adam_beta2"))
    return (f"{recipe.optimizer} {recipe.learning_rate:g}"
            + (f" (betas {betas[0]:g}/{betas[1]:g})" if recipe.optimizer == "adam" and betas != default_betas else "")
            + (" one-cycle" if recipe.lr_schedule == "one-cycle" else "")
            + (f" x{recipe.lr_decay_rate:g}/{recipe.lr_decay_steps}" if recipe.lr_decay_rate != 1 else "")
            + f", batch {recipe.batch_size}, {recipe.total_steps:,} steps"
            + (f", L2 {recipe.l2_rate:g}" if recipe.l2_rate else "")
            + (f", EMA {recipe.ema_decay:g}" if recipe.ema_decay else "")
            + (f", {recipe.augment} distortions" if recipe.augment != "none" else "")
            + (f", label smoothing {recipe.label_smoothing:g}" if recipe.label_smoothing else ""))
