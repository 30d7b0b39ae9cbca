"""Errors of the update path; each carries a reason a technician can read in the event log."""

from __future__ import annotations


class OtaError(Exception):
    """Base of every refusal or failure of an update; `code` is stable, `reason` is for people."""

    code = "ota_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class MetadataError(OtaError):
    """TUF metadata refused: bad signature, expired (freeze), metadata rollback, mix-and-match, too large."""

    code = "metadata"


class TargetError(OtaError):
    """A release file refused: not listed, length or hash mismatch, more bytes than declared, bad manifest."""

    code = "target"


class RollbackError(OtaError):
    """The repository offers a release that is not newer than the installed one."""

    code = "rollback"


class ClockUntrustedError(OtaError):
    """No trustworthy time yet: checking now could accept stale (frozen) metadata, so the check waits."""

    code = "clock_untrusted"


class DiskSpaceError(OtaError):
    """The update would not fit on the disk; refused before anything was downloaded."""

    code = "disk_space"


class TransportError(OtaError):
    """The repository could not be reached or answered with an HTTP error; retried later."""

    code = "transport"
