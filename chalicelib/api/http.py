"""The HTTP conventions of SPEC §1: authentication and scopes, JSON bodies and their size
limits, the success and error envelopes, and the route table the OpenAPI document is
built from."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from chalice import Blueprint, Response

from chalicelib.errors import InternalError, PayloadTooLargeError, SluiceError, ValidationError
from chalicelib.logs import logger
from chalicelib.services.accounts import Caller
from chalicelib.wiring import account_service

BASE = "/api/v1"
KB = 1024
DEFAULT_BODY_LIMIT = 256 * KB
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says about one route."""

    path: str
    method: str
    summary: str
    tag: str
    scope: str | None
    status: int
    request_schema: str | None = None
    parameters: tuple[str, ...] = field(default=())


ROUTES: list[RouteDoc] = []


class ApiRequest:
    """The parts of a chalice request that the resource modules use."""

    def __init__(self, request: Any, caller: Caller | None, body_limit: int) -> None:
        self._request = request
        self.caller = caller
        self._body_limit = body_limit

    @property
    def account_id(self) -> str:
        assert self.caller is not None
        return self.caller.account_id

    @property
    def query(self) -> Mapping[str, str]:
        return self._request.query_params or {}

    def header(self, name: str) -> str | None:
        return self._request.headers.get(name)

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._request.headers)

    @property
    def method(self) -> str:
        return self._request.method

    def raw_body(self) -> bytes:
        """The body as sent; an oversized body is a 413."""
        raw = self._request.raw_body or b""
        if len(raw) > self._body_limit:
            raise PayloadTooLargeError(
                f"the request body is {len(raw)} bytes; the limit is {self._body_limit // KB} KB"
            )
        return raw

    def json(self, *, required: bool = True) -> Any:
        """The body parsed as JSON; malformed JSON is a 400, an oversized body a 413."""
        raw = self.raw_body()
        if not raw.strip():
            if required:
                raise ValidationError("a JSON request body is required", [{"field": "body", "message": "is required"}])
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise ValidationError(f"malformed JSON: {error}", [{"field": "body", "message": "is not valid JSON"}]) from None
        except RecursionError:
            raise ValidationError("the JSON body is nested too deeply",
                                  [{"field": "body", "message": "is nested too deeply"}]) from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        body = self.json(required=required)
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object", [{"field": "body", "message": "must be a JSON object"}])
        return body

    def if_match(self) -> int | None:
        """The `If-Match` revision: a plain integer, quotes (and a weak `W/`) allowed."""
        raw = self.header("if-match")
        if raw is None or raw.strip() in ("", "*"):
            return None
        text = raw.strip()
        if text.startswith("W/"):
            text = text[2:]
        text = text.strip('"')
        try:
            return int(text)
        except ValueError:
            raise ValidationError.for_field("If-Match", "must be the workflow's revision number") from None


def json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(payload, separators=(",", ":"), default=str),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def ok(data: Any, *, message: str | None = None, meta: dict | None = None, status: int = 200,
       headers: dict[str, str] | None = None) -> Response:
    payload: dict[str, Any] = {"data": data}
    if meta is not None:
        payload["meta"] = meta
    if message is not None:
        payload["message"] = message
    return json_response(status, payload, headers)


def error_response(error: SluiceError) -> Response:
    return json_response(error.status_code, error.to_dict())


def _presented_key(request: Any) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.headers.get("x-api-key")


def endpoint(
    bp: Blueprint,
    path: str,
    method: str,
    *,
    summary: str,
    tag: str,
    scope: str | None,
    status: int = 200,
    request_schema: str | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT,
    content_types: list[str] = CONTENT_TYPES,
) -> Callable:
    """Registers a route on `bp`. The view receives an ApiRequest (authenticated when
    `scope` is set) and the path parameters, and returns a Response; a SluiceError it
    raises becomes the error envelope, anything else a logged 500 without details."""
    full_path = BASE + path

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        params = tuple(part[1:-1] for part in path.split("/") if part.startswith("{"))
        ROUTES.append(RouteDoc(full_path, method, summary, tag, scope, status, request_schema, params))

        @functools.wraps(view)
        def handle(**path_params: str) -> Response:
            request = bp.current_request
            try:
                caller = None
                if scope is not None:
                    caller = account_service().authenticate(_presented_key(request))
                    caller.require(scope)
                return view(ApiRequest(request, caller, body_limit), **path_params)
            except SluiceError as error:
                return error_response(error)
            except Exception:
                logger.exception("unhandled error", extra={"path": full_path, "method": method})
                return error_response(InternalError("an internal error occurred"))

        bp.route(full_path, methods=[method], content_types=content_types)(handle)
        return view

    return decorate


# What Chalice answers itself before a view runs, in Sluice's envelope: a method the path
# lacks is "no such endpoint" (as API Gateway's own answer, see infra/functions.yaml), an
# unsupported Content-Type a 415 naming the header.
_FRAMEWORK_ERRORS = {
    "MethodNotAllowedError": (404, "NOT_FOUND", "no such endpoint or method", None),
    "UnsupportedMediaType": (415, "VALIDATION_ERROR", None, "Content-Type"),
    "BadRequest": (400, "VALIDATION_ERROR", None, None),
}


def envelope_framework_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own error bodies (`{"Code", "Message"}`) in the error
    envelope of SPEC §1."""
    response = get_response(event)
    body = response.body
    if isinstance(body, dict) and set(body) == {"Code", "Message"} and body["Code"] in _FRAMEWORK_ERRORS:
        status, code, message, field = _FRAMEWORK_ERRORS[body["Code"]]
        message = message or body["Message"]
        details = [{"field": field, "message": message}] if field else []
        return json_response(status, {"error": {"code": code, "message": message, "details": details}})
    return response
