import io
import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from lenet import negatives
from lenet.negatives import (CONFUSABLE, FAMILIES, FONT_FILES, KINDS, PILLOW_FACE, glyph_alphabet, negative_inputs,
                             negative_pictures)

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def test_the_same_seed_gives_the_same_pictures_and_another_seed_others():
    for family in FAMILIES:
        first = negative_pictures(6, family, seed=3)
        assert first == negative_pictures(6, family, seed=3)
        assert [p for p, _ in first] != [p for p, _ in negative_pictures(6, family, seed=4)]
    # Each family draws from its own stream: the same seed does not give the same kinds in the same order.
    assert [p for p, _ in negative_pictures(6, "training", 3)] != [p for p, _ in negative_pictures(6, "held-out", 3)]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_gives_every_kind_it_promises_as_pictures_of_the_promised_sizes(family):
    pictures = negative_pictures(100, family, seed=0)
    assert {kind for _, kind in pictures} == set(KINDS[family])
    formats = set()
    for payload, _ in pictures:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
            formats.add(image.format)
            assert 28 <= image.width <= 400 and 28 <= image.height <= 400
    assert formats == {"PNG", "JPEG"}


def test_the_families_are_drawn_from_disjoint_font_files_that_ship_with_matplotlib():
    training, held_out = (set(FONT_FILES[f]) for f in FAMILIES)
    assert training and held_out and not training & held_out
    assert all((FONT_DIR / face).is_file() for face in (training | held_out) - {PILLOW_FACE})
    assert all(face.startswith("DejaVu") for face in training - {PILLOW_FACE})
    assert all(face.startswith(("STIX", "cm")) for face in held_out)
    for family in FAMILIES:  # every face listed is used, none in the other family
        assert {face for face, _, _ in negatives._glyphs(family)} == set(FONT_FILES[family])


@pytest.mark.parametrize("family", FAMILIES)
def test_no_digit_or_confusable_glyph_is_ever_drawn(family):
    alphabet = glyph_alphabet(family)
    assert len(alphabet) > 40 and "A" in alphabet and "x" in alphabet
    assert not set(alphabet) & set(CONFUSABLE + "0123456789")
    # Computer Modern draws some characters at other codes: no code drawn is a digit's either.
    assert not {text for _, _, text in negatives._glyphs(family)} & set("0123456789")
    assert set("OoQDIliJj|!ZzSsbGTB&gq") <= set(CONFUSABLE)  # the usual look-alikes of 0, 1, 2, 5-9


def test_a_symbol_drawing_one_familys_shape_is_not_a_glyph_of_the_other():
    assert "♥" in glyph_alphabet("held-out") and "♥" not in glyph_alphabet("training")
    assert "★" in glyph_alphabet("training") and "★" not in glyph_alphabet("held-out")


@pytest.mark.parametrize("family", FAMILIES)
def test_no_two_glyphs_of_a_face_look_the_same(family):
    # A face draws every glyph it lacks as the same box (or not at all): one slipping through would
    # come out as a twin of another.
    drawings = {}
    for face, char, text in negatives._glyphs(family):
        drawing = negatives._draw_text(negatives._font(face, 32), text)
        key = (face, drawing.size, drawing.tobytes())
        assert key not in drawings, f"{face}: {char!r} is drawn as {drawings.get(key)!r} is"
        drawings[key] = char


@pytest.mark.parametrize("family", FAMILIES)
def test_negative_inputs_are_count_distinct_network_inputs(family):
    inputs, kinds = negative_inputs(10, family, seed=1)
    assert inputs.shape == (10, 28, 28) and inputs.dtype == np.float32
    assert inputs.min() >= 0.0 and inputs.max() <= 1.0
    assert len(kinds) == 10 and set(kinds) <= set(KINDS[family])
    assert all(x.max() > 0.5 for x in inputs)  # each holds ink
    assert len({x.tobytes() for x in inputs}) == 10


def test_an_input_that_kept_only_a_piece_of_its_mark_is_a_fragment():
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:15] = 1.0  # a stroke 20 high and 3 wide: what is left of a 'V' or a 'Π'
    assert negatives._is_fragment(bar, mark_aspect=1.0)
    assert not negatives._is_fragment(bar, mark_aspect=20 / 3)
    assert negatives._is_fragment(np.zeros((28, 28), np.float32), mark_aspect=1.0)


def test_turning_counts_one_full_turn_for_a_circle_and_none_for_a_line():
    angles = np.linspace(0, 2 * math.pi, 200)
    assert negatives._turning(np.stack([np.cos(angles), np.sin(angles)], 1)) == pytest.approx(2 * math.pi, rel=0.02)
    assert negatives._turning(np.stack([np.arange(5.0), np.arange(5.0)], 1)) == pytest.approx(0.0)


def test_an_unknown_family_is_a_programmer_error():
    with pytest.raises(ValueError, match="training"):
        negative_pictures(1, "test", seed=0)
    with pytest.raises(ValueError):
        glyph_alphabet("test")
