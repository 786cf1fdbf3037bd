"""The Gradio web demo, driven end to end in headless Chromium (Debian chromium)."""

from __future__ import annotations

import os
import shutil
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

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
