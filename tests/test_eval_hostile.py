"""One hostile string, written by the model and by the task file, fed to every report and viewer
of a real eval run: junit.xml parses (junitparser and ElementTree), report.html and `trace html`
open in a real browser and run no injected script, report.md's table keeps its columns, the
JSON files keep the exact text, the progress line shows the error reason with its control
characters made visible. The HTML report is written outside --out and its trace links hold."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from rlm_sandbox.eval import SuiteConfig, run_suite
from rlm_sandbox.eval.progress import SuiteProgress
from rlm_sandbox.eval.results import read_results
from rlm_sandbox.testing import ScriptedModel
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL
from tests.test_html_viewer import browser, cli, open_page  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.docker
HOSTILE = ("<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">\x1b]0;retitled\x07\x1b[2J"
           "\x00\x0b\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07 ]]> | a | b |\nsecond line & &amp; `code` "
           "*em* [x](http://evil.example/) \u202eevil")
TASK_ID = "evil<img src=x onerror=window.pwned=3>|id\x1b[31m"
RAW = ("\x1b", "\x07", "\x00", "\x0b", "\u202e")


def hostile_scorer(answer: str, expected: object) -> float:
    """A scorer whose error message is the hostile text (its reason reaches every report)."""
    raise RuntimeError(HOSTILE)


def reply(messages: list[dict]) -> str:
    literal = json.dumps(HOSTILE)
    return f"Here it is: {HOSTILE}\n```repl\nprint({literal})\nFINAL({literal})\n```"


@pytest.fixture(scope="module")
def hostile_suite(tmp_path_factory, sandbox_image):
    root = tmp_path_factory.mktemp("hostile")
    tasks = root / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": TASK_ID, "query": f"Repeat this: {HOSTILE}", "context": HOSTILE,
                                 "expected": [HOSTILE, "|"],
                                 "scorer": {"name": "tests.test_eval_hostile:hostile_scorer"}}) + "\n")
    (root / "elsewhere").mkdir()
    stream = io.StringIO()
    with ScriptedModel(responder=reply, name="hostile-i17") as model:
        summary = run_suite([tasks], SuiteConfig(model=model.model, out=root / "out",
                                                 html=root / "elsewhere" / "report.html",
                                                 labels={TEST_SESSION_LABEL: TEST_SESSION}, fail_on_error=False),
                            reporter=SuiteProgress(stream=stream, rich=False))
    return root, summary, stream.getvalue()


def test_the_json_files_keep_the_exact_text(hostile_suite):
    root, summary, _ = hostile_suite
    result = next(iter(read_results(root / "out").values()))
    assert result.answer == HOSTILE and result.task_id == TASK_ID and HOSTILE in result.error
    assert json.loads((root / "out" / "summary.json").read_text())["runs"] == 1
    assert summary.reports["html"] == str(root / "elsewhere" / "report.html")


def test_junit_is_well_formed_and_shows_the_text_escaped(hostile_suite):
    junitparser = pytest.importorskip("junitparser")
    root, _, _ = hostile_suite
    path = root / "out" / "junit.xml"
    raw = path.read_text()
    assert not any(char in raw for char in RAW)
    tree = ET.parse(path)
    case = tree.getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == "evil<img src=x onerror=window.pwned=3>|id\\x1b[31m"
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    failure = list(suites[0])[0].result[0]
    assert isinstance(failure, junitparser.Failure)
    assert "\\x1b]0;retitled\\x07" in failure.message and "]]>" in failure.text and "<script>" in failure.text


def test_the_markdown_table_keeps_its_columns_and_holds_no_markup(hostile_suite):
    from markdown_it import MarkdownIt

    root, _, _ = hostile_suite
    text = (root / "out" / "report.md").read_text()
    assert not any(char in text for char in RAW)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html and "<img" not in html and 'href="http://evil' not in html
    tasks_table = html.split("<h2>Tasks</h2>")[1]
    heads = len(re.findall(r"<th[ >]", tasks_table.split("</thead>")[0]))
    rows = tasks_table.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    assert heads == 8 and len(rows) == 1  # no baseline ran: no Direct columns
    assert len(re.findall(r"<td[ >]", rows[0])) == heads
    assert "scoring failed" in rows[0] and "RuntimeError: &lt;script&gt;" in rows[0]  # the error reason, as text


def test_report_html_runs_no_injected_script_and_its_trace_link_holds(hostile_suite, browser):  # noqa: F811 - the imported fixture
    root, _, _ = hostile_suite
    path = root / "elsewhere" / "report.html"
    assert not any(char in path.read_text() for char in RAW)
    page, requested = open_page(browser, path)
    assert page.evaluate("window.pwned") is None
    assert requested == [path.resolve().as_uri()], requested
    body = page.inner_text("#tasks")
    assert "scoring failed" in body and "\\x1b]0;retitled" in body and "<script>window.pwned=1</script>" in body
    href = page.locator("#tasks a").first.evaluate("a => a.href")
    trace = Path(unquote(urlparse(href).path))
    assert trace.is_file() and trace.parent == root / "out" / "traces"
    page.close()


def test_trace_html_runs_no_injected_script(hostile_suite, browser, tmp_path):  # noqa: F811 - the imported fixture
    root, _, _ = hostile_suite
    trace = next((root / "out" / "traces").glob("*.jsonl"))
    out = tmp_path / "trace.html"
    done = cli("trace", "html", trace, "-o", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert not any(char in text for char in RAW)
    page, requested = open_page(browser, out)
    assert page.evaluate("window.pwned") is None and requested == [out.resolve().as_uri()]
    assert "\\x1b]0;retitled\\x07" in page.inner_text("body")
    page.close()


def test_the_progress_line_gives_the_reason_made_visible(hostile_suite):
    _, _, progress = hostile_suite
    assert not any(char in progress for char in RAW)
    assert "rlm-sandbox eval: eval:" not in progress and "rlm-sandbox eval: 1 task run(s) to do" in progress
    line = next(line for line in progress.splitlines() if "[1/1]" in line)
    assert "failed (scoring failed: the scorer tests.test_eval_hostile:hostile_scorer raised RuntimeError" in line
