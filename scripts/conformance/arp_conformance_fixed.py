"""Runs the official `arp-conformance` CLI with a fix for its `$ref` resolution bug.

arp-conformance 0.3.7 registers the ARP schemas under `arp://spec/v1/schemas/...` URIs. The
`referencing` library resolves relative `$ref`s with `urllib.parse.urljoin`, which ignores schemes it
does not know, so every relative `$ref` (for example Health -> status.schema.json) is unresolvable
and the checker aborts with `runner.exception: Unresolvable: ...` against any server. Teaching
urllib that `arp` is a hierarchical scheme makes `urljoin` resolve those refs; the checker itself is
left untouched. Arguments are passed through: `python arp_conformance_fixed.py check run-coordinator ...`.
"""

import sys
import urllib.parse

for registry in (urllib.parse.uses_relative, urllib.parse.uses_netloc):
    if "arp" not in registry:
        registry.append("arp")

from arp_conformance.cli import main  # noqa: E402  (must import after the fix)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
