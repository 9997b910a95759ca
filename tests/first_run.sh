#!/usr/bin/env bash
# A new user's first run: the README's set-up (scripts/demo) with a new user's HOME
# (made from /etc/skel, as useradd makes it), then, from another folder and through a
# login shell that has nothing but HOME, `camwatch --version` and the demo. The Rust
# toolchain stays the machine's (CARGO_HOME, RUSTUP_HOME); .venv and target/ are the
# checkout's, so on a set-up checkout this takes seconds. Run by scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

home=$(mktemp -d)
elsewhere=$(mktemp -d)
trap 'rm -rf "$home" "$elsewhere"' EXIT
cp -rT /etc/skel "$home"
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
fail() { echo "first run: $*" >&2; exit 1; }

# As if an older checkout had linked camwatch there: set-up says what it replaces.
mkdir -p "$home/.local/bin"
ln -s /old/checkout/target/release/camwatch "$home/.local/bin/camwatch"
HOME=$home scripts/demo </dev/null >"$home/demo.txt" 2>"$home/setup.txt" ||
    fail "scripts/demo failed: $(tail -3 "$home/setup.txt")"
grep -q "camwatch is a command in a new shell: $home/.local/bin/camwatch → .*(it was /old/checkout/target/release/camwatch)" \
    "$home/setup.txt" || fail "set-up did not say which link it replaced: $(tail -1 "$home/setup.txt")"
grep -Eq "^ +16 " "$home/demo.txt" || fail "scripts/demo showed no epoch 16: $(cat "$home/demo.txt")"

login() { env -i HOME="$home" TERM=dumb bash -lc "cd '$elsewhere' && $1"; }
found=$(login 'command -v camwatch') || fail "camwatch is not a command in a login shell"
[[ $found == "$home/.local/bin/camwatch" ]] || fail "a login shell finds camwatch at $found"
version=$(login 'camwatch --version') || fail "camwatch --version failed"
lines=$(login 'camwatch demo --headless --delay 0 2>/dev/null' | grep -c '"event":"checkpoint"') ||
    fail "camwatch demo from $elsewhere failed"
(( lines == 16 )) || fail "camwatch demo from $elsewhere reported $lines checkpoints, not 16"
echo "first run: set-up in a new HOME, then '$version' and the demo's 16 epochs from another folder, in a login shell"
