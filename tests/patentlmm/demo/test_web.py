"""The Gradio web demo, driven end to end in headless Chromium (Debian chromium)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from patentlmm.demo.web import MAX_UPLOAD_SIZE, build_app  # noqa: E402
from processing import build_prompt  # noqa: E402

FIG8 = "US20250204297A1__8"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chromium(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "Debian chromium and chromium-driver are installed by scripts/install.sh"
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _uploads(folder) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file())


def test_upload_a_figure_in_chromium_and_read_the_description_back(tiny, figures, tmp_path, monkeypatch):
    """One browser session: a real figure is described; a non-image named .png and a 1 x 30000 strip (a 900-megapixel
    square once padded) get the package's own message, not Gradio's generic one; no upload is left on disk; a body
    over the upload cap is refused by the server (HTTP 413)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    uploads = tmp_path / "gradio-uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))  # read when the components are built
    model, processor = tiny
    path = figures[FIG8]["path"]
    words, boxes = processor.ocr(path)
    inputs = processor(images=[path], text=[build_prompt("brief")], ocr_words=[words], ocr_boxes=[boxes])
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    expected = processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :])[0]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are my notes, not a drawing")
    strip = tmp_path / "strip.png"
    Image.new("1", (1, 30_000), 1).save(strip)

    port = _free_port()
    app = build_app(model, processor, max_new_tokens=6)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               max_file_size=MAX_UPLOAD_SIZE)  # fmt: skip
    driver = _chromium(tmp_path / "chromium-profile")
    messages = {}
    try:
        wait = WebDriverWait(driver, 120)

        def present(selector: str):
            return wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))

        def upload_and_describe(file) -> None:
            driver.get(f"http://127.0.0.1:{port}/")
            present("#figure input[type=file]").send_keys(str(file))
            present(f'#figure td.filename[aria-label="{file.name}"]')  # the upload is done
            driver.find_element(By.CSS_SELECTOR, "#describe").click()

        upload_and_describe(path)
        textbox = driver.find_element(By.CSS_SELECTOR, "#description textarea")
        wait.until(lambda _: textbox.get_attribute("value"))
        present("#overlay img")
        description = textbox.get_attribute("value")
        driver.save_screenshot(str(tmp_path / "web_demo.png"))
        for file, wanted in ((not_an_image, "is not an image"), (strip, "padded to a square")):
            upload_and_describe(file)
            wait.until(lambda d, wanted=wanted: wanted in d.find_element(By.TAG_NAME, "body").text)
            messages[file.name] = driver.find_element(By.TAG_NAME, "body").text
        left = _uploads(uploads)
        too_big = _post_upload(port, 21 * 1024 * 1024)
    finally:
        driver.quit()
        app.close()
    assert description == expected
    assert "notes.png is not an image that Pillow can read" in messages["notes.png"]
    assert "Image 'strip.png' is 1x30000: padded to a square it is 30000x30000 = 900,000,000" in messages["strip.png"]
    assert not any("upstream app has raised an exception" in text.lower() for text in messages.values())
    assert not [name for name in left if name in (path.name, "notes.png", "strip.png")], left
    assert too_big == 413
    with Image.open(tmp_path / "web_demo.png") as screenshot:
        assert screenshot.size[0] >= 1000


def _post_upload(port: int, size: int) -> int:
    """Status of a multipart upload of `size` bytes to the app's upload route."""
    import urllib.error
    import urllib.request

    boundary = "patentlmm-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/gradio_api/upload", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# ---------------------------------------------------------------------------------------------- load

LOAD_IDS = sorted(f"US20250204297A1__{n}" for n in range(1, 17))  # 16 distinct real figures


def _launch(app) -> int:
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               max_file_size=MAX_UPLOAD_SIZE)  # fmt: skip
    return port


class _InFlight:
    """The real `generate_batch`, counting how many calls run at once (the most is `peak`); `gate` holds them."""

    def __init__(self, generate):
        import threading

        self.generate, self.running, self.peak, self.calls = generate, 0, 0, 0
        self.lock, self.gate = threading.Lock(), threading.Event()
        self.gate.set()

    def __call__(self, *args, **kwargs):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            assert self.gate.wait(120), "the test never opened the gate"
            return self.generate(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


def _rss_mib() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_sixteen_concurrent_uploads_from_loopback_clients_each_get_their_figures_description(
    tiny, figures, tmp_path, monkeypatch
):
    """16 gradio_client clients on 127.0.0.1 upload 16 different real figures at once: every response is that
    figure's own description and numerals, the model runs one request at a time, memory stays bounded, and no
    upload is left in Gradio's upload folder."""
    import concurrent.futures

    from gradio_client import Client, handle_file

    import patentlmm.demo.web as web
    from patentlmm.evaluation.numerals import extract_references
    from patentlmm.evaluation.visualize import highlight_numerals
    from patentlmm.inference.generation import generate_batch
    from processing import load_image

    uploads = tmp_path / "gradio-uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    model, processor = tiny
    expected = {}
    for image_id in LOAD_IDS:
        (figure,) = processor.prepare([load_image(figures[image_id]["path"], processor.max_image_pixels)])
        text = generate_batch(model, processor, [figure], build_prompt("brief"), 4)[0]
        numerals = highlight_numerals(text, extract_references(" ".join(figure.ocr_words)))
        expected[image_id] = (text, numerals, figure.image.size)
    in_flight = _InFlight(generate_batch)
    monkeypatch.setattr(web, "generate_batch", in_flight)
    app = build_app(model, processor, max_new_tokens=4)
    port = _launch(app)
    before = _rss_mib()

    def ask(image_id: str):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "client"))
        try:
            return client.predict(handle_file(str(figures[image_id]["path"])), "brief", api_name="/describe")
        finally:
            client.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(len(LOAD_IDS)) as pool:
            futures = {image_id: pool.submit(ask, image_id) for image_id in LOAD_IDS}
            answers = {image_id: future.result(timeout=240) for image_id, future in futures.items()}
        after = _rss_mib()
    finally:
        app.close()
    assert {i: answers[i][0] for i in LOAD_IDS} == {i: expected[i][0] for i in LOAD_IDS}
    numerals = {i: [(entry["token"], entry["class_or_confidence"]) for entry in answers[i][2]] for i in LOAD_IDS}
    assert numerals == {i: [tuple(pair) for pair in expected[i][1]] for i in LOAD_IDS}
    overlays = {}
    for image_id in LOAD_IDS:
        with Image.open(answers[image_id][1]) as overlay:
            overlays[image_id] = overlay.size
    assert overlays == {i: expected[i][2] for i in LOAD_IDS} and len(set(overlays.values())) == 16  # 16 sizes
    assert in_flight.calls == 16 and in_flight.peak == 1
    assert after - before < 1024, f"the server grew by {after - before:.0f} MiB"
    left = [path for path in uploads.rglob("*") if path.is_file() and path.name in {f"{i}.png" for i in LOAD_IDS}]
    assert not left


def test_a_full_queue_refuses_at_once_and_the_accepted_requests_complete(tiny, figures, tmp_path, monkeypatch):
    """With one request running (held) and `max_queue=2` waiting, five more clients are refused at once with
    Gradio's queue-full error; once the held one is released, the three accepted ones get their descriptions."""
    from gradio_client import Client, handle_file

    import patentlmm.demo.web as web
    from patentlmm.inference.generation import generate_batch

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-uploads"))
    model, processor = tiny
    in_flight = _InFlight(generate_batch)
    in_flight.gate.clear()
    monkeypatch.setattr(web, "generate_batch", in_flight)
    app = build_app(model, processor, max_new_tokens=2, max_queue=2)
    port = _launch(app)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "client"))
    path = handle_file(str(figures[FIG8]["path"]))
    try:
        jobs = [client.submit(path, "brief", api_name="/describe")]
        for _ in range(600):  # the first request reaches the model (60 s at most)
            if in_flight.running:
                break
            time.sleep(0.1)
        jobs += [client.submit(path, "brief", api_name="/describe") for _ in range(7)]
        refused = []
        for job in jobs[1:]:  # the queued ones stay pending, the refused ones end at once
            with contextlib.suppress(Exception):
                job.result(timeout=3)
            if job.done():
                refused.append(job)
        in_flight.gate.set()
        accepted = [job for job in jobs if job not in refused]
        results = [job.result(timeout=120) for job in accepted]
    finally:
        in_flight.gate.set()
        client.close()
        app.close()
    assert len(refused) == 5 and len(accepted) == 3
    for job in refused:
        with pytest.raises(Exception, match="(?i)queue is full"):
            job.result(timeout=1)
    assert len({result[0] for result in results}) == 1 and in_flight.peak == 1
