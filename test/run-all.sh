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
# The native relay also runs on its own thread (PORTCULLIS_RELAY_THREAD=1; the default runs it on
# Node's loop): the relay, hostile-client and express-lane suites once more under that mode.
PORTCULLIS_RELAY_THREAD=1 npx vitest run --config test/vitest.config.mts test/integration/edge-connect.spec.ts test/integration/hostile-clients.spec.ts test/integration/express-lane.spec.ts
