"""Calling a peer's SEOS ``Submit`` over mutual TLS (zeep), with Kurier's own WSDL.

What the reference sender does is the rule here (domain.md §3): only a connection failure or a timeout
is worth a retry (:class:`~schemas.errors.Transient`); a SOAP fault is final
(:class:`~schemas.errors.Permanent`, with the peer's words). A peer answering 5xx without a fault (a
proxy in front of it, an overloaded server) is retried too: nothing was decided about the message.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport

from adapters.seos.wsdl import endpoint_wsdl
from schemas.errors import Permanent, Transient, redact_secrets

__all__ = ["ClientTls", "SeosClient"]

_BINDING = "{http://services.egov.bg/messaging/}EGovService"


@dataclass(frozen=True)
class ClientTls:
    """PEM files: Kurier's registered certificate and key (the same as for signing), and the CAs of peers."""

    certificate: Path
    key: Path
    peer_ca: Path


class SeosClient:
    """One client for every peer: zeep's service proxy is made per URL, the TLS session is shared."""

    def __init__(self, tls: ClientTls, *, timeout: float = 60.0) -> None:
        self.session = requests.Session()
        # Only the configured CAs: $REQUESTS_CA_BUNDLE would otherwise replace them (requests#3829).
        self.session.trust_env = False
        self.session.verify = str(tls.peer_ca)
        self.session.cert = (str(tls.certificate), str(tls.key))
        self._wsdl_dir = tempfile.TemporaryDirectory(prefix="kurier-seos-wsdl-")
        wsdl = Path(self._wsdl_dir.name) / "seos.wsdl"
        wsdl.write_bytes(endpoint_wsdl("https://peer.invalid/", "a SEOS peer"))  # the address is per call
        self._client = zeep.Client(str(wsdl), transport=Transport(session=self.session, timeout=timeout,
                                                                  operation_timeout=timeout))
        self._services: dict[str, zeep.proxy.ServiceProxy] = {}

    def submit(self, url: str, message: bytes) -> bytes:
        """Submit ``message`` (signed SEOS XML, UTF-8) to the endpoint at ``url``; the peer's answer, UTF-8."""
        service = self._services.get(url)
        if service is None:
            service = self._services[url] = self._client.create_service(_BINDING, url)
        where = redact_secrets(url, limit=None)
        try:
            answer = service.Submit(request=message.decode("utf-8"))
        except zeep.exceptions.Fault as exc:
            raise Permanent(f"SEOS peer {where} answered with a SOAP fault: {exc.message}", code="seos-fault") from None
        except zeep.exceptions.TransportError as exc:
            if exc.status_code >= 500:
                raise Transient(f"SEOS peer {where} answered HTTP {exc.status_code}") from None
            raise Permanent(f"SEOS peer {where} answered HTTP {exc.status_code}: {exc.message}",
                            code="seos-refused") from None
        except requests.exceptions.SSLError as exc:
            # A certificate the peer has not renewed yet, or ours not yet in its trust store: fixed by
            # people, in hours; the retry schedule is long enough for that.
            raise Transient(f"SEOS peer {where}: TLS failed ({_reason(exc)})") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise Transient(f"SEOS peer {where} is unreachable: {_reason(exc)}") from None
        except zeep.exceptions.Error as exc:
            raise Permanent(f"SEOS peer {where} answered something that is not a SEOS Submit response: {exc}",
                            code="seos-bad-answer") from None
        if answer is None:
            raise Permanent(f"SEOS peer {where} answered with an empty SubmitResult", code="seos-bad-answer")
        return str(answer).encode("utf-8")

    def close(self) -> None:
        self.session.close()
        self._wsdl_dir.cleanup()


def _reason(exc: Exception) -> str:
    text = str(exc)
    # requests nests urllib3's reason in "Max retries exceeded ... (Caused by X(...))": keep X's words.
    if "Caused by " in text:
        text = text.split("Caused by ", 1)[1].rstrip(")")
    return redact_secrets(text, limit=200)
