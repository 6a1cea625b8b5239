#!/usr/bin/env bash
# Regenerates the configuration tables in README.md from the binaries'
# own --help-markdown, so the docs cannot drift from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
{
  for d in deployments/local services/nextcloud-syncer services/s3-uploader services/sqs-dispatcher services/hevc-processor services/result-downloader; do
    name=$(basename "$d"); [ "$name" = local ] && name="make run (deployments/local)"
    echo "#### $name"
    echo
    (cd "$d" && go run . --help-markdown 2>/dev/null) || echo "(no --help-markdown)"
    echo
  done
  # Commands with variables of their own.
  echo "#### sqs-dispatcher status"
  echo
  (cd services/sqs-dispatcher && go run . status --help-markdown 2>/dev/null) || echo "(no --help-markdown)"
  echo
} > "$out"
python3 - "$out" <<'PY'
import sys, re
tables = open(sys.argv[1]).read()
readme = open("README.md").read()
start, end = "<!-- config:begin -->", "<!-- config:end -->"
i, j = readme.index(start) + len(start), readme.index(end)
open("README.md", "w").write(readme[:i] + "\n" + tables + readme[j:])
PY
rm -f "$out"
