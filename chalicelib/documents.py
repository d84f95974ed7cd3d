"""What the document and text actions compute, without I/O (SPEC §5): the text of a
document (PDF, plain text, CSV, JSON, HTML), typed fields extracted from text by an
extraction schema, sentiment (VADER) and topics (YAKE)."""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Any

from chalicelib.schemas import pattern_problem

FIELD_TYPES = ("string", "number", "date", "money")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
PATTERN_MAX = 500
EXTRACT_TEXT_MAX = 1_000_000
MEDIA_TYPES = {
    "pdf": "application/pdf", "txt": "text/plain", "text": "text/plain", "md": "text/plain", "csv": "text/csv",
    "json": "application/json", "html": "text/html", "htm": "text/html",
}


class DocumentError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def media_type(filename: str | None, declared: str | None, content: bytes) -> str:
    """The document's kind: what it says it is, else its extension, else its first bytes."""
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared and declared != "application/octet-stream":
        return declared
    extension = posixpath.splitext(filename or "")[1].lstrip(".").lower()
    if extension in MEDIA_TYPES:
        return MEDIA_TYPES[extension]
    if content.startswith(b"%PDF"):
        return "application/pdf"
    return "text/plain"


class _Text(HTMLParser):
    SKIP = {"script", "style", "head", "noscript"}
    BREAKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        if tag == "title":
            self._in_title = True
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        if tag == "title":
            self._in_title = False
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
        elif not self._skipping:
            self.parts.append(data)


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def parse(content: bytes, kind: str) -> dict[str, Any]:
    """{text, pages, content_type, metadata} of a document's bytes."""
    if kind == "application/pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(content))
            pages = [page.extract_text() or "" for page in reader.pages]
            info = reader.metadata or {}
        except (PdfReadError, ValueError, KeyError) as error:
            raise DocumentError("DOCUMENT_UNREADABLE", f"not a readable PDF: {error}") from None
        metadata = {k: str(info.get(f"/{k.title()}")) for k in ("title", "author", "subject")
                    if info.get(f"/{k.title()}")}
        return {"text": "\n\n".join(p.strip() for p in pages).strip(), "pages": len(pages),
                "content_type": kind, "metadata": metadata}
    text = content.decode("utf-8-sig", errors="replace")
    if kind == "text/html":
        parser = _Text()
        parser.feed(text)
        return {"text": _tidy("".join(parser.parts)), "pages": 1, "content_type": kind,
                "metadata": {"title": parser.title} if parser.title else {}}
    if kind == "text/csv":
        rows = list(csv.reader(io.StringIO(text)))
        columns = rows[0] if rows else []
        return {"text": text.strip(), "pages": 1, "content_type": kind,
                "metadata": {"columns": columns, "rows": max(0, len(rows) - 1),
                             "records": [dict(zip(columns, row)) for row in rows[1:101]]}}
    if kind == "application/json":
        try:
            value = json.loads(text)
        except ValueError as error:
            raise DocumentError("DOCUMENT_UNREADABLE", f"not valid JSON: {error}") from None
        return {"text": json.dumps(value, indent=2, ensure_ascii=False), "pages": 1, "content_type": kind,
                "metadata": {"keys": sorted(value) if isinstance(value, dict) else None, "json": value}}
    if kind.startswith("text/"):
        return {"text": text.strip(), "pages": 1, "content_type": kind, "metadata": {}}
    raise DocumentError("UNSUPPORTED_DOCUMENT", f"cannot read {kind} documents (PDF, text, CSV, JSON and HTML)")


# -- extraction ----------------------------------------------------------------------------

def schema_problems(schema: Any, path: str = "schema") -> list[tuple[str, str]]:
    """Write-time checks of an extraction schema."""
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list) or not schema["fields"]:
        return [(f"{path}.fields", "is required: a non-empty list of {name, type, pattern?, keywords?, required?}")]
    problems = []
    seen = set()
    for i, field in enumerate(schema["fields"]):
        where = f"{path}.fields[{i}]"
        if not isinstance(field, dict):
            problems.append((where, "must be an object"))
            continue
        name = field.get("name")
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            problems.append((f"{where}.name", "is required: letters, digits and _"))
        elif name in seen:
            problems.append((f"{where}.name", f"'{name}' is given twice"))
        seen.add(name)
        if field.get("type", "string") not in FIELD_TYPES:
            problems.append((f"{where}.type", "must be one of " + ", ".join(FIELD_TYPES)))
        problem = pattern_problem(field["pattern"], PATTERN_MAX) if field.get("pattern") is not None else None
        if problem:
            problems.append((f"{where}.pattern", problem))
        keywords = field.get("keywords")
        if keywords is not None and (not isinstance(keywords, list) or not all(isinstance(k, str) and k for k in keywords)):
            problems.append((f"{where}.keywords", "must be a list of non-empty strings"))
        if not isinstance(field.get("required", False), bool):
            problems.append((f"{where}.required", "must be a boolean"))
    return problems


_NUMBER = r"[-+]?(?:\d{1,3}(?:[,\s]\d{3})+|\d+)(?:\.\d+)?"
_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_MONTHS = ("%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y", "%b. %d, %Y")
_DATE_PATTERNS = [
    (re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b"), "ymd"),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), "mdy"),
    (re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b"), "dmy"),
    (re.compile(r"\b((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.? \d{1,2},? \d{4})\b", re.I), "words"),
    (re.compile(r"\b(\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]* \d{4})\b", re.I), "words"),
]


def _number(text: str) -> float | int | None:
    match = re.search(_NUMBER, text)
    if not match:
        return None
    raw = re.sub(r"[,\s]", "", match.group(0))
    value = float(raw)
    return int(value) if value.is_integer() and "." not in raw else value


def _money(text: str) -> dict[str, Any] | None:
    amount = _number(text)
    if amount is None:
        return None
    symbol = next((code for sign, code in _CURRENCIES.items() if sign in text), None)
    code = re.search(r"\b(USD|EUR|GBP|JPY|INR|CAD|AUD|CHF)\b", text)
    return {"amount": float(amount), "currency": code.group(1) if code else symbol}


def _date(text: str) -> str | None:
    for pattern, order in _DATE_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        try:
            if order == "words":
                raw = match.group(1).replace("Sept", "Sep").replace(",", ", ").replace("  ", " ").replace(" ,", ",")
                for form in _MONTHS:
                    try:
                        return datetime.strptime(raw.replace(".", ""), form.replace(".", "")).date().isoformat()
                    except ValueError:
                        continue
                continue
            a, b, c = (int(g) for g in match.groups())
            year, month, day = {"ymd": (a, b, c), "mdy": (c, a, b), "dmy": (c, b, a)}[order]
            return date(year, month, day).isoformat()
        except ValueError:
            continue
    return None


def _typed(kind: str, text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    if kind == "number":
        return _number(text)
    if kind == "money":
        return _money(text)
    if kind == "date":
        return _date(text)
    return text


def _after_keyword(text: str, keywords: list[str]) -> str | None:
    """The rest of the line after the first keyword found (separators skipped)."""
    for keyword in keywords:
        match = re.search(re.escape(keyword) + r"\s*[:#\-–=]*\s*(.*)", text, re.IGNORECASE)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def extract(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """{fields: {name: value or None}, missing: [required names not found]}. A field's
    `pattern` wins (its first group, or the whole match); else its `keywords` (default:
    its name in words) lead to the rest of their line; the value is then read as its type."""
    import regex

    text = text[:EXTRACT_TEXT_MAX]
    fields: dict[str, Any] = {}
    missing = []
    for field in schema["fields"]:
        kind = field.get("type", "string")
        value = None
        if field.get("pattern"):
            try:
                match = regex.search(field["pattern"], text, flags=regex.IGNORECASE | regex.MULTILINE, timeout=1.0)
            except TimeoutError:
                match = None
            if match:
                value = _typed(kind, match.group(1) if match.re.groups else match.group(0))
        else:
            keywords = field.get("keywords") or [field["name"].replace("_", " ")]
            snippet = _after_keyword(text, keywords)
            value = _typed(kind, snippet) if snippet is not None else None
        fields[field["name"]] = value
        if value is None and field.get("required"):
            missing.append(field["name"])
    return {"fields": fields, "missing": missing}


# -- text ----------------------------------------------------------------------------------

def sentiment(text: str) -> dict[str, Any]:
    """VADER's scores: `score` is the compound score (-1..1); `mixed` when both positive
    and negative parts are strong and neither wins clearly."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    scores = _analyzer(SentimentIntensityAnalyzer).polarity_scores(text)
    compound = scores["compound"]
    if scores["pos"] >= 0.15 and scores["neg"] >= 0.15 and abs(compound) < 0.5:
        label = "mixed"
    elif compound >= 0.05:
        label = "positive"
    elif compound <= -0.05:
        label = "negative"
    else:
        label = "neutral"
    return {"label": label, "score": compound,
            "scores": {"positive": scores["pos"], "negative": scores["neg"], "neutral": scores["neu"]}}


_analyzers: dict[type, Any] = {}


def _analyzer(cls: type) -> Any:
    if cls not in _analyzers:
        _analyzers[cls] = cls()  # loads the lexicon once per process
    return _analyzers[cls]


def topics(text: str, max_topics: int = 5, language: str = "en") -> dict[str, Any]:
    """The text's key phrases by YAKE (lower score = more relevant), most relevant first."""
    import yake

    if not text.strip():
        return {"topics": [], "keywords": []}
    extractor = yake.KeywordExtractor(lan=language, n=2, dedupLim=0.7, top=max_topics * 2)
    seen: list[str] = []
    keywords = []
    for phrase, score in extractor.extract_keywords(text):
        key = phrase.lower()
        if any(key in other or other in key for other in seen):
            continue
        seen.append(key)
        keywords.append({"text": key, "score": round(float(score), 4)})
        if len(keywords) == max_topics:
            break
    return {"topics": [k["text"] for k in keywords], "keywords": keywords}
