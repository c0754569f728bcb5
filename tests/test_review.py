"The blind A/B sheet in a real browser: headless Chromium renders every item, runs the page's script, and its CSV reads back."
import csv, io, os, re, shutil, subprocess
from pathlib import Path

import pytest

from ft_nb.eval.review import COLUMNS, read_reviews, write_review

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOT = Path(__file__).resolve().parents[1] / "outputs" / "review_sheet.png"  # kept for a person to look at
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (CI installs it)")

ROWS = [{"prompt": 'Turn "Ada, 36, Lima" into JSON.', "base": {"answer": "Ada is 36 and lives in Lima."},
         "tuned": {"answer": '{"name": "Ada", "age": 36, "city": "Lima"}'}},
        {"prompt": "What does </script><b>bold</b> do?", "base": {"answer": "It ends a script, then <b> is bold."},
         "tuned": {"answer": "Line one\nline two, with a comma"}},
        {"prompt": "Name a prime number.", "base": {"answer": "7"}, "tuned": {"answer": "Seven."}}]


def chromium(*args, tmp: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True).stdout


@needs_chromium
def test_sheet_renders_and_its_csv_reads_back(tmp_path):
    paths = write_review(tmp_path, ROWS, title="people task")
    url = paths["html"].resolve().as_uri()
    dom = chromium("--dump-dom", url, tmp=tmp_path)
    assert len(re.findall(r'class="item"', dom)) == len(ROWS)
    assert "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in dom and "<b>bold</b>" not in dom  # shown as text, not run as markup
    assert "0 of 3 judged" in dom  # the script ran
    text = re.search(r'<textarea id="csv"[^>]*>(.*?)</textarea>', dom, re.S).group(1)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS and [r["id"] for r in rows] == ["item-001", "item-002", "item-003"]
    assert rows[1]["prompt"] == ROWS[1]["prompt"] and "line two, with a comma" in rows[1]["answer_a"] + rows[1]["answer_b"]
    for r in rows: r["verdict"] = "A"  # a rater who always picks the left answer
    filled = tmp_path / "filled.csv"
    with open(filled, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS); w.writeheader(); w.writerows(rows)
    res = read_reviews([filled], paths["key"])
    key = __import__("json").loads(paths["key"].read_text())
    assert res["wins"] == sum(v["A"] == "tuned" for v in key["items"].values()) and res["wins"] + res["losses"] == 3

    SHOT.parent.mkdir(exist_ok=True)
    chromium(f"--screenshot={SHOT}", "--window-size=1100,1400", "--hide-scrollbars", url, tmp=tmp_path)
    assert SHOT.read_bytes()[:4] == b"\x89PNG" and SHOT.stat().st_size > 20_000
