"""A small PDF reader, standard library only: what the verifier needs from a report PDF, nothing more.

It finds the embedded files (the signed JSON report a PDF/A-3 report attaches) and extracts each page's text
(content streams decoded through the fonts' ToUnicode maps). It reads classic and compressed PDFs (object streams,
FlateDecode) as written by WeasyPrint and by common PDF libraries. Anything it cannot read raises ``PdfError``: the
verifier then says the PDF cannot be checked, never that it verified.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any


class PdfError(Exception):
    """The file is not a PDF this reader can read."""


class Name(str):
    """A PDF name (``/Type``), without its slash."""


@dataclass(frozen=True)
class Ref:
    number: int


@dataclass(frozen=True)
class Operator:
    word: bytes


@dataclass
class Stream:
    info: dict[str, Any]
    raw: bytes


_WHITESPACE = b"\x00\t\n\x0c\r "
_DELIMITERS = b"()<>[]{}/%"
_NUMBER = re.compile(rb"^[+-]?(\d+\.?\d*|\.\d+)$")
_OBJ = re.compile(rb"(?<![0-9])(\d+)\s+(\d+)\s+obj\b")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


class _Lexer:
    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def _skip(self) -> None:
        data, n = self.data, len(self.data)
        while self.pos < n:
            c = data[self.pos]
            if c in _WHITESPACE:
                self.pos += 1
            elif c == 0x25:  # % comment
                while self.pos < n and data[self.pos] not in b"\r\n":
                    self.pos += 1
            else:
                return

    def token(self) -> Any:
        """The next token: a value, ``<<``/``>>``/``[``/``]`` as bytes, an ``Operator``, or None at the end."""
        self._skip()
        data, pos = self.data, self.pos
        if pos >= len(data):
            return None
        c = data[pos : pos + 1]
        if data.startswith(b"<<", pos) or data.startswith(b">>", pos):
            self.pos += 2
            return data[pos : pos + 2]
        if c in (b"[", b"]", b"{", b"}"):
            self.pos += 1
            return c
        if c == b"/":
            end = pos + 1
            while end < len(data) and data[end] not in _WHITESPACE and data[end] not in _DELIMITERS:
                end += 1
            self.pos = end
            raw = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data[pos + 1 : end])
            return Name(raw.decode("latin-1"))
        if c == b"(":
            return self._literal()
        if c == b"<":
            end = data.find(b">", pos)
            if end < 0:
                raise PdfError("unterminated hex string")
            self.pos = end + 1
            digits = re.sub(rb"\s", b"", data[pos + 1 : end])
            try:
                return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode("ascii"))
            except ValueError:
                raise PdfError("bad hex string") from None
        end = pos
        while end < len(data) and data[end] not in _WHITESPACE and data[end] not in _DELIMITERS:
            end += 1
        if end == pos:  # a stray delimiter such as ')'
            self.pos += 1
            return Operator(c)
        self.pos = end
        word = data[pos:end]
        if _NUMBER.match(word):
            return float(word) if b"." in word else int(word)
        return {b"true": True, b"false": False, b"null": None}.get(word, Operator(word))

    def _literal(self) -> bytes:
        data, pos, depth = self.data, self.pos + 1, 1
        out = bytearray()
        while pos < len(data):
            c = data[pos : pos + 1]
            if c == b"\\":
                nxt = data[pos + 1 : pos + 2]
                if nxt in _ESCAPES:
                    out += _ESCAPES[nxt]
                    pos += 2
                elif nxt.isdigit():
                    octal = re.match(rb"[0-7]{1,3}", data[pos + 1 : pos + 4])
                    digits = octal.group(0) if octal else nxt
                    out.append(int(digits, 8) & 0xFF)
                    pos += 1 + len(digits)
                elif nxt == b"\r":
                    pos += 3 if data[pos + 2 : pos + 3] == b"\n" else 2
                elif nxt == b"\n":
                    pos += 2
                else:
                    out += nxt
                    pos += 2
                continue
            if c == b"(":
                depth += 1
            elif c == b")":
                depth -= 1
                if depth == 0:
                    self.pos = pos + 1
                    return bytes(out)
            out += c
            pos += 1
        raise PdfError("unterminated string")

    def value(self, token: Any = None) -> Any:
        """The next complete value (``N G R`` references included)."""
        token = self.token() if token is None else token
        if token == b"<<":
            result: dict[str, Any] = {}
            while True:
                key = self.token()
                if key == b">>":
                    return result
                if not isinstance(key, Name):
                    raise PdfError("dictionary key is not a name")
                result[str(key)] = self.value()
        if token == b"[":
            items: list[Any] = []
            while True:
                item = self.token()
                if item == b"]":
                    return items
                items.append(self.value(item))
        if isinstance(token, int) and not isinstance(token, bool):
            saved = self.pos
            generation, keyword = self.token(), self.token()
            if isinstance(generation, int) and keyword == Operator(b"R"):
                return Ref(token)
            self.pos = saved
        return token


class PdfDocument:
    """The objects of a PDF, its embedded files and its pages' text."""

    def __init__(self, data: bytes):
        if not data.startswith(b"%PDF-"):
            raise PdfError("not a PDF (no %PDF- header)")
        self.data = data
        self.objects: dict[int, Any] = {}
        for match in _OBJ.finditer(data):  # in file order: a later (updated) definition wins
            try:
                self.objects[int(match.group(1))] = self._read_object(match.end())
            except PdfError:
                continue
        for obj in list(self.objects.values()):
            if isinstance(obj, Stream) and obj.info.get("Type") == "ObjStm":
                self._unpack_object_stream(obj)

    def _read_object(self, pos: int) -> Any:
        lexer = _Lexer(self.data, pos)
        value = lexer.value()
        after = lexer.token()
        if isinstance(value, dict) and after == Operator(b"stream"):
            start = lexer.pos
            if self.data.startswith(b"\r\n", start):
                start += 2
            elif self.data.startswith(b"\n", start):
                start += 1
            length = value.get("Length")
            if isinstance(length, int) and self.data.startswith(b"endstream", self._eol_skip(start + length)):
                return Stream(value, self.data[start : start + length])
            end = self.data.find(b"endstream", start)
            if end < 0:
                raise PdfError("unterminated stream")
            return Stream(value, self.data[start:end].rstrip(b"\r\n"))
        return value

    def _eol_skip(self, pos: int) -> int:
        while pos < len(self.data) and self.data[pos] in _WHITESPACE:
            pos += 1
        return pos

    def _unpack_object_stream(self, stream: Stream) -> None:
        data = self.decode(stream)
        first, count = stream.info.get("First"), stream.info.get("N")
        if not isinstance(first, int) or not isinstance(count, int):
            return
        lexer = _Lexer(data)
        header = [lexer.token() for _ in range(2 * count)]
        for number, offset in zip(header[::2], header[1::2], strict=True):
            if isinstance(number, int) and isinstance(offset, int) and number not in self.objects:
                try:
                    self.objects[number] = _Lexer(data, first + offset).value()
                except PdfError:
                    continue

    def resolve(self, value: Any) -> Any:
        seen = 0
        while isinstance(value, Ref) and seen < 32:
            value = self.objects.get(value.number)
            seen += 1
        return value

    def decode(self, stream: Stream) -> bytes:
        filters = self.resolve(stream.info.get("Filter"))
        filters = [filters] if isinstance(filters, str) else list(filters or [])
        data = stream.raw
        for name in filters:
            if name not in ("FlateDecode", "Fl"):
                raise PdfError(f"unsupported stream filter {name}")
            try:
                data = zlib.decompress(data)
            except zlib.error:
                raise PdfError("a compressed stream does not decompress") from None
        return data

    def catalog(self) -> dict[str, Any]:
        for obj in self.objects.values():
            info = obj.info if isinstance(obj, Stream) else obj
            if isinstance(info, dict) and info.get("Type") == "Catalog":
                return info
        raise PdfError("no document catalog")

    def embedded_files(self) -> list[tuple[str, bytes]]:
        """(name, content) of every file in the catalog's ``EmbeddedFiles`` name tree."""
        names = self.resolve(self.resolve(self.catalog().get("Names")) or {})
        tree = self.resolve(names.get("EmbeddedFiles")) if isinstance(names, dict) else None
        files: list[tuple[str, bytes]] = []
        self._walk_names(tree, files, depth=0)
        return files

    def _walk_names(self, node: Any, files: list[tuple[str, bytes]], depth: int) -> None:
        if not isinstance(node, dict) or depth > 16:
            return
        entries = self.resolve(node.get("Names")) or []
        for key, spec in zip(entries[::2], entries[1::2], strict=False):
            spec = self.resolve(spec)
            if not isinstance(spec, dict):
                continue
            ef = self.resolve(spec.get("EF"))
            stream = self.resolve(ef.get("F") or ef.get("UF")) if isinstance(ef, dict) else None
            if isinstance(stream, Stream):
                name = self.resolve(spec.get("UF") or spec.get("F") or key)
                files.append((_text_string(name), self.decode(stream)))
        for kid in self.resolve(node.get("Kids")) or []:
            self._walk_names(self.resolve(kid), files, depth + 1)

    def pages(self) -> list[dict[str, Any]]:
        """The page dictionaries in order, each with its inherited ``Resources``."""
        pages: list[dict[str, Any]] = []
        self._walk_pages(self.resolve(self.catalog().get("Pages")), None, pages, depth=0)
        return pages

    def _walk_pages(self, node: Any, resources: Any, pages: list[dict[str, Any]], depth: int) -> None:
        if not isinstance(node, dict) or depth > 32:
            return
        resources = node.get("Resources", resources)
        if node.get("Type") == "Page" or "Kids" not in node:
            pages.append({**node, "Resources": resources})
            return
        for kid in self.resolve(node.get("Kids")) or []:
            self._walk_pages(self.resolve(kid), resources, pages, depth + 1)

    def page_text(self, page: dict[str, Any]) -> str:
        """The text a page shows, in drawing order, text objects separated by newlines."""
        contents = self.resolve(page.get("Contents"))
        parts = contents if isinstance(contents, list) else [contents]
        data = b"\n".join(self.decode(s) for s in map(self.resolve, parts) if isinstance(s, Stream))
        return self._show(data, self.resolve(page.get("Resources")) or {}, depth=0)

    def _fonts(self, resources: dict[str, Any]) -> dict[str, _Font]:
        fonts = self.resolve(resources.get("Font")) or {}
        return {name: _Font.of(self, self.resolve(font)) for name, font in fonts.items()}

    def _show(self, data: bytes, resources: dict[str, Any], depth: int) -> str:
        fonts = self._fonts(resources)
        font = _Font.of(self, None)
        out: list[str] = []
        operands: list[Any] = []
        lexer = _Lexer(data)
        while (token := lexer.token()) is not None:
            if not isinstance(token, Operator):
                operands.append(lexer.value(token))
                continue
            word = token.word
            if word == b"Tf" and len(operands) >= 2 and isinstance(operands[-2], str):
                font = fonts.get(operands[-2], font)
            elif word in (b"Tj", b"'", b'"') and operands and isinstance(operands[-1], bytes):
                out.append(font.text(operands[-1]))
            elif word == b"TJ" and operands and isinstance(operands[-1], list):
                out.append("".join(font.text(item) for item in operands[-1] if isinstance(item, bytes)))
            elif word in (b"ET", b"T*", b"Td", b"TD"):
                out.append("\n" if word == b"ET" else " ")
            elif word == b"Do" and operands and depth < 8:
                xobjects = self.resolve(resources.get("XObject")) or {}
                form = self.resolve(xobjects.get(operands[-1]))
                if isinstance(form, Stream) and form.info.get("Subtype") == "Form":
                    inner = self.resolve(form.info.get("Resources")) or resources
                    out.append(self._show(self.decode(form), inner, depth + 1))
            elif word == b"ID":  # inline image data: skip to its end
                end = data.find(b"EI", lexer.pos)
                lexer.pos = len(data) if end < 0 else end + 2
            operands = []
        return "".join(out)


class _Font:
    """How a font's character codes map to text: its ToUnicode map, 2-byte codes for composite fonts."""

    def __init__(self, mapping: dict[int, str], width: int):
        self.mapping = mapping
        self.width = width

    @classmethod
    def of(cls, doc: PdfDocument, font: Any) -> _Font:
        if not isinstance(font, dict):
            return cls({}, 1)
        width = 2 if font.get("Subtype") == "Type0" else 1
        cmap = doc.resolve(font.get("ToUnicode"))
        mapping = _parse_cmap(doc.decode(cmap)) if isinstance(cmap, Stream) else {}
        return cls(mapping, width)

    def text(self, codes: bytes) -> str:
        step = self.width
        chars = []
        for i in range(0, len(codes) - step + 1, step):
            code = int.from_bytes(codes[i : i + step], "big")
            chars.append(self.mapping.get(code, chr(code) if step == 1 else ""))
        return "".join(chars)


def _utf16(data: bytes) -> str:
    return data.decode("utf-16-be", "replace")


def _parse_cmap(data: bytes) -> dict[int, str]:
    mapping: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
            mapping[int(src, 16)] = _utf16(bytes.fromhex(dst.decode()))
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, rest in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]*>|\[[^\]]*\])", block):
            low, high = int(lo, 16), int(hi, 16)
            if high - low > 0xFFFF:
                continue
            if rest.startswith(b"["):
                targets = re.findall(rb"<([0-9A-Fa-f]*)>", rest)
                for offset, dst in enumerate(targets[: high - low + 1]):
                    mapping[low + offset] = _utf16(bytes.fromhex(dst.decode()))
            else:
                start = bytes.fromhex(rest[1:-1].decode())
                base = int.from_bytes(start, "big")
                for offset in range(high - low + 1):
                    mapping[low + offset] = _utf16((base + offset).to_bytes(len(start), "big"))
    return mapping


def _text_string(value: Any) -> str:
    if isinstance(value, bytes):
        if value.startswith(b"\xfe\xff"):
            return value[2:].decode("utf-16-be", "replace")
        return value.decode("latin-1")
    return str(value)
