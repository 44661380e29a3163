"""PDFs rendered in a process of their own, so a worker's other threads keep the interpreter.

WeasyPrint's layout is mostly Python: on a worker's thread each invoice held the interpreter lock
for most of its render, and the worker's other threads (the engine's steps, the inbox's events)
waited for it – two fifths of an engine worker's interpreter time in the day replay went to PDFs.
A child (`python -m logistics.pdf`, `BATON_PDF_PROCESSES` of them per process, started at the
first render, at the lowest priority) renders instead, and the caller's thread waits on a pipe
without the lock. A plain
subprocess, not multiprocessing: Celery's prefork children are daemonic and may have none. 0
renders on the calling thread.

The protocol is frames on stdin and stdout: the request is the HTML and the CSS, the answer a
status byte and the PDF or the error. This module imports no Django: the child loads it and
WeasyPrint only.
"""

from __future__ import annotations

import os
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

# A render that takes longer than this is given up: the child is killed, the step fails and is retried.
RENDER_TIMEOUT_SECONDS = 120
_ROOT = Path(__file__).resolve().parent.parent
_OK, _FAILED = b"0", b"1"

_local = threading.local()  # per thread in-process (Pango's font map is not shared between threads)
_idle: queue.LifoQueue[_Renderer | None] | None = None
_idle_lock = threading.Lock()


class RenderFailed(Exception):
    """The render process said why it could not render, or died."""


def pdf_write(html: str, css: str, *, processes: int) -> bytes:
    """`html` with the stylesheet `css` as PDF bytes: in a render process when `processes` > 0 (a
    child that died is replaced and the render tried once more), else on this thread."""
    if processes <= 0:
        return _render(html, css)
    idle = _renderers(processes)
    renderer = idle.get() or _Renderer()
    try:
        try:
            return renderer.render(html, css)
        except _Died:
            renderer = _Renderer()  # once more, in a new child
            return renderer.render(html, css)
    except _Died as error:
        raise RenderFailed(f"the PDF render process died: {error}") from error
    finally:
        idle.put(renderer if renderer.alive else None)


def _renderers(processes: int) -> queue.LifoQueue[_Renderer | None]:
    """The idle render processes: a slot holds None until its child is started."""
    global _idle
    with _idle_lock:
        if _idle is None:
            _idle = queue.LifoQueue()
            for _ in range(processes):
                _idle.put(None)
        return _idle


class _Died(Exception):
    pass


class _Renderer:
    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "logistics.pdf"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_ROOT
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def render(self, html: str, css: str) -> bytes:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        timer = threading.Timer(RENDER_TIMEOUT_SECONDS, self.process.kill)
        timer.start()
        try:
            _frame_write(stdin, html.encode())
            _frame_write(stdin, css.encode())
            stdin.flush()
            status = stdout.read(1)
            answer = _frame_read(stdout)
        except (OSError, ValueError, EOFError) as error:
            self.process.kill()
            raise _Died(f"{type(error).__name__}: {error} (exit {self.process.wait()})") from error
        finally:
            timer.cancel()
        if status != _OK:
            raise RenderFailed(answer.decode(errors="replace"))
        return answer


def _frame_write(stream: IO[bytes], data: bytes) -> None:
    stream.write(struct.pack(">Q", len(data)))
    stream.write(data)


def _frame_read(stream: IO[bytes]) -> bytes:
    head = stream.read(8)
    if len(head) != 8:
        raise EOFError("the render process closed its pipe")
    size = struct.unpack(">Q", head)[0]
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the render process closed its pipe mid-answer")
    return data


def _render(html: str, css: str) -> bytes:
    """Parse the stylesheet once per brand (a tenth of a render) with one font configuration."""
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    if not hasattr(_local, "fonts"):
        _local.fonts, _local.sheets = FontConfiguration(), {}
    sheets: dict[str, Any] = _local.sheets
    if css not in sheets:
        if len(sheets) >= 32:
            sheets.clear()
        sheets[css] = CSS(string=css, font_config=_local.fonts)
    return HTML(string=html).write_pdf(stylesheets=[sheets[css]], font_config=_local.fonts)


def _serve() -> None:
    """The render process: requests until its parent closes the pipe. At the lowest priority: it
    holds no lock anyone waits for, so on a busy machine the web and the inbox go first and PDFs
    take the cores they leave (a dispatch's latency rose from 4 s to 10 s at the p99 in the day
    replay with the child at the worker's priority)."""
    os.nice(19)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answers' pipe
    while True:
        try:
            html, css = _frame_read(requests).decode(), _frame_read(requests).decode()
        except EOFError:
            return
        try:
            status, answer = _OK, _render(html, css)
        except Exception as error:  # noqa: BLE001 - the parent gets the reason, the child goes on
            status, answer = _FAILED, f"{type(error).__name__}: {error}".encode()
        answers.write(status)
        _frame_write(answers, answer)
        answers.flush()


if __name__ == "__main__":
    _serve()
