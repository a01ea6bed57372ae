#!/usr/bin/env bash
# Builds dist/siteflip_VERSION_ARCH.deb with dpkg-deb: the binary, the
# systemd unit, /etc/default/siteflip, an example topology and the docs.
# VERSION comes from `git describe`, made a valid Debian version;
# SITEFLIP_VERSION overrides it. GOARCH picks another architecture.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
command -v dpkg-deb >/dev/null || { echo "deb.sh: dpkg-deb is missing: apt-get install dpkg" >&2; exit 1; }

# A Debian version starts with a digit and holds no '-' (that would start
# the Debian revision): v1.2.3-4-gabcdef-dirty → 1.2.3+4.gabcdef.dirty
# (after 1.2.3, before 1.2.4); without any tag yet, abcdef-dirty →
# 0.0~git.abcdef.dirty.
debian_version() {
	local v=${1#v}
	v=${v//-/.}
	v=$(printf '%s' "$v" | sed -E 's/^([0-9][0-9.]*[0-9])\.([0-9]+\.g[0-9a-f]+)/\1+\2/; s/[^A-Za-z0-9.+~]/./g')
	case $2 in
	tagged) printf '%s\n' "$v" ;;
	*) printf '0.0~git.%s\n' "$v" ;;
	esac
}
if [ "${1:-}" = --version-of ]; then # for tests: deb.sh --version-of DESCRIBE tagged|untagged
	debian_version "$2" "$3"
	exit 0
fi
if [ -n "${SITEFLIP_VERSION:-}" ]; then
	version=$SITEFLIP_VERSION
elif describe=$(git describe --tags --dirty 2>/dev/null); then
	version=$(debian_version "$describe" tagged)
else
	version=$(debian_version "$(git describe --always --dirty 2>/dev/null || echo unknown)" untagged)
fi
case $version in
[0-9]*) ;;
*) echo "deb.sh: version $version does not start with a digit (a tag like v1.2.3 does)" >&2; exit 1 ;;
esac

arch=${GOARCH:-$("$GO" env GOARCH)}
deb_arch=$arch
case $arch in
386) deb_arch=i386 ;;
arm) deb_arch=armhf ;;
esac

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
pkg=$root/siteflip

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
	"$pkg/etc/default" "$pkg/etc/siteflip" "$pkg/usr/share/doc/siteflip"

# Static (no cgo): the package needs no libc of a given version.
CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath \
	-ldflags "-s -w -X github.com/siteflip/siteflip/internal/buildinfo.Version=$version" \
	-o "$pkg/usr/bin/siteflip" ./cmd/siteflip

install -m 0644 deploy/systemd/siteflip-agent.service "$pkg/lib/systemd/system/"
install -m 0644 deploy/etc/default-siteflip "$pkg/etc/default/siteflip"
install -m 0644 deploy/etc/siteflip.yaml.example "$pkg/etc/siteflip/siteflip.yaml.example"
install -m 0644 README.md "$pkg/usr/share/doc/siteflip/README.md"
for f in docs/deploy.md docs/certificates.md docs/status.md; do
	if [ -f "$f" ]; then install -m 0644 "$f" "$pkg/usr/share/doc/siteflip/"; fi
done
install -m 0755 deploy/debian/postinst deploy/debian/postrm deploy/debian/prerm "$pkg/DEBIAN/"
install -m 0644 deploy/debian/conffiles "$pkg/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$deb_arch/" -e "s/@SIZE@/$size/" \
	deploy/debian/control >"$pkg/DEBIAN/control"

mkdir -p dist
out="dist/siteflip_${version}_${deb_arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "$out"
