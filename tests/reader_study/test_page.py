"""The reading page in a real headless browser: Debian's chromium driven by Selenium through
/usr/bin/chromedriver (tests/reader_study/install-debian.sh; Selenium Manager downloads nothing).

Without the browser these tests skip, unless SSIMRECON_REQUIRE_BROWSER=1 (set by .ci/run), which
turns the skip into a failure.

Scripted readers answer from the key (which a real reader never has): they complete the session,
reload it midway, export the CSV through the browser's download, and ``ssimrecon reader-study
analyze`` must give back what they were scripted to prefer.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from ssimrecon.cli import main
from ssimrecon.reader_study.design import CRITERION_KEYS
from ssimrecon.reader_study.images import decode_data_uri, to_uint8
from tests.helpers.reader_study import (
    READER_METHODS,
    synthetic_method_image,
    write_synthetic_session,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _unavailable(reason: str) -> None:
    if os.environ.get("SSIMRECON_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SSIMRECON_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(tmp_path: Path, downloads: Path) -> Iterator[WebDriver]:
    """Headless chromium with its own profile; downloads go to ``downloads`` without asking."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.is_file() or shutil.which(str(program)) is None:
            _unavailable(f"{program} not found (bash tests/reader_study/install-debian.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


# ------------------------------------------------------------------------------- the readers
def _text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _start(driver: WebDriver, reader: str) -> None:
    driver.find_element(By.ID, "reader-id").send_keys(reader)
    driver.find_element(By.ID, "start-button").click()


def _plan(key: pd.DataFrame, reader: str) -> dict[str, dict]:
    """What a scripted reader answers in each trial: the position of the method it prefers and
    its scores per position (from the key, which only the script sees).

    R1 prefers Net-mse-dssim in first readings unless their sequence is a multiple of 3, repeats
    its first answer at the first repeat and changes its mind at the second; R2 prefers
    Net-mse-dssim where the sequence is even. The preferred image gets 4 on every criterion, the
    other one 2 (R1) or 3 (R2)."""
    by_trial = {t: rows for t, rows in key.sort_values("sequence").groupby("trial", sort=False)}
    favourites: dict[str, str] = {}
    repeats = 0
    for trial, rows in by_trial.items():
        sequence, original = int(rows["sequence"].iloc[0]), rows["repeat_of"].iloc[0]
        if reader == "R2":
            favourites[trial] = READER_METHODS[int(sequence % 2 == 0)]
        elif not original:
            favourites[trial] = READER_METHODS[int(sequence % 3 != 0)]
        else:
            repeats += 1
            same = favourites[original]
            favourites[trial] = (
                same if repeats == 1 else next(m for m in READER_METHODS if m != same)
            )
    plan = {}
    for trial, rows in by_trial.items():
        method_at = dict(zip(rows["position"], rows["method"]))
        position = next(p for p, m in method_at.items() if m == favourites[trial])
        other = 2 if reader == "R1" else 3
        scores = {p: (4 if p == position else other) for p in method_at}
        plan[trial] = {
            "position": position,
            "scores": scores,
            "sequence": int(rows["sequence"].iloc[0]),
        }
    return plan


def _answer_by_keyboard(driver: WebDriver, answer: dict) -> None:
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_LEFT if answer["position"] == "A" else Keys.ARROW_RIGHT)
    for _criterion in CRITERION_KEYS:
        for position in ("A", "B"):
            body.send_keys(str(answer["scores"][position]))
    body.send_keys(Keys.ENTER)


def _answer_by_mouse(driver: WebDriver, answer: dict) -> None:
    driver.find_element(By.CSS_SELECTOR, f".choice[data-position={answer['position']}]").click()
    for criterion in CRITERION_KEYS:
        for position in ("A", "B"):
            value = answer["scores"][position]
            selector = (
                f".score[data-criterion={criterion}][data-position={position}]"
                f"[data-value='{value}']"
            )
            driver.find_element(By.CSS_SELECTOR, selector).click()
    driver.find_element(By.ID, "next").click()


def _wait_for_download(folder: Path, name: str, timeout: float = 20) -> Path:
    path = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"no download {name} in {sorted(p.name for p in folder.iterdir())}")


def _selected(driver: WebDriver) -> tuple[str, dict[tuple[str, str], str]]:
    """The choice and the scores the page shows as selected for the current trial."""
    choice = driver.find_elements(By.CSS_SELECTOR, ".choice.selected")
    scores = {
        (b.get_attribute("data-criterion"), b.get_attribute("data-position")): b.get_attribute(
            "data-value"
        )
        for b in driver.find_elements(By.CSS_SELECTOR, ".score.selected")
    }
    return (choice[0].get_attribute("data-position") if choice else ""), scores


def test_scripted_readers_complete_reload_export_and_analyze_gives_their_preferences(
    tmp_path: Path, browser: WebDriver, downloads: Path
) -> None:
    made = write_synthetic_session(tmp_path, trials=8, repeats=2)
    key = pd.read_csv(made["key"], dtype={"repeat_of": str}, keep_default_na=False)
    n_trials = key["trial"].nunique()
    browser.get(made["html"].as_uri())
    assert browser.find_element(By.ID, "start").is_displayed()
    _start(browser, "R1")
    plan = _plan(key, "R1")
    order = sorted(plan, key=lambda t: plan[t]["sequence"])
    half = n_trials // 2
    for trial in order[:half]:
        _answer_by_keyboard(browser, plan[trial])
    assert _text(browser, "progress-text") == (
        f"Trial {half + 1} of {n_trials} · {half} of {n_trials} answered"
    )

    browser.refresh()  # midway: nothing is lost, the session resumes where it was
    assert _text(browser, "progress-text") == (
        f"Trial {half + 1} of {n_trials} · {half} of {n_trials} answered"
    )
    browser.find_element(By.TAG_NAME, "body").send_keys("p")
    choice, scores = _selected(browser)
    earlier = plan[order[half - 1]]
    assert choice == earlier["position"]
    assert scores == {(c, p): str(earlier["scores"][p]) for c in CRITERION_KEYS for p in ("A", "B")}
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    for trial in order[half:]:
        _answer_by_keyboard(browser, plan[trial])
    assert browser.find_element(By.ID, "done").is_displayed()
    browser.find_element(By.ID, "export-done").click()
    name = f"reader-study-{made['session']}-R1.csv"
    first = _wait_for_download(downloads, name)

    browser.find_element(By.ID, "review").click()  # back at trial 1; a second reader takes over
    browser.find_element(By.ID, "switch-reader").click()
    _start(browser, "R2")
    assert _text(browser, "progress-text") == f"Trial 1 of {n_trials} · 0 of {n_trials} answered"
    plan2 = _plan(key, "R2")
    for trial in sorted(plan2, key=lambda t: plan2[t]["sequence"]):
        _answer_by_mouse(browser, plan2[trial])
    browser.find_element(By.ID, "export-done").click()
    second = _wait_for_download(downloads, f"reader-study-{made['session']}-R2.csv")

    exported = pd.read_csv(first)
    assert len(exported) == 2 * n_trials and set(exported["complete"]) == {1}
    assert (exported["seconds"] >= 0).all()

    out = tmp_path / "results"
    code = main(
        [
            "reader-study",
            "analyze",
            str(first),
            str(second),
            "--key",
            str(made["key"]),
            "--csv",
            str(out / "rs.csv"),
            "--md",
            str(out / "rs.md"),
            "--png",
            str(out / "rs.png"),
        ]
    )
    assert code == 0
    results = pd.read_csv(out / "rs.csv", keep_default_na=False)
    preference = results[results["analysis"] == "preference"].set_index("reader")
    firsts = key[key["repeat_of"] == ""].drop_duplicates("trial")
    for reader, script in (("R1", plan), ("R2", plan2)):
        wins = sum(
            dict(zip(key[key["trial"] == t]["position"], key[key["trial"] == t]["method"]))[
                script[t]["position"]
            ]
            == READER_METHODS[1]
            for t in firsts["trial"]
        )
        row = preference.loc[reader]
        assert (row["method"], row["versus"]) == (READER_METHODS[1], READER_METHODS[0])
        assert int(row["n"]) == len(firsts)
        assert float(row["estimate"]) == pytest.approx(wins / len(firsts))
    # R1 by rule: Net-mse-dssim unless the sequence is a multiple of 3
    r1_wins = sum(int(s) % 3 != 0 for s in firsts["sequence"])
    assert float(preference.loc["R1", "estimate"]) == pytest.approx(r1_wins / len(firsts))
    consistency = results[(results["analysis"] == "consistency") & (results["reader"] == "R1")]
    choice_row = consistency[consistency["criterion"] == "choice"].iloc[0]
    assert int(choice_row["n"]) == 2 and float(choice_row["estimate"]) == pytest.approx(0.5)
    likert = results[(results["analysis"] == "likert") & (results["reader"] == "R2")]
    assert set(likert["n"].astype(int)) == {len(firsts)}
    assert (out / "rs.png").stat().st_size > 0 and "## Preference" in (out / "rs.md").read_text()


def _png_chunks(uri: str) -> list[str]:
    raw = base64.b64decode(uri.split(",", 1)[1])
    chunks, at = [], 8
    while at < len(raw):
        (length,) = struct.unpack(">I", raw[at : at + 4])
        chunks.append(raw[at + 4 : at + 8].decode("ascii"))
        at += 12 + length
    return chunks


def test_nothing_on_the_page_tells_which_method_is_which(
    tmp_path: Path, browser: WebDriver, downloads: Path
) -> None:
    """Names (methods, subjects, slices) appear nowhere: not in the file, its name, the DOM, the
    alt texts, the browser's storage or the export; the images carry no metadata; the order is
    balanced; and each position shows the image the key says."""
    made = write_synthetic_session(tmp_path, trials=8, repeats=2)
    trials, shown = made["trials"], made["shown"]
    html = made["html"].read_text()
    uris = DATA_URI.findall(html)
    assert len(uris) == 3 * len(trials)  # reference + two reconstructions per trial
    for uri in uris:
        assert _png_chunks(uri) in (["IHDR", "IDAT", "IEND"], ["IHDR", "IDAT", "IDAT", "IEND"])
    browser.get(made["html"].as_uri())
    _start(browser, "R1")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_RIGHT)
    for _ in range(6):
        body.send_keys("3")
    body.send_keys(Keys.ENTER)
    storage = browser.execute_script(
        "return Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k)).join('\\n')"
    )
    alts = {img.get_attribute("alt") for img in browser.find_elements(By.TAG_NAME, "img")}
    assert alts == {"Reference image", "Reconstruction A", "Reconstruction B"}
    browser.find_element(By.ID, "export").click()
    exported = _wait_for_download(downloads, f"reader-study-{made['session']}-R1.csv")
    texts = {
        "file": DATA_URI.sub("", html),
        "dom": DATA_URI.sub("", browser.page_source),
        "storage": storage,
        "export": exported.read_text(),
        "names": " ".join(p.name for p in made["html"].parent.rglob("*")) + " " + exported.name,
    }
    secrets = [*READER_METHODS, "mse", "dssim", "zero", "filled"]
    secrets += sorted({t.subject for t in trials})
    for where, text in texts.items():
        for secret in secrets:
            assert secret.lower() not in text.lower(), (where, secret)
    assert sorted(p.name for p in made["html"].parent.iterdir()) == ["reader-study.html"]

    # the page shows at each position exactly what the key says, in a balanced order
    data = re.search(r'id="session-data">(.*?)</script>', html, re.S).group(1)
    assert str(trials[0].slice) not in re.sub(r"[0-9a-f]{8,}", "", DATA_URI.sub("", data))
    sides = []
    for n, trial in enumerate(trials):
        view = shown[(trial.subject, trial.slice)]
        expected = [to_uint8(view.reference, 1.0)] + [
            to_uint8(synthetic_method_image(view.reference, READER_METHODS.index(m)), 1.0)
            for m in trial.methods
        ]
        for uri, image in zip(uris[3 * n : 3 * n + 3], expected):
            np.testing.assert_array_equal(decode_data_uri(uri), image)
        if not trial.repeat_of:
            sides.append(trial.methods[0])
    assert sides.count(READER_METHODS[0]) == sides.count(READER_METHODS[1]) == len(sides) // 2


def test_zoom_follows_a_click_on_every_image(tmp_path: Path, browser: WebDriver) -> None:
    made = write_synthetic_session(tmp_path, trials=2, repeats=0, tasks=("choice",))
    browser.get(made["html"].as_uri())
    _start(browser, "R1")
    assert not browser.find_element(By.ID, "likert").is_displayed()
    images = browser.find_elements(By.CSS_SELECTOR, ".viewport img")
    assert all(img.value_of_css_property("transform") == "none" for img in images)
    viewport = browser.find_elements(By.CSS_SELECTOR, ".viewport")[1]
    webdriver.ActionChains(browser).move_to_element_with_offset(viewport, 0, 0).click().perform()
    transforms = {img.value_of_css_property("transform") for img in images}
    assert transforms == {"matrix(3, 0, 0, 3, 0, 0)"}  # zoom x3 (the session's zoom)
    origins = {
        browser.execute_script("return arguments[0].style.transformOrigin", img) for img in images
    }
    assert len(origins) == 1  # every image zooms on the same place: the click, at the centre
    x, y = (float(v.rstrip("%")) for v in origins.pop().split())
    assert abs(x - 50) < 2 and abs(y - 50) < 2
    browser.find_element(By.TAG_NAME, "body").send_keys("z")
    assert all(img.value_of_css_property("transform") == "none" for img in images)
    assert browser.find_element(By.ID, "next").get_attribute("disabled") == "true"
    browser.find_element(By.TAG_NAME, "body").send_keys("b")
    assert browser.find_element(By.ID, "next").get_attribute("disabled") is None


def test_a_reader_id_that_is_not_an_id_is_refused(tmp_path: Path, browser: WebDriver) -> None:
    made = write_synthetic_session(tmp_path, trials=2, repeats=0)
    browser.get(made["html"].as_uri())
    _start(browser, "Dr. Jane Doe")
    assert browser.find_element(By.ID, "start").is_displayed()
    assert "reader id" in _text(browser, "start-error")
    assert browser.execute_script("return localStorage.length") == 0
