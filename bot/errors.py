"""Errors of the application layer.

OpsloopError
├── ConfigError            bad settings or opsloop.toml
├── StoreError             the event store cannot be used
│   ├── StoreUnreachable   database down or URL malformed
│   ├── WrongCipherKey     events cannot be decrypted with OPSLOOP_CIPHER_KEY
│   ├── MixedStore         the key would mix encrypted and plaintext (or sealed and unsealed)
│   └── SchemaTooNew       the database was written by a newer event schema
├── AuditKeyProblem        the audit key is missing or not the one the store was sealed with
├── NotFound               no conversation with that id or prefix
├── AmbiguousId            a prefix matches several conversations
├── ModelUnavailable       every provider (and fallback) failed
└── FileNotFetched         an attached file could not be downloaded as itself (over a cap,
                           a login page instead, a host the token must not go to)

Every message is one human sentence: the CLI prints it as is, with no traceback.
"""

from __future__ import annotations


class OpsloopError(Exception):
    """Root of opsloop's application errors."""


class ConfigError(OpsloopError):
    """Settings or opsloop.toml are invalid."""


class StoreError(OpsloopError):
    """The event store cannot be used."""


class StoreUnreachable(StoreError):
    """The database cannot be reached, or its URL is malformed."""


class WrongCipherKey(StoreError):
    """Stored events cannot be decrypted with the configured key."""


class MixedStore(StoreError):
    """Starting would mix encrypted and plaintext events, or sealed and unsealed ones."""


class SchemaTooNew(StoreError):
    """The database holds events of a newer schema than this opsloop knows."""


class AuditKeyProblem(OpsloopError):
    """The audit key is missing, or is not the key the records were sealed with."""


class NotFound(OpsloopError):
    """No conversation matches the given id or prefix."""


class AmbiguousId(OpsloopError):
    """A conversation id prefix matches more than one conversation."""


class ModelUnavailable(OpsloopError):
    """Every configured provider failed to answer."""

    def __init__(self, message: str, *, failures: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures  # tuple[bot.ports.ProviderFailure, ...]


class FileNotFetched(OpsloopError):
    """An attached file was not downloaded: its message says why, in one sentence."""


def one_line(exc: BaseException) -> str:
    """An error as one line for a user or an event: its first line (never a traceback pasted
    into its message), or its type when it has no words."""
    first = next((line for line in str(exc).splitlines() if line.strip()), "")
    return " ".join(first.split()) or type(exc).__name__
