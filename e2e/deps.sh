#!/bin/bash
# Installs what `make test` needs on a Debian 12 machine: QEMU >= 9 (from
# bookworm-backports, for -M raspi4b and raspi3b; x86-64 with its iPXE
# option ROMs and OVMF for the PC boots), device-tree-compiler (fdtput) and the
# real peers the tests talk to (python3 and python3-pycryptodome for
# rpi-eeprom-config, openssl and xxd for rpi-eeprom-digest, dnsmasq, TFTP clients, tftpd-hpa for the
# TFTP benchmarks, nfs-ganesha with rpcbind for the e2e lab's NFS roots).
# Idempotent; the mirror is taken from this machine's own apt sources, never
# written here.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have_sbin() { have "$1" || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

qemu_ok() {
	local q v
	for q in qemu-system-aarch64 qemu-system-x86_64; do
		have $q || return 1
		v=$($q --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
		[ "${v:-0}" -ge 9 ] || return 1
	done
}

have fdtput || need+=(device-tree-compiler)
# UEFI firmware for the x86-64 PC boots (BOARD=pc).
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
# Root images (make rootfs): Debian's mmdebstrap, squashfs-tools, and for
# a foreign architecture (arm64 on amd64) qemu-user through binfmt_misc.
# Disk images for the install and local boot tests: partition tables,
# FAT and ext4 file systems built without mounting.
for p in growpart:cloud-guest-utils sfdisk:fdisk mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs; do
	have_sbin "${p%%:*}" || need+=("${p#*:}")
done
for p in mmdebstrap:mmdebstrap mksquashfs:squashfs-tools unsquashfs:squashfs-tools qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support arch-test:arch-test zstd:zstd depmod:kmod; do
	have_sbin "${p%%:*}" || need+=("${p#*:}")
done
# GNU cpio lists the built initramfs (e2e/image/cpio_test.go); systemd-analyze
# checks the shipped unit files (e2e/serve/service_test.go).
for p in python3:python3 dnsmasq:dnsmasq tftp:tftp-hpa atftp:atftp curl:curl ip:iproute2 ssh:openssh-client cpio:cpio systemd-analyze:systemd; do
	have "${p%%:*}" || need+=("${p#*:}")
done
# The EEPROM key and signature peers (eeprom/): rpi-eeprom-config --pubkey
# imports Cryptodome, which Debian installs for /usr/bin/python3 (a python3
# earlier on PATH, pyenv's say, may not see it); rpi-eeprom-digest -k and -v
# run openssl and xxd.
for p in openssl:openssl xxd:xxd; do
	have "${p%%:*}" || need+=("${p#*:}")
done
/usr/bin/python3 -c 'import Cryptodome.PublicKey.RSA' 2>/dev/null || need+=(python3-pycryptodome)
# The e2e lab's NFS server (user space: the kernel may have no nfsd), its
# portmapper for NFSv3 and showmount/rpcinfo. Daemons in sbin are looked
# for there too: a user's PATH may not have it.
for p in ganesha.nfsd:nfs-ganesha rpcbind:rpcbind showmount:nfs-common unshare:util-linux in.tftpd:tftpd-hpa dhclient:isc-dhcp-client udhcpc:udhcpc iptables-legacy:iptables kea-dhcp4:kea-dhcp4-server dhcpd:isc-dhcp-server perfdhcp:kea-admin; do
	have_sbin "${p%%:*}" || need+=("${p#*:}")
done
# The power drivers' peers: OpenIPMI's BMC simulator and net-snmp's agent
# (with its snmpget/snmpset), run by the tests in namespaces only.
for p in ipmi_sim:openipmi snmpd:snmpd; do
	have_sbin "${p%%:*}" || need+=("${p#*:}")
done
have snmpget || need+=(snmp)
# make deb's checker (e2e/serve/deb_test.go) and the browser that loads
# the status page (e2e/serve/statuspage_test.go).
# The boot-storm benchmark's peer stack serves the image with nginx.
have_sbin nginx || need+=(nginx-light)
for p in lintian:lintian dpkg-deb:dpkg chromium:chromium; do
	have "${p%%:*}" || need+=("${p#*:}")
done
vfs=no
for f in /usr/lib/*/ganesha/libfsalvfs.so /usr/lib*/ganesha/libfsalvfs.so; do [ -e "$f" ] && vfs=yes; done
[ $vfs = yes ] || need+=(nfs-ganesha-vfs)

if [ "$(id -u)" != 0 ]; then
	if ! qemu_ok || [ ${#need[@]} -gt 0 ]; then
		echo "deps.sh: missing ${need[*]} $(qemu_ok || echo qemu-system-arm,qemu-system-x86>=9); run as root to install" >&2
		exit 1
	fi
	exit 0
fi

# No package installed here may start a service: dnsmasq, tftpd-hpa,
# rpcbind and nfs-ganesha would otherwise listen on this machine's real
# interfaces. The tests start their own instances inside network namespaces.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# ramboot e2e/deps.sh: no service starts during this install\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

if ! qemu_ok; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	if [ "$codename" = bookworm ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		# Reuse the URIs of the machine's own Debian entry.
		uri=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
			tr ' ' '\n' | grep -v -- '-security' | grep -m1 . || true)
		if [ -z "$uri" ]; then
			uri=$(awk '$1=="deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
		fi
		if [ -z "$uri" ]; then
			echo "deps.sh: no Debian mirror in /etc/apt/sources.list*; add bookworm-backports by hand" >&2
			exit 1
		fi
		keyring=/usr/share/keyrings/debian-archive-keyring.gpg
		cat >/etc/apt/sources.list.d/ramboot-backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: $keyring
SRC
	fi
	apt-get update -qq
	if [ "$codename" = bookworm ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-system-arm qemu-system-x86 >/dev/null
	else
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm qemu-system-x86 >/dev/null
	fi
	updated=1
fi
if [ ${#need[@]} -gt 0 ]; then
	[ -n "${updated:-}" ] || apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# dnsmasq's package starts a system service on install; the tests run their
# own instances in network namespaces only.
if systemctl is-active --quiet dnsmasq 2>/dev/null; then systemctl disable --now dnsmasq >/dev/null 2>&1 || true; fi
# So do rpcbind's and nfs-ganesha's: stop them when this run installed them.
for p in "${need[@]}"; do
	case $p in
	rpcbind) units="rpcbind.socket rpcbind.service" ;;
	nfs-ganesha) units="nfs-ganesha.service nfs-ganesha-lock.service" ;;
	tftpd-hpa) units="tftpd-hpa.service" ;;
	kea-dhcp4-server) units="kea-dhcp4-server.service" ;;
	isc-dhcp-server) units="isc-dhcp-server.service" ;;
	snmpd) units="snmpd.service" ;;
	openipmi) units="openipmi.service" ;;
	*) continue ;;
	esac
	for u in $units; do
		if systemctl is-active --quiet "$u" 2>/dev/null || systemctl is-enabled --quiet "$u" 2>/dev/null; then
			systemctl disable --now "$u" >/dev/null 2>&1 || true
		fi
	done
done
# qemu-user runs arm64 maintainer scripts during mmdebstrap: binfmt_misc
# must be mounted and the qemu-aarch64 handler enabled (a container may
# start without either).
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ "$(dpkg --print-architecture)" != arm64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
	update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || update-binfmts --import qemu-aarch64
fi
uname -m | grep -q aarch64 || arch-test arm64 >/dev/null || { echo "deps.sh: arm64 binaries do not run through qemu-user (arch-test arm64 fails)" >&2; exit 1; }
qemu_ok
echo "deps: $(qemu-system-aarch64 --version | head -1); x86-64 too; fdtput, ovmf ok"
