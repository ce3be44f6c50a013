"""Errors of the domain: a command that the conversation's state does not allow.

DomainError
├── ConversationStopped   something other than a new message after Stopped
├── ConversationRenewed   anything after Renewed (the ``new`` command moved on)
├── InvalidTransition     the command does not fit the conversation's status
├── UnknownBlock          no block with that id, or not in the status the command needs
├── UnknownApproval       no approval request with that id in the last turn
├── LoopTakenOver         another process holds the loop's lease now
└── UnknownAnswer         feedback on an answer this conversation never gave

Guards raise these before any event is triggered, so a refused command changes nothing.
"""

from __future__ import annotations


class DomainError(Exception):
    """Root of the domain's errors."""


class ConversationStopped(DomainError):
    """The conversation is stopped; only a new message can reopen it."""


class ConversationRenewed(DomainError):
    """The conversation was replaced by its successor; record on that one instead."""


class InvalidTransition(DomainError):
    """The command does not fit the conversation's current status."""


class UnknownBlock(DomainError):
    """The block is not part of the last model turn, or not in the needed status."""


class UnknownApproval(DomainError):
    """No approval request with that id in the conversation's last turn."""


class LoopTakenOver(DomainError):
    """Another process holds this conversation's loop now; this one may record no step."""


class UnknownAnswer(DomainError):
    """Feedback names an answer this conversation never gave."""
