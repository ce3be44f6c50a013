"""Errors of the sandbox itself (never of the code it runs: those are results).

SandboxError
├── SandboxUnavailable   nsjail missing, namespaces not permitted, no cgroup … (block did not run)
├── OutcomeUnknown       the jail or the service was lost after the block may have started
├── BadRequest           empty code, unknown language, code too big, limits out of range
└── FileRejected         a file cannot go into a workspace's inbox (full, the inbox replaced)
"""

from __future__ import annotations


class SandboxError(Exception):
    """Root of the sandbox's errors."""


class SandboxUnavailable(SandboxError):
    """The sandbox cannot run code here; the message says why and how to fix it."""


class OutcomeUnknown(SandboxError):
    """The block may have run but its result was lost; it must not be retried blindly."""


class BadRequest(SandboxError):
    """A run request is invalid (empty code, unknown language, too big, bad limits)."""


class FileRejected(SandboxError):
    """A file could not be saved in a workspace (full, its inbox keeps being replaced)."""
