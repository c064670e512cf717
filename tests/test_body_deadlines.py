"""A body that does not arrive in time is refused (408), by the worker's one sweeping timer."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from verify_api.exc import BodyTimeout
from verify_api.resources.deadlines import BodyDeadlines


async def arrives_after(seconds: float, body: bytes = b"{}") -> bytes:
    await asyncio.sleep(seconds)
    return body


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_trickling_body_is_cut_off_and_a_prompt_one_is_not(run):
    deadlines = BodyDeadlines(tick=0.05)

    async def main() -> tuple[list, float]:
        started = time.monotonic()
        found = await asyncio.gather(
            deadlines.read(arrives_after(60), 0.2),
            deadlines.read(arrives_after(0.1, b"prompt"), 0.2),
            deadlines.read(arrives_after(0), 0.2),
            return_exceptions=True,
        )
        return found, time.monotonic() - started

    (late, prompt, at_once), took = run(main())
    assert isinstance(late, BodyTimeout) and late.status == 408
    assert prompt == b"prompt" and at_once == b"{}"
    assert 0.2 <= took < 1.0  # the deadline, plus at most a tick or so
    assert not deadlines._reading and not deadlines._late


def test_a_cancel_from_elsewhere_stays_a_cancel():
    deadlines = BodyDeadlines(tick=0.05)

    async def main() -> None:
        reading = asyncio.create_task(deadlines.read(arrives_after(60), 30))
        await asyncio.sleep(0.1)
        reading.cancel()  # the server stopping, not a late body
        with pytest.raises(asyncio.CancelledError):
            await reading
        # and the worker goes on reading other bodies with its deadlines
        with pytest.raises(BodyTimeout):
            await deadlines.read(arrives_after(60), 0.1)

    asyncio.run(main())


def test_a_new_event_loop_gets_its_own_sweep():
    deadlines = BodyDeadlines(tick=0.05)
    for _ in range(2):  # the first loop's timer dies with it; the second must still be swept
        with pytest.raises(BodyTimeout):
            asyncio.run(deadlines.read(arrives_after(60), 0.1))


def test_the_api_answers_a_late_body_408_and_closes(api_world, monkeypatch):
    import verify_api.resources as resources

    api, code, _ = api_world
    monkeypatch.setattr(resources, "BODY_SECONDS", 0.2)
    monkeypatch.setattr(resources, "BODY_DEADLINES", BodyDeadlines(tick=0.05))
    sent: list[dict] = []
    half = f'{{"code": "{code(1)}"'.encode()

    first = iter([{"type": "http.request", "body": half, "more_body": True}])

    async def receive() -> dict:
        for part in first:
            return part
        await asyncio.sleep(60)  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/tenants/ACME/verify", "raw_path": b"/v1/tenants/ACME/verify",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                    (b"content-length", b"200")],
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(api.app(scope, receive, send), 5))
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    assert (b"connection", b"close") in [(k.lower(), v) for k, v in start["headers"]]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b'"body_timeout"' in body
