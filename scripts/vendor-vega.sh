#!/usr/bin/env bash
# Rebuild atlas/render/templates/static/vendor/vega-bundle.min.js from the npm registry.
# The versions must match the Vega-Lite schema of the installed altair
# (python -c "import altair; print(altair.SCHEMA_VERSION)").
set -euo pipefail
VEGA=6.4.0 VEGA_LITE=6.4.1 VEGA_EMBED=7.3.0
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "vega@$VEGA" "vega-lite@$VEGA_LITE" "vega-embed@$VEGA_EMBED" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
out="$OLDPWD/atlas/render/templates/static/vendor/vega-bundle.min.js"
{
  echo "/* vega $VEGA, vega-lite $VEGA_LITE, vega-embed $VEGA_EMBED (BSD-3-Clause, see LICENSES.txt) */"
  cat "vega-$VEGA/package/build/vega.min.js"; echo
  cat "vega-lite-$VEGA_LITE/package/build/vega-lite.min.js"; echo
  cat "vega-embed-$VEGA_EMBED/package/build/vega-embed.min.js"; echo
} > "$out"
{
  for p in "vega-$VEGA" "vega-lite-$VEGA_LITE" "vega-embed-$VEGA_EMBED"; do
    echo "== $p =="; cat "$p/package/LICENSE"; echo
  done
} > "$(dirname "$out")/LICENSES.txt"
echo "wrote $out ($(wc -c < "$out") bytes)"
