"""How well a model reads digits in pictures as a phone or a scanner gives them; prints one JSON object.

MNIST *test* digits (labels known, no training image used) are rendered into pictures: upscaled
onto a canvas of 28-400 px per side of any aspect and placed anywhere with a margin (the `canvas`
set: black ink on white paper), then each degradation alone on top of that: light ink on dark
paper, coloured ink and paper, stroke thickened or thinned, rotated by up to 15 degrees, Gaussian
noise (sigma 3-12 grey levels of 255), blur, a lighting gradient, JPEG at quality 20-90, a stray
speck or a ruled line across the picture (both kept off the digit) — and all of them mixed (each
degradation present at random, one stroke change at most, one of speck and line at most). Every
picture is encoded (PNG, or JPEG for the JPEG sets), then read by lenet.pictures exactly as
`lenet predict` reads a file. Accuracy is reported per set, beside the same model's accuracy on
the clean test arrays and on the same digits' arrays, and as a ratio to the clean accuracy.

The clean-input check (`--clean-pngs N`): the first N test images saved as 28x28 PNGs and upscaled
4x (bicubic), both polarities, against the raw arrays.

Numbers (`--numbers N` strings per length): 3-6 test digits side by side with random spacing (a
share of neighbours touching or overlapping), size and slant, on paper of either polarity with
mild noise, read by lenet.pictures.numbers.image_to_number_inputs and lenet.predict.read_number_result
(what `lenet predict --number` runs);
the exact-string accuracy per length.

Usage: LENET_DATA_DIR=... python benchmarks/robustness/predict_robustness.py --model DIR_OR_ONNX
       [--per-set 1000] [--mixed 2000] [--numbers 200] [--clean-pngs 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lenet.data import load_dataset
from lenet.errors import LenetError
from lenet.inference import open_model
from lenet.predict import read_number_result
from lenet.pictures.inputs import image_to_input
from lenet.pictures.numbers import image_to_number_inputs

DEGRADATIONS = ("polarity", "colour", "thick", "thin", "rotation", "noise", "blur", "gradient", "jpeg",
                "speck", "line")
SETS = ("canvas", *DEGRADATIONS, "mixed")
MNIST_STROKE_PX = 2.66  # MNIST's median stroke width in the 28x28 field (see lenet.pictures.digits)
DRAWING_PX = 224        # the size at which a digit's strokes are changed and it is turned


def _soft_dilate(alpha: Image.Image, radius_px: float, thicker: bool) -> Image.Image:
    """ALPHA's strokes grown (or shrunk) by about RADIUS_PX on each side, edges kept soft."""
    size = 2 * max(1, round(radius_px)) + 1
    return alpha.filter(ImageFilter.MaxFilter(size) if thicker else ImageFilter.MinFilter(size))


def _colours(rng: np.random.Generator, light_ink: bool, coloured: bool) -> tuple[np.ndarray, np.ndarray]:
    """(ink, paper) RGB in 0..255."""
    if not coloured:
        return (np.array([255.0] * 3), np.zeros(3)) if light_ink else (np.zeros(3), np.array([255.0] * 3))
    dark = rng.uniform(0, 90, 3) * rng.uniform(0.3, 1.0, 3)  # a coloured pen: one or two channels dominate
    light = 255 - rng.uniform(0, 70, 3)                         # tinted, yellowed or grey paper
    return (light, dark) if light_ink else (dark, light)


def render_digit(digit: np.ndarray, rng: np.random.Generator, effects: set[str]) -> tuple[bytes, str]:
    """A uint8 (28, 28) MNIST DIGIT as a picture file with EFFECTS (names from DEGRADATIONS); (bytes, format)."""
    width, height = (int(v) for v in rng.integers(28, 401, 2))
    far_marks = effects & {"speck", "line"}
    # With a speck or a line the digit takes less of the canvas, so that the mark fits beside it.
    field_px = int(min(width, height) * rng.uniform(0.45, 0.6) if far_marks else min(width, height) * rng.uniform(0.6, 0.95))
    field_px = max(field_px, 14)
    scale = field_px / 28  # canvas pixels per MNIST pixel
    # Strokes are changed and the digit turned at 8x, as a pen would draw them, then the digit is
    # reduced (area-averaged, as a camera's pixels average the light) or enlarged to its size.
    alpha = Image.fromarray(digit).resize((DRAWING_PX, DRAWING_PX), Image.Resampling.BICUBIC)
    drawn_stroke_px = MNIST_STROKE_PX * DRAWING_PX / 28
    stroke_px = MNIST_STROKE_PX * scale
    if "thick" in effects:
        alpha = _soft_dilate(alpha, drawn_stroke_px * rng.uniform(0.25, 0.5), thicker=True)
    if "thin" in effects:
        alpha = _soft_dilate(alpha, drawn_stroke_px * rng.uniform(0.2, 0.3), thicker=False)
        stroke_px *= 0.5
    if "rotation" in effects:
        alpha = alpha.rotate(float(rng.uniform(-15, 15)), Image.Resampling.BICUBIC, expand=True)
    size = max(1, round(alpha.width * field_px / DRAWING_PX)), max(1, round(alpha.height * field_px / DRAWING_PX))
    alpha = alpha.resize(size, Image.Resampling.BOX if field_px < DRAWING_PX else Image.Resampling.BICUBIC)
    field = np.zeros((height, width), np.float32)
    if alpha.width > width or alpha.height > height:  # a rotated field on a tight canvas: crop its margin
        alpha = alpha.crop(((alpha.width - min(alpha.width, width)) // 2, (alpha.height - min(alpha.height, height)) // 2,
                            (alpha.width + min(alpha.width, width)) // 2, (alpha.height + min(alpha.height, height)) // 2))
    top = int(rng.integers(0, height - alpha.height + 1))
    left = int(rng.integers(0, width - alpha.width + 1))
    field[top:top + alpha.height, left:left + alpha.width] = np.asarray(alpha, np.float32) / 255
    rows, cols = np.flatnonzero(field.max(1) > 0.1), np.flatnonzero(field.max(0) > 0.1)
    ink_box = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1) if len(rows) else (0, 0, height, width)
    if far_marks:
        _add_far_mark(field, ink_box, stroke_px, rng, "speck" if "speck" in effects else "line")
    ink, paper = _colours(rng, "polarity" in effects, "colour" in effects)
    picture = paper + field[..., None] * (ink - paper)  # (H, W, 3)
    if "blur" in effects:
        sigma = scale * rng.uniform(0.3, 1.0)
        picture = np.asarray(Image.fromarray(picture.clip(0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(sigma)), np.float32)
    if "gradient" in effects:  # light falling off across the sheet in one direction, plus vignetting
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width]
        u = ((xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)) + 0.5
        light = 1 - rng.uniform(0.3, 0.6) * np.clip(u, 0, 1)
        light *= 1 - 0.25 * ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2)
        picture = picture * light[..., None]
    if "noise" in effects:  # the same deviation in every channel: sigma in grey levels
        picture = picture + rng.normal(0, rng.uniform(3, 12), (height, width))[..., None]
    image = Image.fromarray(picture.clip(0, 255).round().astype(np.uint8))
    buffer = io.BytesIO()
    if "jpeg" in effects:
        image.save(buffer, format="JPEG", quality=int(rng.integers(20, 91)))
        return buffer.getvalue(), "jpeg"
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def _add_far_mark(field: np.ndarray, ink_box, stroke_px: float, rng: np.random.Generator, kind: str) -> None:
    """A speck (a blot about a stroke wide) or a thin line across the picture, kept at least a fifth of
    the digit's size from its ink; skipped when the canvas leaves no such room."""
    height, width = field.shape
    top, left, bottom, right = ink_box
    gap = max(bottom - top, right - left) / 5 + stroke_px
    mark = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mark)
    if kind == "speck":
        radius = stroke_px * rng.uniform(0.5, 1.2)
        for _ in range(100):
            y, x = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
            if y < top - gap - radius or y > bottom + gap + radius or x < left - gap - radius or x > right + gap + radius:
                draw.ellipse((x - radius, y - radius * rng.uniform(0.6, 1), x + radius, y + radius), fill=255)
                break
    else:
        thickness = max(1, round(stroke_px * rng.uniform(0.2, 0.5)))
        spaces = [(0, top - gap), (bottom + gap, height)]  # horizontal ruled lines above or below
        spaces = [(a, b) for a, b in spaces if b - a > 2 * thickness + 2]
        if spaces:
            a, b = spaces[int(rng.integers(len(spaces)))]
            y = rng.uniform(a + thickness, b - thickness)
            tilt = width * math.tan(math.radians(rng.uniform(-1.5, 1.5)))
            y0, y1 = np.clip([y - tilt / 2, y + tilt / 2], a, b)
            draw.line((0, y0, width, y1), fill=255, width=thickness)
    np.maximum(field, np.asarray(mark, np.float32) / 255, out=field)


def effects_for(kind: str, rng: np.random.Generator) -> set[str]:
    if kind == "canvas":
        return set()
    if kind != "mixed":
        return {kind}
    effects = {e for e in ("polarity", "colour", "rotation", "noise", "blur", "gradient", "jpeg") if rng.random() < 0.5}
    effects |= {str(rng.choice(["thick", "thin", "none"]))} - {"none"}
    return effects | ({str(rng.choice(["speck", "line", "none"]))} - {"none"})


def render_number(digits: list[np.ndarray], rng: np.random.Generator) -> tuple[bytes, bool]:
    """uint8 (28, 28) DIGITS written on one line as a PNG; (bytes, whether two neighbours touch)."""
    height_px = int(rng.integers(40, 121))
    slant = math.tan(math.radians(rng.uniform(-15, 15)))
    pieces = []
    for digit in digits:
        rows, cols = np.flatnonzero(digit.max(1) > 0), np.flatnonzero(digit.max(0) > 0)
        crop = Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        size = height_px * rng.uniform(0.85, 1.15) / crop.height
        crop = crop.resize((max(1, round(crop.width * size)), max(1, round(crop.height * size))),
                           Image.Resampling.BICUBIC)
        shift = abs(slant) * crop.height
        sheared = crop.transform((crop.width + math.ceil(shift), crop.height), Image.Transform.AFFINE,
                                 (1, slant, -shift if slant > 0 else 0, 0, 1, 0), Image.Resampling.BICUBIC)
        pieces.append(np.asarray(sheared, np.float32) / 255)
    mean_width = np.mean([p.shape[1] for p in pieces])
    margin = int(height_px * 0.5)
    width = margin * 2 + int(sum(p.shape[1] for p in pieces) + mean_width * len(pieces))
    height = margin * 2 + int(max(p.shape[0] for p in pieces) * 1.3)
    field = np.zeros((height, width), np.float32)
    x, touching, previous = margin, False, None
    for piece in pieces:
        y = margin + int(rng.integers(0, height - 2 * margin - piece.shape[0] + 1))
        placed = np.zeros_like(field)
        placed[y:y + piece.shape[0], x:x + piece.shape[1]] = piece
        if previous is not None and (np.minimum(previous, placed) > 0.3).any():
            touching = True
        np.maximum(field, placed, out=field)
        previous = placed
        x += piece.shape[1] + int(mean_width * rng.uniform(-0.15, 0.5))  # below 0: overlapping boxes
        x = max(x, margin)
    ink, paper = _colours(rng, rng.random() < 0.5, rng.random() < 0.5)
    picture = paper + field[..., None] * (ink - paper) + rng.normal(0, rng.uniform(0, 6), (height, width))[..., None]
    buffer = io.BytesIO()
    Image.fromarray(picture.clip(0, 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), touching


def _read_all(payloads: list[tuple[bytes, str]]) -> tuple[np.ndarray, int]:
    """Inputs (N, 28, 28) for picture files (a refused picture becomes a blank input, counted wrong)."""
    inputs, refused = [], 0
    for i, (payload, kind) in enumerate(payloads):
        try:
            inputs.append(image_to_input(payload, f"picture-{i}.{kind}"))
        except LenetError:
            inputs.append(np.zeros((28, 28), np.float32))
            refused += 1
    return np.stack(inputs), refused


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def clean_pngs(model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy on the test images as 28x28 PNGs and 4x upscaled, both polarities, beside the arrays."""
    raw = float((model.probabilities(images.astype(np.float32) / 255).argmax(1) == labels).mean())
    result = {"images": len(images), "arrays": raw}
    for name, size, invert in [("png_28", 28, False), ("png_28_inverted", 28, True),
                               ("png_112", 112, False), ("png_112_inverted", 112, True)]:
        payloads = []
        for image in images:
            picture = Image.fromarray(255 - image if invert else image)
            if size != 28:
                picture = picture.resize((size, size), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            payloads.append((buffer.getvalue(), "png"))
        inputs, refused = _read_all(payloads)
        accuracy = float((model.probabilities(inputs).argmax(1) == labels).mean())
        result[name] = {"accuracy": accuracy, "points_from_arrays": round(100 * (accuracy - raw), 2),
                        "refused": refused}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model directory or an exported .onnx file")
    parser.add_argument("--per-set", type=int, default=1000, help="pictures per degradation (default 1000)")
    parser.add_argument("--mixed", type=int, default=2000, help="pictures with all degradations mixed (default 2000)")
    parser.add_argument("--numbers", type=int, default=200, help="strings per length 3-6 (default 200; 0: none)")
    parser.add_argument("--clean-pngs", type=int, default=0, metavar="N",
                        help="the clean-input check on the first N test images (default 0: skipped)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_dataset()
    images, labels = data.test_images.numpy(), data.test_labels.numpy()
    model = open_model(args.model)
    clean = float((model.probabilities(images.astype(np.float32) / 255).argmax(1) == labels).mean())
    result = {"model": args.model, "network": model.info.model, "recipe": model.info.recipe,
              "step": model.info.step, "clean_accuracy": clean, "seed": args.seed, "sets": {}}
    for kind in SETS:
        count = args.mixed if kind == "mixed" else args.per_set
        rng = np.random.default_rng([args.seed, SETS.index(kind)])
        chosen = rng.choice(len(images), count, replace=False)
        inputs, refused = _read_all([render_digit(images[i], rng, effects_for(kind, rng)) for i in chosen])
        accuracy = float((model.probabilities(inputs).argmax(1) == labels[chosen]).mean())
        same_digits = float((model.probabilities(images[chosen].astype(np.float32) / 255).argmax(1)
                             == labels[chosen]).mean())
        result["sets"][kind] = {"pictures": count, "accuracy": accuracy, "of_clean": round(accuracy / clean, 4),
                                "same_digits_clean": same_digits, "refused": refused}
        print(f"{kind}: {accuracy:.4f} ({accuracy / clean:.1%} of clean)", file=sys.stderr, flush=True)
    worst = min((k for k in SETS if k != "mixed"), key=lambda k: result["sets"][k]["accuracy"])
    result["worst_single"] = {"set": worst, "of_clean": result["sets"][worst]["of_clean"]}
    if args.numbers:
        result["numbers"] = read_numbers(model, images, labels, args.numbers, args.seed)
    if args.clean_pngs:
        result["clean_pngs"] = clean_pngs(model, images[:args.clean_pngs], labels[:args.clean_pngs])
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


def read_numbers(model, images: np.ndarray, labels: np.ndarray, per_length: int, seed: int) -> dict:
    """Exact-string accuracy of numbers of 3-6 test digits (see the module docstring)."""
    results = {}
    for length in (3, 4, 5, 6):
        rng = np.random.default_rng([seed, 100 + length])
        right = touching_strings = touching_right = refused = 0
        for n in range(per_length):
            chosen = rng.choice(len(images), length, replace=False)
            payload, touching = render_number([images[i] for i in chosen], rng)
            truth = "".join(str(int(labels[i])) for i in chosen)
            try:
                number = image_to_number_inputs(payload, f"number-{n}.png")
                read = read_number_result(number, model.scores(number.inputs), 1).number
            except LenetError:
                read, refused = "", refused + 1
            right += read == truth
            touching_strings += touching
            touching_right += touching and read == truth
        results[str(length)] = {"strings": per_length, "exact": right / per_length, "refused": refused,
                                "touching_strings": touching_strings,
                                "touching_exact": touching_right / touching_strings if touching_strings else None}
    return results


if __name__ == "__main__":
    main()
