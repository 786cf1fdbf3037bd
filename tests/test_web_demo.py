"""The Gradio web demo, driven end to end in headless Chromium (Debian chromium)."""

from __future__ import annotations

import os
import shutil
import socket

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from PIL import Image  # noqa: E402

from patentlmm.web_demo import build_app  # noqa: E402
from processing import build_prompt  # noqa: E402

FIG8 = "US20250204297A1__8"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_upload_a_figure_in_chromium_and_read_the_description_back(tiny, figures, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMIUM and CHROMEDRIVER, "Debian chromium and chromium-driver are installed by scripts/install.sh"
    model, processor = tiny
    path = figures[FIG8]["path"]
    words, boxes = processor.ocr(path)
    inputs = processor(images=[path], text=[build_prompt("brief")], ocr_words=[words], ocr_boxes=[boxes])
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    expected = processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :])[0]

    port = _free_port()
    app = build_app(model, processor, max_new_tokens=6)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)

        def present(selector: str):
            return wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))

        present("#figure input[type=file]").send_keys(str(path))
        present("#figure img")
        driver.find_element(By.CSS_SELECTOR, "#describe").click()
        textbox = driver.find_element(By.CSS_SELECTOR, "#description textarea")
        wait.until(lambda _: textbox.get_attribute("value"))
        present("#overlay img")
        description = textbox.get_attribute("value")
        driver.save_screenshot(str(tmp_path / "web_demo.png"))
    finally:
        driver.quit()
        app.close()
    assert description == expected
    with Image.open(tmp_path / "web_demo.png") as screenshot:
        assert screenshot.size[0] >= 1000
