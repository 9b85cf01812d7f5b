#!/usr/bin/env bash
# Builds the `idgate` binary exactly as the Dockerfile's build stage does, and copies it to OUT_DIR.
#
#   examples/deploy/build.sh [OUT_DIR]      OUT_DIR defaults to <cargo target dir>/deploy
#   PROFILE=dev examples/deploy/build.sh    any cargo profile; default release (the image's)
#
# The Dockerfile runs it with the release profile; `.ci/run` runs it with the dev profile (reusing the test build's
# artifacts) and then runs the binary it produced, so these commands are checked on every CI run without a docker
# daemon. Plain POSIX tools only: the build image has no python or jq.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=${PROFILE:-release}
cargo build --locked --profile "$profile" -p idgate-cli --bin idgate

# Where cargo put it: honours CARGO_TARGET_DIR and .cargo/config.toml, as cargo itself reads them.
target_dir=$(cargo metadata --locked --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    echo "build.sh: cargo metadata named no target directory" >&2
    exit 1
fi
# The dev profile's directory is `debug`; every other profile's is its name.
case "$profile" in
dev | test) profile_dir=debug ;;
*) profile_dir=$profile ;;
esac

out=${1:-$target_dir/deploy}
mkdir -p "$out"
cp "$target_dir/$profile_dir/idgate" "$out/idgate"
echo "$out/idgate"
