"""The HTTP API and the page (draw a digit, or for other data sets classify a picture): a Starlette
app, served by uvicorn (`lenet serve`).

POST /predict         one image: an upload (raw image/* body or multipart field "file") or JSON
                      {"image": 28x28 numbers in [0, 1]}; ?top_k=K, ?include_input=1
POST /predict/batch   several: multipart files or JSON {"images": [...]}
POST /read            a picture of a number (raw image/* body or one multipart file): its digits; ?top_k=K,
                      ?include_input=1 (models of digits only)
GET  /health, GET /model, GET / (the drawing page, static files under /static)

Everything from outside is checked before it reaches the network: body size, content type,
image dimensions, array shape and values, query parameters (decoding). Bad input is a 4xx JSON
{"error": ...} (refusals). Only the server's own names (Host) and pages (Origin) are served, unless
told otherwise (access). Each request has deadlines for its headers, its body and its answer, and
the server bounds on the requests it holds, counted from their headers so that slow clients keep no
one out; requests that break HTTP/1.1's framing are refused and their connections closed
(connections); every limit and its default is in limits. Concurrent requests are grouped into one
forward pass by a single inference worker (worker). The app and its routes, and `serve`, are in app.

This file imports nothing, so that `from lenet.serving.limits import Limits` (where the CLI finds the
defaults of its serve options) loads neither the web server nor torch.
"""
