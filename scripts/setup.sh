#!/usr/bin/env bash
# Installs what distrokit needs on Debian 12: the Debian tools it drives, and a virtualenv (.venv)
# with distrokit and its test dependencies. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

DEBIAN_PACKAGES=(
  skopeo docker-registry qemu-system-x86 qemu-utils busybox-static runc cpio
  qemu-system-arm qemu-efi-aarch64  # arm64 guests (qemu-system-aarch64, virt machine) and their UEFI firmware
  xorriso isolinux syslinux syslinux-common mtools dosfstools grub-pc-bin grub-efi-amd64-bin ovmf
  squashfs-tools erofs-utils openssh-client python3-venv ca-certificates
  binutils  # readelf: a component recipe's `keep:` finds the libraries its programs link
  sbsigntool  # sbverify: the Secure Boot tests check who signed shim, GRUB and the kernel on the media
  lz4  # `build --decompress-kernel`: Debian's cloud kernel is LZ4-compressed
  graphviz  # dot: `distrokit graph -o FILE.svg` draws the task graph; tests parse the DOT with it
  buildah  # `pkg build` of a LinuxKit package folder (build.yml + Dockerfile), without a daemon
  qemu-user-static binfmt-support  # `pkg build --platforms linux/arm64`: RUN steps of another architecture
  fakeroot  # kernel+erofs and kernel+iso unpack the root with its owners and device nodes, without root
  gnupg  # gpg: `push --sign-by` keys, and the signature tests make theirs (skopeo verifies through gpgme)
  iproute2  # ip: a package build without `network: true` brings up loopback in its own network namespace
)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# apt's package lists are needed even when nothing is missing: components are built with `apt-get download`.
if [ ${#missing[@]} -gt 0 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# binfmt_misc runs arm64 programs through qemu-user-static (its handler is registered with the F flag,
# so it works inside buildah's chroot). Without systemd nothing registers it: mount binfmt_misc and
# enable the handler here. A container without the right may refuse; `pkg build` then names what is missing.
if [ -d /proc/sys/fs/binfmt_misc ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  $SUDO update-binfmts --enable qemu-aarch64 2>/dev/null \
    || echo "setup: could not register qemu-aarch64 with binfmt_misc: arm64 RUN steps in pkg build will not run"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# compat: the editable install is a plain path in a .pth file; setuptools' default import hook costs
# every `distrokit` command ~25 ms of start-up (issue 13).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
