#!/usr/bin/env bash
# Installs code-server 4.100.3 (VS Code 1.100.3, the newest that runs on node 20) for the
# end-to-end test, from the npm registry alone. A plain `npm install code-server` fails offline in
# three places, fixed here: its postinstall refuses to run as root without unsafe_perm; node-pty's
# postinstall runs `npx node-gyp`; @vscode/ripgrep downloads rg unless its cache holds a tarball.
# Debian packages it needs: build-essential python3 pkg-config libkrb5-dev ripgrep.
set -euo pipefail
DEST=${1:-"$(dirname "$0")/../.cache/code-server"}
VERSION=4.100.3
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
if [ -x "$DEST/node_modules/.bin/code-server" ] && "$DEST/node_modules/.bin/code-server" --version 2>/dev/null | grep -q "^$VERSION"; then
  exit 0
fi
# Checked before anything is installed, because the failures they cause later (`tar: rg: Cannot
# stat`, a node-gyp build error deep in an npm log) do not say what to install.
missing=()
command -v rg >/dev/null || missing+=(ripgrep)
{ command -v make && command -v g++; } >/dev/null || missing+=(build-essential)
command -v python3 >/dev/null || missing+=(python3)
command -v pkg-config >/dev/null || missing+=(pkg-config)
{ command -v krb5-config >/dev/null || [ -e /usr/include/krb5.h ] || [ -e /usr/include/krb5/krb5.h ]; } || missing+=(libkrb5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: installing code-server for the end-to-end test needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}   (.ci/run installs the full list)" >&2
  exit 1
fi
cd "$DEST"
[ -f package.json ] || echo '{"name":"code-server-host","private":true}' > package.json
export TMPDIR="$DEST/tmp"
mkdir -p "$TMPDIR/vscode-ripgrep-cache-1.15.11"
tar czf "$TMPDIR/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg
npm_config_unsafe_perm=true npm_config_yes=true npm_config_nodedir=/usr \
  npm install --no-audit --no-fund --foreground-scripts "code-server@$VERSION" >"$DEST/install.log" 2>&1 || { tail -40 "$DEST/install.log"; exit 1; }
"$DEST/node_modules/.bin/code-server" --version
