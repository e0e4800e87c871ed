#!/bin/bash
# Builds the Debian package of ramboot (make deb): the binary in /usr/bin,
# the systemd units (ramboot.service, ramboot@.service) in /lib/systemd/system
# with their paths made the package's, an example /etc/ramboot/serve.yaml
# (a conffile), a man page made from the binary's own help, the copyright
# and changelog. No maintainer scripts: installing the package starts and
# enables nothing. A DHCP server must not come up on a machine's
# interfaces because a package was installed; the operator edits
# serve.yaml, runs `ramboot serve --config /etc/ramboot/serve.yaml --check`
# and then `systemctl enable --now ramboot`.
#
#   dist/deb/build.sh BIN VERSION ARCH OUTDIR
#
# Same inputs, same bytes: every time stamp is SOURCE_DATE_EPOCH (the last
# commit's, when unset), owners are root, gzip writes no name or time.
set -euo pipefail

bin=$1 version=$2 arch=$3 out=$4
src=$(cd "$(dirname "$0")/../.." && pwd)
: "${SOURCE_DATE_EPOCH:=$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}"
export SOURCE_DATE_EPOCH
# A Debian version starts with a digit; a git describe without a tag is
# a commit: 0~gitYYYYMMDD.HASH sorts before any released 0.x or 1.x.
case $version in
[0-9]*) debver=$version ;;
*) debver="0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).${version//-/.}" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
install -d -m 755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
	"$root/etc/ramboot" "$root/usr/share/doc/ramboot/examples" "$root/usr/share/man/man1"
install -m 755 "$bin" "$root/usr/bin/ramboot"
for u in ramboot.service ramboot@.service; do
	sed -e 's|/usr/local/bin/ramboot|/usr/bin/ramboot|g' \
		-e '/^#   install .*ramboot/d' \
		"$src/dist/systemd/$u" >"$root/lib/systemd/system/$u"
	chmod 644 "$root/lib/systemd/system/$u"
done
install -m 644 "$src/dist/serve.yaml" "$root/etc/ramboot/serve.yaml"
# Go links statically; lintian knows it only from a source package's
# Build-Depends on golang-go, which a binary-only build has not got.
install -d -m 755 "$root/usr/share/lintian/overrides"
printf '# A Go binary: statically linked by design (CGO_ENABLED=0).\nramboot: statically-linked-binary [usr/bin/ramboot]\n' >"$root/usr/share/lintian/overrides/ramboot"
chmod 644 "$root/usr/share/lintian/overrides/ramboot"
install -m 644 "$src/dist/serve.yaml" "$root/usr/share/doc/ramboot/examples/serve.yaml"
echo /etc/ramboot/serve.yaml >"$root/DEBIAN/conffiles"

# The man page: the binary's own help, each command's in a section.
{
	echo ".TH RAMBOOT 1 \"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)\" \"ramboot $debver\" \"User Commands\""
	echo ".SH NAME"
	echo "ramboot \\- run diskless machines from RAM: build boot trees, serve them, manage the nodes"
	echo ".SH SYNOPSIS"
	echo ".B ramboot"
	echo ".I command"
	echo ".RI [ flags ]"
	echo ".SH DESCRIPTION"
	echo ".nf"
	"$bin" help 2>&1 | sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"
	echo ".fi"
	for c in build rootfs serve eeprom dhcp-config pxelinux node image; do
		echo ".SH \"ramboot $c\""
		echo ".nf"
		"$bin" help "$c" 2>&1 | sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"
		echo ".fi"
	done
	echo ".SH FILES"
	echo ".TP"
	echo ".I /etc/ramboot/serve.yaml"
	echo "the settings of ramboot.service (ramboot serve \\-\\-config); ramboot@NAME.service reads /etc/ramboot/NAME.yaml"
	echo ".TP"
	echo ".I /var/lib/ramboot"
	echo "the service's state: leases, node state, reports"
	echo ".SH SEE ALSO"
	echo ".BR systemctl (1)"
} | gzip -9n >"$root/usr/share/man/man1/ramboot.1.gz"

cat >"$root/usr/share/doc/ramboot/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ramboot
Source: https://github.com/ramboot/ramboot
Comment: /usr/bin/ramboot is a static Go binary. The Go modules built
 into it, each under its own license, are listed by
 \`go version -m /usr/bin/ramboot\`.

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the ramboot authors
License: ramboot
 The terms under which the ramboot authors publish ramboot are those of
 its source repository, named above.
COPY
printf 'ramboot (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- ramboot authors <ramboot@users.noreply.github.com>  %s\n' \
	"$debver" "$version" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n >"$root/usr/share/doc/ramboot/changelog.gz"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CTL
Package: ramboot
Version: $debver
Architecture: $arch
Maintainer: ramboot authors <ramboot@users.noreply.github.com>
Installed-Size: $size
Section: net
Priority: optional
Homepage: https://github.com/ramboot/ramboot
Description: run diskless machines (Raspberry Pis, PCs) from RAM
 ramboot builds the boot tree a Raspberry Pi or a PC netboots from (Debian's
 kernel, firmware and a small Go init in an initramfs), and serves it:
 proxyDHCP or DHCP, TFTP and HTTP in one process that speaks each Pi
 generation's and PC firmware's dialect. Nodes run their OS from RAM, from
 an NFS root, or install to their disk; nodes.yaml says which.
 .
 Installing this package starts no service: edit /etc/ramboot/serve.yaml,
 check it with "ramboot serve --config /etc/ramboot/serve.yaml --check",
 then "systemctl enable --now ramboot".
CTL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/ramboot_${debver}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
