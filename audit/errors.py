"""Domain errors of the audit log, each with its stable error code (turned into responses in masker.errors)."""

from masker.errors import ApiError


class SessionNotFound(ApiError):
    status, code, message = 404, "session_not_found", "No such session."


class AgentNotFound(ApiError):
    status, code, message = 404, "agent_not_found", "No such agent."


class SessionEnded(ApiError):
    status, code, message = 409, "session_ended", "The session has ended and is sealed; no more events."


class AuditChainBroken(ApiError):
    status, code, message = 409, "audit_chain_broken", "The session's audit chain does not verify."

    def __init__(self, seq: int | str, reason: str):
        """``seq``: the first event that fails, or ``"seal"`` when the session's seal does."""
        where = f"at seq {seq}" if isinstance(seq, int) else f"at the {seq}"
        super().__init__(f"The audit chain does not verify {where}: {reason}.", details={"seq": seq})
        self.seq = seq
        self.reason = reason
