#!/usr/bin/env bash
# The English-notes corpus of the recipe A/B tests: every *.md file under node_modules after
# `npm ci` (about 500 files), copied flat into one folder, since the corpus walk skips node_modules.
# usage: bash scripts/make-notes-corpus.sh [DEST]   (default /work/notes-md)
set -euo pipefail
dest=${1:-/work/notes-md}
rm -rf "$dest" && mkdir -p "$dest"
cd "$(dirname "$0")/../node_modules"
find . -name '*.md' -type f | LC_ALL=C sort | while read -r f; do
  name=$(echo "${f#./}" | sed 's#/#__#g; s#^\.#_#')
  cp "$f" "$dest/$name"
done
echo "$(ls "$dest" | wc -l) files in $dest"
