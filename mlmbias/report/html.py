"""report.html: the sections of report.md as one self-contained page.

The page is made from the same markdown text as report.md, converted here for
the small subset the report writes (headings, paragraphs, **bold**, *italic*,
_italic_, `code`, links, "- " lists, "> " quotes, pipe tables and images). Every
image is embedded as a base64 data URI, so the file opens offline and can be
mailed or attached alone; a short inline script makes each table sortable by a
click on its header (numbers by value: "0.012 (0.003)" sorts by 0.012, "–" last).
No network, no external stylesheet or script.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.45; color: #222; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-style: italic; color: #444; }
blockquote { border-left: 4px solid #d55e00; margin: 1rem 0; padding: .2rem 1rem;
             background: #fff6f0; }
code { background: #f5f5f5; padding: 0 .2rem; }
"""

# Sorts a table by the clicked column: numbers by value, text otherwise, blanks last.
_SCRIPT = """
(function () {
  function key(cell) {
    var t = cell.textContent.trim();
    var m = t.match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);
    return m ? {n: parseFloat(m[0]), t: t} : {n: null, t: t};
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) return a.n - b.n;
    if (a.n !== null) return -1;
    if (b.n !== null) return 1;
    return a.t.localeCompare(b.t);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var c = compare(key(r.cells[col]), key(s.cells[col]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")


def _inline(text: str) -> str:
    """Escape ``text`` and render the inline markup the report uses."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        s = re.sub(r"(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])", r"<em>\1</em>", s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
        out.append(s)
    return "".join(out)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    rows = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(line)) + "</tr>\n"
        for line in lines[2:]
    )
    return (
        f'<table class="sortable">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows}</tbody>\n</table>"
    )


def _blocks(markdown: str) -> list[list[str]]:
    """The text split into blocks at blank lines."""
    blocks, current = [], []
    for line in markdown.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _is_caption(line: str) -> bool:
    return line.startswith("*") and line.endswith("*") and not line.startswith("**")


def _quote(block: list[str]) -> str:
    paras, current = [], []
    for line in block:
        text = line[1:].strip()
        if text:
            current.append(text)
        elif current:
            paras.append(" ".join(current))
            current = []
    if current:
        paras.append(" ".join(current))
    return "<blockquote>" + "".join(f"<p>{_inline(p)}</p>" for p in paras) + "</blockquote>"


def _paragraphs_and_lists(block: list[str]) -> list[str]:
    """A block's text lines as a paragraph, its "- " lines (with their
    continuation lines) as a list."""
    out, text, items = [], [], []

    def flush_text():
        if text:
            out.append(f"<p>{_inline(' '.join(text))}</p>")
            text.clear()

    def flush_items():
        if items:
            lis = "".join(f"<li>{_inline(' '.join(i))}</li>" for i in items)
            out.append(f"<ul>{lis}</ul>")
            items.clear()

    for line in block:
        if line.startswith("- "):
            flush_text()
            items.append([line[2:].strip()])
        elif items and line.startswith(" "):
            items[-1].append(line.strip())
        else:
            flush_items()
            text.append(line.strip())
    flush_text()
    flush_items()
    return out


def to_html(markdown: str, base: Path, title: str = "report") -> str:
    """The page of ``markdown``, its images (relative to ``base``) embedded."""
    body = []
    for block in _blocks(markdown):
        first = block[0]
        if first.startswith("#"):
            level = len(first) - len(first.lstrip("#"))
            body.append(f"<h{level}>{_inline(first[level:].strip())}</h{level}>")
            if block[1:]:
                body.append(f"<p>{_inline(' '.join(block[1:]))}</p>")
        elif _IMAGE.match(first.strip()):
            m = _IMAGE.match(first.strip())
            path = Path(m["src"]) if Path(m["src"]).is_absolute() else base / m["src"]
            alt = html.escape(m["alt"])
            body.append(
                f'<figure><img src="{_data_uri(path)}" alt="{alt}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
        elif _is_caption(first) and body and body[-1].endswith("</figure>"):
            continue  # the caption under an image: the figure has it
        elif first.startswith("|"):
            body.append(_table(block))
        elif first.startswith(">"):
            body.append(_quote(block))
        else:
            body.extend(_paragraphs_and_lists(block))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
