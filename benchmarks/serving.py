"""Serving an exported bundle: images per second and latency, the bundle (onnxruntime) against PyTorch.

For each detector (``cae`` and ``patch_knn`` by default, params.yaml's settings with fewer epochs: the
cost of scoring does not depend on how well a model learnt), on generated 28x28 data (``--n-train``
training images, the speed of a memory-bank detector depends on their number):

1. the pipeline runs in this process up to the export stage (the bundle in ``models/bundle``);
2. ``--images`` test images are written as PNG files, then scored from their files
   * by ``oddpix predict`` with PyTorch (the run's models) and with the bundle, in this process: the whole
     folder in one call (images / s, best of ``--repeats``) and one file per call (latency p50 / p99);
   * by ``oddpix serve --bundle`` (uvicorn, a process of its own) on loopback: 1, 8 and 32 clients, each
     POSTing one image per request on a kept-alive connection, ``--requests`` requests per level
     (bounded), images / s and latency p50 / p99; then batches of 32 images per request; every answer is
     checked against the bundle's in-process score; the service's peak resident memory.

Run:

    python benchmarks/serving.py                        # cae and patch_knn, 6,000 training images
    python benchmarks/serving.py --models cae --requests 200

The figures go to --page (docs/results/serving.md) with the command and the machine, the raw numbers to
--record (benchmarks/results/serving.json).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

from oddpix import pipeline
from oddpix.config import parse_params, read_raw_params
from oddpix.data.synthetic import pattern_dataset, write_idx_folder
from oddpix.io import write_json, write_text

LEVELS = (1, 8, 32)
BATCH = 32
QUICK = {"cae": {"epochs": 2}}  # scoring cost does not depend on the training's length


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))


def multipart(files: list[Path], boundary: str = "oddpixbenchboundary") -> tuple[bytes, str]:
    parts = []
    for f in files:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{f.name}\"\r\n"
                     f"Content-Type: image/png\r\n\r\n".encode() + f.read_bytes() + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def train_and_export(model: str, work: Path, mirror: Path) -> Path:
    raw = read_raw_params("params.yaml")
    raw["device"] = "cpu"
    raw["model"] = model
    raw["data"].update(mirror=str(mirror), checksums="mirror", download=False)
    raw["models"][model].update(QUICK.get(model, {}))
    run = work / model
    pipeline.run(parse_params(raw), run, export=True)
    return run


def time_in_process(score, files: list[Path], folder: Path, repeats: int, singles: int) -> dict:
    """``score(paths)``: the whole folder per call (images / s) and one file per call (latency)."""
    score([files[0]])  # warm-up
    best = min(_timed(lambda: score([folder])) for _ in range(repeats))
    single = [_timed(lambda f=f: score([f])) for f in files[:singles]]
    return {"images_per_s": len(files) / best, "single_p50_ms": percentile_ms(single, 50),
            "single_p99_ms": percentile_ms(single, 99)}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load_level(port: int, bodies: list[tuple[bytes, str]], clients: int, requests: int,
               expected: list[list[float]]) -> dict:
    """``clients`` threads, each on its own kept-alive connection, share ``requests`` POSTs (body i % len)."""
    latencies: list[float] = []
    wrong: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body, ctype = bodies[i % len(bodies)]
            start = time.perf_counter()
            conn.request("POST", "/v1/score", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            payload = resp.read()
            took = time.perf_counter() - start
            scores = [r["score"] for r in json.loads(payload)["results"]] if resp.status == 200 else None
            want = expected[i % len(bodies)]
            with lock:
                latencies.append(took)
                if scores is None or not np.allclose(scores, want, rtol=1e-6, atol=0):
                    wrong.append(f"request {i}: status {resp.status}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    images = sum(len(expected[i % len(bodies)]) for i in range(requests))
    return {"clients": clients, "requests": requests, "images_per_s": images / wall,
            "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99), "wrong": len(wrong)}


def serve_and_load(bundle: Path, files: list[Path], scores: dict[str, float], requests: int) -> dict:
    port = free_port()
    oddpix = shutil.which("oddpix", path=str(Path(sys.executable).parent)) or "oddpix"
    proc = subprocess.Popen([oddpix, "serve", "--bundle", str(bundle), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise click.ClickException("the service did not start: " + proc.stderr.read().decode()[-500:])
        idle_mb = peak_rss_mb(proc.pid)
        singles = [multipart([f]) for f in files]
        single_scores = [[scores[f.name]] for f in files]
        levels = [load_level(port, singles, c, requests, single_scores) for c in LEVELS]
        batches = [files[i:i + BATCH] for i in range(0, len(files) - BATCH + 1, BATCH)]
        batched = load_level(port, [multipart(b) for b in batches], 1, max(4, requests // BATCH),
                             [[scores[f.name] for f in b] for b in batches])
        return {"levels": levels, "batch": {**batched, "images_per_request": BATCH},
                "idle_rss_mb": idle_mb, "peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def write_images(run: Path, out: Path, n: int) -> list[Path]:
    from PIL import Image

    from oddpix.io import read_npz

    split = read_npz(run / "data/split/test.npz")
    x = split["x"][:n]
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, img in enumerate(x):
        path = out / f"{i:04d}.png"
        Image.fromarray(np.asarray(img[..., 0] if img.ndim == 3 else img, dtype=np.uint8)).save(path)
        files.append(path)
    return files


def page(results: list[dict], command: str, machine: str, n_train: int, n_images: int) -> str:
    lines = ["<!-- generated by benchmarks/serving.py (--page-only rebuilds it from --record); do not edit -->", "",
             "# Serving an exported bundle", "",
             f"Generated 28x28 grayscale images: params.yaml's settings (cae: 2 epochs), {n_train:,} training "
             f"images of the normal class (patch_knn compares with the windows of its nearest ones), {n_images} "
             "test images as PNG files. "
             "Scoring them from their files: `oddpix predict` with PyTorch (the run's models) against the "
             "exported bundle (onnxruntime, no PyTorch), in one process, and the bundle behind `oddpix serve` "
             "(uvicorn, one process) on loopback with 1, 8 and 32 concurrent clients, one image per request, "
             "then 32 images per request. Every answer of the service was checked against the bundle's score.",
             "", f"Command: `{command}`", "", f"Machine: {machine}", ""]
    lines += ["| detector | PyTorch predict img/s | bundle predict img/s | ratio | PyTorch 1 image p50 / p99 ms "
              "| bundle 1 image p50 / p99 ms |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        t, b = r["pytorch"], r["bundle"]
        lines.append(f"| {r['model']} | {t['images_per_s']:.0f} | {b['images_per_s']:.0f} | "
                     f"{b['images_per_s'] / t['images_per_s']:.2f} | {t['single_p50_ms']:.1f} / {t['single_p99_ms']:.1f} "
                     f"| {b['single_p50_ms']:.1f} / {b['single_p99_ms']:.1f} |")
    lines += ["", "| detector | clients | images / request | requests | img/s | p50 ms | p99 ms | wrong answers |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r["service"]
        for lv in [*s["levels"], s["batch"]]:
            lines.append(f"| {r['model']} | {lv['clients']} | {lv.get('images_per_request', 1)} | {lv['requests']} | "
                         f"{lv['images_per_s']:.0f} | {lv['p50_ms']:.1f} | {lv['p99_ms']:.1f} | {lv['wrong']} |")
    lines += ["", "| detector | service memory idle / peak (MB) | bundle size (MB) |", "|---|---:|---:|"]
    for r in results:
        s = r["service"]
        lines.append(f"| {r['model']} | {s['idle_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} | {r['bundle_mb']:.1f} |")
    lines += ["", "Latency is the client's: from sending the request to reading the whole answer, on the same "
              "machine as the service (the clients take CPU from it). `oddpix predict` with PyTorch pads every "
              "batch to `score.batch_size` (512) images, so that an image's score does not depend on which "
              "other images are scored with it (to the last digit, as the score stage gave it): one image costs "
              "a batch there. The bundle's graph takes any batch size and agrees with the pipeline within 1e-5."]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--models", default="cae,patch_knn", show_default=True)
@click.option("--n-train", default=6000, show_default=True, help="generated training images (a tenth validation)")
@click.option("--images", "n_images", default=256, show_default=True, help="test images scored")
@click.option("--requests", default=320, show_default=True, help="requests per concurrency level")
@click.option("--repeats", default=3, show_default=True)
@click.option("--singles", default=50, show_default=True, help="one-file calls timed per path (latency)")
@click.option("--page", "page_path", default="docs/results/serving.md", show_default=True)
@click.option("--record", default="benchmarks/results/serving.json", show_default=True)
@click.option("--page-only", is_flag=True, help="rebuild --page from --record, run nothing")
def main(models, n_train, n_images, requests, repeats, singles, page_path, record, page_only):
    if page_only:
        import json as _json

        r = _json.loads(Path(record).read_text())
        write_text(page_path, page(r["results"], r["command"], r["machine"], r["n_train"], r["images"]))
        click.echo(f"wrote {page_path} from {record}")
        return
    import torch

    from oddpix.bundle import RunBundle
    from oddpix.predict import predict_files
    from oddpix.served import ServedBundle

    work = Path(tempfile.mkdtemp(prefix="oddpix-serving-"))
    results = []
    try:
        # one class normal (params.yaml's protocol): its n_train training images; the test split has every class
        raw = pattern_dataset(n_train_per_class=n_train, n_test_per_class=max(1, n_images // 10 + 1), seed=0)
        write_idx_folder(raw, work / "mirror" / "fashion-mnist")
        for model in models.split(","):
            run = train_and_export(model, work, work / "mirror")
            files = write_images(run, work / "images" / model, n_images)
            folder = files[0].parent
            torch_scorer = RunBundle.read(run / "models/detector.pt", run / "models/kde.pt", run / "models/threshold.json")
            bundle_dir = run / "models/bundle"
            served = ServedBundle(bundle_dir)
            pytorch = time_in_process(lambda p: predict_files(torch_scorer, p), files, folder, repeats, singles)
            bundle = time_in_process(lambda p: served.predict_files(p), files, folder, repeats, singles)
            by_torch = {Path(r.file).name: r.score for r in predict_files(torch_scorer, [folder])}
            by_bundle = {Path(r.file).name: r.score for r in served.predict_files([folder])}
            diff = max(abs(by_torch[k] - by_bundle[k]) / max(abs(by_torch[k]), 1e-12) for k in by_torch)
            service = serve_and_load(bundle_dir, files, by_bundle, requests)
            size = sum(f.stat().st_size for f in bundle_dir.iterdir()) / 1e6
            results.append({"model": model, "pytorch": pytorch, "bundle": bundle, "service": service,
                            "max_relative_difference": diff, "bundle_mb": size})
            click.echo(json.dumps(results[-1]), err=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine = (f"CPU ({platform.machine()}, {os.cpu_count()} cores; torch {torch.get_num_threads()} threads, "
               f"onnxruntime default threads), Python {platform.python_version()}")
    command = "python benchmarks/serving.py" + (f" --models {models}" if models != "cae,patch_knn" else "")
    write_text(page_path, page(results, command, machine, n_train, n_images))
    write_json(record, {"command": command, "machine": machine, "n_train": n_train, "images": n_images,
                        "results": results})
    click.echo(f"wrote {page_path} and {record}")


if __name__ == "__main__":
    main()
