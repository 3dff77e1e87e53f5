"""The page in a real headless chromium: search, see results, play a moment, ask about it (a tiny
MA-LMM trained here), the keyboard, the links, the empty and error states."""

from __future__ import annotations

import pytest

from mixma.serve import ServeOptions, create_app
from mixma.serve.run import BackgroundServer
from tests.serve.browser import browser_missing, chrome, quit_chrome

missing = browser_missing()
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")

TINY_MALMM = [
    "model.small.vision_hidden=32", "model.small.qformer_hidden=32", "model.small.llm_hidden=32",
    "model.small.num_query_tokens=4", "model.memory_bank_length=2", "data.image_size=32", "data.num_frames=4",
    "run.batch_size=4", "run.eval_batch_size=8", "run.epochs=1", "optim.warmup_steps=2", "optim.lr=1e-3",
    "generate.num_beams=2", "generate.max_new_tokens=2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MA-LMM trained for a second on a tiny benchmark (its videos are what the page plays)."""
    from mixma.cli import main
    from mixma.data.synthetic import SyntheticConfig, make_benchmark

    root = tmp_path_factory.mktemp("serve-bench")
    make_benchmark(root, SyntheticConfig(videos=10, frames=100, seed=5), workers=1)
    run = root / "run"
    args = ["train", "malmm", "-o", str(run), "--set", f"data.root={root}"]
    for override in TINY_MALMM:
        args += ["--set", override]
    assert main(args) == 0
    return root, run


@pytest.fixture(scope="module")
def site(tmp_path_factory, trained):
    from mixma.inference import VideoAssistant
    from tests.serve.fake_index import FakeIndex

    root, run = trained
    index = FakeIndex(tmp_path_factory.mktemp("serve-index"))
    videos = sorted((root / "videos").glob("*.mp4"))
    index.put(videos[0], ["red circle appears", "blue square moves", "red star"])
    index.put(videos[1], ["green circle"])
    app = create_app(index, VideoAssistant.from_checkpoint(run), ServeOptions(ask_timeout_s=60))
    with BackgroundServer(app) as url:
        yield url, index


@pytest.fixture(scope="module")
def driver():
    d = chrome()
    yield d
    quit_chrome(d)


def wait(driver, condition, timeout: float = 30):  # generous: CI machines are shared
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#results .hit")


def message(driver) -> str:
    return driver.execute_script("return document.getElementById('message').textContent")


def test_search_play_and_ask(site, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, index = site
    driver.get(url)
    wait(driver, lambda d: "Type what you are looking for" in message(d))
    wait(driver, lambda d: "2 videos, 4 moments" in d.find_element(By.ID, "status").text)
    box = driver.find_element(By.ID, "q")
    assert driver.switch_to.active_element == box  # ready to type
    box.send_keys("red circle", Keys.ENTER)
    wait(driver, lambda d: len(cards(d)) == 3)
    assert driver.current_url.endswith("/?q=red+circle")
    expected = index.search("red circle", 24)
    first = cards(driver)[0]
    assert "000000.mp4" in first.text and "0:00.0 – 0:01.0" in first.text and f"score {expected[0].score:.3f}" in first.text
    assert all(c.find_element(By.TAG_NAME, "img").get_property("naturalWidth") > 0 for c in cards(driver))

    moment = next(i for i, h in enumerate(expected) if h.start > 0)  # a moment that does not start at 0
    hit = expected[moment]
    cards(driver)[moment].click()
    player = driver.find_element(By.ID, "player")
    wait(driver, lambda d: d.execute_script("return arguments[0].readyState", player) >= 1)
    src = driver.execute_script("return arguments[0].currentSrc", player)
    assert src.endswith(f"/api/videos/{hit.video_id}#t={hit.start:.3f},{hit.end:.3f}")
    def current():
        return driver.execute_script("return arguments[0].currentTime", player)

    wait(driver, lambda d: current() >= hit.start - 0.05)  # it plays from the moment...
    assert current() <= hit.end + 0.05  # ...and stops at its end
    assert cards(driver)[moment].get_attribute("aria-pressed") == "true"

    question = driver.find_element(By.ID, "question")
    question.send_keys("which colour was the star?", Keys.ENTER)
    answer = driver.find_element(By.ID, "answer")
    wait(driver, lambda d: answer.text and answer.text != "Thinking…", timeout=60)
    assert not answer.text.startswith("No answer"), answer.text
    assert "error" not in (answer.get_attribute("class") or "")


def test_keyboard_links_and_empty_results(site, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _ = site
    driver.get(url + "?q=circle")  # a link to results
    wait(driver, lambda d: len(cards(d)) == 2)
    assert driver.find_element(By.ID, "q").get_property("value") == "circle"
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    assert driver.switch_to.active_element.get_attribute("id") == "q"
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)  # the first result
    assert driver.switch_to.active_element == cards(driver)[0]
    driver.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert driver.switch_to.active_element == cards(driver)[1]
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "player-panel").is_displayed())
    assert cards(driver)[1].get_attribute("aria-pressed") == "true"

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys("submarine", Keys.ENTER)
    wait(driver, lambda d: "No moment matches “submarine”" in message(d))
    assert not cards(driver)
    driver.back()  # the previous query's results again
    wait(driver, lambda d: len(cards(d)) == 2)


def test_error_state_says_what_to_do(tmp_path, driver):
    from tests.serve.fake_index import FakeIndex

    app = create_app(FakeIndex(tmp_path), options=ServeOptions(token="s3cret"))
    with BackgroundServer(app) as url:
        driver.get(url + "?q=bike")  # no token
        wait(driver, lambda d: "Search failed" in message(d))
        assert "token" in message(driver)
        assert driver.execute_script("return document.getElementById('message').className") == "error"
        driver.get(url + "?q=bike&token=s3cret")
        wait(driver, lambda d: "No moment matches" in message(d))  # authorised: an empty index
        wait(driver, lambda d: "0 videos, 0 moments" in d.find_element("id", "status").text)


def test_upload_from_the_page(tmp_path, driver, clips):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from tests.serve.fake_index import FakeIndex

    index = FakeIndex(tmp_path)
    app = create_app(index, options=ServeOptions(allow_upload=True, upload_dir=tmp_path / "uploads"))
    with BackgroundServer(app) as url:
        driver.get(url)
        wait(driver, lambda d: d.find_element(By.ID, "upload-panel").is_displayed())
        driver.find_element(By.ID, "file").send_keys(str(clips[1]))
        driver.find_element(By.CSS_SELECTOR, "#upload button").click()
        status = driver.find_element(By.ID, "upload-status")
        wait(driver, lambda d: "is indexed" in status.text)
        assert "dog.mp4 is indexed (1 moment)" in status.text
        assert index.added and index.added[0].read_bytes() == clips[1].read_bytes()
        box = driver.find_element(By.ID, "q")
        box.send_keys("uploaded", Keys.ENTER)
        wait(driver, lambda d: len(cards(d)) == 1)  # searchable at once
        (tmp_path / "notes.txt").write_text("not a video")
        driver.find_element(By.ID, "file").clear()
        driver.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
        driver.find_element(By.CSS_SELECTOR, "#upload button").click()
        wait(driver, lambda d: "Upload failed" in status.text)
        assert "not a video file name" in status.text and "error" in status.get_attribute("class")
