#!/usr/bin/env bash
# Refresh the vendored MathJax in docs/_static/mathjax from its npm package, so that the
# built pages render their math with no request leaving the page. Run from the repository
# root; needs npm. The version is pinned here and in docs/conf.py's comment.
set -euo pipefail
version=3.2.2
work=$(mktemp -d)
(cd "$work" && npm pack --silent "mathjax@$version" >/dev/null && tar xzf "mathjax-$version.tgz")
target=docs/_static/mathjax
rm -rf "$target"
mkdir -p "$target/output/chtml/fonts"
# The TeX-input, CommonHTML-output component and the web fonts it loads, with the licence.
cp "$work/package/es5/tex-chtml.js" "$target/"
cp -r "$work/package/es5/output/chtml/fonts/woff-v2" "$target/output/chtml/fonts/"
cp "$work/package/LICENSE" "$target/LICENSE"
rm -rf "$work"
echo "MathJax $version in $target"
