"""`oddpix serve` on an exported bundle: the API's answers equal the bundle's own scores; bad input gets
a 4xx with a JSON error (never a traceback) and the service keeps answering."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

pytestmark = pytest.mark.xdist_group("service")  # one worker builds the service (and its bundle) once


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from conftest import TINY_MODELS
    from oddpix import pipeline
    from oddpix.bundle import RunBundle
    from oddpix.config import parse_params
    from oddpix.data.synthetic import write_defect_folder
    from oddpix.export import export
    from oddpix.served import ServedBundle
    from oddpix.service import ServiceLimits, create_app

    tmp = tmp_path_factory.mktemp("service")
    root = write_defect_folder(tmp / "textures", n=100, size=32, defect_share=0.3, seed=3)
    params = parse_params({"device": "cpu", "model": "patch_knn", "models": TINY_MODELS,
                           "preprocess": {"normalize": "local"},
                           "data": {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
                                    "folder": {"root": str(root), "image_size": 32, "channels": 3,
                                               "test_fraction": 0.3}}})
    pipeline.run(params, tmp / "run")  # no figures: the service needs the model, KDE and threshold
    bundle = RunBundle.read(tmp / "run/models/detector.pt", tmp / "run/models/kde.pt", tmp / "run/models/threshold.json")
    export(bundle, tmp / "bundle")
    served = ServedBundle(tmp / "bundle")
    limits = ServiceLimits(max_file_bytes=200_000, max_request_bytes=1_000_000, max_files=8, max_pixels=1_000_000)
    return TestClient(create_app(served, limits), raise_server_exceptions=False), served, root


def _png(rng, size=(40, 30)):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_scores_equal_the_bundles_and_the_page_is_served(service):
    client, served, root = service
    files = sorted((root / "defect").glob("*.png"))[:3] + sorted((root / "good").glob("*.png"))[:2]
    reply = client.post("/v1/score?maps=true", files=[("files", (f.name, f.read_bytes(), "image/png")) for f in files])
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["file"] for r in results] == [f.name for f in files]
    want = served.predict_files(files)
    for r, w in zip(results, want):
        assert r["score"] == pytest.approx(w.score, rel=1e-9) and r["anomaly"] == w.anomaly
        assert r["p_value"] == pytest.approx(w.p_value) and set(r["components"]) == set(w.components)
        heat = Image.open(io.BytesIO(__import__("base64").b64decode(r["map_png"])))
        assert heat.size == (32, 32)
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/v1/info").json()
    assert info["detector"] == "patch_knn" and info["maps"] is True
    page = client.get("/")
    assert page.status_code == 200 and "/v1/score" in page.text and "drop" in page.text.lower()


def test_hostile_uploads_get_a_4xx_with_a_json_error(service):
    client, _, _ = service
    rng = np.random.default_rng(0)
    good = _png(rng)
    truncated = good[: len(good) // 2]
    sixteen = io.BytesIO()
    Image.fromarray(rng.integers(0, 65535, (20, 20), dtype=np.uint16)).save(sixteen, format="PNG")
    flat = io.BytesIO()  # 1.2 million pixels (beyond max_pixels) in a few kilobytes
    Image.new("L", (1200, 1000)).save(flat, format="PNG")
    huge = flat.getvalue()
    assert len(huge) < 200_000
    mixed = client.post("/v1/score", files=[("files", ("ok.png", good, "image/png")),
                                            ("files", ("cut.png", truncated, "image/png")),
                                            ("files", ("deep.png", sixteen.getvalue(), "image/png")),
                                            ("files", ("huge.png", huge, "image/png")),
                                            ("files", ("empty.png", b"", "image/png"))])
    assert mixed.status_code == 200
    by_name = {r["file"]: r for r in mixed.json()["results"]}
    assert "score" in by_name["ok.png"] and "score" in by_name["deep.png"]  # 16-bit images are scaled
    assert "not a readable image" in by_name["cut.png"]["error"]
    assert "pixels" in by_name["huge.png"]["error"] and "empty" in by_name["empty.png"]["error"]
    cases = {
        "only bad": client.post("/v1/score", files=[("files", ("x.png", b"not an image", "image/png"))]),
        "no files": client.post("/v1/score", files=[("other", ("x.png", good, "image/png"))]),
        "not a form": client.post("/v1/score", content=good, headers={"content-type": "image/png"}),
        "too big": client.post("/v1/score", files=[("files", ("big.png", b"0" * 300_000, "image/png"))]),
        "too many": client.post("/v1/score", files=[("files", (f"{i}.png", good, "image/png")) for i in range(9)]),
        "no maps": None,
    }
    expected = {"only bad": 400, "no files": 422, "not a form": 415, "too big": 413, "too many": 413}
    for name, status in expected.items():
        reply = cases[name]
        assert reply.status_code == status, (name, reply.status_code, reply.text)
        assert "error" in reply.json() and "Traceback" not in reply.text
    assert client.get("/healthz").status_code == 200  # still answering


def test_a_request_that_scores_too_long_gets_a_503(service):
    from oddpix.service import ServiceLimits, create_app

    _, served, root = service
    slow = TestClient(create_app(served, ServiceLimits(max_seconds=1e-6)), raise_server_exceptions=False)
    image = sorted((root / "good").glob("*.png"))[0]
    reply = slow.post("/v1/score", files=[("files", (image.name, image.read_bytes(), "image/png"))])
    assert reply.status_code == 503 and "longer than" in reply.json()["error"]
    assert slow.get("/healthz").status_code == 200


def test_concurrent_requests_are_all_answered(service):
    client, served, _ = service
    rng = np.random.default_rng(1)
    images = [_png(rng) for _ in range(6)]

    def one(i):
        return client.post("/v1/score", files=[("files", (f"{i}.png", images[i % 6], "image/png"))]).json()

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(one, range(24)))
    scores = [r["results"][0]["score"] for r in replies]
    for i, s in enumerate(scores):  # the same image, the same score, whatever ran beside it
        assert s == pytest.approx(scores[i % 6], rel=1e-6)


def test_the_page_in_a_real_browser_scores_a_dropped_image_and_draws_its_overlay(service, tmp_path):
    """Headless chromium (Debian's chromium and chromium-driver; .ci/run installs them) on a live server."""
    import shutil
    import socket
    import threading
    import time

    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromium-driver are not installed (apt install chromium chromium-driver)")
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from oddpix.service import create_app

    _, served, root = service
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(served), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                               options=options)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 30).until(lambda b: "detector patch_knn" in b.find_element(By.ID, "info").text)
        images = sorted((root / "defect").glob("*.png"))[:2] + sorted((root / "good").glob("*.png"))[:2]
        browser.find_element(By.ID, "pick").send_keys("\n".join(str(f) for f in images))
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-done"))
        cards = browser.find_elements(By.CSS_SELECTOR, ".card")
        assert len(cards) == 4
        shown = [float(c.find_element(By.CSS_SELECTOR, ".score").text) for c in cards]
        assert shown == sorted(shown, reverse=True)  # sorted by score
        want = {p.file.split("/")[-1]: p for p in served.predict_files(images)}
        for card, score in zip(cards, shown):
            assert score == pytest.approx(want[card.get_attribute("data-file")].score, rel=1e-4)
            assert card.get_attribute("data-overlay") == "drawn"  # the heat map over the image
            assert ("ANOMALOUS" in card.text) == want[card.get_attribute("data-file")].anomaly
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(10)


def _rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="reads memory from /proc")
def test_a_thousand_hostile_uploads_mixed_with_good_ones(service, tmp_path):
    """`oddpix serve` in its own process on loopback: 1,000 hostile requests among 250 good ones; every good
    image gets the bundle's score, every bad request a 4xx with a JSON error, and the memory stays flat."""
    import shutil
    import socket
    import struct
    import subprocess
    import sys
    import time
    import zlib

    import httpx

    _, served, _ = service
    rng = np.random.default_rng(7)
    goods = [_png(rng, size=(26 + i, 30 - i)) for i in range(8)]
    for i, data in enumerate(goods):
        (tmp_path / f"good{i}.png").write_bytes(data)
    want = [p.score for p in served.predict_files([tmp_path / f"good{i}.png" for i in range(8)])]

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    claims_huge = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    flat = io.BytesIO()
    Image.new("L", (1200, 1000)).save(flat, format="PNG")  # 1.2 million pixels, beyond --max-pixels
    one = goods[0]
    hostile = [  # (how it is sent, the status it must get)
        (lambda: {"files": [("files", ("noise.png", rng.bytes(500), "image/png"))]}, 400),
        (lambda: {"files": [("files", ("cut.png", one[: len(one) // 3], "image/png"))]}, 400),
        (lambda: {"files": [("files", ("empty.png", b"", "image/png"))]}, 400),
        (lambda: {"files": [("files", ("huge.png", claims_huge, "image/png"))]}, 400),
        (lambda: {"files": [("files", ("flat.png", flat.getvalue(), "image/png"))]}, 400),
        (lambda: {"files": [("files", ("page.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png"))]}, 400),
        (lambda: {"files": [("files", ("big.png", b"0" * 300_000, "image/png"))]}, 413),
        (lambda: {"files": [("files", (f"{i}.png", one, "image/png")) for i in range(9)]}, 413),
        (lambda: {"content": one, "headers": {"content-type": "image/png"}}, 415),
        (lambda: {"files": [("other", ("x.png", one, "image/png"))]}, 422),
        (lambda: {"content": b"--x\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nabc",  # cut off,
                  "headers": {"content-type": "multipart/form-data; boundary=x"}}, 422),  # a text field, no file
    ]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    oddpix = shutil.which("oddpix", path=str(__import__("pathlib").Path(sys.executable).parent))
    proc = subprocess.Popen([oddpix, "serve", "--bundle", str(served.path), "--port", str(port), "--max-file-mb", "0.2",
                             "--max-files", "8", "--max-pixels", "1000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            statuses, rss = [], []
            for i in range(1250):
                if i % 5 == 4:  # a good image
                    k = (i // 5) % 8
                    reply = client.post("/v1/score", files=[("files", (f"good{k}.png", goods[k], "image/png"))])
                    assert reply.status_code == 200, reply.text
                    assert reply.json()["results"][0]["score"] == pytest.approx(want[k], rel=1e-6)
                else:
                    make, status = hostile[(i - i // 5) % len(hostile)]
                    reply = client.post("/v1/score", **make())
                    assert reply.status_code == status, (i, reply.status_code, reply.text)
                    assert "error" in reply.json() and "Traceback" not in reply.text
                    statuses.append(reply.status_code)
                if i in (249, 1249):
                    rss.append(_rss_mb(proc.pid))
            assert client.get("/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"service memory after 250 requests {rss[0]:.1f} MB, after 1,250 {rss[1]:.1f} MB")
    assert len(statuses) == 1000 and set(statuses) == {400, 413, 415, 422}
    assert rss[1] - rss[0] < 20, f"the service grew from {rss[0]:.0f} MB to {rss[1]:.0f} MB over 1,000 requests"
