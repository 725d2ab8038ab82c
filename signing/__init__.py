"""Signing: the pipeline's sign stage (QES: PAdES, XAdES, XML-DSig). Today the slot and its default."""

from signing.base import NoSigning, Signer, SignResult

__all__ = ["NoSigning", "SignResult", "Signer"]
