"""The Ollama stand-in's OpenAI-compatible API (tests/standins/ollama), against ollama/ollama
v0.32.0 (tag v0.32.0): server/routes.go registers /v1/chat/completions (middleware/openai.go
ChatMiddleware + ChatHandler), /v1/completions (CompletionsMiddleware + GenerateHandler),
GET /v1/models (ListMiddleware + ListHandler) and GET /v1/models/:model (RetrieveMiddleware +
ShowHandler); openai/openai.go builds the bodies (ToChatCompletion, ToChunk, ToCompletion,
ToCompleteChunk, ToListCompletion, ToModel) and the errors (NewError). Loopback only.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from loopback import free_port, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STANDIN = os.path.join(ROOT, "tests", "standins", "ollama", "ollama_standin.py")
NOTE = "stand-in for ollama (tests/standins/ollama): no inference performed"
TEXT = f"[{NOTE}]"
WORDS = len(TEXT.split())


@pytest.fixture(scope="module")
def ollama(tmp_path_factory):
    """A served stand-in with one model, `tiny` (stored as tiny:latest), made by `create`."""
    tmp = tmp_path_factory.mktemp("ollama")
    port = free_port()
    env = dict(os.environ, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_MODELS=str(tmp / "models"))
    proc = subprocess.Popen([sys.executable, STANDIN, "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        model = tmp / "tiny.gguf"
        model.write_bytes(b"GGUF" + b"\0" * 1000)
        (tmp / "Modelfile").write_text(f"FROM {model}\n")
        subprocess.run(
            [sys.executable, STANDIN, "create", "tiny", "-f", str(tmp / "Modelfile")],
            env=env,
            check=True,
            capture_output=True,
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def call(base, path, body=None, raw=None):
    """(status, content type, body bytes) of a GET (no body) or POST."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def ok(base, path, body=None):
    status, _, raw = call(base, path, body)
    assert status == 200, raw
    return json.loads(raw)


def error(base, path, body=None, raw=None):
    """An error answer: its status and message, checking openai.NewError's shape."""
    status, ctype, data = call(base, path, body, raw)
    assert ctype.startswith("application/json")
    reply = json.loads(data)
    etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    assert reply == {
        "error": {"message": reply["error"]["message"], "type": etype, "param": None, "code": None}
    }
    return status, reply["error"]["message"]


def events(base, path, body):
    """The `data: ...` events of a streamed answer, checking it ends with `data: [DONE]`."""
    status, ctype, raw = call(base, path, body)
    assert status == 200, raw
    assert ctype == "text/event-stream"
    blocks = raw.decode().split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""]
    assert all(b.startswith("data: ") for b in blocks[:-1])
    return [json.loads(b[len("data: ") :]) for b in blocks[:-2]]


CHAT = {"messages": [{"role": "user", "content": "say hello to the lab"}]}


# --- GET /v1/models, /v1/models/{model}: ToListCompletion, ToModel ---


def test_models_lists_the_created_model_owned_by_its_namespace(ollama):
    reply = ok(ollama, "/v1/models")
    assert reply["object"] == "list"
    [model] = reply["data"]
    # ToListCompletion: id = ListResponse name ("tiny:latest"); owned_by = ParseName(name).Namespace
    assert model["id"] == "tiny:latest"
    assert model["object"] == "model"
    assert model["owned_by"] == "library"
    assert isinstance(model["created"], int) and model["created"] > 0
    assert [m["name"] for m in ok(ollama, "/api/tags")["models"]] == ["tiny:latest"]


@pytest.mark.parametrize("name", ["tiny", "tiny:latest", "TINY"])
def test_retrieve_answers_a_known_model_under_the_name_asked(ollama, name):
    # ToModel(showResponse, c.Param("model")): the id is the name as asked; a name without tag
    # is name:latest (ParseName) and parts match case-insensitively (getExistingName)
    reply = ok(ollama, f"/v1/models/{name}")
    assert reply["id"] == name
    assert reply["object"] == "model"
    assert reply["owned_by"] == "library"


def test_retrieve_refuses_an_unknown_model_404_with_shows_message(ollama):
    # ShowHandler: req.Model = DisplayShortest(), os.IsNotExist -> 404 "model '%s' not found"
    assert error(ollama, "/v1/models/nope") == (404, "model 'nope:latest' not found")
    assert error(ollama, "/v1/models/tiny:q4") == (404, "model 'tiny:q4' not found")
    # writeModelRefParseError: model.ErrUnqualifiedName -> 400 "invalid model name"
    assert error(ollama, "/v1/models/-bad") == (400, "invalid model name")


# --- POST /v1/chat/completions: ChatMiddleware + ChatHandler ---


def test_chat_answers_a_known_model_with_the_standin_text_and_usage(ollama):
    reply = ok(ollama, "/v1/chat/completions", dict(CHAT, model="tiny"))
    assert reply["id"].startswith("chatcmpl-")
    assert reply["object"] == "chat.completion"
    assert reply["model"] == "tiny"  # ChatResponse.Model = req.Model
    assert reply["system_fingerprint"] == "fp_ollama"
    assert reply["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}
    ]
    assert reply["usage"] == {"prompt_tokens": 5, "completion_tokens": WORDS, "total_tokens": 5 + WORDS}
    # the model is loaded like any other request's (scheduleRunner): /api/ps lists it
    assert "tiny:latest" in [m["name"] for m in ok(ollama, "/api/ps")["models"]]


def test_chat_refuses_an_unknown_model_404_with_chathandlers_message(ollama):
    # ChatHandler: GetModel -> os.IsNotExist -> 404 "model '%s' not found" with req.Model
    assert error(ollama, "/v1/chat/completions", dict(CHAT, model="nope")) == (
        404,
        "model 'nope' not found",
    )


def test_chat_streams_one_chunk_per_token_then_the_finish_then_done(ollama):
    chunks = events(ollama, "/v1/chat/completions", dict(CHAT, model="tiny", stream=True))
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all(d["role"] == "assistant" for d in deltas)
    assert "".join(d["content"] for d in deltas) == TEXT
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * WORDS + ["stop"]
    assert all("usage" not in c for c in chunks)


def test_chat_stream_include_usage_adds_a_usage_event_with_no_choices(ollama):
    body = dict(CHAT, model="tiny", stream=True, stream_options={"include_usage": True})
    chunks = events(ollama, "/v1/chat/completions", body)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": WORDS, "total_tokens": 5 + WORDS}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_chat_max_tokens_cuts_the_text_with_finish_reason_length(ollama):
    reply = ok(ollama, "/v1/chat/completions", dict(CHAT, model="tiny", max_tokens=2))
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["choices"][0]["message"]["content"] == " ".join(TEXT.split()[:2]) + " "
    assert reply["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    "body,status,message",
    [
        # ChatMiddleware: len(req.Messages) == 0
        ({"model": "tiny", "messages": []}, 400, "[] is too short - 'messages'"),
        ({"model": "tiny"}, 400, "[] is too short - 'messages'"),
        # ChatHandler: parseAndValidateModelRef -> ErrModelRequired -> 400 "model is required"
        (CHAT, 400, "model is required"),
        (dict(CHAT, model="bad name"), 400, "invalid model name"),
        (dict(CHAT, model="someone/tiny"), 404, "model 'someone/tiny' not found"),
        # openai.FromChatRequest
        ({"model": "tiny", "messages": [{"role": "user"}]}, 400, "invalid message content type: <nil>"),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": 3}]},
            400,
            "invalid message content type: float64",
        ),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": [{"type": "x"}]}]},
            400,
            "invalid message format",
        ),
        (
            {
                "model": "tiny",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}],
            },
            400,
            "invalid image input",
        ),
        (
            dict(CHAT, model="tiny", reasoning_effort="max"),
            400,
            'invalid reasoning value: \'max\' (must be "high", "medium", "low", or "none")',
        ),
        # scheduleRunner -> CheckCapabilities; ChatHandler's thinking check
        (
            dict(CHAT, model="tiny", tools=[{"type": "function", "function": {"name": "f"}}]),
            400,
            "registry.ollama.ai/library/tiny:latest does not support tools",
        ),
        (dict(CHAT, model="tiny", reasoning_effort="high"), 400, '"tiny" does not support thinking'),
        # c.ShouldBindJSON into openai.ChatCompletionRequest
        (
            {"model": 5, "messages": CHAT["messages"]},
            400,
            "json: cannot unmarshal number into Go struct field ChatCompletionRequest.model of type string",
        ),
        ([], 400, "json: cannot unmarshal array into Go value of type openai.ChatCompletionRequest"),
    ],
)
def test_chat_refuses_what_upstream_refuses(ollama, body, status, message):
    assert error(ollama, "/v1/chat/completions", body) == (status, message)


def test_chat_accepts_what_upstream_accepts(ollama):
    parts = {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}
    reply = ok(
        ollama,
        "/v1/chat/completions",
        {"model": "TINY:Latest", "messages": [parts], "reasoning_effort": "none"},
    )
    assert reply["usage"]["prompt_tokens"] == 2
    assert reply["model"] == "TINY:Latest"
    assert reply["choices"][0]["message"]["content"] == TEXT


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"", "EOF"),
        (b"{not json", "invalid character 'n' looking for beginning of value"),
        (b'{"model": "tiny"', "unexpected EOF"),
    ],
)
def test_a_body_that_is_not_json_is_refused_400(ollama, raw, message):
    for path in ("/v1/chat/completions", "/v1/completions"):
        assert error(ollama, path, raw=raw) == (400, message)


# --- POST /v1/completions: CompletionsMiddleware + GenerateHandler ---


def test_completion_answers_a_known_model_with_the_standin_text(ollama):
    reply = ok(ollama, "/v1/completions", {"model": "tiny", "prompt": "once upon a time"})
    assert reply["id"].startswith("cmpl-")
    assert reply["object"] == "text_completion"
    assert reply["model"] == "tiny"
    assert reply["system_fingerprint"] == "fp_ollama"
    assert reply["choices"] == [{"text": TEXT, "index": 0, "finish_reason": "stop"}]
    assert reply["usage"] == {"prompt_tokens": 4, "completion_tokens": WORDS, "total_tokens": 4 + WORDS}


def test_completion_refuses_an_unknown_model_404_with_generatehandlers_message(ollama):
    assert error(ollama, "/v1/completions", {"model": "nope", "prompt": "x"}) == (
        404,
        "model 'nope' not found",
    )
    # GenerateHandler: writeModelRefParseError(..., 404, "model '%s' not found") for a missing model
    assert error(ollama, "/v1/completions", {"prompt": "x"}) == (404, "model '' not found")


def test_completion_streams_chunks_then_done_and_usage_when_asked(ollama):
    body = {"model": "tiny", "prompt": "hi", "stream": True}
    chunks = events(ollama, "/v1/completions", body)
    assert "".join(c["choices"][0]["text"] for c in chunks) == TEXT
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * WORDS + ["stop"]
    assert all(c["object"] == "text_completion" and "usage" not in c for c in chunks)
    # CompleteWriter: include_usage puts zero usage on each chunk, then a usage event
    chunks = events(ollama, "/v1/completions", dict(body, stream_options={"include_usage": True}))
    assert all(
        c["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} for c in chunks[:-1]
    )
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": WORDS, "total_tokens": 1 + WORDS}


def test_completion_without_prompt_is_the_load_answer(ollama):
    # GenerateHandler: req.Prompt == "" -> done_reason "load", no text
    reply = ok(ollama, "/v1/completions", {"model": "tiny"})
    assert reply["choices"] == [{"text": "", "index": 0, "finish_reason": "load"}]
    assert reply["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@pytest.mark.parametrize(
    "body,status,message",
    [
        (
            {"model": "tiny", "prompt": ["a", "b"]},
            400,
            "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type string",
        ),
        ({"model": "tiny", "prompt": "x", "stop": ["a", 1]}, 400, "invalid type for 'stop' field: float64"),
        (
            {"model": "tiny", "prompt": "x", "suffix": "y"},
            400,
            "registry.ollama.ai/library/tiny:latest does not support insert",
        ),
        (
            {"model": "tiny:", "prompt": "x", "stream": "yes"},
            400,
            "json: cannot unmarshal string into Go struct field CompletionRequest.stream of type bool",
        ),
    ],
)
def test_completion_refuses_what_upstream_refuses(ollama, body, status, message):
    assert error(ollama, "/v1/completions", body) == (status, message)


def test_api_generate_shares_the_text_and_counts(ollama):
    reply = ok(ollama, "/api/generate", {"model": "tiny", "prompt": "a b c", "stream": False})
    assert reply["response"] == TEXT
    assert (reply["prompt_eval_count"], reply["eval_count"]) == (3, WORDS)
    status, _, raw = call(ollama, "/api/generate", {"model": "nope", "prompt": "x"})
    assert (status, json.loads(raw)) == (404, {"error": "model 'nope' not found"})


# --- the official client, as LiteLLM and the lab's users reach the API ---


def test_the_openai_client_lists_chats_streams_and_sees_the_404(ollama):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=ollama + "/v1", api_key="ollama", max_retries=0, timeout=10)
    assert [m.id for m in client.models.list()] == ["tiny:latest"]
    assert client.models.retrieve("tiny").owned_by == "library"
    reply = client.chat.completions.create(model="tiny", messages=CHAT["messages"])
    assert reply.choices[0].message.content == TEXT
    assert reply.usage.completion_tokens == WORDS
    stream = client.chat.completions.create(model="tiny", messages=CHAT["messages"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == TEXT
    assert client.completions.create(model="tiny", prompt="hi").choices[0].text == TEXT
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=CHAT["messages"])
    assert info.value.status_code == 404
    assert info.value.body["message"] == "model 'nope' not found"
    assert info.value.body["type"] == "not_found_error"
