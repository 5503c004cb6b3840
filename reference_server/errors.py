"""Domain errors raised by handlers and engines; the error middleware alone turns them into
HTTP responses.

    ApiError                   a request the server refuses (carries HTTP status and reason)
    ├── BadRequest             400: malformed JSON, wrong types, limits exceeded
    ├── Unauthorized           401: the admin token is missing or wrong
    ├── Forbidden              403: a request from somewhere it may not come from
    ├── NotFound               404: unknown model or route
    ├── BodyTimeout            408: the request body did not arrive in time (slow client)
    ├── UnsupportedMediaType   415: a body that is not declared as JSON
    ├── Overloaded             429: a bounded queue is full (sent with Retry-After)
    ├── Unavailable            503: not ready yet, or shutting down
    ├── InjectedFault          500: fault injection asked for an error
    └── RequestTimeout         504: the per-request timeout expired
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500
    reason = "internal"
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequest(ApiError):
    status = 400
    reason = "bad_request"
    error_type = "invalid_request_error"


class Unauthorized(ApiError):
    status = 401
    reason = "unauthorized"
    error_type = "authentication_error"


class Forbidden(ApiError):
    status = 403
    reason = "forbidden"
    error_type = "permission_error"


class BodyTimeout(ApiError):
    status = 408
    reason = "body_timeout"
    error_type = "timeout"


class UnsupportedMediaType(ApiError):
    status = 415
    reason = "bad_request"
    error_type = "invalid_request_error"


class NotFound(ApiError):
    status = 404
    reason = "not_found"
    error_type = "invalid_request_error"


class Overloaded(ApiError):
    status = 429
    reason = "queue_full"
    error_type = "rate_limit_error"
    retry_after_s = 1


class Unavailable(ApiError):
    status = 503
    reason = "unavailable"
    error_type = "server_error"


class ShuttingDown(Unavailable):
    reason = "shutting_down"


class InjectedFault(ApiError):
    status = 500
    reason = "injected_error"
    error_type = "server_error"


class RequestTimeout(ApiError):
    status = 504
    reason = "timeout"
    error_type = "timeout"
