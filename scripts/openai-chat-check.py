"""A real OpenAI client against `veil gateway` serving a decoder (issue 19's gateway check).

    openai-chat-check.py BASE_URL MODEL EXPECTED_JSON

EXPECTED_JSON: {"prompt", "max_tokens", "completion", "prompt_tokens", "messages", "chat",
"chat_prompt_tokens"} — the texts the one-process fixed-point engine generates. Checks: a
completion and a chat completion, whole and streamed, give exactly those texts with usage and a
finish reason; temperature > 0 and empty messages give 400, an unknown model 404, a prompt
past the model's positions 413. Exits 1 on any mismatch, printing what differed.
"""

import json
import sys

import openai


def main() -> int:
    base_url, model, expected_path = sys.argv[1:4]
    expected = json.load(open(expected_path))
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    failures = []

    def check(name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
        if not ok:
            failures.append(name)

    def expect_error(name, status, create, **request):
        try:
            create(**request)
            check(name, False, "no error")
        except openai.APIStatusError as error:
            check(name, error.status_code == status, f"status {error.status_code}, body {error.body}")

    n = expected["max_tokens"]
    whole = client.completions.create(model=model, prompt=expected["prompt"], max_tokens=n)
    check("completion text", whole.choices[0].text == expected["completion"],
          f"{whole.choices[0].text!r} != {expected['completion']!r}")
    check("completion usage", whole.usage.prompt_tokens == expected["prompt_tokens"]
          and whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens,
          str(whole.usage))
    check("completion finish", whole.choices[0].finish_reason in ("stop", "length"),
          str(whole.choices[0].finish_reason))

    pieces = []
    reasons = []
    for chunk in client.completions.create(model=model, prompt=expected["prompt"], max_tokens=n,
                                           stream=True):
        pieces.append(chunk.choices[0].text)
        reasons.append(chunk.choices[0].finish_reason)
    check("streamed completion", "".join(pieces) == expected["completion"],
          f"{''.join(pieces)!r} in {len(pieces)} chunks")
    check("streamed finish", reasons[-1] == whole.choices[0].finish_reason, str(reasons))

    chat = client.chat.completions.create(model=model, messages=expected["messages"], max_tokens=n)
    check("chat text", chat.choices[0].message.content == expected["chat"]
          and chat.choices[0].message.role == "assistant",
          f"{chat.choices[0].message!r} != {expected['chat']!r}")
    check("chat usage", chat.usage.prompt_tokens == expected["chat_prompt_tokens"], str(chat.usage))
    deltas = []
    for chunk in client.chat.completions.create(model=model, messages=expected["messages"],
                                                max_tokens=n, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
    check("streamed chat", "".join(deltas) == expected["chat"], f"{''.join(deltas)!r}")

    expect_error("temperature", 400, client.chat.completions.create, model=model,
                 messages=expected["messages"], temperature=0.7)
    expect_error("empty messages", 400, client.chat.completions.create, model=model, messages=[])
    expect_error("unknown model", 404, client.completions.create, model="gpt-4", prompt="hi")
    expect_error("too long", 413, client.completions.create, model=model,
                 prompt=expected["prompt"], max_tokens=100000)
    expect_error("embeddings of a decoder", 400, client.embeddings.create, model=model, input="hi")
    after = client.completions.create(model=model, prompt=expected["prompt"], max_tokens=n)
    check("served after errors", after.choices[0].text == expected["completion"])
    print("PASS" if not failures else f"{len(failures)} failed: {failures}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
