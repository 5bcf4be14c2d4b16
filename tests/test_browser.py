"""The Dagster UI in a real browser: `dg dev` on a small project, driven by Playwright through Debian's Chromium.

What a user does on a fresh project: look at the dataset's lineage, materialize the whole group from the
launchpad with a short training budget typed in, read the quality scores and see a chart, see the synthetic
table's checks pass, and draw again with another sample size.

Needs `playwright` (the `test` extra) and Chromium at /usr/bin/chromium (`apt-get install chromium`;
`make test` installs it). Never `playwright install`: the system browser is used. Screenshots of each step
go to $SYNTH_BROWSER_ARTIFACTS (default .artifacts/browser/), with the `dg dev` log; with
SYNTH_UPDATE_DOCS_SCREENSHOT=1 the quality chart is also saved as docs/ui-quality.png (the README's).
A missing browser fails the test with how to install it; SYNTH_SKIP_BROWSER=1 skips it on purpose.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synth_assets.testing import write_project

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("SYNTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("SYNTH_BROWSER_ARTIFACTS") or REPO / ".artifacts" / "browser")
DOCS_SCREENSHOT = REPO / "docs" / "ui-quality.png"
DATASET = "diamonds"
STAGES = ["split", "stats", "encoded", "model", "synthetic", "quality"]
SERVER_TIMEOUT = 240  # s: `dg dev` up and the code location loaded (2 busy cores: usually about 30 s)
RUN_TIMEOUT = 240  # s: a run to finish (the group takes well under a minute on 2 cores)
UI_TIMEOUT = 60  # s: a page or element to appear
INSTALL_HINT = ("install Chromium with `apt-get update && apt-get install -y chromium` (`make test` does it) and "
                "Playwright with `pip install -e '.[test]'` (never `playwright install`: the system browser is "
                "used); or set SYNTH_SKIP_BROWSER=1 to skip the browser test on purpose")

UPDATE_DOCS = os.environ.get("SYNTH_UPDATE_DOCS_SCREENSHOT") == "1"
# the training budget typed into the group's launchpad: seconds (synth.yaml says a minute and 20 epochs, so a
# launchpad that ignored what was typed shows in the model's epochs); for the docs' screenshot, a real training
# (two minutes, as many epochs as converge), so that the chart shows what a user gets
TYPED_EPOCHS = 60 if UPDATE_DOCS else 2
GROUP_CONFIG = f"""\
ops:
  {DATASET}__model:
    config:
      max_training_time: {2.0 if UPDATE_DOCS else 0.1}
      max_epochs: {TYPED_EPOCHS}
execution:
  config:
    in_process: {{}}
"""  # in_process: one process for every step (each step's own would import torch again: twice the wall time)
SAMPLE_SIZE = 500  # synth.yaml's
RESAMPLE_SIZE = 321  # typed into the synthetic asset's launchpad


def browser_or_fail():
    """Playwright's sync API, or a failure (never a silent skip) saying how to install what is missing."""
    if os.environ.get("SYNTH_SKIP_BROWSER") == "1":
        pytest.skip("SYNTH_SKIP_BROWSER=1: the browser test is skipped on purpose")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the browser test needs the `playwright` package: {INSTALL_HINT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser test needs Chromium at {CHROMIUM}: {INSTALL_HINT}", pytrace=False)
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


GROUPS = """{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } assetGroups { groupName } } } } }"""
LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def group_page(base: str, group: str) -> str:
    """The address of an asset group's lineage page (it names the code location holding the group)."""
    repositories = graphql(base, GROUPS)["repositoriesOrError"]["nodes"]
    locations = [r["location"]["name"] for r in repositories if group in {g["groupName"] for g in r["assetGroups"]}]
    groups = sorted(g["groupName"] for r in repositories for g in r["assetGroups"])
    assert len(locations) == 1, f"asset group '{group}' in {len(locations)} code locations (groups: {groups})"
    return f"{base}/locations/{locations[0]}/asset-groups/{group}/lineage"


def wait_for_server(base: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers and every code location has loaded; a clear failure (with the end of
    the `dg dev` log) when it exits, a location fails to load, or time runs out."""
    deadline = time.monotonic() + SERVER_TIMEOUT
    state = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`dg dev` exited with {proc.returncode}; its log ends:\n{tail(log)}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=5):
                pass
            entries = graphql(base, LOCATIONS)["workspaceOrError"]["locationEntries"]
            errors = [f"{e['name']}: {e['locationOrLoadError']['message']}" for e in entries
                      if e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "PythonError"]
            if errors:
                pytest.fail("the code location failed to load in `dg dev`:\n" + "\n".join(errors), pytrace=False)
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
            state = "code location loading"
        except (urllib.error.URLError, OSError, KeyError, TypeError, ValueError) as exc:
            state = f"no answer ({exc})"
        time.sleep(1)
    pytest.fail(f"`dg dev` at {base} not ready within {SERVER_TIMEOUT}s ({state}); its log ends:\n{tail(log)}",
                pytrace=False)


@pytest.fixture
def ui_project(tmp_path, diamonds):
    """One small demo dataset (2,000 diamonds) for the UI, with a privacy gate a model of seconds passes."""
    project = tmp_path / "project"
    project.mkdir()
    diamonds.sample(2000, random_state=0).to_csv(project / f"{DATASET}.csv", index=False)
    return write_project(project, f"""
        datasets:
          {DATASET}:
            backend: tabular_argn
            tables:
              {DATASET}: {{source: {DATASET}.csv}}
            train: {{max_training_time: 1.0, max_epochs: 20, model_size: small}}
            generate: {{sample_size: {SAMPLE_SIZE}, seed: 1}}
            quality: {{max_dcr_share: 0.9}}
        """)


@pytest.fixture
def dagster_ui(ui_project, tmp_path):
    """`dg dev` on loopback, on the project's own Dagster instance and storage; yields its address. Its whole
    process group (webserver, daemon, code server, runs) ends at teardown, whatever happened."""
    sync_playwright = browser_or_fail()  # before minutes of server start: fail fast without a browser
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_HOME": str(tmp_path / "store"),
           "SYNTH_CONFIG": str(ui_project / "synth.yaml")}
    env.pop("SYNTH_DEVICE", None)
    port = free_port()
    log = tmp_path / "dg_dev.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("[0-9][0-9]-*.png"), ARTIFACTS / "failure.txt", ARTIFACTS / "dg_dev.log"]:
        old.unlink(missing_ok=True)  # a previous run's
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(base, proc, log)
        yield base, sync_playwright
    finally:
        stop_group(proc)
        (ARTIFACTS / "dg_dev.log").write_text(tail(log, 200_000))


def stop_group(proc: subprocess.Popen, grace: float = 3) -> None:
    """SIGTERM to `dg dev`'s process group, then SIGKILL to whatever is left of it (its webserver and code
    servers can outlive a polite request by minutes)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


class Steps:
    """Numbered screenshots of each step into ARTIFACTS."""

    def __init__(self, page):
        self.page, self.n = page, 0

    def shot(self, name: str) -> Path:
        self.n += 1
        path = ARTIFACTS / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=path)
        return path


def wait_for_run(page, steps: Steps, name: str) -> None:
    """On a run's page: until it ends; it must have succeeded."""
    from playwright.sync_api import expect

    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]+"), timeout=UI_TIMEOUT * 1000)
    run_id = page.url.rsplit("/", 1)[-1]
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT * 1000)
    steps.shot(name)
    if status.inner_text() != "Success":
        pytest.fail(f"run {run_id} ended with {status.inner_text()}; its page reads:\n"
                    f"{page.inner_text('body')[-3000:]}", pytrace=False)


def open_launchpad(page, materialize_button):
    """The launchpad from a Materialize button's dropdown ('Open launchpad'); returns the editor's dialog."""
    from playwright.sync_api import expect

    materialize_button.locator("xpath=ancestor::div[1]").get_by_role("button", name="arrow_drop_down").click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    # the launchpad's dialog by its header: the dropdown's menu is a dialog too, for as long as it fades out
    header = page.get_by_text(re.compile(r"^Launchpad \("))
    expect(header).to_be_visible()
    dialog = page.get_by_role("dialog").filter(has=header)
    editor = dialog.locator(".CodeMirror").first
    expect(editor.locator(".CodeMirror-line").first).to_be_visible()
    return dialog, editor


def metadata_value(page, key: str):
    """The value cell of the asset page's metadata table row named `key`."""
    row = page.locator("tr", has=page.get_by_text(key, exact=True))
    return row.locator("td").last


def test_materialize_from_the_ui_and_read_the_report(dagster_ui):
    base, sync_playwright = dagster_ui
    from playwright.sync_api import expect

    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            # the community dialog Dagster shows a first visitor on localhost: as if dismissed before
            context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
            context.set_default_timeout(UI_TIMEOUT * 1000)
            expect.set_options(timeout=UI_TIMEOUT * 1000)
            page = context.new_page()
            steps = Steps(page)
            try:
                run_the_story(page, base, steps, expect)
            except BaseException:
                try:  # what the page showed, for whoever reads the artifacts
                    steps.shot("failure")
                    (ARTIFACTS / "failure.txt").write_text(f"{page.url}\n\n{page.inner_text('body', timeout=5000)}")
                except Exception:  # noqa: BLE001 - the story's own error is the one to report
                    pass
                raise
        finally:
            browser.close()
    print(f"browser story: {time.monotonic() - started:.0f}s; screenshots in {ARTIFACTS}")


def run_the_story(page, base: str, steps: Steps, expect) -> None:
    # 1. the dataset's lineage graph: its six stages, from the source table to the report
    page.goto(group_page(base, DATASET))
    materialize_all = page.get_by_role("button", name=re.compile(r"Materialize all \(6\)"))
    expect(materialize_all).to_be_visible()
    for stage in STAGES:
        expect(page.get_by_text(stage, exact=True)).to_be_visible()
    steps.shot("lineage")

    # 2. materialize the whole group from its launchpad (shift-click on Materialize all), with a short
    #    training budget typed over the defaults from synth.yaml
    materialize_all.click(modifiers=["Shift"])
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launchpad")).to_be_visible()
    editor = dialog.locator(".CodeMirror").first
    expect(editor.get_by_text(f"{DATASET}__synthetic:")).to_be_visible()  # the defaults are in
    steps.shot("launchpad-defaults")
    editor.locator(".CodeMirror-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(GROUP_CONFIG)  # as pasted: CodeMirror would indent typed newlines again
    expect(editor.locator(".CodeMirror-line", has_text=f"max_epochs: {TYPED_EPOCHS}")).to_be_visible()
    expect(dialog.get_by_text("No errors")).to_be_visible()  # the launchpad validated what was typed
    steps.shot("launchpad-typed")
    dialog.get_by_role("button", name=re.compile(r"\bMaterialize$")).click()
    wait_for_run(page, steps, "run-group")

    # the typed budget was used, not synth.yaml's 20 epochs
    page.goto(f"{base}/assets/{DATASET}/model")
    epochs = metadata_value(page, "epochs")
    expect(epochs).to_have_text(re.compile(r"^\s*\d+\s*$"))
    assert 1 <= int(epochs.inner_text()) <= TYPED_EPOCHS, f"the model trained {epochs.inner_text()} epochs"

    # 3. the quality report: scores in the metadata, charts inlined as images
    page.goto(f"{base}/assets/{DATASET}/quality")
    accuracy = metadata_value(page, "accuracy")
    expect(accuracy).to_have_text(re.compile(r"^\s*[01]\.\d+\s*$"))
    assert 0 < float(accuracy.inner_text()) <= 1
    assert 0 <= float(metadata_value(page, "dcr_share").inner_text()) <= 0.9
    page.get_by_text("discriminator_auc", exact=True).scroll_into_view_if_needed()
    steps.shot("quality")
    page.locator("tr", has=page.get_by_text(f"{DATASET}/accuracy", exact=True)).get_by_text("[Show Markdown]").click()
    chart = page.get_by_role("dialog").locator("img[src^='data:image/png']")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100")
    # the dialog fades in: the screenshot waits for its animations to end
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    shot = steps.shot("quality-chart")
    if UPDATE_DOCS:
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        DOCS_SCREENSHOT.write_bytes(shot.read_bytes())
    page.get_by_role("dialog").get_by_role("button", name="Close").click()

    # 4. the synthetic table's blocking checks passed
    page.goto(f"{base}/assets/{DATASET}/synthetic")
    page.get_by_role("tablist").first.get_by_role("tab", name="Checks").click()
    for check in ("schema_matches_source", "privacy_gate"):
        item = page.locator("span", has=page.locator(f"[title='{check}']"), has_text="Succeeded")
        expect(item.first).to_be_visible()
    steps.shot("synthetic-checks")

    # 5. draw again from the synthetic asset's own launchpad with another sample size, typed over the default
    page.get_by_role("tablist").first.get_by_role("tab", name="Overview").click()
    expect(metadata_value(page, f"{DATASET}/rows")).to_have_text(re.compile(rf"^\s*{SAMPLE_SIZE}\s*$"))
    materialize = page.get_by_role("button", name=re.compile(r"\bMaterialize$"))
    dialog, editor = open_launchpad(page, materialize)
    line = editor.locator(".CodeMirror-line", has_text="sample_size:")
    line.get_by_text(str(SAMPLE_SIZE), exact=True).dblclick()  # select the number...
    page.keyboard.type(str(RESAMPLE_SIZE))  # ...and type over it
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("execution:\n  config:\n    in_process: {}\n")
    expect(line).to_have_text(re.compile(rf"sample_size:\s*{RESAMPLE_SIZE}\s*$"))
    expect(dialog.get_by_text("No errors")).to_be_visible()
    steps.shot("synthetic-launchpad")
    dialog.get_by_role("button", name=re.compile(r"\bMaterialize$")).click()
    wait_for_run(page, steps, "run-synthetic")

    page.goto(f"{base}/assets/{DATASET}/synthetic")
    rows = metadata_value(page, f"{DATASET}/rows")
    expect(rows).to_have_text(re.compile(rf"^\s*{RESAMPLE_SIZE}\s*$"))
    page.get_by_text(f"{DATASET}/rows", exact=True).scroll_into_view_if_needed()
    steps.shot("synthetic-resampled")
