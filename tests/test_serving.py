"""Tests against a real `lenet serve` process on 127.0.0.1, the drawing page in headless Chromium, and the
app called in-process (the hardening cases and the fuzzing, fast enough for many requests)."""

import asyncio
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet.inference import open_model
from lenet.pictures.inputs import image_to_input
from lenet.serving.access import Access
from lenet.serving.app import create_app
from lenet.serving.limits import Limits
from lenet.serving.worker import InferenceWorker
from lenet.testing.fuzz_requests import asgi_request, fuzz_requests

MAX_BODY = 300_000
MAX_PIXELS = 1_000_000
MAX_BATCH = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(mnist_model_dir):
    yield from _serve(mnist_model_dir[0])


@pytest.fixture(scope="module")
def fashion_server(fashion_model_dir):
    yield from _serve(fashion_model_dir[0])


def _serve(model_dir):
    """The URL of a `lenet serve` process for MODEL_DIR, until the generator is closed."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lenet.cli", "serve", "--model-dir", str(model_dir), "--port", str(port),
         "--max-body-bytes", str(MAX_BODY), "--max-image-pixels", str(MAX_PIXELS), "--max-batch", str(MAX_BATCH)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"server did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


def request(url, path, body=None, content_type=None, method=None, headers=None):
    req = urllib.request.Request(url + path, data=body, method=method or ("POST" if body is not None else "GET"))
    if content_type:
        req.add_header("Content-Type", content_type)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "lenet-test-boundary"
    parts = [(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
              f"Content-Type: image/png\r\n\r\n").encode() + payload + b"\r\n" for name, payload in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_health_and_model(server, mnist_model_dir):
    assert request(server, "/health") == (200, {"status": "ok"})
    status, info = request(server, "/model")
    assert status == 200 and info["model"] == "fast-cnn" and info["step"] == 214
    assert info["test_accuracy"] == pytest.approx(mnist_model_dir[1]["test_accuracy"])
    assert len(info["weights_sha256"]) == 64


def test_predict_an_uploaded_picture_raw_and_multipart(server):
    seven = open("examples/seven.png", "rb").read()
    status, raw = request(server, "/predict?top_k=2", seven, "image/png")
    assert status == 200 and raw["class"] == 7 and len(raw["probabilities"]) == 10
    assert [entry["class"] for entry in raw["top_k"]][0] == 7 and len(raw["top_k"]) == 2
    body, content_type = multipart([("seven.png", seven)])
    status, form = request(server, "/predict", body, content_type)
    assert status == 200 and form["class"] == 7
    assert np.allclose(form["probabilities"], raw["probabilities"], atol=1e-6)


def test_json_arrays_give_the_same_answers_as_the_library(server, mnist_model_dir, mnist):
    images = mnist.test_images[:5].float().div(255)
    expected = open_model(mnist_model_dir[0]).probabilities(images)
    status, single = request(server, "/predict", json.dumps({"image": images[0].tolist()}).encode(),
                             "application/json")
    assert status == 200 and np.allclose(single["probabilities"], expected[0], atol=1e-5)
    status, batch = request(server, "/predict/batch", json.dumps({"images": images.tolist()}).encode(),
                            "application/json")
    assert status == 200 and [p["class"] for p in batch["predictions"]] == expected.argmax(1).tolist()
    body, content_type = multipart([("a.png", open("examples/seven.png", "rb").read())] * 3)
    status, files = request(server, "/predict/batch", body, content_type)
    assert status == 200 and [p["class"] for p in files["predictions"]] == [7, 7, 7]


def _bad_inputs():
    big = png_bytes(Image.new("L", (1500, 1000), 255))  # 1.5 M pixels, compresses to a few KB
    truncated = open("examples/seven.png", "rb").read()[:120]
    seven = open("examples/seven.png", "rb").read()

    def encoded(value):
        return json.dumps(value).encode()
    deeply_nested = 0.5  # parses as JSON, but numpy arrays have at most 32 dimensions
    for _ in range(40):
        deeply_nested = [deeply_nested]
    return [
        ("wrong content type", "/predict", b"hello", "text/plain", 415),
        ("no content type", "/predict", b"hello", None, 415),
        ("not an image", "/predict", b"GIF89a this is not really a gif", "image/png", 400),
        ("truncated image", "/predict", truncated, "image/png", 400),
        ("empty body", "/predict", b"", "image/png", 400),
        ("oversized body", "/predict", b"\0" * (MAX_BODY + 1), "image/png", 413),
        ("image dimensions over the limit", "/predict", big, "image/png", 413),
        ("malformed JSON", "/predict", b'{"image": [1, 2', "application/json", 400),
        ("JSON without image", "/predict", b'{"picture": []}', "application/json", 400),
        ("JSON nested too deeply to parse", "/predict", b'{"image": ' + b"[" * 20_000, "application/json", 400),
        ("integer beyond float64's range", "/predict", encoded({"image": [[0] * 27 + [10 ** 310]] * 28}),
         "application/json", 400),
        ("JSON larger than any image", "/predict", encoded({"image": [[0.5] * 28] * 28, "x": "y" * 40_000}),
         "application/json", 413),
        ("integer of over 4,300 digits", "/predict", b'{"image": ' + b"1" * 5000 + b"}", "application/json", 400),
        ("array of more than 32 dimensions", "/predict", encoded({"image": deeply_nested}), "application/json", 400),
        ("wrong array shape", "/predict", encoded({"image": [[0.5] * 27] * 28}), "application/json", 400),
        ("ragged array", "/predict", encoded({"image": [[0.5] * 28, [0.5]]}), "application/json", 400),
        ("strings in the array", "/predict", encoded({"image": [["a"] * 28] * 28}), "application/json", 400),
        ("NaN values", "/predict", encoded({"image": [[float("nan")] * 28] * 28}), "application/json", 400),
        ("values out of range", "/predict", encoded({"image": [[3.0] * 28] * 28}), "application/json", 400),
        ("batch over the limit", "/predict/batch", encoded({"images": [[[0.0] * 28] * 28] * (MAX_BATCH + 1)}),
         "application/json", 413),
        ("empty batch", "/predict/batch", b'{"images": []}', "application/json", 400),
        ("multipart batch over the limit", "/predict/batch", *multipart([("a.png", seven)] * (MAX_BATCH + 1)), 413),
        ("multipart without a file", "/predict",
         b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n",
         "multipart/form-data; boundary=x", 400),
        ("bad top_k", "/predict?top_k=eleven", seven, "image/png", 400),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda case: case[0])
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_answering(server, case):
    _, path, body, content_type, expected_status = case
    status, payload = request(server, path, body, content_type)
    assert status == expected_status and isinstance(payload["error"], str) and payload["error"]
    assert request(server, "/health") == (200, {"status": "ok"})


def _random_json_text(rng: random.Random, depth: int = 0) -> str:
    """JSON text of any shape, weighted toward what the API reads (lists of lists of numbers), with
    what json.dumps never writes: integers of thousands of digits, deep nesting, cut-off text."""
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(["0", "1", "-1", "255", "1e999", "NaN", "-Infinity", "1" * rng.choice([20, 310, 5000]),
                           "null", "true", '"7"', '"\\u0000"', "{}", "[" * rng.choice([2, 40, 100_000])])
    if kind <= 5:
        return repr(rng.random())
    if kind <= 8:
        length = rng.choice([0, 1, 27, 28, 29, 784, 3])
        return "[" + ",".join(_random_json_text(rng, depth + 1) for _ in range(length if depth < 2 else 3)) + "]"
    return "{" + f'"{rng.choice(["image", "images", "x"])}": ' + _random_json_text(rng, depth + 1) + "}"


def _random_body(rng: random.Random, seven: bytes) -> tuple[str, bytes, str | None]:
    kind = rng.randrange(5)
    if kind == 0:  # a real picture with a few bytes changed
        body = bytearray(seven)
        for _ in range(rng.randrange(1, 20)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        return "/predict", bytes(body), rng.choice(["image/png", "image/jpeg", "image/gif"])
    if kind == 1:  # bytes of no format
        return "/predict", rng.randbytes(rng.randrange(300)), rng.choice(["image/png", "application/json", None])
    if kind == 2:  # JSON of any shape for either endpoint, sometimes cut off
        key = rng.choice(["image", "images"])
        text = f'{{"{key}": {_random_json_text(rng)}}}' if rng.random() < 0.8 else _random_json_text(rng)
        if rng.random() < 0.1:
            text = text[:rng.randrange(len(text) + 1)]
        return rng.choice(["/predict", "/predict/batch"]), text.encode(), "application/json"
    if kind == 3:  # multipart with a damaged picture or a field of another name
        name = rng.choice(["file", "other"])
        part = seven[:rng.randrange(len(seven))]
        body = (f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="a.png"\r\n\r\n'.encode()
                + part + b"\r\n--b--\r\n")
        return rng.choice(["/predict", "/predict/batch"]), body, "multipart/form-data; boundary=b"
    top_k = rng.choice(["0", "1", "10", "11", "-3", "x", "", "1e3"])
    return f"/predict?top_k={top_k}&include_input={rng.choice(['1', 'no'])}", seven, "image/png"


def test_random_requests_get_a_json_answer_and_never_a_server_error(server):
    # Seeded fuzzing: each body is valid or refused with a 4xx JSON error; request() fails on a
    # non-JSON answer such as a 500's plain-text page.
    rng = random.Random(0)
    seven = open("examples/seven.png", "rb").read()
    statuses = []
    for _ in range(150):
        path, body, content_type = _random_body(rng, seven)
        status, payload = request(server, path, body, content_type)
        assert status < 500 and (status == 200 or isinstance(payload["error"], str)), (path, body[:100], payload)
        statuses.append(status)
    assert 200 in statuses and 400 in statuses  # both kinds of answer were exercised
    assert request(server, "/health") == (200, {"status": "ok"})


def test_a_client_sending_a_body_over_the_limit_reads_the_413(server):
    # The body is read to its end and dropped before the answer: closing the connection while the
    # client still sends gives it a broken pipe instead of the error (the case of a 1.7 MB JSON batch; 8 MB here, more than the loopback socket buffers take).
    for path, content_type in (("/predict", "image/png"), ("/predict/batch", "application/json")):
        status, answer = request(server, path, b"[" + b"0," * 4_000_000 + b"0]", content_type)
        assert status == 413 and "over the limit" in answer["error"]

def test_concurrent_requests_each_get_their_own_answer(server, mnist, mnist_model_dir):
    images = mnist.test_images[:48].float().div(255)
    expected = open_model(mnist_model_dir[0]).probabilities(images)

    def ask(i):
        return request(server, "/predict?min_confidence=0", json.dumps({"image": images[i].tolist()}).encode(), "application/json")[1]

    alone = [ask(i)["probabilities"] for i in range(0, 48, 8)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, range(48)))
    for i, probabilities in zip(range(0, 48, 8), alone):
        assert np.allclose(together[i]["probabilities"], probabilities, atol=1e-5)
    assert [r["class"] for r in together] == expected.argmax(1).tolist()


def test_the_worker_never_runs_more_than_max_batch_images_at_once():
    passes = []

    def predict(inputs):
        passes.append(len(inputs))
        return np.repeat(inputs[:, :1, 0], 10, axis=1)  # each image's first pixel, ten times

    async def ask_together():
        worker = InferenceWorker(predict, max_batch=4)
        await worker.start()
        sizes = [3, 1, 2, 4, 2, 2, 1]
        requests = [np.full((n, 28, 28), i, dtype=np.float32) for i, n in enumerate(sizes)]
        answers = await asyncio.gather(*(worker(r) for r in requests))
        await worker.stop()
        return sizes, answers

    sizes, answers = asyncio.run(ask_together())
    assert [a.shape for a in answers] == [(n, 10) for n in sizes]
    assert all((a == i).all() for i, a in enumerate(answers))  # each request gets its own rows back
    assert sum(passes) == sum(sizes) and max(passes) <= 4 and len(passes) < len(sizes)  # batched, within bounds


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")
def test_drawing_a_one_on_the_page_shows_what_the_api_says(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(server + "/")
            box = page.locator("#pad").bounding_box()
            page.mouse.move(box["x"] + 140, box["y"] + 40)
            page.mouse.down()
            for y in range(40, 250, 10):  # a vertical stroke: a one
                page.mouse.move(box["x"] + 140, box["y"] + y)
            page.mouse.up()
            page.wait_for_function("window.lenet.lastResult !== null && !window.lenet.busy()", timeout=20_000)
            shown = int(page.locator("#prediction").get_attribute("data-class"))
            seen_input = page.evaluate("window.lenet.lastInput")
            bar = page.locator(f"#bar-{shown} .value").text_content()
            assert "fast-cnn" in page.locator("#model-info").text_content()
        finally:
            browser.close()
    status, api = request(server, "/predict", json.dumps({"image": seen_input}).encode(), "application/json")
    assert status == 200
    assert shown == api["class"] == 1
    assert float(bar) == pytest.approx(api["probabilities"][shown], abs=1e-3)


def _number_png(mnist, indices) -> tuple[bytes, str]:
    canvas = Image.new("L", (60 + 90 * len(indices), 140), 255)
    for position, i in enumerate(indices):
        digit = Image.fromarray(255 - mnist.test_images[i].numpy()).resize((84, 84), Image.Resampling.BICUBIC)
        canvas.paste(digit, (30 + 90 * position, 28))
    return png_bytes(canvas), "".join(str(int(mnist.test_labels[i])) for i in indices)


def test_read_gives_the_number_the_library_reads(server, mnist, mnist_model_dir):
    from lenet.predict import read_number
    payload, _ = _number_png(mnist, [0, 1, 2, 3])
    expected = read_number(open_model(mnist_model_dir[0]), payload, "upload").to_json()
    status, raw = request(server, "/read?top_k=2&include_input=1", payload, "image/png")
    assert status == 200 and raw["number"] == expected["number"] and len(raw["digits"]) == 4
    assert [d["box"] for d in raw["digits"]] == [d["box"] for d in expected["digits"]]
    assert len(raw["digits"][0]["top_k"]) == 2 and np.array(raw["digits"][0]["input"]).shape == (28, 28)
    body, content_type = multipart([("amount.png", payload)])
    status, form = request(server, "/read", body, content_type)
    assert status == 200 and form["number"] == raw["number"] and "input" not in form["digits"][0]


def test_read_with_more_inputs_than_a_pass_takes(server, mnist):
    payload, _ = _number_png(mnist, list(range(MAX_BATCH + 3)))  # the worker gets them MAX_BATCH at a time
    status, result = request(server, "/read", payload, "image/png")
    assert status == 200 and len(result["number"]) == MAX_BATCH + 3


def _bad_reads():
    dots = Image.new("L", (900, 120), 255)
    for i in range(40):
        ImageDraw.Draw(dots).rectangle((10 + 22 * i, 20, 20 + 22 * i, 100), fill=0)
    seven = open("examples/seven.png", "rb").read()
    return [
        ("forty marks", png_bytes(dots), "image/png", 400, "40 separate marks, more than the 32"),
        ("not an image", b"GIF89a not really", "image/png", 400, "not a recognised image format"),
        ("JSON", b'{"image": []}', "application/json", 415, "unsupported content type"),
        ("no content type", seven, None, 415, "unsupported content type"),
        ("oversized body", b"\0" * (MAX_BODY + 1), "image/png", 413, "over the limit"),
        ("image over the pixel limit", png_bytes(Image.new("L", (1500, 1000), 255)), "image/png", 413, "over the limit"),
        ("two files", *multipart([("a.png", seven)] * 2), 400, "/read takes one file, got 2"),
    ]


@pytest.mark.parametrize("case", _bad_reads(), ids=lambda case: case[0])
def test_bad_read_requests_get_a_4xx_json_error(server, case):
    _, body, content_type, expected_status, message = case
    status, payload = request(server, "/read", body, content_type)
    assert status == expected_status and message in payload["error"] and "\n" not in payload["error"]
    assert request(server, "/health") == (200, {"status": "ok"})


def test_random_read_requests_never_get_a_server_error(server):
    rng = random.Random(1)
    seven = open("examples/seven.png", "rb").read()
    for _ in range(60):
        path, body, content_type = _random_body(rng, seven)
        status, payload = request(server, path.replace("/predict/batch", "/read").replace("/predict", "/read"),
                                  body, content_type)
        assert status < 500 and (status == 200 or isinstance(payload["error"], str)), (body[:100], payload)


def _chromium_page(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_reads_a_chosen_picture_and_says_when_no_digit_is_found(server, mnist, tmp_path):
    from playwright.sync_api import sync_playwright
    digit = Image.fromarray(255 - mnist.test_images[0].numpy()).resize((200, 200), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (320, 240), (240, 236, 220))
    canvas.paste(digit.convert("RGB"), (90, 20))
    canvas.save(tmp_path / "photo.png")
    Image.new("L", (200, 200), 255).save(tmp_path / "blank.png")
    grid = Image.new("L", (200, 200), 255)  # a hash sign: no digit
    for x in (70, 130):
        ImageDraw.Draw(grid).line((x, 30, x, 170), fill=0, width=10)
        ImageDraw.Draw(grid).line((30, x, 170, x), fill=0, width=10)
    grid.save(tmp_path / "hash.png")
    number, truth = _number_png(mnist, [0, 1, 2])
    (tmp_path / "number.png").write_bytes(number)
    with sync_playwright() as playwright:
        browser = _chromium_page(playwright)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            done = "window.lenet.requests >= %d && !window.lenet.busy()"
            page.set_input_files("#file", str(tmp_path / "photo.png"))
            page.wait_for_function(done % 1, timeout=20_000)
            shown = int(page.locator("#prediction").get_attribute("data-class"))
            seen_input = page.evaluate("window.lenet.lastInput")
            page.set_input_files("#file", str(tmp_path / "blank.png"))
            page.wait_for_function(done % 2, timeout=20_000)
            blank_status = page.locator("#status").text_content()
            blank_prediction = page.locator("#prediction").text_content()
            page.set_input_files("#file", str(tmp_path / "hash.png"))
            page.wait_for_function(done % 3, timeout=20_000)
            hash_status = page.locator("#status").text_content()
            hash_verdict = page.locator("#prediction").get_attribute("data-verdict")
            page.check("#number-mode")
            page.set_input_files("#file", str(tmp_path / "number.png"))
            page.wait_for_function(done % 4, timeout=20_000)
            number_shown = page.locator("#prediction").text_content()
            digit_figures = page.locator("#digits figure").count()
            # Several digits drawn on the pad: two separate vertical strokes.
            page.click("#clear")
            box = page.locator("#pad").bounding_box()
            for x in (150, 400):
                page.mouse.move(box["x"] + x, box["y"] + 40)
                page.mouse.down()
                for y in range(40, 250, 10):
                    page.mouse.move(box["x"] + x, box["y"] + y)
                page.mouse.up()
            page.wait_for_function("window.lenet.lastResult !== null && !window.lenet.busy()", timeout=20_000)
            drawn = page.evaluate("window.lenet.lastResult")
        finally:
            browser.close()
    status, api = request(server, "/predict", (tmp_path / "photo.png").read_bytes(), "image/png")
    assert status == 200 and shown == api["class"] == int(mnist.test_labels[0])
    assert np.allclose(seen_input, request(server, "/predict?include_input=1", (tmp_path / "photo.png").read_bytes(),
                                           "image/png")[1]["input"], atol=1e-4)
    assert blank_status.startswith("No digit found in this picture.") and blank_prediction == "–"
    assert hash_verdict == "not a digit" and hash_status.startswith("not a digit (closest: ")
    status, read = request(server, "/read", number, "image/png")
    assert status == 200 and number_shown == read["number"] and digit_figures == len(read["number"]) == 3
    assert len(drawn["number"]) == 2 and drawn["number"] == "11"


def _product_photo(fashion, index: int) -> bytes:
    """Test image INDEX of Fashion-MNIST as a product photo: dark on an off-white backdrop, large."""
    item = Image.fromarray(255 - fashion.test_images[index].numpy()).resize((224, 224), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (320, 300), 255)
    canvas.paste(item, (48, 38))
    return png_bytes(canvas)


def test_a_model_of_clothes_answers_with_class_names_and_reads_no_numbers(fashion_server, fashion_model_dir, fashion):
    from lenet.datasets import FASHION_MNIST_CLASSES
    status, info = request(fashion_server, "/model")
    assert status == 200 and info["dataset"] == "fashion-mnist" and info["classes"] == list(FASHION_MNIST_CLASSES)
    assert info["reads_digits"] is False and len(info["dataset_sha256"]) == 4
    model = open_model(fashion_model_dir[0])
    for index in range(5):
        photo = _product_photo(fashion, index)
        status, answer = request(fashion_server, "/predict?top_k=2", photo, "image/png")
        assert status == 200 and answer["label"] == FASHION_MNIST_CLASSES[answer["class"]]
        assert [t["label"] for t in answer["top_k"]] == [FASHION_MNIST_CLASSES[t["class"]] for t in answer["top_k"]]
        expected = model.probabilities(image_to_input(photo, "photo", dataset="fashion-mnist")[None])[0]
        assert answer["class"] == int(expected.argmax())  # the clothes normalization, not the digits'
    status, refused = request(fashion_server, "/read", _product_photo(fashion, 0), "image/png")
    assert status == 400 and "not of digits" in refused["error"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")
def test_the_page_of_a_model_of_clothes_classifies_a_chosen_picture(fashion_server, fashion, tmp_path):
    from playwright.sync_api import sync_playwright
    (tmp_path / "item.png").write_bytes(_product_photo(fashion, 0))
    with sync_playwright() as playwright:
        browser = _chromium_page(playwright)
        try:
            page = browser.new_page()
            page.goto(fashion_server + "/")
            page.wait_for_function("document.body.classList.contains('pictures')", timeout=20_000)
            heading = page.locator("h1").text_content()
            number_mode_hidden = page.locator("#number-mode").is_hidden()
            bar_names = page.locator(".bar .digit").all_text_contents()
            page.set_input_files("#file", str(tmp_path / "item.png"))
            page.wait_for_function("window.lenet.requests >= 1 && !window.lenet.busy()", timeout=20_000)
            shown = page.locator("#prediction").text_content()
        finally:
            browser.close()
    status, api = request(fashion_server, "/predict", (tmp_path / "item.png").read_bytes(), "image/png")
    assert heading == "Classify a picture" and number_mode_hidden and bar_names[9] == "Ankle boot"
    assert status == 200 and shown == api["label"]


def _ask(app, path, body=b"", content_type="image/png", query=b"", headers=(), method="POST", leaves=False):
    """(status, JSON answer) of one request to APP in-process, its lifespan (the inference worker) around it."""
    async def run():
        async with app.router.lifespan_context(app):
            all_headers = [(b"content-type", content_type.encode())] if content_type else []
            return await asgi_request(app, method, path, query, all_headers + list(headers), [body], leaves)
    status, _, answer = asyncio.run(run())
    return status, json.loads(answer)


@pytest.fixture(scope="module")
def app(synthetic_model_dir):
    return create_app(synthetic_model_dir, Limits(max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS,
                                                  max_batch=MAX_BATCH))


@pytest.mark.parametrize("query", [b"top_k=%C2%B2", b"top_k=%D9%A1", b"top_k=%EF%BC%93", b"top_k=" + b"1" * 5000,
                                   b"include_input=maybe", b"include_input=", b"include_input=%C2%B9"])
def test_query_parameters_are_ascii_digits_or_known_flags_else_400(app, query):
    seven = open("examples/seven.png", "rb").read()
    status, answer = _ask(app, "/predict", seven, query=query)
    assert status == 400 and ("top_k" in answer["error"] or "include_input" in answer["error"])
    assert _ask(app, "/predict", seven, query=b"top_k=2&include_input=yes")[0] == 200


@pytest.mark.parametrize("declared, expected_status", [(b"\xb2", 400), ("\u0661".encode(), 400), (b"-1", 400),
                                                       (b"1" * 5000, 413), (b"9" * 30, 413)])
def test_a_content_length_of_no_ascii_number_is_400_and_a_huge_one_413(app, declared, expected_status):
    # Latin-1 b"\xb2" is "²": str.isdigit() passes it and int() raises, which was a 500; so was int()
    # of 5,000 digits.
    status, answer = _ask(app, "/predict", b"x", headers=[(b"content-length", declared)])
    assert status == expected_status and "\n" not in answer["error"]


@pytest.mark.parametrize("cell", ["0.5", True, False, None, [0.5]], ids=repr)
def test_json_images_of_anything_but_numbers_get_a_400(app, cell):
    image = [[0.5] * 28 for _ in range(28)]
    image[3][4] = cell  # numpy would read "0.5" and true as numbers
    status, answer = _ask(app, "/predict", json.dumps({"image": image}).encode(), "application/json")
    assert status == 400 and "[3][4]" in answer["error"]
    status, answer = _ask(app, "/predict/batch", json.dumps({"images": [image]}).encode(), "application/json")
    assert status == 400 and answer["error"].startswith("images[0]")
    flat = [cell] + [0.5] * 783
    assert _ask(app, "/predict", json.dumps({"image": flat}).encode(), "application/json")[0] == 400


def test_a_nan_in_an_answer_is_a_json_500_that_says_so(synthetic_model_dir, monkeypatch):
    # The loader refuses NaN metadata; this is the encoder's own guard, should any NaN get past it.
    import dataclasses
    import lenet.serving.app

    def damaged(source, device, precision):
        model = open_model(source, device, precision=precision)
        model.info = dataclasses.replace(model.info, test_accuracy=float("nan"))
        return model
    monkeypatch.setattr(lenet.serving.app, "open_model", damaged)
    status, answer = _ask(create_app(synthetic_model_dir), "/model", method="GET", content_type=None)
    assert status == 500 and "NaN" in answer["error"]


@pytest.mark.parametrize("side", [1001, 14_000])  # 14,000^2 is past Pillow's own bomb guard (2 x 89 M pixels)
@pytest.mark.parametrize("path", ["/predict", "/read", "/predict/batch"])
def test_pictures_over_the_pixel_limit_get_a_413(app, path, side):
    buffer = io.BytesIO()
    Image.new("1", (side, side), 1).save(buffer, format="PNG")
    status, answer = _ask(app, path, buffer.getvalue())
    assert status == 413 and "over the limit" in answer["error"]


def test_a_client_leaving_mid_body_is_answered_not_a_traceback(app):
    status, answer = _ask(app, "/predict", b"\x89PNG", leaves=True)
    assert status == 400 and "closed the connection" in answer["error"]


def test_fuzzed_requests_get_no_5xx_no_traceback_no_hang_and_no_wrong_answer(synthetic_model_dir):
    result = fuzz_requests(cases=400, seed=1, model_dir=synthetic_model_dir)
    assert {key: result[key] for key in ("tracebacks", "server_errors_5xx", "hangs", "wrong_answers")} == \
        {"tracebacks": 0, "server_errors_5xx": 0, "hangs": 0, "wrong_answers": 0}, result["failures"]
    assert {"200", "400", "413"} <= set(result["statuses"])  # good and bad requests were both exercised


@pytest.mark.parametrize("fields", [{"request_timeout_s": 0}, {"request_timeout_s": float("nan")},
                                    {"request_timeout_s": float("inf")}, {"request_timeout_s": "10"},
                                    {"max_connections": 0}, {"max_connections": True},
                                    {"max_uploads": Limits.max_connections}])
def test_server_limits_refuse_what_is_no_positive_bounded_number(fields):
    from lenet.errors import LenetError
    with pytest.raises(LenetError, match="--request-timeout-s|--max-connections"):
        Limits(**fields)


def test_predict_json_and_post_predict_give_the_same_answer_field_for_field(synthetic_model_dir, capsys):
    from lenet.cli import main
    assert main(["predict", "--model-dir", str(synthetic_model_dir), "--json", "--top-k", "3", "--precision", "fp32",
                 "examples/seven.png"]) == 0
    printed = json.loads(capsys.readouterr().out)
    app = create_app(synthetic_model_dir, precision="fp32")
    status, answer = _ask(app, "/predict", open("examples/seven.png", "rb").read(), query=b"top_k=3")
    # The command line also says which file (and which image of it) the answer is for; the rest is the same object.
    assert status == 200 and printed == {"file": "examples/seven.png", "index": None, **answer}
    assert set(answer) == {"class", "label", "verdict", "confidence", "digit_probability", "probabilities", "top_k"}


def test_blank_pictures_and_pictures_of_numbers_are_answers_with_their_verdict(server):
    blank = png_bytes(Image.new("L", (300, 100), 255))
    two = Image.new("L", (200, 100), 255)
    ImageDraw.Draw(two).ellipse((20, 15, 80, 85), outline=0, width=8)
    ImageDraw.Draw(two).line((140, 15, 140, 85), fill=0, width=8)
    status, answer = request(server, "/predict", blank, "image/png")
    assert status == 200 and answer["verdict"] == "no ink" and answer["class"] is None and answer["top_k"] == []
    status, answer = request(server, "/predict", png_bytes(two), "image/png")
    assert status == 200 and answer["verdict"] == "several digits" and answer["probabilities"] is None
    status, batch = request(server, "/predict/batch", *multipart([("blank.png", blank),
                                                                  ("seven.png", open("examples/seven.png", "rb").read())]))
    assert status == 200 and [p["verdict"] for p in batch["predictions"]] == ["no ink", "digit"]
    assert batch["predictions"][1]["class"] == 7
    status, reading = request(server, "/read", blank, "image/png")
    assert status == 200 and reading["verdict"] == "no ink" and reading["number"] is None and reading["digits"] == []


def test_min_confidence_in_the_query_string_is_checked_and_1_declines_what_0_answers(server):
    seven = open("examples/seven.png", "rb").read()
    assert request(server, "/predict?min_confidence=0", seven, "image/png")[1]["verdict"] == "digit"
    declined = request(server, "/predict?min_confidence=1", seven, "image/png")[1]
    assert declined["verdict"] in ("unsure", "not a digit") and declined["class"] is None
    assert declined["top_k"][0]["class"] == 7
    for bad in ("1.5", "-0.1", "nan", "1e-3", "x"):
        status, payload = request(server, f"/predict?min_confidence={bad}", seven, "image/png")
        assert status == 400 and payload["error"].startswith("min_confidence must be a number from 0 to 1")


def _exchange(app, method, path, headers, body=b""):
    """(status, headers, body) of one request to APP in-process, its lifespan around it."""
    async def run():
        async with app.router.lifespan_context(app):
            return await asgi_request(app, method, path, b"", headers, [body])
    return asyncio.run(run())


@pytest.mark.parametrize("host", [b"attacker.example", b"attacker.example:8000", b"127.0.0.1.attacker.example",
                                  b"localhost.attacker.example:8000"])
def test_a_request_naming_another_host_is_refused_421(app, host):
    # A page of attacker.example whose DNS name now points at 127.0.0.1 (DNS rebinding) sends Host: attacker.example.
    status, headers, body = _exchange(app, "GET", "/health", [(b"host", host)])
    assert status == 421 and "Host" in json.loads(body)["error"] and b"\n" not in body


@pytest.mark.parametrize("host", [b"127.0.0.1:8000", b"127.0.0.1", b"localhost", b"LOCALHOST:8000", b"[::1]:8000",
                                  b"[::1]", b"localhost.:1234"])
def test_the_servers_own_names_are_served_with_any_port(app, host):
    assert _exchange(app, "GET", "/health", [(b"host", host)])[0] == 200


def test_a_name_given_with_allow_host_is_served(synthetic_model_dir):
    app = create_app(synthetic_model_dir, access=Access(hosts=("digits.lan",)))
    assert _exchange(app, "GET", "/health", [(b"host", b"Digits.LAN:8000")])[0] == 200
    assert _exchange(app, "GET", "/health", [(b"host", b"other.lan:8000")])[0] == 421


def test_a_foreign_origin_is_refused_403_the_servers_own_and_an_allowed_one_are_served(synthetic_model_dir):
    app = create_app(synthetic_model_dir, access=Access(origins=("http://allowed.example:3000",)))
    seven = open("examples/seven.png", "rb").read()

    def post(origin):
        return _exchange(app, "POST", "/predict", [(b"host", b"127.0.0.1:8000"), (b"content-type", b"image/png"),
                                                   (b"origin", origin)], seven)
    # A multipart or image POST needs no preflight: without the check the page's request would be served.
    for foreign in (b"http://attacker.example", b"http://127.0.0.1:8001", b"https://127.0.0.1:8000", b"null"):
        status, _, body = post(foreign)
        assert status == 403 and "--allow-origin" in json.loads(body)["error"], foreign
    status, headers, _ = post(b"http://127.0.0.1:8000")  # the server's own page
    assert status == 200 and b"access-control-allow-origin" not in headers
    status, headers, _ = post(b"http://allowed.example:3000")
    assert status == 200 and headers[b"access-control-allow-origin"] == b"http://allowed.example:3000"
    status, headers, _ = _exchange(app, "OPTIONS", "/predict", [(b"host", b"127.0.0.1:8000"),
                                                                (b"origin", b"http://allowed.example:3000"),
                                                                (b"access-control-request-method", b"POST")])
    assert status == 204 and b"POST" in headers[b"access-control-allow-methods"]
    status, _, body = _exchange(app, "GET", "/health", [(b"host", b"127.0.0.1:8000")])  # no Origin: curl, scripts
    assert status == 200


@pytest.mark.parametrize("fields", [{"origins": ("null",)}, {"origins": ("*",)},
                                    {"origins": ("http://a.example/page",)}, {"origins": ("ftp://a.example",)},
                                    {"hosts": ("a/b",)}, {"hosts": ("",)}])
def test_access_refuses_what_is_no_origin_or_host_name(fields):
    from lenet.errors import LenetError
    with pytest.raises(LenetError, match="--allow-origin|--allow-host"):
        Access(**fields)


def test_an_answer_past_the_compute_deadline_is_503_and_abandoned_work_is_not_run(synthetic_model_dir, monkeypatch):
    import lenet.serving.app
    passes = []

    def slow(source, device, precision):
        model = open_model(source, device, precision=precision)
        scores = model.scores

        def slow_scores(inputs):
            passes.append(len(inputs))
            time.sleep(1.0)
            return scores(inputs)
        model.scores = slow_scores
        return model
    monkeypatch.setattr(lenet.serving.app, "open_model", slow)
    app = create_app(synthetic_model_dir, Limits(compute_timeout_s=0.3))
    image = json.dumps({"image": [[0.5] * 28] * 28}).encode()
    headers = [(b"content-type", b"application/json")]

    async def run():
        async with app.router.lifespan_context(app):
            first = asyncio.create_task(asgi_request(app, "POST", "/predict", b"", headers, [image]))
            await asyncio.sleep(0.1)  # the first request's pass has begun (else both are in it)
            second = await asgi_request(app, "POST", "/predict", b"", headers, [image])
            return await first, second
    for status, _, body in asyncio.run(run()):
        assert status == 503 and "--compute-timeout-s" in json.loads(body)["error"]
    assert len(passes) == 1  # the request still queued when it gave up was not computed


def test_serve_on_a_port_in_use_is_a_one_line_error_before_the_model_loads(tmp_path, capsys):
    from lenet.cli import main
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # No model there: the port is checked first, so that is not what the error says.
        assert main(["serve", "--model-dir", str(tmp_path / "no-model"), "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lenet: error:") and f":{port}" in err and "in use" in err
