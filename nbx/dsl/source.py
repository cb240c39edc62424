"""Source positions and the one user-facing compile error, with its renderer."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of a source file: 1-based line and column of its start and end."""

    filename: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Source:
    """A source file's name and text; renders diagnostics for spans inside it."""

    filename: str
    text: str

    def line_text(self, line: int) -> str:
        # Lines end at "\n" only, as the lexer counts them (splitlines() also splits at
        # form feeds and U+2028, which may appear in comments and docstrings).
        lines = self.text.split("\n")
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""

    def span(self, line: int, column: int, end_line: int | None = None,
             end_column: int | None = None) -> Span:
        return Span(self.filename, line, column, end_line or line, end_column or column + 1)


class CompileError(Exception):
    """An error in the user's program: `file:line:col: error: message`, the line, a caret."""

    def __init__(self, span: Span | None, message: str, hint: str | None = None,
                 source: Source | None = None):
        self.span = span
        self.message = message
        self.hint = hint
        self.source = source
        super().__init__(self.render())

    @property
    def filename(self) -> str:
        return self.span.filename if self.span else "<unknown>"

    @property
    def line(self) -> int:
        return self.span.line if self.span else 0

    @property
    def column(self) -> int:
        return self.span.column if self.span else 0

    def with_source(self, source: Source) -> CompileError:
        """The same error, rendered with the source line it points into."""
        if self.source is not None:
            return self
        return CompileError(self.span, self.message, self.hint, source)

    def render(self) -> str:
        if self.span is None:
            head = f"error: {self.message}"
        else:
            span = self.span
            head = f"{span.filename}:{span.line}:{span.column}: error: {self.message}"
        out = [head]
        if self.span is not None and self.source is not None:
            text = self.source.line_text(self.span.line).expandtabs(1)
            if text.strip():
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                width = min(width, max(1, len(text) - self.span.column + 1))
                out.append("    " + text)
                out.append("    " + " " * (self.span.column - 1) + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self):
        return (CompileError, (self.span, self.message, self.hint, self.source))


@contextmanager
def located(span: Span):
    """Tag an unexpected internal exception with the span being compiled, so that the driver's
    chokepoint can report it at a place in the user's file (innermost tag wins)."""
    try:
        yield
    except CompileError:
        raise
    except Exception as err:
        if getattr(err, "nbx_span", None) is None:
            err.nbx_span = span
        raise
