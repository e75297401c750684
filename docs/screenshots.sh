#!/usr/bin/env bash
# Take the README's three screenshots of the built site (sphinx-build ... docs docs/_build/html
# first) with headless Chromium (Debian's chromium package). Run from the repository root.
set -euo pipefail
site="file://$PWD/docs/_build/html"
out=docs/_static/screenshots
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
shoot() {  # shoot NAME PAGE HEIGHT: the top of the page (a #fragment does not scroll headless)
    "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="1200,$3" \
        --virtual-time-budget=10000 --screenshot="$out/$1.png" "$site/$2" 2>/dev/null
}
shoot derivation derivation.html 1700
shoot api api.html 1100
shoot performance performance.html 1100
ls -l "$out"
