#!/usr/bin/env bash
# Re-fetch the Swagger UI files /docs serves (app/static/docs/), from the npm registry.
# Only the maintainers run this, to move to another Swagger UI 5 release; installing or
# running the service needs no Node toolchain (the files are committed).
#   scripts/vendor-swagger-ui.sh [VERSION]      (default: the newest 5.x)
set -euo pipefail
version="${1:-5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
target="$here/app/static/docs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar -xzf swagger-ui-dist-*.tgz)
mkdir -p "$target"
for file in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE; do
    cp "$work/package/$file" "$target/$file"
done
# both point at source maps we do not ship
sed -i '/^\/\/# sourceMappingURL=/d' "$target/swagger-ui-bundle.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$target/swagger-ui.css"
node -e 'console.log(require(process.argv[1]).version)' "$work/package/package.json" \
    > "$target/VERSION"
echo "swagger-ui-dist $(cat "$target/VERSION") -> $target"
