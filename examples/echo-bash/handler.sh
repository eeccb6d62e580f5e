#!/usr/bin/env bash
# Echo the request back, upper-cased, and say on stderr (the logs) what came in.
set -euo pipefail
body=$(cat)
echo "echo-bash got ${#body} bytes via ${NIMBUS_HTTP_METHOD:-?} ${NIMBUS_HTTP_PATH:-/}" >&2
if [[ "$body" == "fail" ]]; then
  echo "asked to fail" >&2
  exit 3
fi
printf '%s\n' "${body^^}"
