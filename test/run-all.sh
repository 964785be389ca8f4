#!/usr/bin/env bash
# `npm test`: build, lint (module boundaries included) and unit-test every project, then the
# cross-process integration and end-to-end tests (each starts its own redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_NO_CLOUD=true NX_DAEMON=false
npx nx run-many -t build lint test --outputStyle=static
npx tsc -p test/tsconfig.json --noEmit
npx eslint --max-warnings 0 test
npx vitest run --config test/vitest.config.mts
