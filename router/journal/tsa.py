"""RFC 3161 timestamps over the sealed journal's chain head: asking a TSA, and checking a token.

The message a token stamps is the head's 32 bytes (its imprint is their SHA-256). A token proves the
chain up to that block existed at the token's time: rewriting any row before it means recomputing the
heads from there on, and the recomputed head no longer matches what the TSA signed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import Transient

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.timestamps.api import TimeStamper

__all__ = ["TokenCheck", "check_token", "http_timestamper", "load_certificates", "stamp_head"]


def http_timestamper(url: str, timeout: float) -> TimeStamper:
    from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

    return RequestsHTTPTimeStamper(url, timeout=timeout)


def stamp_head(stamper: TimeStamper, head: str) -> tuple[bytes, datetime]:
    """A token over ``head`` (DER) and its time; :class:`Transient` when the TSA cannot be reached or refuses."""
    digest = hashlib.sha256(bytes.fromhex(head)).digest()
    try:
        token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    except Exception as exc:  # requests/aiohttp I/O errors and pyhanko's TimestampRequestError alike
        raise Transient(f"the timestamp authority did not stamp the journal's head: {exc}") from exc
    tst_info = token["content"]["encap_content_info"]["content"].parsed
    return token.dump(), tst_info["gen_time"].native


def load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    """The TSA's trust anchors from PEM or DER files (a PEM file may hold several)."""
    from signing.certs import read_certificates

    return [cert for path in paths for cert in read_certificates(path)]


@dataclass(frozen=True)
class TokenCheck:
    ok: bool  # the imprint matches the head and the signature is intact and valid (and trusted, with anchors)
    at: datetime | None
    tsa: str  # the TSA's name, as its certificate gives it
    problem: str = ""


def check_token(token: bytes, head: str, trust: Sequence[x509.Certificate] = ()) -> TokenCheck:
    """Whether ``token`` stamps ``head``: the imprint, the TSA's signature, and (given anchors) its chain."""
    from asn1crypto import cms
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    try:
        info = cms.ContentInfo.load(token)
        signed = info["content"]
        tst_info = signed["encap_content_info"]["content"].parsed
        at = tst_info["gen_time"].native
        algorithm = tst_info["message_imprint"]["hash_algorithm"]["algorithm"].native
        imprint = tst_info["message_imprint"]["hashed_message"].native
    except Exception as exc:
        return TokenCheck(False, None, "?", f"not a timestamp token: {exc}")
    if imprint != hashlib.new(algorithm, bytes.fromhex(head)).digest():
        return TokenCheck(False, at, "?", "the token stamps another head: the block's head was changed")
    # The TSA's certificate as of the token's time: a token outlives its TSA's certificate by design.
    context = ValidationContext(trust_roots=list(trust), allow_fetching=False, moment=at)
    try:
        status = asyncio.run(validate_tst_signed_data(
            signed, context, lambda alg: hashlib.new(alg, bytes.fromhex(head)).digest()))
    except Exception as exc:
        return TokenCheck(False, at, "?", f"the token's signature cannot be checked: {exc}")
    signer = status.get("signing_cert")
    name = signer.subject.human_friendly if signer is not None else "?"
    if not (status.get("intact") and status.get("valid")):
        return TokenCheck(False, at, name, "the TSA's signature over the token does not verify")
    if trust and status.get("trust_problem_indic") is not None:
        return TokenCheck(False, at, name, "the TSA's certificate does not chain to seal.tsa_trust")
    return TokenCheck(True, at, name)
