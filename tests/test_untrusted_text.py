"""The one helper every view and report uses to show model-written text safely."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from rlm_sandbox.untrusted import visible

HOSTILE = ("title\x1b]0;pwned\x07 clear\x1b[2J\x1b[H link\x1b]8;;http://x\x1b\\y\x1b]8;;\x1b\\ "
           "nul\x00 vt\x0b ff\x0c cr\r c1\x9b31m del\x7f rlo\u202eevil lone\ud800 nonchar\uffff")


def test_every_control_is_shown_as_an_escape_and_nothing_raw_is_left():
    shown = visible(HOSTILE)
    for raw in "\x1b\x07\x00\x0b\x0c\r\x9b\x7f\u202e\ud800\uffff":
        assert raw not in shown
    assert "\\x1b]0;pwned\\x07" in shown and "\\x00" in shown and "\\u202e" in shown and "\\x9b" in shown


def test_newline_tab_and_letters_stay():
    assert visible("a\tb\nc é 漢字 🙂") == "a\tb\nc é 漢字 🙂"
    assert visible("a\tb\nc", keep="") == "a\\x09b\\x0ac"
    assert visible("a\rb", keep="\r\n\t") == "a\rb"


def test_the_result_is_well_formed_xml():
    shown = escape(visible(HOSTILE))
    document = f'<r a="{shown.replace(chr(34), "&quot;")}">{shown}</r>'
    root = ET.fromstring(document)  # raises on any character XML 1.0 forbids
    assert root.text == visible(HOSTILE)
