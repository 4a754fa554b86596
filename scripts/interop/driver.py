"""Interop driver: runs the coordinator against the reference JARVIS services (Python, PyPI) and
checks the results through the official ARP Python client, whose strict pydantic parsing of every
response is itself part of the test. Started by scripts/interop/run.sh, which brings the services up.

Prints one line per check (PASS/FAIL name: detail) and closes with `N passed, M failed`; exits 1 if
any check failed. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from arp_standard_client.errors import ArpApiError
from arp_standard_client.run_coordinator import RunCoordinatorClient
from arp_standard_model import (
    NodeRun,
    NodeTypeRef,
    Run,
    RunCoordinatorCancelRunParams,
    RunCoordinatorCancelRunRequest,
    RunCoordinatorGetNodeRunParams,
    RunCoordinatorGetNodeRunRequest,
    RunCoordinatorGetRunParams,
    RunCoordinatorGetRunRequest,
    RunCoordinatorHealthRequest,
    RunCoordinatorStartRunRequest,
    RunCoordinatorStreamRunEventsParams,
    RunCoordinatorStreamRunEventsRequest,
    RunCoordinatorVersionRequest,
    RunStartRequest,
)

PACK_VERSION = "0.3.8"
TERMINAL = {"succeeded", "failed", "canceled"}
RUN_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1
QUEUED_LIMIT_S = 10.0
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + text if text else ''}", flush=True)
        return ok

    def scenario(self, name: str, body: Callable[[], None]) -> None:
        """Runs one scenario; an exception (e.g. a strict-parse ValidationError) fails it and is shown."""
        print(f"-- {name}", flush=True)
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - any error is a failed check with evidence
            detail = str(exc) if isinstance(exc, ArpApiError) else f"{type(exc).__name__}: {exc}"
            self.check(f"{name}: completes without error", False, detail)
            traceback.print_exc(limit=4, file=sys.stdout)


# --- helpers -------------------------------------------------------------------------------------


def state_of(obj: Run | NodeRun) -> str:
    return obj.state.value if hasattr(obj.state, "value") else str(obj.state)


def extensions_of(obj: Run | NodeRun) -> dict[str, Any]:
    return obj.extensions.model_dump(mode="json") if obj.extensions is not None else {}


def completion_error(obj: Run | NodeRun) -> dict[str, Any]:
    error = extensions_of(obj).get("rc.completion_error")
    return error if isinstance(error, dict) else {}


def new_run_id(label: str) -> str:
    return f"interop-{label}-{uuid.uuid4().hex[:12]}"


def start(client: RunCoordinatorClient, run_id: str, node_type_id: str, inputs: dict[str, Any]) -> Run:
    body = RunStartRequest(
        run_id=run_id,
        root_node_type_ref=NodeTypeRef(node_type_id=node_type_id, version=PACK_VERSION),
        input=inputs,
    )
    return client.start_run(RunCoordinatorStartRunRequest(body=body))


def get_run(client: RunCoordinatorClient, run_id: str) -> Run:
    return client.get_run(RunCoordinatorGetRunRequest(params=RunCoordinatorGetRunParams(run_id=run_id)))


def get_node_run(client: RunCoordinatorClient, node_run_id: str) -> NodeRun:
    params = RunCoordinatorGetNodeRunParams(node_run_id=node_run_id)
    return client.get_node_run(RunCoordinatorGetNodeRunRequest(params=params))


def wait_terminal(client: RunCoordinatorClient, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> Run:
    """Polls get_run until the Run is terminal. Gives up early when the root is never dispatched."""
    started = time.monotonic()
    next_root_check = started + 1.0
    run = get_run(client, run_id)
    while state_of(run) not in TERMINAL:
        now = time.monotonic()
        if now - started > timeout_s:
            root = get_node_run(client, run.root_node_run_id)
            raise TimeoutError(
                f"run {run_id} still {state_of(run)} after {timeout_s:.0f}s (root {state_of(root)})"
            )
        if now >= next_root_check:
            next_root_check = now + 1.0
            root = get_node_run(client, run.root_node_run_id)
            if state_of(root) == "queued" and now - started > QUEUED_LIMIT_S:
                raise TimeoutError(
                    f"run {run_id}: root NodeRun still queued after {QUEUED_LIMIT_S:.0f}s (never dispatched)"
                )
        time.sleep(POLL_INTERVAL_S)
        run = get_run(client, run_id)
    return run


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = POLL_INTERVAL_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)


def events_of(client: RunCoordinatorClient, run_id: str) -> list[dict[str, Any]]:
    """The Run's event snapshot through the client. Accepts raw NDJSON or a JSON-quoted string."""
    params = RunCoordinatorStreamRunEventsParams(run_id=run_id)
    text = client.stream_run_events(RunCoordinatorStreamRunEventsRequest(params=params))
    if text.strip().startswith('"'):
        text = json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def event_summary(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        data = e.get("data") or {}
        if e.get("type") == "policy_decided":
            out.append(f"{e.get('seq')}:policy_decided({data.get('action')},{data.get('decision')})")
        else:
            out.append(f"{e.get('seq')}:{e.get('type')}")
    return out


def decisions(events: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [
        ((e.get("data") or {}).get("action"), (e.get("data") or {}).get("decision"))
        for e in events
        if e.get("type") == "policy_decided"
    ]


def decided_by_policy_file(events: list[dict[str, Any]], action: str) -> tuple[bool, Any]:
    """The deny came from the policy file (explicit_deny), not from a PDP failure mapped to deny.
    A coordinator that records no reason_code passes; the deny(sanity) check covers that case."""
    for e in events:
        data = e.get("data") or {}
        if e.get("type") == "policy_decided" and data.get("action") == action and data.get("decision") == "deny":
            return data.get("reason_code") in (None, "explicit_deny"), data
    return False, None


def read_log(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


# --- scenarios -----------------------------------------------------------------------------------


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.c = Checks()
        timeout = httpx.Timeout(10.0)
        self.rc = RunCoordinatorClient(base_url=args.rc, timeout=timeout)
        self.rc_deny = RunCoordinatorClient(base_url=args.rc_deny, timeout=timeout)

    def ae_saw_execute(self, run_id: str) -> bool:
        return f"Atomic execute requested (run_id={run_id}," in read_log(self.args.ae_log)

    def run_and_wait(self, client: RunCoordinatorClient, label: str, node_type_id: str, inputs: dict[str, Any]):
        run_id = new_run_id(label)
        started = start(client, run_id, node_type_id, inputs)
        self.c.check(
            f"{label}: start_run answers a Run (strict parse)",
            started.run_id == run_id,
            {"run_id": started.run_id, "state": state_of(started)},
        )
        run = wait_terminal(client, run_id)
        root = get_node_run(client, run.root_node_run_id)
        return run, root

    def services(self) -> None:
        for name, client in (("rc", self.rc), ("rc-deny", self.rc_deny)):
            health = client.health(RunCoordinatorHealthRequest())
            version = client.version(RunCoordinatorVersionRequest())
            self.c.check(
                f"{name}: health and version parse strictly",
                True,
                {"status": str(health.status.value), "service": version.service_name},
            )
        nr = httpx.get(f"{self.args.nr}/v1/node-types/jarvis.core.echo", params={"version": PACK_VERSION})
        self.c.check(
            "harness: node registry is seeded with jarvis.core.echo (atomic)",
            nr.status_code == 200 and nr.json().get("kind") == "atomic",
            f"HTTP {nr.status_code}",
        )
        nope = httpx.get(f"{self.args.nr}/v1/node-types/jarvis.core.nope", params={"version": PACK_VERSION})
        self.c.check("harness: node registry answers 404 for jarvis.core.nope", nope.status_code == 404)
        # The deny PDP evaluates a policy file and fetches NodeTypes from the registry (through the
        # stub token service); check it really distinguishes, so that the deny checks are not vacuous.
        for action, node_type_id, expected in (
            ("node.run.execute", "jarvis.core.sleep", ("deny", "explicit_deny")),
            ("run.start", "jarvis.core.sleep", ("allow", "explicit_allow")),
            ("run.start", "jarvis.core.uuid4", ("deny", "explicit_deny")),
            ("node.run.execute", "jarvis.core.echo", ("allow", "explicit_allow")),
        ):
            body = {
                "action": action,
                "run_id": "interop-pdp-selfcheck",
                "node_type_ref": {"node_type_id": node_type_id, "version": PACK_VERSION},
            }
            res = httpx.post(f"{self.args.pdp_deny}/v1/policy:decide", json=body).json()
            got = (res.get("decision"), res.get("reason_code"))
            self.c.check(f"harness: deny PDP {action} {node_type_id} -> {expected[0]}", got == expected, res)

    def echo(self) -> None:
        run, root = self.run_and_wait(self.rc, "echo", "jarvis.core.echo", {"echo": "hi"})
        c = self.c
        c.check("echo: Run succeeded", state_of(run) == "succeeded", {"state": state_of(run), **extensions_of(run)})
        kind = root.kind.value if root.kind is not None else None
        c.check("echo: root kind=atomic", kind == "atomic", {"kind": kind})
        c.check(
            "echo: root succeeded",
            state_of(root) == "succeeded",
            {"state": state_of(root), "error": completion_error(root)},
        )
        c.check("echo: root outputs == {'echo': 'hi'}", root.outputs == {"echo": "hi"}, {"outputs": root.outputs})
        endpoint = str(root.executor_binding.endpoint.root) if root.executor_binding is not None else None
        c.check(
            "echo: executor_binding.endpoint is the Atomic Executor",
            endpoint is not None and same_origin(endpoint, self.args.ae),
            {"endpoint": endpoint, "ae": self.args.ae},
        )
        c.check("echo: the Atomic Executor received the execute call", self.ae_saw_execute(run.run_id))
        events = events_of(self.rc, run.run_id)
        summary = event_summary(events)
        types = [e.get("type") for e in events]
        expected = [
            "run_started",
            "node_run_assigned",
            "policy_decided",
            "policy_decided",
            "node_evaluated",
            "atomic_executed",
            "run_completed",
        ]
        c.check("echo: event types in order", types == expected, summary)
        got = decisions(events)
        c.check(
            "echo: policy_decided run.start allow, then node.run.execute allow",
            got == [("run.start", "allow"), ("node.run.execute", "allow")],
            got,
        )
        seqs = [e.get("seq") for e in events]
        c.check("echo: event seq is 1..n", seqs == list(range(1, len(events) + 1)), seqs)
        c.check(
            "echo: every event carries the run_id",
            all(e.get("run_id") == run.run_id for e in events),
            [e.get("run_id") for e in events if e.get("run_id") != run.run_id],
        )

    def sha256(self) -> None:
        inputs = {"text": "abc", "content_base64": None, "encoding": None}
        run, root = self.run_and_wait(self.rc, "sha256", "jarvis.core.hash.sha256", inputs)
        self.c.check("sha256: Run succeeded", state_of(run) == "succeeded", {"state": state_of(run)})
        got = (root.outputs or {}).get("sha256")
        self.c.check("sha256: outputs.sha256 of 'abc'", got == SHA256_ABC, {"outputs": root.outputs})

    def handler_error(self) -> None:
        run, root = self.run_and_wait(self.rc, "handler-error", "jarvis.core.echo", {})
        self.c.check("handler_error: Run failed", state_of(run) == "failed", {"state": state_of(run)})
        self.c.check("handler_error: root failed", state_of(root) == "failed", {"state": state_of(root)})
        error = completion_error(root)
        self.c.check(
            "handler_error: root rc.completion_error.code == handler_error",
            error.get("code") == "handler_error",
            error,
        )
        self.c.check(
            "handler_error: Run rc.completion_error.code == handler_error",
            completion_error(run).get("code") == "handler_error",
            completion_error(run),
        )

    def unknown_node_type(self) -> None:
        run, root = self.run_and_wait(self.rc, "unknown", "jarvis.core.nope", {})
        self.c.check("unknown: Run failed", state_of(run) == "failed", {"state": state_of(run)})
        self.c.check("unknown: root failed", state_of(root) == "failed", {"state": state_of(root)})
        error = completion_error(root)
        self.c.check(
            "unknown: root rc.completion_error.code == unknown_node_kind",
            error.get("code") == "unknown_node_kind",
            error,
        )
        self.c.check("unknown: the Atomic Executor was not called", not self.ae_saw_execute(run.run_id))
        after, _ = self.run_and_wait(self.rc, "after-unknown", "jarvis.core.echo", {"echo": "still here"})
        self.c.check(
            "unknown: the coordinator keeps serving (next echo run succeeds)",
            state_of(after) == "succeeded",
            {"state": state_of(after)},
        )

    def deny_execute(self) -> None:
        """run.start is allowed, node.run.execute on jarvis.core.sleep is denied before dispatch."""
        run, root = self.run_and_wait(self.rc_deny, "deny-exec", "jarvis.core.sleep", {"seconds": 5})
        c = self.c
        c.check("deny(execute): Run failed", state_of(run) == "failed", {"state": state_of(run)})
        error = completion_error(root)
        c.check(
            "deny(execute): root failed with policy_denied",
            state_of(root) == "failed" and error.get("code") == "policy_denied",
            {"state": state_of(root), "error": error},
        )
        c.check(
            "deny(execute): Run rc.completion_error.code == policy_denied",
            completion_error(run).get("code") == "policy_denied",
            completion_error(run),
        )
        c.check("deny(execute): no executor_binding", root.executor_binding is None, str(root.executor_binding))
        events = events_of(self.rc_deny, run.run_id)
        types = [e.get("type") for e in events]
        c.check("deny(execute): no atomic_executed event", "atomic_executed" not in types, event_summary(events))
        got = decisions(events)
        c.check(
            "deny(execute): policy_decided run.start allow, node.run.execute deny",
            got == [("run.start", "allow"), ("node.run.execute", "deny")],
            got,
        )
        ok, data = decided_by_policy_file(events, "node.run.execute")
        c.check("deny(execute): the deny is the policy's explicit_deny", ok, data)
        c.check("deny(execute): the Atomic Executor log shows no execute", not self.ae_saw_execute(run.run_id))

    def deny_start(self) -> None:
        """run.start on jarvis.core.uuid4 is denied: 200 with the Run failed, nothing dispatched."""
        c = self.c
        run_id = new_run_id("deny-start")
        started = start(self.rc_deny, run_id, "jarvis.core.uuid4", {})
        c.check(
            "deny(start): start_run answers 200 with the Run failed",
            state_of(started) == "failed",
            {"state": state_of(started), **extensions_of(started)},
        )
        run = wait_terminal(self.rc_deny, run_id)
        c.check(
            "deny(start): Run rc.completion_error.code == policy_denied",
            state_of(run) == "failed" and completion_error(run).get("code") == "policy_denied",
            {"state": state_of(run), **extensions_of(run)},
        )
        root = get_node_run(self.rc_deny, run.root_node_run_id)
        c.check(
            "deny(start): root failed with policy_denied, never bound",
            state_of(root) == "failed"
            and completion_error(root).get("code") == "policy_denied"
            and root.executor_binding is None,
            {"state": state_of(root), "error": completion_error(root), "binding": str(root.executor_binding)},
        )
        events = events_of(self.rc_deny, run_id)
        got = decisions(events)
        c.check("deny(start): exactly one policy_decided (run.start deny)", got == [("run.start", "deny")], got)
        ok, data = decided_by_policy_file(events, "run.start")
        c.check("deny(start): the deny is the policy's explicit_deny", ok, data)
        types = [e.get("type") for e in events]
        c.check(
            "deny(start): no atomic_executed, ends with run_completed",
            "atomic_executed" not in types and types[-1:] == ["run_completed"],
            event_summary(events),
        )
        c.check("deny(start): the Atomic Executor log shows no execute", not self.ae_saw_execute(run_id))

    def deny_sanity(self) -> None:
        run, root = self.run_and_wait(self.rc_deny, "deny-allowed", "jarvis.core.echo", {"echo": "allowed"})
        self.c.check(
            "deny(sanity): an allowed echo run still succeeds on the deny-PDP coordinator",
            state_of(run) == "succeeded" and root.outputs == {"echo": "allowed"},
            {"state": state_of(run), "outputs": root.outputs, "error": completion_error(root)},
        )

    def cancel(self) -> None:
        c = self.c
        run_id = new_run_id("cancel")
        started = start(self.rc, run_id, "jarvis.core.sleep", {"seconds": 30, "duration_seconds": None})
        root_id = started.root_node_run_id
        running = wait_until(lambda: state_of(get_node_run(self.rc, root_id)) == "running", 10.0)
        c.check("cancel: root NodeRun reaches running", running, {"state": state_of(get_node_run(self.rc, root_id))})
        in_flight = wait_until(lambda: self.ae_saw_execute(run_id), 10.0)
        c.check("cancel: the Atomic Executor is executing the sleep", in_flight)
        cancel_request = RunCoordinatorCancelRunRequest(params=RunCoordinatorCancelRunParams(run_id=run_id))
        if not (running and in_flight):
            # Without an execute in flight the timing and executor-cancel checks would prove nothing.
            self.rc.cancel_run(cancel_request)
            c.check("cancel: not measured (no execute in flight)", False)
            return
        t0 = time.monotonic()
        canceled = self.rc.cancel_run(cancel_request)
        run = wait_terminal(self.rc, run_id, timeout_s=10.0)
        elapsed = time.monotonic() - t0
        c.check(
            "cancel: Run canceled within 2 s of the cancel call",
            state_of(run) == "canceled" and elapsed <= 2.0,
            {"state": state_of(run), "elapsed_s": round(elapsed, 3), "cancel_response": state_of(canceled)},
        )
        root = get_node_run(self.rc, root_id)
        c.check("cancel: root NodeRun canceled", state_of(root) == "canceled", {"state": state_of(root)})
        marker = f"Atomic execute cancellation requested (node_run_id={root_id})"
        called = wait_until(lambda: marker in read_log(self.args.ae_log), 3.0)
        c.check("cancel: the coordinator called the executor's cancel endpoint", called)
        # The AE answers the pending :execute with state=canceled after its cancel; terminal is final.
        time.sleep(1.0)
        later_run, later_root = get_run(self.rc, run_id), get_node_run(self.rc, root_id)
        c.check(
            "cancel: Run and root stay canceled afterwards",
            state_of(later_run) == "canceled" and state_of(later_root) == "canceled",
            {"run": state_of(later_run), "root": state_of(later_root)},
        )

    def run(self) -> int:
        self.c.scenario("services", self.services)
        self.c.scenario("atomic echo", self.echo)
        self.c.scenario("atomic hash.sha256", self.sha256)
        self.c.scenario("handler error", self.handler_error)
        self.c.scenario("unknown node type", self.unknown_node_type)
        self.c.scenario("deny at node.run.execute", self.deny_execute)
        self.c.scenario("deny at run.start", self.deny_start)
        self.c.scenario("deny PDP allows other nodes", self.deny_sanity)
        self.c.scenario("cancel a running sleep", self.cancel)
        print(f"{self.c.passed} passed, {self.c.failed} failed", flush=True)
        return 1 if self.c.failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rc", required=True, help="coordinator with the allow PDP")
    parser.add_argument("--rc-deny", required=True, help="coordinator with the policy-file PDP")
    parser.add_argument("--ae", required=True, help="Atomic Executor base URL")
    parser.add_argument("--ae-log", required=True, help="Atomic Executor log file")
    parser.add_argument("--nr", required=True, help="Node Registry base URL")
    parser.add_argument("--pdp-deny", required=True, help="policy-file PDP base URL")
    return Suite(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
