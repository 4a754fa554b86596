"""Auth checks for scripts/conformance/run.sh (standard library only).

  auth_checks.py probe BASE_URL TOKEN
      Proves that inbound auth is really on: a protected route answers 401 (with a Bearer
      WWW-Authenticate challenge and an ARP error envelope) without a token and with a forged one,
      and reaches its handler (404 for an unknown id) with TOKEN; health stays public.
  auth_checks.py report REPORT.json
      Prints a checker JSON report (--format json) one line per check with the HTTP status it got,
      and fails when any exchange was answered 401/403: with the token every check must reach the
      real handlers (the checker's surface tier would also pass on 401 envelopes).

Exit status 0 when every expectation holds, 1 otherwise.
"""

import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def get(base, path, authorization=None):
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(base.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def forge(token):
    """The same token with its payload changed and the signature left as it was."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = f"{claims.get('sub', '')}-forged"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def probe(base, token):
    ok = True
    cases = [
        ("GET /v1/runs/x without a token", "/v1/runs/x", None, 401),
        ("GET /v1/runs/x with a forged token", "/v1/runs/x", f"Bearer {forge(token)}", 401),
        ("GET /v1/runs/x with the token", "/v1/runs/x", f"Bearer {token}", 404),
        ("GET /v1/health without a token", "/v1/health", None, 200),
    ]
    for label, path, authorization, expected in cases:
        status, headers, body = get(base, path, authorization)
        problems = []
        if status != expected:
            problems.append(f"expected {expected}")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if expected >= 400 and not (isinstance(document, dict) and isinstance(document.get("error"), dict)):
            problems.append("body is not an ARP error envelope")
        challenge = headers.get("WWW-Authenticate") or ""
        if expected == 401 and not challenge.startswith("Bearer "):
            problems.append(f"WWW-Authenticate is {challenge!r}")
        envelope = document.get("error") if isinstance(document, dict) else None
        code = envelope.get("code") if isinstance(envelope, dict) else None
        detail = f" ({code})" if code else ""
        if expected == 401 and challenge:
            detail += f"; WWW-Authenticate: {challenge}"
        verdict = f"FAIL {label} -> {status}{detail}: {'; '.join(problems)}" if problems else f"PASS {label} -> {status}{detail}"
        print(f"- {verdict}")
        ok = ok and not problems
    return ok


def report(path):
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    print(f"service={document['service']} tier={document['tier']} spec={document['spec_ref']}")
    print(f"counts={document['counts']} ok={document['ok']}")
    ok = bool(document["ok"])
    for result in document["results"]:
        exchange = result.get("exchange") or {}
        status = exchange.get("status_code")
        line = f"- {result['status']} {result['check_id']}: {result['message']}"
        if exchange:
            path = urllib.parse.urlsplit(exchange.get("url") or "").path
            line += f" [{exchange.get('method')} {path} -> {status}]"
        if status in (401, 403):
            line += "  <- refused: the token did not reach the handler"
            ok = False
        if result["status"] != "PASS":
            ok = False
        print(line)
        for error in result.get("errors") or []:
            print(f"    {error}")
    if not document["results"]:
        ok = False
    return ok


def main(argv):
    if len(argv) == 3 and argv[0] == "probe":
        return 0 if probe(argv[1], argv[2]) else 1
    if len(argv) == 2 and argv[0] == "report":
        return 0 if report(argv[1]) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
