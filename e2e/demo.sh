#!/bin/bash
# make demo: the whole product on one machine, no hardware. Builds the virt
# image, starts `ramboot serve` (full DHCP, TFTP, HTTP) in a private network
# namespace, and netboots a QEMU arm64 guest from it to the provisioning
# shell on this terminal. Everything lives in the namespace, on 192.0.2.0/24
# (documentation addresses, no route out), and is removed on exit.
# Leave QEMU with Ctrl-A then X.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, a tap device)" >&2; exit 1; }
ns="rbt-demo-$$"
work=$(mktemp -d)
serve_pid=""
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

make --no-print-directory image BOARD=virt OUT="$work/virt" >/dev/null
cat >"$work/nodes.yaml" <<NODES
defaults:
  option224: shell
nodes:
  - mac: 52:54:00:12:34:56
    hostname: demo-node-1
    address: 192.0.2.101
NODES

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" addr add 192.0.2.1/24 dev br0
ip -n "$ns" link set br0 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" link set tap0 up

ip netns exec "$ns" ./bin/ramboot serve --root "$work/virt" --interface br0 \
	--dhcp full --range 192.0.2.100-192.0.2.150 --nodes "$work/nodes.yaml" \
	--lease-file "$work/leases.json" 2>"$work/serve.log" &
serve_pid=$!
sleep 1
kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
echo "ramboot serve is running in namespace $ns (log: $work/serve.log)."
echo "Booting a QEMU arm64 guest; it takes its address and option 224 from ramboot serve."
echo "The provisioning shell comes up in ~10 s. Leave QEMU with Ctrl-A then X."
ip netns exec "$ns" qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -smp 2 -nographic -no-reboot \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
	-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 \
	-kernel "$work/virt/Image" -initrd "$work/virt/rootfs.cpio.gz" \
	-append "console=ttyAMA0 panic=-1"
echo; echo "ramboot serve said:"; tail -n 20 "$work/serve.log"
