#!/usr/bin/env bash
# node-binary.sh [--arch x64|arm64] [--version X.Y.Z] [--print-version]
#
# Prints the path of a Node binary of the version the images ship (the current LTS line),
# for linux/x64 or linux/arm64, taken from the npm registry's `node-linux-<arch>` package:
# `npm pack` fetches it, and its SHA-512 is checked against the integrity the registry
# publishes for that version (`npm view node-linux-<arch>@X.Y.Z dist.integrity`) before
# anything in it is used. Kept under ${MODELFN_CACHE:-~/.cache/modelfn}/node-vX.Y.Z-linux-<arch>/;
# a later call prints the kept copy.
#
# Used by scripts/base-images.sh (the base-image stand-ins) and .ci/run (the suite on the
# image's Node). --print-version prints the version and exits.
set -euo pipefail

# The Node the images ship: the active LTS line (26), its newest release in the registry.
# The Dockerfiles name the line (node:26-bookworm); keep the two together.
version="26.12.1"
arch="$(uname -m)"
print_version=0
while (($#)); do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --print-version) print_version=1; shift ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
      exit 0
      ;;
    *)
      echo "node-binary.sh: unknown argument: $1 (try --help)" >&2
      exit 2
      ;;
  esac
done
if ((print_version)); then
  echo "$version"
  exit 0
fi
case "$arch" in
  x64 | x86_64 | amd64) arch=x64 ;;
  arm64 | aarch64) arch=arm64 ;;
  *)
    echo "node-binary.sh: no Node package for architecture $arch (x64 or arm64)" >&2
    exit 2
    ;;
esac

die() {
  echo "node-binary.sh: $*" >&2
  exit 1
}

package="node-linux-$arch"
dir="${MODELFN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfn}/node-v$version-linux-$arch"
if [[ -x $dir/bin/node && -f $dir/integrity ]]; then
  echo "$dir/bin/node"
  exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $package@$version"
work="$(mktemp -d "${TMPDIR:-/tmp}/modelfn-node.XXXXXX")"
trap 'rm -rf "$work"' EXIT

want="$(npm view "$package@$version" dist.integrity 2>/dev/null)" ||
  die "the registry does not answer for $package@$version"
[[ $want == sha512-* ]] || die "no sha512 integrity published for $package@$version (got '$want')"
tarball="$(cd "$work" && npm pack --silent "$package@$version" 2>/dev/null | tail -n 1)" ||
  die "npm pack $package@$version failed"
got="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w 0)"
[[ $got == "$want" ]] || die "$package@$version: the tarball's SHA-512 ($got) is not the published integrity ($want)"

tar -C "$work" -xzf "$work/$tarball" package/bin/node package/LICENSE
mkdir -p "$dir.tmp/bin"
mv "$work/package/bin/node" "$dir.tmp/bin/node"
mv "$work/package/LICENSE" "$dir.tmp/LICENSE"
echo "$want" >"$dir.tmp/integrity"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir/bin/node"
