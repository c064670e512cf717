"""Errors of the verification side: the store, the embedded server, the API."""

from __future__ import annotations


class VerifyError(Exception):
    """Root of every expected failure in verify_api."""


class StoreError(VerifyError):
    """Redis could not be reached or failed; the API answers 503, never 500."""


class EmbeddedStoreError(StoreError):
    """The embedded redis-server could not be started, found or stopped."""
