#!/usr/bin/env bash
# The project's contract against the published ARP standard: installs arp-conformance 0.3.7 from PyPI
# into the git-ignored .venv-standard (the wheel ships spec/v1: schemas, OpenAPI documents and the
# json_vectors / json_vectors_invalid conformance vectors), finds spec/v1 inside the installed
# package, and runs test/standard with ARP_STANDARD_SPEC_V1 pointing at it.
#   scripts/standard/run.sh [extra vitest options]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv-standard"
python=${PYTHON:-python3}
version=0.3.7

# The installed version, without importing the package (its CLI modules are not needed here).
installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("arp-conformance"))' 2>/dev/null || true
}

if [ ! -x "$venv/bin/python" ] || [ "$(installed)" != "$version" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # Only the data files are used; the checker's own dependencies are not.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "arp-conformance==$version"
fi

spec=$("$venv/bin/python" -c '
import importlib.util, pathlib
package = importlib.util.find_spec("arp_conformance")
print(pathlib.Path(package.submodule_search_locations[0], "_spec", "v1"))
')
if [ ! -f "$spec/openapi/run-coordinator.openapi.yaml" ]; then
  echo "arp-conformance $version does not ship spec/v1 where expected ($spec)" >&2
  exit 1
fi
echo "ARP standard spec/v1 from arp-conformance $version: $spec"

cd "$root"
ARP_STANDARD_SPEC_V1="$spec" exec npx vitest run --config test/standard/vitest.config.ts "$@"
