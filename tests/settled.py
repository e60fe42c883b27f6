"""A future already settled with what a call returned or raised: a test transport's ``push_async`` or
``pull_async`` (sync/transport.py) made synchronous, so a test sees each step in order."""

from __future__ import annotations

from concurrent.futures import Future


def settled(call, *args) -> Future:
    f: Future = Future()
    try:
        f.set_result(call(*args))
    except Exception as e:  # whatever the call raised is the future's answer
        f.set_exception(e)
    return f
