#!/usr/bin/env bash
# Makes this machine ready for novamon's tests and demo: installs the Debian packages the real
# components come from (when missing, and when we are root), and starts PostgreSQL, RabbitMQ,
# virtlogd and libvirtd when they are not running. Idempotent; quiet when everything is there.
set -euo pipefail

packages=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients
  python3-oslo.messaging python3-nova nova-common python3-openstackclient python3-novaclient
  python3-libvirt python3-psycopg2 python3-lxml
  keystone chromium novnc prometheus prometheus-libvirt-exporter)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-services: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  echo "ensure-services: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  # policy-rc.d keeps the packages' init scripts from starting daemons we start ourselves below.
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "ensure-services: nothing listens on 127.0.0.1:$1 after 60 s ($2)" >&2
  return 1
}

if ! port_open 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >&2
  wait_port 5432 PostgreSQL
fi
if ! port_open 5672; then
  rabbitmq-server -detached >&2
  wait_port 5672 RabbitMQ
fi
if [ "$(id -u)" = 0 ]; then
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
  for _ in $(seq 1 30); do [ -S /var/run/libvirt/libvirt-sock ] && break; sleep 0.5; done
fi
