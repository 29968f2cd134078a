"""A real OpenAI client against `veil gateway` (issue 18's CI check).

    openai-check.py BASE_URL MODEL EXPECTED_JSON PHASE

PHASE "serve": a string, an array (float), the SDK's default (base64 float32) must equal the
one-process vectors in EXPECTED_JSON ({"texts": [...], "embeddings": [[...]]}) bit for bit;
an empty input gives 400, an over-long one 413 (the gateway runs --no-truncate), an unknown
model 404. PHASE "down": a request gives 503 with OpenAI's error object. Exits 1 on any
mismatch, printing what differed.
"""

import json
import struct
import sys

import openai


def main() -> int:
    base_url, model, expected_path, phase = sys.argv[1:5]
    expected = json.load(open(expected_path))
    texts, vectors = expected["texts"], expected["embeddings"]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    failures = []

    def check(name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
        if not ok:
            failures.append(name)

    def expect_error(name, status, code, **request):
        try:
            client.embeddings.create(model=request.pop("model", model), **request)
            check(name, False, "no error")
        except openai.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            check(name, error.status_code == status and body.get("code") == code,
                  f"status {error.status_code}, body {error.body}")

    if phase == "serve":
        one = client.embeddings.create(model=model, input=texts[0], encoding_format="float")
        check("a string", one.data[0].embedding == vectors[0], "differs from the one-process run")
        check("usage", one.usage.prompt_tokens > 2 and one.model == model, str(one.usage))
        many = client.embeddings.create(model=model, input=texts, encoding_format="float")
        check("an array", [d.embedding for d in many.data] == vectors and
              [d.index for d in many.data] == list(range(len(texts))), "differs from the one-process run")
        default = client.embeddings.create(model=model, input=texts[1])
        as_float32 = [struct.unpack("<f", struct.pack("<f", v))[0] for v in vectors[1]]
        check("the SDK's default (base64)", default.data[0].embedding == as_float32,
              "differs from the one-process run at float32")
        listed = [m.id for m in client.models.list()]
        check("/v1/models", listed == [model], str(listed))
        expect_error("an empty input", 400, None, input="")
        expect_error("an over-long input", 413, "context_length_exceeded", input="word " * 600)
        expect_error("an unknown model", 404, "model_not_found", model="gpt-4o", input="hello")
    else:
        expect_error("a stopped server", 503, "deployment_unavailable", input=texts[0])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
