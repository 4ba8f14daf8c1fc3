#!/bin/sh
# Entry point for a machine that may have nothing yet: install what casfs
# needs (scripts/deps.sh, which brings make itself), then run make with the
# given targets.  `sh make.sh demo`, `sh make.sh check`, or any make target.
set -eu
cd "$(dirname "$0")"
sh scripts/deps.sh
exec make "$@"
