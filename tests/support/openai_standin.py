"""A local stand-in for the OpenAI API: real HTTP on 127.0.0.1, the real wire format.

No real model can run offline in a test, so this server answers `POST /v1/chat/completions`
the way api.openai.com does: bearer-key check (401), JSON error bodies
(`{"error": {"message", "type", "param", "code"}}`), 429 with Retry-After, 500, and
`chat.completion` objects with `choices` and `usage`. By default it plays a simple model
that judges each pattern by words in its template; a test can queue scripted replies
(malformed JSON, wrong ids, errors, slowness) that are used first, one per request. Every
request body is kept, raw, for the test to inspect.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-standin-0123456789abcdef"
COMPLETIONS_PATH = "/v1/chat/completions"

# The stand-in model's taste: the first word found in a template decides.
KEYWORD_JUDGEMENTS = (
    ("payment", "critical", None, "failed payments must all be kept even at INFO"),
    ("logged in", "high", 0.5, "authentication events matter for security reviews"),
    ("healthz", "noise", None, "load balancer health checks carry no diagnostic value"),
    ("heartbeat", "noise", None, "periodic heartbeat, identical every time"),
    ("refused", "noise", None, "retried connection chatter"),
)


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    content: str | None = None  # the assistant message text, for a 200 completion
    # Or the text built from the request the advisor sent (e.g. a sloppy model's answer).
    respond: Callable[[dict], str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def judge(pattern: dict) -> dict:
    for word, importance, min_rate, reason in KEYWORD_JUDGEMENTS:
        if word in pattern["template"]:
            return {
                "pattern_id": pattern["pattern_id"],
                "importance": importance,
                "min_rate": min_rate,
                "reason": reason,
            }
    return {
        "pattern_id": pattern["pattern_id"],
        "importance": "normal",
        "min_rate": None,
        "reason": "ordinary operational log",
    }


def patterns_in(request: dict) -> list[dict]:
    """The patterns the advisor sent, from the user message of a chat completion request."""
    user = next(m for m in request["messages"] if m["role"] == "user")
    return json.loads(user["content"])["patterns"]


def error_reply(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, body=body, headers=headers or {})


class OpenAIStandIn:
    def __init__(self, supports_json_schema: bool = True) -> None:
        self.supports_json_schema = supports_json_schema
        self.model: Callable[[dict], dict] = judge
        self.requests: list[dict] = []  # parsed bodies, in arrival order
        self.raw_bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._script: deque[Reply] = deque()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()  # ends any scripted delay at once
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def _reply(self, request: dict) -> Reply:
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None and scripted.respond is not None:
            return Reply(content=scripted.respond(request))
        if scripted is not None:
            return scripted
        kind = request.get("response_format", {}).get("type")
        if kind == "json_schema" and not self.supports_json_schema:
            return error_reply(
                400,
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model.",
                "invalid_request_error",
            )
        judgements = [self.model(p) for p in patterns_in(request)]
        return Reply(content=json.dumps({"judgements": judgements}))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != COMPLETIONS_PATH:
                    self._send(error_reply(404, f"Unknown path {self.path}", "invalid_request"))
                    return
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    self._send(
                        error_reply(401, "Incorrect API key provided.", "invalid_request_error")
                    )
                    return
                try:
                    request = json.loads(raw)
                except ValueError:
                    self._send(error_reply(400, "We could not parse the JSON body.", "invalid"))
                    return
                with standin._lock:
                    standin.requests.append(request)
                    standin.raw_bodies.append(raw)
                    standin.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = standin._reply(request)
                if reply.delay_s:
                    standin._closing.wait(reply.delay_s)
                self._send(reply, request, len(raw))

            def _send(self, reply: Reply, request: dict | None = None, size: int = 0) -> None:
                body = reply.body
                if body is None:
                    body = completion(request or {}, reply.content or "", size)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): what a real server sees too

            def log_message(self, *args) -> None:
                pass

        return Handler


def completion(request: dict, content: str, request_bytes: int) -> dict:
    prompt_tokens = request_bytes // 4
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-standin{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_standin",
    }
