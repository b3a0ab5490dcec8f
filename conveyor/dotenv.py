"""Reading a `.env` file: `NAME=value` lines, as `conveyor env import` and `conveyor dev` take
them.

    # a comment                   blank lines and comments are skipped
    export NAME=value             `export ` is allowed
    NAME=value # a note           an unquoted value ends before ` #`, spaces around it trimmed
    NAME='a # b'                  single quotes: the text as written
    NAME="line one\\nline two"     double quotes: \\n, \\t, \\" and \\\\ escapes; may span lines

Variables are not expanded (`$OTHER` stays as written). A line that is none of these is an
error naming its line number, never quoting a value.
"""

from __future__ import annotations

import re

from conveyor.errors import InvalidRequest

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def parse_dotenv(text: str, source: str = ".env") -> dict[str, str]:
    """The variables of a .env text, in order (a name given twice keeps its last value)."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise InvalidRequest(f"{source}, line {number}: expected NAME=value")
        name, rest = match.group(1), match.group(2).strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            while not _closed(body, quote):
                if i >= len(lines):
                    raise InvalidRequest(f"{source}, line {number}: the {quote} is never closed")
                body += "\n" + lines[i]
                i += 1
            value, after = _split_quoted(body, quote)
            if after.strip() and not after.strip().startswith("#"):
                raise InvalidRequest(f"{source}, line {number}: text after the closing {quote}")
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        found[name] = value
    return found


def _closed(body: str, quote: str) -> bool:
    return _find_close(body, quote) >= 0


def _find_close(body: str, quote: str) -> int:
    j = 0
    while j < len(body):
        if quote == '"' and body[j] == "\\":
            j += 2
            continue
        if body[j] == quote:
            return j
        j += 1
    return -1


def _split_quoted(body: str, quote: str) -> tuple[str, str]:
    end = _find_close(body, quote)
    raw, after = body[:end], body[end + 1 :]
    if quote == "'":
        return raw, after
    value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw)
    return value, after
