"""EPUB books (2 and 3): the chapters in reading order (the package's spine), each chapter's
XHTML through the HTML reader, as one markdown document whose headings give every chunk its
chapter and section. A chapter file without a heading of its own takes its title from the
book's table of contents (the EPUB 3 navigation document, or the EPUB 2 NCX).

Left out on purpose: spine items marked non-linear (covers, pop-up notes the book itself keeps
out of the reading order), the navigation document, page-break markers, images. A book whose
content documents are encrypted (DRM) is refused with that reason; obfuscated fonts are not
content and do not count.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from urllib.parse import unquote, urldefrag
from xml.etree import ElementTree

from defusedxml import ElementTree as SafeTree

from athenaeum.build.formats import Converted, FormatError, one_line
from athenaeum.build.formats.html import Node, RenderOptions, decode, parse, render
from athenaeum.build.sources import meaningful_title

_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_NCX = "{http://www.daisy.org/z3986/2005/ncx/}"
_ENC = "{http://www.w3.org/2001/04/xmlenc#}"
_HTML_TYPES = ("application/xhtml+xml", "text/html", "application/x-dtbook+xml")
_FONT_OBFUSCATION = (
    "http://www.idpf.org/2008/embedding",
    "http://ns.adobe.com/pdf/enc#RC",
)


def read_epub(data: bytes, name: str) -> Converted:
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        opf_path = _rootfile(book)
        package = SafeTree.fromstring(book.read(opf_path))
    except zipfile.BadZipFile as exc:
        raise FormatError(f"damaged: not a readable ZIP container ({exc})") from exc
    except (KeyError, ElementTree.ParseError) as exc:
        raise FormatError(f"damaged: no readable EPUB package ({exc})") from exc
    base = posixpath.dirname(opf_path)
    manifest: dict[str, tuple[str, str, str]] = {}
    for item in package.iter(f"{_OPF}item"):
        href = posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
        manifest[item.get("id", "")] = (
            href,
            item.get("media-type", ""),
            item.get("properties", ""),
        )
    _refuse_drm(book, {href for href, _, _ in manifest.values()})
    titles = _toc_titles(book, package, manifest, base)
    blocks: list[str] = []
    chapters = 0
    headings = 0
    for ref in package.iter(f"{_OPF}itemref"):
        if ref.get("linear", "yes") == "no" or ref.get("idref") not in manifest:
            continue
        href, media, properties = manifest[ref.get("idref", "")]
        if media not in _HTML_TYPES or "nav" in properties.split():
            continue
        try:
            root = parse(decode(book.read(href)))
        except KeyError:
            continue  # a spine item missing from the container: the rest still reads
        body = root.find("body") or root
        _drop_page_breaks(body)
        markdown, found = render(body, RenderOptions())
        if not markdown.strip():
            continue
        chapters += 1
        if not found and titles.get(href):
            markdown = f"## {titles[href]}\n\n{markdown}"
            found = 1
        headings += found
        blocks.append(markdown)
    if not blocks:
        raise FormatError("no text: the book's reading order holds no readable chapter")
    title_element = package.find(f"{_OPF}metadata/{_DC}title")
    title = meaningful_title(title_element.text if title_element is not None else "", name)
    return Converted("\n\n".join(blocks), title, "chapter", chapters)


def _rootfile(book: zipfile.ZipFile) -> str:
    container = SafeTree.fromstring(book.read("META-INF/container.xml"))
    for rootfile in container.iter(f"{_CONTAINER}rootfile"):
        path = str(rootfile.get("full-path") or "")
        if path and rootfile.get("media-type", "application/oebps-package+xml").endswith("xml"):
            return path
    raise KeyError("META-INF/container.xml names no package document")


def _refuse_drm(book: zipfile.ZipFile, content: set[str]) -> None:
    try:
        encryption = SafeTree.fromstring(book.read("META-INF/encryption.xml"))
    except (KeyError, ElementTree.ParseError):
        return
    for data in encryption.iter(f"{_ENC}EncryptedData"):
        method = data.find(f"{_ENC}EncryptionMethod")
        if method is not None and method.get("Algorithm") in _FONT_OBFUSCATION:
            continue
        reference = data.find(f"{_ENC}CipherData/{_ENC}CipherReference")
        uri = unquote(reference.get("URI", "")) if reference is not None else ""
        if posixpath.normpath(uri) in content:
            raise FormatError(
                "encrypted: the book is DRM-protected; only DRM-free EPUBs can be read"
            )


def _toc_titles(
    book: zipfile.ZipFile,
    package: ElementTree.Element,
    manifest: dict[str, tuple[str, str, str]],
    base: str,
) -> dict[str, str]:
    """Each content file's first title in the table of contents."""
    titles: dict[str, str] = {}
    for href, _media, properties in manifest.values():
        if "nav" in properties.split():
            try:
                nav = parse(decode(book.read(href)))
            except KeyError:
                continue
            for link in nav.iter():
                if link.tag == "a" and link.attrs.get("href"):
                    target = _resolve(posixpath.dirname(href), link.attrs["href"])
                    titles.setdefault(target, one_line(link.text()))
    spine = package.find(f"{_OPF}spine")
    ncx_id = spine.get("toc") if spine is not None else None
    if ncx_id in manifest:
        ncx_href = manifest[ncx_id or ""][0]
        try:
            ncx = SafeTree.fromstring(book.read(ncx_href))
        except (KeyError, ElementTree.ParseError):
            return titles
        for point in ncx.iter(f"{_NCX}navPoint"):
            label = point.find(f"{_NCX}navLabel/{_NCX}text")
            content = point.find(f"{_NCX}content")
            if label is not None and content is not None and content.get("src"):
                target = _resolve(posixpath.dirname(ncx_href), content.get("src", ""))
                titles.setdefault(target, one_line(label.text or ""))
    return {k: v for k, v in titles.items() if v}


def _resolve(folder: str, href: str) -> str:
    path, _ = urldefrag(unquote(href))
    return posixpath.normpath(posixpath.join(folder, path))


def _drop_page_breaks(node: Node) -> None:
    node.children = [
        c
        for c in node.children
        if isinstance(c, str)
        or not (
            "pagebreak" in c.attrs.get("epub:type", "") or c.attrs.get("role") == "doc-pagebreak"
        )
    ]
    for child in node.children:
        if isinstance(child, Node):
            _drop_page_breaks(child)
