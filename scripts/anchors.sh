#!/usr/bin/env bash
# Compressor anchors (issue 20): how well general-purpose compressors predict TEST having read TRAIN.
#
#   bash scripts/anchors.sh TRAIN TEST        (TRAIN and TEST as `npm run split` writes them)
#
# For each compressor found: bits/char = 8 * (size(compress(TRAIN ++ TEST)) - size(compress(TRAIN))) / chars(TEST),
# where chars are Unicode code points, as the trainer counts them; nats/char = bits/char * ln 2. The compressors:
# xz -9e, 7-Zip's PPMd (order 16, 1 GiB), zpaq -method 5 and paq8px -8 ($PAQ8PX, or paq8px on PATH). One that is
# missing is skipped with a note; ANCHORS="xz ppmd" runs only those. Everything runs under nice -n 19, one
# compression at a time.
set -euo pipefail
shopt -s inherit_errexit

if [[ $# -ne 2 || ! -f $1 || ! -f $2 ]]; then
  echo "usage: bash scripts/anchors.sh TRAIN TEST" >&2
  exit 2
fi
train=$1
test=$2
chars=$(LC_ALL=C.UTF-8 wc -m <"$test")
if [[ $chars -eq 0 ]]; then
  echo "anchors: $test is empty" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/anchors.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/train" "$work/joined"
# The same file name in both archives, so archive headers cancel in the difference.
cp "$train" "$work/train/data"
cat "$train" "$test" >"$work/joined/data"

# quiet COMMAND...: runs it with its output kept aside, shown only if it fails.
quiet() {
  "$@" >"$work/log" 2>&1 || {
    cat "$work/log" >&2
    return 1
  }
}

# compress NAME DIR: prints the compressed size in bytes of DIR/data, compressed into DIR.
compress() {
  local dir=$2
  case $1 in
    xz) nice -n 19 xz -9e -T1 -c "$dir/data" >"$dir/out" ;;
    # Through a pipe: given a file, 7-Zip shrinks PPMd's memory to 16 times the file's size, where an order-16
    # model fills up and restarts (mem24 instead of mem30 on 1 MB, 2.5% larger).
    ppmd) (cd "$dir" && cat data | quiet nice -n 19 "$sevenzip" a -bd -t7z -m0=PPMd:o=16:mem=1g -sidata out.7z) &&
      mv "$dir/out.7z" "$dir/out" ;;
    zpaq) (cd "$dir" && quiet nice -n 19 zpaq a out.zpaq data -method 5) && mv "$dir/out.zpaq" "$dir/out" ;;
    paq8px) (cd "$dir" && quiet nice -n 19 "$paq8px" -8 data out) ;;
  esac
  stat -c %s "$dir/out"
  rm -f "$dir/out"
}

paq8px=${PAQ8PX:-$(command -v paq8px || true)}
sevenzip=$(command -v 7zz || command -v 7z || true)
printf 'TEST: %s chars (code points), %s bytes; TRAIN: %s bytes\n' \
  "$chars" "$(stat -c %s "$test")" "$(stat -c %s "$train")"
printf '%-8s %12s %12s %10s %10s %8s\n' compressor train_bytes joined_bytes bits/char nats/char seconds
for name in ${ANCHORS:-xz ppmd zpaq paq8px}; do
  case $name in
    xz) tool=xz ;;
    ppmd) tool=$sevenzip ;;
    zpaq) tool=zpaq ;;
    paq8px) tool=$paq8px ;;
    *)
      echo "anchors: unknown compressor $name (xz, ppmd, zpaq, paq8px)" >&2
      exit 2
      ;;
  esac
  if [[ -z $tool ]] || ! command -v "$tool" >/dev/null; then
    echo "$name: skipped (${tool:-its program} not found; 7zz or 7z for ppmd, \$PAQ8PX or paq8px on PATH for paq8px)"
    continue
  fi
  start=$SECONDS
  a=$(compress "$name" "$work/train")
  b=$(compress "$name" "$work/joined")
  awk -v n="$name" -v a="$a" -v b="$b" -v c="$chars" -v s=$((SECONDS - start)) \
    'BEGIN { bits = 8 * (b - a) / c; printf "%-8s %12d %12d %10.4f %10.4f %8d\n", n, a, b, bits, bits * log(2), s }'
done
