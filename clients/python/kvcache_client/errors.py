"""Errors of the kvcache client: one exception class per gRPC code a caller acts on, all
subclasses of KvcacheError, each with `.code` (a grpc.StatusCode) and a message that names
the call and the server. A cache miss is never an error."""

import grpc


class KvcacheError(Exception):
    """A call failed. `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, code, details, call="", target=""):
        self.code = code
        self.details = details
        self.call = call
        self.target = target
        where = f"{call} to {target}: " if call else ""
        super().__init__(f"{where}{code.name}: {details}")


class InvalidArgumentError(KvcacheError, ValueError):
    """A malformed request (a key or namespace id not 32 bytes, a bad checksum...)."""


class ResourceExhaustedError(KvcacheError):
    """A block over the server's --max-block-bytes, or a quota."""


class UnavailableError(KvcacheError, ConnectionError):
    """The server is down, unreachable, or shutting down: treat as a miss and recompute."""


class DeadlineExceededError(KvcacheError, TimeoutError):
    """The call's deadline (the client's `timeout`) passed: treat as a miss."""


class UnauthenticatedError(KvcacheError):
    """The server wants credentials (a bearer token, a client certificate) it did not get."""


class PermissionDeniedError(KvcacheError):
    """The credentials do not allow this call."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}

# Codes that say the caller's request is wrong (the same on every node): a cluster client
# raises them at once instead of trying another node (C++ IsCallerError).
CALLER_ERRORS = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
})


def error_for(code, details, call="", target=""):
    """The KvcacheError subclass instance for a gRPC code."""
    return _BY_CODE.get(code, KvcacheError)(code, details, call, target)


def from_rpc_error(e, call, target):
    """A KvcacheError from a grpc.RpcError."""
    return error_for(e.code(), e.details() or "", call, target)
