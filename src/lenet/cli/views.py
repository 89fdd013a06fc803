"""What the commands print: each result of the library as text or JSON, a pure function returning a string.

The commands choose where it goes (stdout, or stderr beside JSON) and when; nothing here prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..recipes import Recipe


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


def evaluation(result: dict, as_json: bool, what: str) -> str:
    """RESULT of evaluation.metrics_from_logits, as JSON or as text headed by WHAT was evaluated."""
    if as_json:
        return json.dumps(result)
    top_k_key = next(k for k in result if k.startswith("top_"))
    lines = [f"{what} on {result['split']} ({result['examples']} images"
             f"{', test-time augmented' if result.get('tta') else ''}): "
             f"accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}, "
             f"{top_k_key.replace('_', '-')} {result[top_k_key]:.4f}"]
    # Named classes (not the digits) get a column for their names, cut to 12 characters.
    named = any(label != str(c) for c, label in enumerate(result["classes"]))
    name = (lambda c: f" {result['classes'][c][:12]:<12}") if named else (lambda c: "")
    lines.append(f"class{' label       ' if named else ''}  precision  recall  support")
    for row in result["per_class"]:
        lines.append(f"{row['class']:>5}{name(row['class'])}  {row['precision']:>9.4f}  {row['recall']:>6.4f}  "
                     f"{row['support']:>7}")
    lines.append("confusion (rows: true class, columns: predicted)")
    for true_class, row in enumerate(result["confusion"]):
        lines.append(f"{true_class:>3}{name(true_class)} " + " ".join(f"{n:>5}" for n in row))
    return "\n".join(lines)


def ensemble(result: dict, as_json: bool) -> str:
    """RESULT of evaluation.evaluate_ensemble: each member's accuracy, then the ensemble's evaluation."""
    if as_json:
        return json.dumps(result)
    members = [f"{member['model_dir']} (step {member['step']}): accuracy {member['accuracy']:.4f}, "
               f"{member['errors']} errors" for member in result["members"]]
    return "\n".join([*members, f"{result['errors_of_every_member']} images are misclassified by every member",
                      evaluation(result, as_json, f"ensemble of {len(result['members'])}")])


def prediction(result: dict, classes: list[str], as_json: bool) -> str:
    """A result of predict.predict_files as one JSON line, or as its answer and ranked CLASSES."""
    if as_json:
        return json.dumps({k: v for k, v in result.items() if k not in ("top_k", "input")} |
                          {"top_k": [{"class": c, "label": classes[c], "probability": p}
                                     for c, p in result["top_k"]]})
    where = result["file"] if result["index"] is None else f"{result['file']}[{result['index']}]"
    # The digits are their own names; other classes are shown by name.
    named = result["label"] != str(result["class"])
    answer = f"{result['class']} ({result['label']})" if named else result["label"]
    ranked = ", ".join(f"{classes[c] if named else c} ({p:.3f})" for c, p in result["top_k"])
    return f"{where}: {answer}   top-{len(result['top_k'])}: {ranked}"


def number(result: dict, as_json: bool, k: int | None) -> str:
    """A result of predict.read_number_files as one JSON line, or as the number and each digit's top-K."""
    if as_json:
        digits = [{"class": d["class"], "probabilities": d["probabilities"], "box": d["box"],
                   "top_k": [{"class": c, "probability": p} for c, p in d["top_k"]]} for d in result["digits"]]
        return json.dumps({"file": result["file"], "number": result["number"], "digits": digits})
    ranked = "; ".join(", ".join(f"{c} ({p:.3f})" for c, p in d["top_k"]) for d in result["digits"])
    return f"{result['file']}: {result['number']}   top-{k or 3} per digit: {ranked}"


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
    return (f"{recipe.optimizer} {recipe.learning_rate:g}"
            + (" one-cycle" if recipe.lr_schedule == "one-cycle" else "")
            + (f" x{recipe.lr_decay_rate:g}/{recipe.lr_decay_steps}" if recipe.lr_decay_rate != 1 else "")
            + f", batch {recipe.batch_size}, {recipe.total_steps:,} steps"
            + (f", L2 {recipe.l2_rate:g}" if recipe.l2_rate else "")
            + (f", EMA {recipe.ema_decay:g}" if recipe.ema_decay else "")
            + (f", {recipe.augment} distortions" if recipe.augment != "none" else "")
            + (f", label smoothing {recipe.label_smoothing:g}" if recipe.label_smoothing else ""))
