"""The web UI in a real browser: Debian's chromium, headless, driven by selenium.

Run by `tests/it/ui.rs` as `python3 browser.py HEARTH_BIN MODEL_FILE SCREENS_DIR`. It starts a
loopback hub that serves the default model's file (in chunks, so a download shows progress),
a `hearth serve` whose catalog has the model twice (one path entry, one to download from the
hub), and a second server that requires an API key; then it drives each page as a person
would and writes a screenshot of each under SCREENS_DIR. Every wait polls the page or the
API for a state (never a fixed sleep); any failure raises with what the page showed.
"""

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

HEARTH, MODEL, SCREENS = sys.argv[1], sys.argv[2], sys.argv[3]
PULLED = "smollm2-pulled"
WAIT = 240  # seconds a state may take on a loaded 2-core machine before the test fails

os.makedirs(SCREENS, exist_ok=True)


class Hub(http.server.BaseHTTPRequestHandler):
    """Serves MODEL at /org/repo/resolve/main/model.gguf, 1 MiB at a time, with a short pause
    between pieces so that the page's progress bar has something to show."""

    def do_GET(self):
        if not self.path.startswith("/org/repo/resolve/main/model.gguf"):
            self.send_error(404)
            return
        size = os.path.getsize(MODEL)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        with open(MODEL, "rb") as f:
            while True:
                piece = f.read(1 << 20)
                if not piece:
                    break
                self.wfile.write(piece)
                # Pacing of the transfer, not synchronisation: the test waits on states.
                time.sleep(0.03)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(MODEL)))
        self.end_headers()

    def log_message(self, *args):
        pass


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def start_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def serve(home, extra_env=None, args=()):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_") and k != "HF_ENDPOINT"}
    env.update({"HEARTH_HOME": home, "HEARTH_THREADS": "2"})
    env.update(extra_env or {})
    child = subprocess.Popen(
        [HEARTH, "serve", "--port", "0", *args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    for line in child.stderr:
        seen.append(line)
        m = re.search(r"http://([^/\s]+)/v1", line)
        if m:
            threading.Thread(target=lambda: [None for _ in child.stderr], daemon=True).start()
            return child, f"http://{m.group(1)}"
    raise RuntimeError("the server did not start: " + "".join(seen))


def get_json(url, key=None):
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def browser():
    options = Options()
    options.binary_location = os.environ.get("HEARTH_TEST_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--force-prefers-reduced-motion"):
        options.add_argument(arg)
    service = Service(os.environ.get("HEARTH_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def until(driver, what, check, timeout=WAIT):
    """Polls `check()` until it returns something truthy; fails naming `what`."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda _: check())
    except Exception as e:
        errors = [el.text for el in driver.find_elements(By.CSS_SELECTOR, ".error") if el.text]
        raise AssertionError(f"waiting for {what}: {e!r}; errors on the page: {errors}") from None


def shot(driver, name):
    driver.save_screenshot(os.path.join(SCREENS, f"{name}.png"))


def by_id(driver, id_):
    found = driver.find_elements(By.ID, id_)
    return found[0] if found else None


def send_chat(driver, text):
    box = driver.find_element(By.ID, "chat-input")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "chat-send").click()


def answers(driver):
    return driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")


def test_chat(driver, base):
    driver.get(base + "/#chat")
    until(driver, "the model list", lambda: len(Select(driver.find_element(By.ID, "chat-model")).options) > 0)
    Select(driver.find_element(By.ID, "chat-model")).select_by_value("smollm2-135m")
    driver.find_element(By.ID, "chat-temperature").clear()
    driver.find_element(By.ID, "chat-temperature").send_keys("0")
    mt = driver.find_element(By.ID, "chat-max-tokens")
    mt.clear()
    mt.send_keys("48")
    send_chat(driver, "Name three uses of a **local** language model.")
    figures = until(driver, "the answer's figures",
                    lambda: driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .figures"))
    answer = answers(driver)[-1]
    text = answer.find_element(By.CSS_SELECTOR, ".answer").text
    assert text.strip(), "the answer is empty"
    tps = float(figures[-1].get_attribute("data-tokens-per-second"))
    ttft = float(figures[-1].get_attribute("data-ttft-ms"))
    assert tps > 0 and ttft > 0, (tps, ttft)
    assert "computed" in figures[-1].text and "TTFT" in figures[-1].text, figures[-1].text
    # A second turn reuses the first: its prompt is partly cached on the server.
    send_chat(driver, "And one more?")
    until(driver, "the second answer's figures",
          lambda: len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .figures")) >= 2)
    second = driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .figures")[-1].text
    cached = int(re.search(r"(\d+) cached", second).group(1))
    assert cached > 0, second
    # Kept in the browser: the conversation is listed.
    assert Select(driver.find_element(By.ID, "chat-history")).options, "conversation not kept"
    # Markdown from the model is rendered as elements, never as HTML from the model: the
    # page holds no element the model could have named.
    assert not driver.find_elements(By.CSS_SELECTOR, ".answer script, .answer img, .answer iframe")
    shot(driver, "chat")
    # JSON schema mode: the answer parses and has the schema's required key.
    driver.find_element(By.ID, "chat-json").click()
    send_chat(driver, "Answer in JSON: what is the capital of France?")
    until(driver, "the JSON answer's figures",
          lambda: len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .figures")) >= 3)
    text = answers(driver)[-1].find_element(By.CSS_SELECTOR, ".answer").text
    assert "answer" in json.loads(text), text
    driver.find_element(By.ID, "chat-json").click()
    # The same page in the dark, as a system set to dark shows it.
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    shot(driver, "chat-dark")
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "light"}]})


def test_stop(driver, base):
    driver.find_element(By.ID, "chat-new").click()
    mt = driver.find_element(By.ID, "chat-max-tokens")
    mt.clear()
    mt.send_keys("3000")
    # Stop while the answer streams; should the model end a short answer first, ask again.
    for attempt in range(3):
        send_chat(driver, "Count from 1 to 1000, one number per line.")
        until(driver, "the long answer to start",
              lambda: len(answers(driver)[-1].find_element(By.CSS_SELECTOR, ".answer").text) > 20)
        stop = driver.find_element(By.ID, "chat-stop")
        if stop.is_enabled():
            stop.click()
            break
        until(driver, "the short answer's end", lambda: driver.find_element(By.ID, "chat-send").is_enabled())
    else:
        raise AssertionError("three answers ended before Stop could be pressed")
    until(driver, "the stopped answer's figures", lambda: any(
        f.get_attribute("data-finish") == "stopped"
        for f in driver.find_elements(By.CSS_SELECTOR, ".msg.assistant .figures")))

    def slot_free():
        models = get_json(base + "/api/ps")["models"]
        return all(m["active"] == 0 for m in models) and models

    until(driver, "the slot to be freed (/api/ps active 0)", slot_free, timeout=60)


def test_models(driver, base):
    driver.get(base + "/#models")
    button = until(driver, "the Download button", lambda: driver.find_elements(
        By.CSS_SELECTOR, f"button[aria-label='Download {PULLED}']"))
    button[0].click()
    bar = until(driver, "the progress bar to move", lambda: [
        p for p in driver.find_elements(By.ID, f"pull-{PULLED}")
        if float(p.get_attribute("value") or 0) > 0])
    shot(driver, "models-download")
    assert float(bar[0].get_attribute("max")) >= os.path.getsize(MODEL) * 0.99
    until(driver, "the download to finish", lambda: driver.find_elements(
        By.CSS_SELECTOR, f"button[aria-label='Load {PULLED}']"))
    cache = get_json(base + "/api/cache")["models"]
    pulled = [m for m in cache if m["alias"] == PULLED]
    assert pulled and pulled[0]["sha256"] == sha256(MODEL), cache
    driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Load {PULLED}']").click()
    until(driver, "the model to load", lambda: driver.find_elements(By.CSS_SELECTOR, f"[data-loaded='{PULLED}']"))
    assert any(m["model"] == PULLED for m in get_json(base + "/api/ps")["models"])
    # The catalog's filter: only downloaded models.
    driver.find_element(By.ID, "models-cached").click()
    shown = [e.get_attribute("data-alias") for e in driver.find_elements(By.CSS_SELECTOR, "[data-alias]")]
    assert PULLED in shown and "qwen2.5-0.5b" not in shown, shown
    driver.find_element(By.ID, "models-cached").click()
    # And by size: a 1.1 GB model is not "up to 500 MB".
    Select(driver.find_element(By.ID, "models-size")).select_by_value("500000000")
    shown = [e.get_attribute("data-alias") for e in driver.find_elements(By.CSS_SELECTOR, "[data-alias]")]
    assert "smollm2-135m" in shown and "qwen2.5-1.5b" not in shown, shown
    Select(driver.find_element(By.ID, "models-size")).select_by_value("")
    shot(driver, "models")
    driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Unload {PULLED}']").click()
    until(driver, "the model to unload", lambda: not driver.find_elements(
        By.CSS_SELECTOR, f"[data-loaded='{PULLED}']"))
    assert not any(m["model"] == PULLED for m in get_json(base + "/api/ps")["models"])
    # A quantisation variant of the pulled model, made as a job; it joins the catalog.
    Select(driver.find_element(By.CSS_SELECTOR, f"select[aria-label='Variant type for {PULLED}']")).select_by_value("Q4_0")
    driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Make variant of {PULLED}']").click()
    until(driver, "the variant job to end", lambda: [
        p for p in driver.find_elements(By.CSS_SELECTOR, "#models-jobs p") if p.get_attribute("data-status") != "running"])
    done = driver.find_element(By.CSS_SELECTOR, "#models-jobs p")
    assert done.get_attribute("data-status") == "done", done.text
    until(driver, "the variant in the catalog", lambda: driver.find_elements(
        By.CSS_SELECTOR, f"[data-alias='{PULLED}@q4_0']"))
    shot(driver, "models-variant")


def test_side_by_side(driver, base):
    driver.get(base + "/#chat")
    until(driver, "the second picker", lambda: any(
        o.get_attribute("value") == PULLED for o in Select(driver.find_element(By.ID, "chat-model-b")).options))
    driver.find_element(By.ID, "chat-new").click()
    Select(driver.find_element(By.ID, "chat-model")).select_by_value("smollm2-135m")
    Select(driver.find_element(By.ID, "chat-model-b")).select_by_value(PULLED)
    mt = driver.find_element(By.ID, "chat-max-tokens")
    mt.clear()
    mt.send_keys("32")
    send_chat(driver, "What is a prompt cache?")
    until(driver, "both columns to answer", lambda: len(driver.find_elements(
        By.CSS_SELECTOR, "#chat-columns .column .msg.assistant .figures")) >= 2)
    headers = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#chat-columns .column > h2")]
    assert headers == ["smollm2-135m", PULLED], headers
    shot(driver, "chat-side-by-side")


def run_bench_job(driver, base):
    driver.get(base + "/#bench")
    until(driver, "the model boxes", lambda: driver.find_elements(By.CSS_SELECTOR, "#bench-models input"))
    for box in driver.find_elements(By.CSS_SELECTOR, "#bench-models input"):
        if (box.get_attribute("value") == "smollm2-135m") != box.is_selected():
            box.click()
    for id_, value in (("bench-levels", "1,2"), ("bench-rounds", "1"), ("bench-requests", "2"),
                       ("bench-max-tokens", "12")):
        el = driver.find_element(By.ID, id_)
        el.clear()
        el.send_keys(value)
    before = len(get_json(base + "/api/jobs")["jobs"])
    driver.find_element(By.ID, "bench-start").click()
    job = until(driver, "the job to start", lambda: len(get_json(base + "/api/jobs")["jobs"]) > before
                and get_json(base + "/api/jobs")["jobs"][0]["id"])
    end = until(driver, "the job to end", lambda: by_id(driver, f"job-{job}-end"))
    assert end.get_attribute("data-status") == "done", end.text
    # The page drew the progress the job's events carried: every planned request done.
    bars = driver.find_elements(By.CSS_SELECTOR, f"#job-{job} progress")
    assert bars, "no progress bar"
    for bar in bars:
        value, top = float(bar.get_attribute("value")), float(bar.get_attribute("max"))
        assert value == top and value >= 4, (value, top)
    link = until(driver, "the run link", lambda: by_id(driver, f"job-{job}-run"))
    return job, link


def test_bench_and_runs(driver, base):
    first, _ = run_bench_job(driver, base)
    job, link = run_bench_job(driver, base)
    shot(driver, "bench")
    run = link.get_attribute("href").split("#runs/")[1]
    link.click()
    frame = until(driver, "the run's report", lambda: by_id(driver, "runs-report"))
    assert "hearth report" in frame.get_attribute("srcdoc"), "not a report"
    assert frame.get_attribute("sandbox") == "", "the report frame must be sandboxed"
    shot(driver, "runs-report")
    # Multi-run view: both runs selected.
    runs = [r["run"]["id"] for r in get_json(base + "/api/runs")["runs"]]
    assert run in runs and len(runs) >= 2, runs
    for box in driver.find_elements(By.CSS_SELECTOR, "#runs-table input[type=checkbox]"):
        if box.get_attribute("data-run") in runs[:2] and not box.is_selected():
            box.click()
    driver.find_element(By.ID, "runs-multi").click()
    until(driver, "the multi-run report", lambda: by_id(driver, "runs-report") and
          "Multi-run" in driver.find_element(By.CSS_SELECTOR, "#runs-view h2").text)
    shot(driver, "runs")
    driver.find_element(By.ID, "runs-compare").click()
    verdict = until(driver, "the compare verdict", lambda: by_id(driver, "runs-verdict"))
    assert verdict.text, "empty verdict"
    shot(driver, "runs-compare")
    # Annotate one run: score every answer 4, with a comment on the first.
    for box in driver.find_elements(By.CSS_SELECTOR, "#runs-table input[type=checkbox]"):
        if box.is_selected() and box.get_attribute("data-run") != run:
            box.click()
    driver.find_element(By.ID, "runs-annotate").click()
    scores = until(driver, "the answers to score", lambda: driver.find_elements(By.CSS_SELECTOR, ".annotate-score"))
    for s in scores:
        Select(s).select_by_value("4")
    driver.find_element(By.CSS_SELECTOR, "[aria-label='Comment on answer 1']").send_keys("clear enough")
    name = driver.find_element(By.ID, "annotate-annotator")
    name.clear()
    name.send_keys("browser-test")
    driver.find_element(By.ID, "annotate-save").click()
    status = until(driver, "the scores to be stored", lambda: by_id(driver, "annotate-status").text)
    # A row stands for every stored answer with its text (rounds and levels alike).
    stored = int(re.search(r"Stored (\d+) score", status).group(1))
    assert stored >= len(scores), (status, len(scores))
    report = urllib.request.urlopen(f"{base}/api/report?runs={run}&format=json", timeout=60).read()
    assert b"browser-test" in report, "the human scores are not in the run's report"
    shot(driver, "runs-annotate")


def test_server_page(driver, base):
    driver.get(base + "/#server")
    until(driver, "figures from /metrics", lambda: by_id(driver, "fig-requests") and
          int(by_id(driver, "fig-requests").text) > 0)
    # Traffic while the page watches: its tokens/s figure and charts follow it.
    body = json.dumps({"model": "smollm2-135m", "max_tokens": 64, "temperature": 0,
                       "messages": [{"role": "user", "content": "Tell me about lighthouses."}]}).encode()

    def traffic():
        for _ in range(4):
            req = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=120).read()

    senders = [threading.Thread(target=traffic) for _ in range(2)]
    for sender in senders:
        sender.start()
    until(driver, "tokens per second from the traffic", lambda: float(by_id(driver, "fig-tps").text) > 0)
    for sender in senders:
        sender.join()
    until(driver, "a TTFT quantile", lambda: "ms" in by_id(driver, "fig-ttft").text)
    until(driver, "charts with several samples", lambda: all(
        int(c.get_attribute("data-points")) >= 3 for c in driver.find_elements(By.CSS_SELECTOR, "#server-charts .chart")))
    shot(driver, "server")


def test_key(driver, base, key):
    driver.get(base + "/#models")
    dialog = until(driver, "the key dialog", lambda: [d for d in driver.find_elements(By.ID, "key-dialog")
                                                      if d.get_attribute("open") is not None])
    shot(driver, "key")
    box = driver.find_element(By.ID, "key-input")
    box.send_keys("not-the-key")
    driver.find_element(By.ID, "key-use").click()
    until(driver, "the wrong key to be refused", lambda: "refused" in by_id(driver, "key-error").text)
    box.clear()
    box.send_keys(key)
    driver.find_element(By.ID, "key-use").click()
    until(driver, "the catalog behind the key", lambda: driver.find_elements(By.CSS_SELECTOR, "[data-alias]"))
    assert dialog[0].get_attribute("open") is None
    # Kept for this tab only: sessionStorage, not localStorage.
    assert driver.execute_script("return sessionStorage.getItem('hearth.apiKey')") == key
    assert driver.execute_script("return localStorage.getItem('hearth.apiKey')") is None


def main():
    hub = start_hub()
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as keyed_home:
        models = {"models": [
            {"alias": "smollm2-135m", "path": MODEL, "capabilities": ["chat"]},
            {"alias": PULLED, "capabilities": ["chat"], "license": "apache-2.0",
             "source": {"repo": "org/repo", "file": "model.gguf"}, "sha256": sha256(MODEL)},
        ]}
        for h in (home, keyed_home):
            with open(os.path.join(h, "models.json"), "w") as f:
                json.dump(models, f)
        key_file = os.path.join(keyed_home, "key")
        with open(key_file, "w") as f:
            f.write("s3cret-key\n")
        server, base = serve(home, {"HF_ENDPOINT": hub}, ["--parallel", "2"])
        keyed, keyed_base = serve(keyed_home, {"HF_ENDPOINT": hub}, ["--api-key-file", key_file])
        driver = browser()
        try:
            for name, test in (
                ("chat", lambda: test_chat(driver, base)),
                ("stop", lambda: test_stop(driver, base)),
                ("models", lambda: test_models(driver, base)),
                ("side by side", lambda: test_side_by_side(driver, base)),
                ("bench and runs", lambda: test_bench_and_runs(driver, base)),
                ("server", lambda: test_server_page(driver, base)),
                ("key", lambda: test_key(driver, keyed_base, "s3cret-key")),
            ):
                began = time.monotonic()
                try:
                    test()
                except Exception:
                    shot(driver, f"failed-{name.replace(' ', '-')}")
                    raise
                print(f"ok: {name} ({time.monotonic() - began:.1f} s)", flush=True)
            # Scripts raised nothing; the only failed loads are the keyed server's 401s, which
            # are how the page learns it needs the key.
            logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                    and not (e["source"] == "network" and "(Unauthorized)" in e["message"])]
            assert not logs, f"errors in the browser console: {logs}"
        finally:
            driver.quit()
            for child in (server, keyed):
                child.terminate()
                child.wait(timeout=60)


if __name__ == "__main__":
    main()
