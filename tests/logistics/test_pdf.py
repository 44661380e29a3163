"""Invoice PDFs are rendered in a child process, so a worker's threads keep the interpreter."""

import os
import subprocess

import pytest

from logistics import pdf


def _text(content: bytes) -> str:
    return subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout.decode()


def _renderer() -> "pdf._Renderer":
    idle = pdf._renderers(1)
    renderer = idle.get()
    idle.put(renderer)
    assert renderer is not None
    return renderer


def test_a_render_happens_in_a_child_process_and_keeps_its_stylesheet_and_text():
    content = pdf.pdf_write("<h1>Invoice INV-1</h1><p>Total 1.234,50</p>", "h1 { color: #0b4f9c }", processes=1)
    assert content.startswith(b"%PDF-") and "Invoice INV-1" in _text(content) and "1.234,50" in _text(content)
    child = _renderer().process
    assert child.poll() is None and child.pid != os.getpid()
    again = pdf.pdf_write("<h1>Invoice INV-2</h1>", "h1 { color: #0b4f9c }", processes=1)
    assert "INV-2" in _text(again) and _renderer().process.pid == child.pid  # the same child, kept


def test_a_child_that_died_between_renders_is_replaced():
    pdf.pdf_write("<p>warm</p>", "", processes=1)
    dead = _renderer().process
    dead.kill()
    dead.wait()
    content = pdf.pdf_write("<p>after the crash</p>", "", processes=1)
    assert "after the crash" in _text(content) and _renderer().process.pid != dead.pid


def test_a_render_past_its_time_is_given_up_with_the_reason(monkeypatch):
    monkeypatch.setattr(pdf, "RENDER_TIMEOUT_SECONDS", 0.01)  # every child is killed before it answers
    with pytest.raises(pdf.RenderFailed, match="render process died"):
        pdf.pdf_write("<p>" + "slow " * 20000 + "</p>", "", processes=1)
    monkeypatch.undo()
    assert "fine" in _text(pdf.pdf_write("<p>fine</p>", "", processes=1))  # a new child takes the next render
