"""Schemathesis hooks for scripts/fuzz/run.sh (loaded through SCHEMATHESIS_HOOKS).

Links. The documents declare no OpenAPI links, so a fuzzer left alone only reaches NodeRuns by
guessing their ids and nearly every NodeRun operation answers 404. The links below tell the
stateful phase how the operations chain: a started Run names its id and its root NodeRun; a created
or read NodeRun names its own id and its Run; a listed Run, its NodeRuns. They are added to the schema the fuzzer loads, never
to the contract the service serves.

Follow streams. `follow=true` keeps an event stream open until its Run is finished, by design, so
on a running Run the response never ends and the fuzzer could only time out. Such requests are sent
with `follow=false` instead (the same snapshot, closed at once); on a finished or unknown Run, and
with any value other than `true`, they are sent as generated. test/http/streams.test.ts covers live
streams.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
import urllib.request
from typing import Any

import schemathesis

# Operations that act on one NodeRun, with the path parameter they take.
NODE_RUN_TARGETS = (
    "get_node_run",
    "stream_node_run_events",
    "report_node_run_evaluation",
    "complete_node_run",
)
RUN_TARGETS = ("get_run", "cancel_run", "stream_run_events")


def _links(run_id: str, node_run_id: str) -> dict[str, Any]:
    """Links from a response in which `run_id` and `node_run_id` are runtime expressions."""
    links: dict[str, Any] = {}
    for operation in RUN_TARGETS:
        links[f"{operation}_of_run"] = {"operationId": operation, "parameters": {"run_id": run_id}}
    for operation in NODE_RUN_TARGETS:
        links[f"{operation}_of_node_run"] = {
            "operationId": operation,
            "parameters": {"node_run_id": node_run_id},
        }
    # Children under that NodeRun: the rest of the body (node_runs) is generated.
    links["create_children"] = {
        "operationId": "create_node_runs",
        "requestBody": {"run_id": run_id, "parent_node_run_id": node_run_id},
    }
    return links


# operationId -> (expression of the Run id, expression of a NodeRun id) in its success response.
SOURCES = {
    "start_run": ("$response.body#/run_id", "$response.body#/root_node_run_id"),
    "get_run": ("$response.body#/run_id", "$response.body#/root_node_run_id"),
    "cancel_run": ("$response.body#/run_id", "$response.body#/root_node_run_id"),
    "create_node_runs": ("$response.body#/node_runs/0/run_id", "$response.body#/node_runs/0/node_run_id"),
    "get_node_run": ("$response.body#/run_id", "$response.body#/node_run_id"),
}


def _operations(raw_schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for item in raw_schema.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    listing = _operations(raw_schema)
    if "list_runs" in listing:
        # The listing API (rc/openapi.json): a listed Run's NodeRuns.
        listing["list_runs"]["responses"]["200"].setdefault("links", {})["node_runs_of_listed_run"] = {
            "operationId": "list_node_runs",
            "parameters": {"run_id": "$response.body#/items/0/run/run_id"},
        }
        return
    found = set()
    for item in raw_schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or operation.get("operationId") not in SOURCES:
                continue
            operation_id = operation["operationId"]
            found.add(operation_id)
            response = operation["responses"]["200"]
            response.setdefault("links", {}).update(_links(*SOURCES[operation_id]))
    missing = set(SOURCES) - found
    if missing:
        # The contract changed under the fuzzer: fail instead of fuzzing with fewer links.
        raise RuntimeError(f"operations not found in /openapi.json: {', '.join(sorted(missing))}")


TERMINAL = {"succeeded", "failed", "canceled"}
BASE_URL = os.environ.get("FUZZ_BASE_URL", "").rstrip("/")
AUTHORIZATION = os.environ.get("FUZZ_AUTHORIZATION", "")


def _get(path: str) -> dict[str, Any] | None:
    """GET a resource of the service under test; None unless it answers 200 with a JSON object."""
    request = urllib.request.Request(f"{BASE_URL}{path}")
    if AUTHORIZATION:
        request.add_header("Authorization", AUTHORIZATION)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.load(response)
    except (OSError, http.client.HTTPException, ValueError):  # URLError and timeouts are OSErrors
        return None
    return body if isinstance(body, dict) else None


def _segment(value: Any) -> str:
    return urllib.parse.quote(str(value), safe="")


def _run_is_running(case: Any) -> bool:
    """Whether the Run behind this event stream exists and is not finished."""
    if "run_id" in case.path_parameters:
        run_id = case.path_parameters["run_id"]
    else:
        node_run = _get(f"/v1/node-runs/{_segment(case.path_parameters['node_run_id'])}")
        if node_run is None:
            return False
        run_id = node_run.get("run_id")
    run = _get(f"/v1/runs/{_segment(run_id)}")
    return run is not None and run.get("state") not in TERMINAL


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    follow = case.query.get("follow") if case.query else None
    if follow is True or follow == "true":
        if not BASE_URL:
            raise RuntimeError("FUZZ_BASE_URL is not set")
        if _run_is_running(case):
            case.query["follow"] = "false"
