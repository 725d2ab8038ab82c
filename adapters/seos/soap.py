"""SOAP 1.1 for SEOS ``Submit``: the request read as a stream, the response and faults written.

The whole signed SEOS message travels as escaped text inside ``Submit/request`` (domain.md §3), so a
message with a 100 MB attachment is a SOAP body of some 140 MB. It is never held as one string: lxml's
parser is fed the body in chunks and hands the ``request`` text over in pieces (a parser *target*),
which go straight into a file; the SEOS message is then read from that file.
"""

from __future__ import annotations

from collections.abc import Iterable
from io import BufferedIOBase
from typing import IO, Any

from lxml import etree

from schemas.errors import Refused

__all__ = ["MESSAGING_NS", "SOAP_ACTION", "SOAP_NS", "fault", "read_submit", "submit_request", "submit_response"]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGING_NS = "http://services.egov.bg/messaging/"
SOAP_ACTION = "http://services.egov.bg/messaging/IEGovService/Submit"

_PATH = (f"{{{SOAP_NS}}}Envelope", f"{{{SOAP_NS}}}Body", f"{{{MESSAGING_NS}}}Submit", f"{{{MESSAGING_NS}}}request")
_HEADER = f"{{{SOAP_NS}}}Header"
_CHUNK = 1024 * 1024


class _SubmitTarget:
    """Checks the envelope is ``Envelope/Body/Submit/request`` and copies the request's text out as UTF-8."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.path: list[str] = []
        self.found = False
        self.written = 0

    def start(self, tag: str, attrib: Any, nsmap: Any = None) -> None:
        depth = len(self.path)
        if depth >= 2 and self.path[1] == _HEADER:  # WS-Addressing and the like (zeep sends them): not ours
            self.path.append(tag)
            return
        if depth < 3 and tag != _PATH[depth] and not (depth == 1 and tag == _HEADER):
            raise Refused(f"the SOAP message has <{_local(tag)}> where <{_local(_PATH[depth])}> belongs: "
                          "expected a SEOS Submit request", code="soap-malformed")
        if depth == 3 and tag == _PATH[3]:
            if self.found:
                raise Refused("the SOAP message has two <request> elements", code="soap-malformed")
            self.found = True
        self.path.append(tag)

    def end(self, tag: str) -> None:
        self.path.pop()

    def data(self, data: str) -> None:
        if tuple(self.path) == _PATH:
            chunk = data.encode("utf-8")
            self.out.write(chunk)
            self.written += len(chunk)

    def doctype(self, *args: Any) -> None:
        raise Refused("the SOAP message has a DOCTYPE; entities are not accepted", code="hostile-xml")

    def comment(self, text: str) -> None:  # comments carry nothing
        pass

    def pi(self, target: str, data: str | None = None) -> None:
        pass

    def close(self) -> bool:
        return self.found


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def read_submit(chunks: Iterable[bytes], out: IO[bytes]) -> int:
    """Read a SOAP ``Submit`` request from ``chunks`` and write its ``request`` text (the SEOS message, as
    UTF-8 bytes) to ``out``; how many bytes were written. Raises :class:`Refused` saying what is wrong.
    """
    target = _SubmitTarget(out)
    # The request text is one text node of any size: huge_tree lifts libxml2's 10 MB limit on it, while
    # a DOCTYPE (and so any entity) is refused by the target and nothing is ever fetched.
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True)
    try:
        for chunk in chunks:
            parser.feed(chunk)
        found = parser.close()
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise Refused(f"the SOAP message is not well-formed XML at line {line}, column {column}: {exc.msg}",
                      code="soap-malformed") from None
    if not found:
        raise Refused("the SOAP message has no Submit/request: nothing to read", code="soap-malformed")
    if target.written == 0:
        raise Refused("the SOAP Submit request is empty", code="soap-malformed")
    return target.written


def _envelope(body: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def submit_response(answer: bytes) -> bytes:
    """``SubmitResponse/SubmitResult`` carrying ``answer`` (a signed SEOS message, UTF-8) as text."""
    response = etree.Element(f"{{{MESSAGING_NS}}}SubmitResponse", nsmap={None: MESSAGING_NS})
    etree.SubElement(response, f"{{{MESSAGING_NS}}}SubmitResult").text = answer.decode("utf-8")
    return _envelope(response)


def submit_request(message: bytes) -> bytes:
    """``Submit/request`` carrying ``message`` as text, as a peer's client sends it."""
    request = etree.Element(f"{{{MESSAGING_NS}}}Submit", nsmap={None: MESSAGING_NS})
    etree.SubElement(request, f"{{{MESSAGING_NS}}}request").text = message.decode("utf-8")
    return _envelope(request)


def fault(reason: str, *, client: bool = True) -> bytes:
    """A SOAP 1.1 fault: ``s:Client`` for what the caller sent, ``s:Server`` for Kurier's own trouble."""
    body = etree.Element(f"{{{SOAP_NS}}}Fault")
    etree.SubElement(body, "faultcode").text = "s:Client" if client else "s:Server"
    etree.SubElement(body, "faultstring").text = reason
    return _envelope(body)


def iter_chunks(stream: IO[bytes] | BufferedIOBase, length: int, size: int = _CHUNK) -> Iterable[bytes]:
    """``length`` bytes of ``stream`` in pieces of at most ``size``."""
    left = length
    while left > 0:
        chunk = stream.read(min(size, left))
        if not chunk:
            raise Refused(f"the request ended {left} bytes before its Content-Length", code="soap-malformed")
        left -= len(chunk)
        yield chunk
