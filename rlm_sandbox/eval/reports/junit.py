"""JUnit XML: one ``testcase`` per task run, a ``failure`` below its pass threshold, an ``error``
when the run ended in error or crashed. Only elements and attributes of the common JUnit
schema are used (per-task details go in ``system-out``), so every CI system reads it.

Every text is made visible first (:func:`.text.shown`): a character XML 1.0 forbids (``\\x00``,
``\\x0b``, ``\\x1b``, ...) in an answer would make the whole file unreadable to every CI system;
ElementTree then escapes markup, so ``]]>`` or ``</testcase>`` in an answer stay text."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from ..results import TaskResult
from ..summary import SuiteSummary
from .markdown import money
from .text import shown


def _details(result: TaskResult) -> str:
    lines = [f"answer: {shown(result.answer)}", f"answer_from: {result.answer_from}",
             f"expected: {shown(result.expected)}",
             f"score: {result.score:.4f} (threshold {result.pass_threshold}, scorer {shown(result.scorer)})",
             f"status: {result.status}" + (" (a limit ended the run)" if result.limit_hit else ""),
             f"tokens: {result.input_tokens} in" + (f" ({result.cached_input_tokens} cached)"
                                                    if result.cached_input_tokens else "")
             + f", {result.output_tokens} out", f"cost: {money(result.cost_usd)}",
             f"iterations: {result.iterations}, sub-calls: {result.sub_calls}",
             f"trajectory: {shown(result.trajectory)}"]
    if result.error:
        lines.insert(5, f"error: {shown(result.error)}")
    if result.scripted:
        lines.insert(0, "SCRIPTED: answered by scripted models, not a real language model")
    if result.baseline is not None:
        b = result.baseline
        lines.append(f"direct baseline ({shown(b.model)}): {shown(b.answer)}, score {b.score:.4f}"
                     + (" (context truncated)" if b.truncated else ""))
    return "\n".join(lines)


def render_junit(results: list[TaskResult], summary: SuiteSummary) -> str:
    failures = sum(not r.passed and not r.errored for r in results)
    errors = sum(r.errored for r in results)
    total_time = f"{sum(r.duration_s for r in results):.3f}"
    model = shown(summary.model)
    root = ET.Element("testsuites", name="rlm-sandbox eval", tests=str(len(results)), failures=str(failures),
                      errors=str(errors), time=total_time)
    suite = ET.SubElement(root, "testsuite", name=f"rlm-sandbox eval ({model})", tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped="0", time=total_time,
                          timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                          hostname=socket.gethostname())
    properties = ET.SubElement(suite, "properties")
    for name, value in (("model", model), ("sub_model", shown(summary.sub_model)),
                        ("scripted", str(summary.scripted).lower()), ("mean_score", f"{summary.mean_score:.6f}"),
                        ("stderr", f"{summary.stderr:.6f}"), ("pass_rate", f"{summary.pass_rate:.6f}"),
                        ("cost_usd", "unknown" if summary.cost_usd is None else f"{summary.cost_usd:.6f}")):
        ET.SubElement(properties, "property", name=name, value=value)
    for result in results:
        task_id = shown(result.task_id)
        name = task_id if summary.epochs == 1 else f"{task_id} [epoch {result.epoch}]"
        case = ET.SubElement(suite, "testcase", name=name, classname=f"rlm_sandbox.eval.{shown(result.source)}",
                             time=f"{result.duration_s:.3f}")
        if result.errored:
            error = ET.SubElement(case, "error", message=shown(result.error or result.status, 500), type=result.status)
            error.text = shown(result.error)
        elif not result.passed:
            failure = ET.SubElement(case, "failure", type="ScoreBelowThreshold",
                                    message=f"score {result.score:.4f} is below {result.pass_threshold}"
                                    + (f": {shown(result.error, 400)}" if result.error else ""))
            failure.text = f"expected: {shown(result.expected)}\nanswer: {shown(result.answer)}"
        ET.SubElement(case, "system-out").text = _details(result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
