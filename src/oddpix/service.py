"""``oddpix serve``: an exported bundle (:mod:`oddpix.served`) behind HTTP, on FastAPI (no PyTorch).

* ``POST /v1/score`` (multipart form, one or more ``files``): JSON with one entry per image, in the order
  sent: ``file``, ``score``, ``components``, ``p_value``, ``anomaly``, ``threshold`` (or ``error`` for an
  image that cannot be read); ``?maps=true`` adds each image's anomaly map as a base64 PNG (``map_png``,
  for detectors with maps; one colour scale for the request's images). 400 when no image could be read, 413 beyond the bounds, 415 for a body that is
  not a multipart form, 422 without files.
* ``GET /v1/info``: the detector, its input, components and threshold. ``GET /healthz``.
* ``GET /``: a page where a person drops images and sees each one with its heat-map overlay, score,
  p-value and decision, sorted by score, with the threshold.

Bounds (``ServiceLimits``): bytes per upload and per request, images per request, pixels per image
(checked before decoding), seconds of scoring per request (503 beyond; scoring runs in a worker thread, so
health checks and other requests are answered meanwhile). Bad input gets a 4xx with a JSON ``error``; an unexpected failure a 500 with
a JSON error and no traceback; the service keeps answering.
"""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from .errors import OddpixError
from .predictions import MAX_ASPECT, Prediction, decide, resize_note
from .served import ServedBundle


@dataclass(frozen=True)
class ServiceLimits:
    max_file_bytes: int = 16 * 1024 ** 2
    max_request_bytes: int = 64 * 1024 ** 2
    max_files: int = 64
    max_pixels: int = 25_000_000
    max_seconds: float = 60.0  # scoring one request longer than this answers 503 (the service goes on)
    max_aspect: float | None = MAX_ASPECT  # refuse an image the resize distorts more than this (as predict)


def _map_png(m: np.ndarray, top: float) -> str:
    """An anomaly map as a base64 PNG: inferno colours, black = 0, white = ``top`` (the largest value of
    the request's maps, so a quiet normal image stays dark beside an anomaly)."""
    from PIL import Image

    from .figures import pyplot

    scaled = m / max(top, 1e-12)
    rgb = (pyplot().get_cmap("inferno")(np.clip(scaled, 0, 1))[..., :3] * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(bundle: ServedBundle, limits: ServiceLimits = ServiceLimits()) -> FastAPI:
    app = FastAPI(title="oddpix", docs_url=None, redoc_url=None)
    thr = bundle.threshold

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(_request, exc):  # never a traceback to the client
        return error(500, f"internal error ({type(exc).__name__})")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "detector": bundle.detector, "model_id": bundle.manifest.get("model_id")}

    @app.get("/v1/info")
    def info():
        return {"detector": bundle.detector, "model_id": bundle.manifest.get("model_id"),
                "input": bundle.manifest["input"], "components": bundle.components, "maps": bundle.has_maps,
                "threshold": {"rule": thr.rule, "component": thr.component, "describe": thr.describe()},
                "limits": limits.__dict__}

    @app.get("/", response_class=HTMLResponse)
    def page():
        return resources.files("oddpix").joinpath("service_page.html").read_text()

    @app.post("/v1/score")
    async def score(request: Request, maps: bool = False):
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            return error(415, "send the images as a multipart form (field 'files')")
        size = int(request.headers.get("content-length") or 0)
        if size > limits.max_request_bytes:
            return error(413, f"the request is {size:,} bytes; at most {limits.max_request_bytes:,}")
        try:
            form = await request.form(max_files=limits.max_files, max_fields=limits.max_files + 8)
        except Exception as exc:  # starlette's parser raises its own types for broken or oversized forms
            message = str(exc) or type(exc).__name__
            status = 413 if "maximum number" in message.lower() or "too many" in message.lower() else 400
            return error(status, f"not a readable multipart form ({message})")
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            return error(422, "no images: send them in the multipart field 'files'")
        if maps and not bundle.has_maps:
            return error(400, f"model {bundle.detector} has no anomaly maps")
        results, pixels, good = [], [], []
        for upload in uploads:
            data = await upload.read(limits.max_file_bytes + 1)
            entry = {"file": upload.filename or ""}
            if len(data) > limits.max_file_bytes:
                return error(413, f"{entry['file']}: more than {limits.max_file_bytes:,} bytes")
            try:
                note = resize_note(data, (bundle.height, bundle.width), limits.max_aspect)
                pixels.append(bundle.read(data, limits.max_pixels))
                if note:
                    entry["note"] = note
                good.append(len(results))
            except OddpixError as exc:
                entry["error"] = str(exc)
            results.append(entry)
        if not good:
            return JSONResponse({"results": results, "error": "no image could be read"}, status_code=400)
        try:  # in a worker thread: the service keeps answering other requests meanwhile
            comps, anomaly_maps = await asyncio.wait_for(run_in_threadpool(bundle.score, np.stack(pixels)),
                                                         limits.max_seconds)
        except asyncio.TimeoutError:
            return error(503, f"scoring took longer than {limits.max_seconds:g} s; send fewer images at once")
        except OddpixError as exc:
            return error(422, str(exc))
        decided = [Prediction(file=entry["file"]) for entry in results]
        decide(decided, good, comps, thr)
        top = float(np.abs(anomaly_maps).max()) if maps else 0.0
        for j, i in enumerate(good):
            p = decided[i]
            if p.error:  # scored NaN: the model is broken, the image is not "normal"
                results[i]["error"] = p.error
                continue
            results[i].update(score=p.score, anomaly=p.anomaly, p_value=p.p_value, components=p.components,
                              threshold=thr.describe())
            if maps:
                results[i]["map_png"] = _map_png(anomaly_maps[j], top)
        return {"detector": bundle.detector, "results": results}

    return app


def serve(bundle_dir: str, host: str = "127.0.0.1", port: int = 8000, limits: ServiceLimits = ServiceLimits()) -> None:
    import uvicorn

    uvicorn.run(create_app(ServedBundle(bundle_dir), limits), host=host, port=port, log_level="info",
                timeout_keep_alive=5)
