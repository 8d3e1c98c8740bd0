"""The run report (issue #21): ``batchproc report OUT -o report.html`` and ``--report``
on ``run`` and ``batch``. A self-contained page (nothing loaded from elsewhere),
failures first, pictures for a sample of the items, bad input refused with exit 2,
no credential written; and the page opened in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from batchproc.batch import MANIFEST, Manifest
from batchproc.cli import app
from batchproc.report import ReportItem, load_job, pictured

runner = CliRunner()
# sigma for two axes: a 2-D pipeline, which an RGB image (3-D) fails.
STEPS = ["--step", "gaussian_filter:sigma=[1,1]", "--step", "threshold:above=120"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


class Page(HTMLParser):
    """What a report page holds: its elements' attributes and its text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, css: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and (css is None or css in a.get("class", "").split())]


def archive(folder: Path, good: int = 5) -> dict[str, str]:
    """PNG scans (smooth patterns, so a threshold leaves shapes), one truncated
    file and one RGB image the 2-D pipeline refuses; the expected status of each."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:48, :64]
    status = {}
    for i in range(good):
        image = (120 + 90 * np.sin(xx / (5 + i)) * np.cos(yy / 8) + rng.normal(0, 8, yy.shape)).clip(0, 255).astype(np.uint8)
        iio.imwrite(folder / f"scan{i}.png", image)
        status[f"scan{i}.png"] = "done"
    (folder / "scan2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    status["scan2.png"] = "failed"
    iio.imwrite(folder / "colour.png", (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    status["colour.png"] = "failed"
    return status


def self_contained(page: Page) -> None:
    """Nothing on the page is loaded from anywhere but the page itself."""
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "data", "poster"):
            if name in attrs:
                assert attrs[name].startswith("data:image/png;base64,"), (tag, name, attrs[name][:60])
    assert "url(" not in "".join(page.text).lower()


def test_pictured_takes_failures_first_then_an_even_spread() -> None:
    items = [ReportItem(f"f{i}", None, "failed") for i in range(3)] + [ReportItem(f"d{i}", None, "done") for i in range(100)]
    assert pictured(items, 200) == list(range(103))
    chosen = pictured(items, 10)
    assert chosen[:3] == [0, 1, 2] and len(chosen) == 10 and chosen[-1] == 102
    gaps = np.diff(chosen[3:])
    assert gaps.max() - gaps.min() <= 1  # evenly spread over the finished items
    many_failed = [ReportItem(f"f{i}", None, "failed") for i in range(30)] + items[3:]
    chosen = pictured(many_failed, 10)
    assert chosen[:5] == [0, 1, 2, 3, 4] and all(many_failed[i].status == "done" for i in chosen[5:])
    only_failed = [ReportItem(f"f{i}", None, "failed") for i in range(30)]
    assert pictured(only_failed, 4) == [0, 1, 2, 3]
    assert pictured(items, 0) == []


def test_batch_report_lists_failures_first_with_pictures_of_every_item(tmp_path: Path) -> None:
    expected = archive(tmp_path / "scans")
    out = tmp_path / "out"
    result = invoke("batch", tmp_path / "scans", "--out", out, *STEPS, "--report", out / "report.html", "-q")
    assert result.exit_code == 3, result.output  # two items failed: the report is written all the same
    text = (out / "report.html").read_text()
    page = Page(text)
    self_contained(page)
    manifest = Manifest(out / MANIFEST).load()
    assert {Path(k).name: r["status"] for k, r in manifest.items()} == expected
    rows = [a["data-status"] for a in page.all("tr") if "data-status" in a]
    cards = [a["data-status"] for a in page.all("div", "card")]
    for listed in (rows, cards):
        assert listed == sorted(listed, key=lambda s: s == "done") and listed.count("failed") == 2 and len(listed) == len(expected)
    thumbnails, histograms = page.all("img", "thumb"), page.all("img", "hist")
    # Every finished item has both; the RGB image's input still reads (a before picture), the truncated one does not.
    assert len(thumbnails) == len(histograms) == 5 - 1 + 1
    status = None
    for tag, attrs in page.tags:
        status = attrs["data-status"] if tag == "div" and "card" in attrs.get("class", "") else status
        if tag == "img" and status == "done":
            picture = iio.imread(io.BytesIO(base64.b64decode(attrs["src"].split(",", 1)[1])))
            assert picture.ndim == 3 and min(picture.shape[:2]) > 40 and picture.std() > 10
    assert f"Showing all {len(expected)} items, failures first" in text
    assert "gaussian_filter" in text and "threshold" in text and "above=120" in text
    assert "cannot read" in text  # the truncated file's error


def test_batch_report_samples_many_items_and_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(30):
        iio.imwrite(folder / f"s{i}.png", (rng.random((12, 16)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert invoke("batch", folder, "--out", out, *STEPS, "-q").exit_code == 0
    result = invoke("report", out, "-o", tmp_path / "r.html", "--pictures", "4")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.html").read_text()
    page = Page(text)
    assert len(page.all("div", "card")) == 4 and len(page.all("img", "thumb")) == 4
    assert "a sample of 4 of the 30 items" in text
    assert len([a for a in page.all("tr") if "data-status" in a]) == 30  # the table lists them all
    # The manifest's own file works as OUT too.
    assert invoke("report", out / MANIFEST, "-o", tmp_path / "r2.html", "--pictures", "0").exit_code == 0
    assert not Page((tmp_path / "r2.html").read_text()).all("img")


def test_run_report_shows_input_pipeline_provenance_and_both_pictures(tmp_path: Path) -> None:
    volume = np.random.default_rng(2).integers(0, 255, size=(8, 40, 50)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "volume.tif", volume)
    result = invoke(
        "run",
        tmp_path / "volume.tif",
        tmp_path / "o.ome.zarr",
        "--step",
        "gaussian_filter:sigma=1",
        "--step",
        "threshold:above=120",
        "--report",
        tmp_path / "run.html",
        "-q",
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run.html").read_text()
    page = Page(text)
    self_contained(page)
    assert [a["data-status"] for a in page.all("tr") if "data-status" in a] == ["done"]
    assert "(8, 40, 50) uint8" in text and "volume.tif" in text and "gaussian_filter" in text
    provenance = json.loads(re.search(r"<pre>(.*?)</pre>", text, re.S).group(1).replace("&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&"))
    assert provenance["complete"] is True and provenance["provenance"]["input_shape"] == [8, 40, 50]
    thumbnail = iio.imread(io.BytesIO(base64.b64decode(page.all("img", "thumb")[0]["src"].split(",", 1)[1])))
    assert thumbnail.shape[1] > 1.6 * thumbnail.shape[0]  # before | after, each 40×50 voxels
    # The same page from the report command.
    assert invoke("report", tmp_path / "o.ome.zarr", "-o", tmp_path / "again.html").exit_code == 0
    assert len(Page((tmp_path / "again.html").read_text()).all("img")) == 2


def test_an_interrupted_run_is_reported_incomplete_with_how_to_finish(tmp_path: Path) -> None:
    from batchproc.engine.jobs import run_pipeline
    from batchproc.pipeline import Pipeline

    tifffile.imwrite(tmp_path / "v.tif", np.zeros((4, 16, 16), np.uint8), photometric="minisblack")
    # The store created, no chunk computed: what a killed run leaves.
    run_pipeline(Pipeline.from_strings(["threshold:above=1"]), str(tmp_path / "v.tif"), str(tmp_path / "o.zarr"), compute=False)
    job = load_job(tmp_path / "o.zarr")
    assert [(i.status, "--resume" in (i.error or "")) for i in job.items] == [("incomplete", True)]
    assert invoke("report", tmp_path / "o.zarr", "-o", tmp_path / "r.html").exit_code == 0
    assert 'data-status="incomplete"' in (tmp_path / "r.html").read_text()


def test_credentials_never_reach_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    out = tmp_path / "out"
    assert invoke("batch", tmp_path / "a.png", "--out", out, *STEPS, "-q").exit_code == 0
    # An item whose error and input carry a credential (as an older version or a
    # third-party message might have recorded them).
    Manifest(out / MANIFEST).append(
        {
            "input": f"https://reader:{secret}@example.org/b.tif",
            "output": str(out / "b.ome.zarr"),
            "status": "failed",
            "error": f"access denied for key {secret}",
            "seconds": 0.1,
        }
    )
    assert invoke("report", out, "-o", tmp_path / "r.html").exit_code == 0
    text = (tmp_path / "r.html").read_text()
    assert secret not in text and "reader:" not in text
    assert "access denied for key ***" in text


def test_a_batch_written_to_an_object_store_is_reported(tmp_path: Path, s3, s3_server) -> None:
    expected = archive(tmp_path / "scans")
    result = invoke("batch", tmp_path / "scans", "--out", f"{s3}/out", *STEPS, "--report", tmp_path / "r.html", "-q")
    assert result.exit_code == 3, result.output
    text = (tmp_path / "r.html").read_text()
    page = Page(text)
    assert [a["data-status"] for a in page.all("div", "card")] == ["failed"] * 2 + ["done"] * (len(expected) - 2)
    assert len(page.all("img", "thumb")) == len(expected) - 1  # every finished item's store read back from the bucket
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in text and s3_server.env["AWS_ACCESS_KEY_ID"] not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "{tmp}/missing", "-o", "{tmp}/r.html"], "does not exist"),
        (["report", "{tmp}/plain", "-o", "{tmp}/r.html"], "is not an output of batchproc"),
        (["report", "{tmp}/a.png", "-o", "{tmp}/r.html"], "is not an output of batchproc"),
        (["report", "{tmp}/o.zarr", "-o", "{tmp}/nodir/r.html"], "does not exist"),
        (["report", "{tmp}/o.zarr", "-o", "{tmp}/plain"], "it is a folder"),
        (["report", "{tmp}/o.zarr", "-o", "{tmp}/r.html", "--pictures", "-1"], "--pictures must be 0 or more"),
        (["run", "{tmp}/a.png", "{tmp}/o2.zarr", "--step", "threshold:above=1", "--dry-run", "--report", "{tmp}/r.html"], "--dry-run"),
        (["run", "{tmp}/a.png", "{tmp}/o2.zarr", "--step", "threshold:above=1", "--report", "{tmp}/nodir/r.html"], "--report"),
        (["batch", "{tmp}/a.png", "--out", "{tmp}/b", "--step", "threshold:above=1", "--report", "{tmp}/nodir/r.html"], "--report"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "plain").mkdir()
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    assert invoke("run", tmp_path / "a.png", tmp_path / "o.zarr", "--step", "threshold:above=1", "-q").exit_code == 0
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    # Refused before anything ran: no output of the refused run or batch.
    assert not (tmp_path / "o2.zarr").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------------ in a real browser


def test_the_page_in_headless_chromium(tmp_path: Path, browser) -> None:
    expected = archive(tmp_path / "scans")
    out = tmp_path / "out"
    assert invoke("batch", tmp_path / "scans", "--out", out, *STEPS, "--report", out / "report.html", "-q").exit_code == 3
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console, errors, requests = [], [], []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}") if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto((out / "report.html").as_uri(), wait_until="load")
        assert console == [] and errors == []
        # Only the page itself and its inline pictures were fetched.
        assert all(url == (out / "report.html").as_uri() or url.startswith("data:") for url in requests), requests
        cards = page.eval_on_selector_all(".card", "cards => cards.map(c => [c.dataset.status, c.querySelector('h3').textContent])")
        rows = page.eval_on_selector_all("table.items tbody tr", "rows => rows.map(r => r.dataset.status)")
        failed = sorted(name for name, status in expected.items() if status == "failed")
        assert sorted(name for status, name in cards[:2]) == failed and all(status == "failed" for status, _ in cards[:2])
        assert all(status == "done" for status, _ in cards[2:]) and len(cards) == len(expected)
        assert rows == ["failed"] * 2 + ["done"] * (len(expected) - 2)
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.className, i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width])"
        )
        assert len(images) == 10 and all(done and width > 0 and height > 0 and shown > 0 for _, done, width, height, shown in images), images
        # A thumbnail as the browser painted it: a picture, not a blank box.
        painted = iio.imread(page.locator(".card[data-status=done] img.thumb").first.screenshot())
        assert painted.std() > 20
        shot = tmp_path / "report-screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        picture = iio.imread(shot)
        assert picture.shape[1] == 1280 and picture.shape[0] > 900 and picture.std() > 20
    finally:
        context.close()


def test_the_examples_in_the_docstrings_run() -> None:
    import doctest

    from batchproc import report

    assert doctest.testmod(report, optionflags=doctest.ELLIPSIS).failed == 0
