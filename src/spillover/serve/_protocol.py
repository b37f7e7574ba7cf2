"""The OpenAI chat-completions wire format: request validation, errors, choices and SSE chunks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from ._limits import RequestLimits

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_STRINGS = 4  # OpenAI's own limit


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class ChatRequest(BaseModel):
    # Unknown OpenAI fields (user, logprobs=false, ...) are accepted and ignored, as vLLM does.
    # Infinity and NaN (which Python's json module reads) are refused like any out-of-range number.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    model: str
    messages: list[dict[str, Any]]
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)  # OpenAI's seeds are 64-bit integers
    n: int = Field(1, ge=1)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP_STRINGS)] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    def stop_strings(self) -> list[str]:
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop or []) if s]


def parse_chat_request(raw: bytes, limits: RequestLimits) -> ChatRequest:
    """The validated request in `raw`, or an ApiError (400) naming the field and the fix."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON ({e}).", code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "The request body is not valid JSON (nested too deeply).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    if not data.get("messages"):
        raise ApiError(400, "'messages' is required and must be a non-empty list of {role, content} objects.", param="messages", code="missing_messages")
    try:
        body = ChatRequest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err["loc"])
        raise ApiError(400, f"Invalid value for '{param}': {err['msg']}.", param=param, code="invalid_value") from None
    if body.n > limits.max_n:
        raise ApiError(400, f"n={body.n} is over this server's limit of {limits.max_n} (start it with a higher --max-n).", param="n", code="n_too_large")
    if len(body.messages) > limits.max_messages:
        message = f"{len(body.messages)} messages are over this server's limit of {limits.max_messages} (start it with a higher --max-messages)."
        raise ApiError(400, message, param="messages", code="too_many_messages")
    return body


def conversation(messages: list[dict[str, Any]]) -> list[dict]:
    """Plain {role, content} turns for the chat template; content parts of type text are joined."""
    out = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role is {role!r}; use one of {', '.join(ROLES)}.", param=f"messages.{i}.role", code="invalid_role")
        content = m.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported.", param=f"messages.{i}.content", code="invalid_content")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts.", param=f"messages.{i}.content", code="invalid_content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if out[-1]["role"] == "assistant":
        raise ApiError(400, "The last message must not be from the assistant (continuing a reply is not supported).", param="messages", code="invalid_role")
    return out


def first_stop(text: str, stops: list[str]) -> int:
    """Where the first of `stops` begins in `text`, or -1."""
    return min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)


def choice(index: int, text: str, truncated: bool, stops: list[str]) -> dict:
    cut = first_stop(text, stops)
    if cut >= 0:
        return {"index": index, "text": text[:cut], "finish_reason": "stop"}
    return {"index": index, "text": text, "finish_reason": "length" if truncated else "stop"}


def sse_chunk(completion_id: str, model: str, created: int, choices: list[dict], usage: dict | None = None, *, with_usage: bool = False) -> str:
    """One `chat.completion.chunk` event; with `stream_options.include_usage` every chunk carries a
    `usage` field, null except on the last one."""
    data: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
    if with_usage:
        data["usage"] = usage
    return f"data: {json.dumps(data)}\n\n"
