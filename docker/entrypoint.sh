#!/bin/sh
# Container entrypoint (run by tini): starts the app named by $APP with the config at $PORTCULLIS_CONFIG.
# Service apps: extra arguments are appended. cli: the arguments are the portcullis command
# (no arguments: `portcullis run all --config $PORTCULLIS_CONFIG`; `policy …` gets that --config
# appended unless --config or --server is given).
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
config=${PORTCULLIS_CONFIG:-/etc/portcullis/portcullis.yaml}

case "${APP:-}" in
  edge-proxy | policy-service | audit-service)
    if [ ! -r "$config" ]; then
      echo "entrypoint: no config at $config (mount one, or set PORTCULLIS_CONFIG)" >&2
      exit 78
    fi
    exec node --enable-source-maps "$root/dist/apps/$APP/main.js" --config "$config" "$@"
    ;;
  cli)
    if [ "$#" -eq 0 ]; then
      set -- run all --config "$config"
    elif [ "$1" = policy ] && [ -r "$config" ]; then
      # admin commands find the policy service and token in the mounted config unless told otherwise
      case " $* " in *" --config "* | *" --server "*) ;; *) set -- "$@" --config "$config" ;; esac
    fi
    exec node --enable-source-maps "$root/bin/portcullis" "$@"
    ;;
  *)
    echo "entrypoint: APP must be edge-proxy, policy-service, audit-service or cli (got '${APP:-}')" >&2
    exit 64
    ;;
esac
