#!/usr/bin/env bash
# Prepare the real-USB test tier: a QEMU guest whose kernel has dummy_hcd and FunctionFS, so
# that an emulated ESP ROM (guest/gadget.py) is a USB device that espdfu and dfu-util reach
# through real libusb and usbfs. See docs/real-usb.md.
#
#   bash tests/realusb/setup.sh           set up, or bring up to date (as root: apt-get)
#   bash tests/realusb/setup.sh --check   say what is missing or stale; exit 1 if anything is
#
# Everything lands in ${ESPDFU_REALUSB_CACHE:-$HOME/.cache/espdfu-realusb}: Debian's 6.12
# kernel and the modules the guest needs (extracted, not installed), udevd and its default
# rules (extracted from Debian's udev package, not installed), a busybox initramfs, and a
# virtualenv made with Debian's /usr/bin/python3 (the guest sees the host's /usr, not the
# pyenv Pythons under /root) with the project installed. Each step is skipped when its
# output is there and current (stamp files hold what it was made from), so a second run
# takes seconds.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "$here/../.." && pwd)"
cache="$(realpath -m -- "${ESPDFU_REALUSB_CACHE:-$HOME/.cache/espdfu-realusb}")"
check_only=0
case "${1:-}" in
--check) check_only=1 ;;
"") ;;
*)
    printf 'usage: %s [--check]\n' "$0" >&2
    exit 2
    ;;
esac

# Host packages: the emulator, the reference DFU host, busybox for the initramfs, kmod for
# modprobe/depmod, Debian's libusb (dfu-util's), and venv for the guest's Python.
apt_packages=(qemu-system-x86 busybox-static kmod cpio xz-utils dfu-util libusb-1.0-0 python3-venv)
# Modules the guest loads (their dependencies follow): the USB host and device sides
# (dummy_hcd, the composite framework, FunctionFS, the kernel's CDC-ACM function and the
# host's cdc-acm driver, as a desktop binds it), configfs, and 9p over virtio for the shares.
guest_modules=(dummy_hcd libcomposite usb_f_fs usb_f_acm cdc_acm configfs 9pnet_virtio 9p)
# Of those, what the initramfs itself loads to mount the shares.
boot_modules=(9pnet_virtio 9p)
# udev rules the guest's udevd applies on top of the host's /usr/lib/udev/rules.d.
udev_rules=(50-udev-default.rules)

started=$SECONDS
stale=()
say() { printf 'realusb setup: %s\n' "$*"; }
die() {
    printf 'realusb setup: error: %s\n' "$*" >&2
    exit 1
}
took() { printf '%ds' $((SECONDS - $1)); }
hash_of() { sha256sum | cut -d' ' -f1; }

# --- Debian packages -------------------------------------------------------------------------

missing_packages() {
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$package"
    done
}

updated=0
apt_update() {
    if ((!updated)); then
        apt-get update -qq
        updated=1
    fi
}

apt_install() {
    local step=$SECONDS
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >"$work/apt.log" 2>&1 || {
        cat "$work/apt.log" >&2
        die "apt-get could not install $*"
    }
    say "installed $* ($(took "$step"))"
}

# apt-get download into the current folder, which _apt may not be able to write to.
apt_download() {
    apt-get download -qq -o APT::Sandbox::User=root "$@" >/dev/null
}

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT

mapfile -t missing < <(missing_packages "${apt_packages[@]}")
if ((${#missing[@]})); then
    if ((check_only)); then
        stale+=("Debian packages ${missing[*]}")
    else
        [[ "$(id -u)" == 0 ]] || die "run as root to install ${missing[*]} (or install them)"
        apt_install "${missing[@]}"
    fi
fi

if ((!check_only)); then
    mkdir -p -- "$cache"
fi

# --- the guest kernel and its modules --------------------------------------------------------

kernel="$cache/kernel"
kernel_want="modules: ${guest_modules[*]}"

kernel_package() {
    apt-cache depends linux-image-6.12-amd64 2>/dev/null \
        | awk '/Depends: linux-image-6\.12/ { print $2; exit }'
}

build_kernel() {
    local package=$1 step=$SECONDS version module file name
    cd -- "$work"
    apt_download "$package"
    mkdir extracted
    dpkg-deb --fsys-tarfile ./*.deb | tar -x -C extracted --wildcards \
        './boot/vmlinuz-*' './lib/modules/*/modules.*' \
        './lib/modules/*/kernel/drivers/usb/*' './lib/modules/*/kernel/drivers/virtio/*' \
        './lib/modules/*/kernel/fs/9p/*' './lib/modules/*/kernel/net/9p/*' \
        './lib/modules/*/kernel/fs/netfs/*' './lib/modules/*/kernel/fs/configfs/*'
    version="$(ls extracted/lib/modules)"
    depmod -b extracted "$version" # the package leaves modules.dep to its postinst
    rm -rf -- "$kernel"
    mkdir -p "$kernel/lib/modules/$version"
    cp extracted/boot/vmlinuz-* "$kernel/vmlinuz"
    cp extracted/lib/modules/"$version"/modules.{order,builtin,builtin.modinfo} \
        "$kernel/lib/modules/$version/"
    # Only the modules asked for and what they depend on, decompressed, so that neither
    # the initramfs's busybox nor the guest's modprobe needs to decompress them.
    for module in "${guest_modules[@]}"; do
        modprobe -d "$PWD/extracted" -S "$version" --show-depends "$module" \
            | awk '$1 == "insmod" { print $2 }'
    done | sort -u >modules.list
    while read -r file; do
        name="${file#"$PWD/extracted/lib/modules/$version/"}"
        name="${name%.xz}"
        mkdir -p "$kernel/lib/modules/$version/$(dirname -- "$name")"
        xz -dc "$file" >"$kernel/lib/modules/$version/$name"
    done <modules.list
    depmod -b "$kernel" "$version"
    printf '%s\n' "$version" >"$kernel/version"
    printf '%s\n%s\n' "$package" "$kernel_want" >"$kernel/.stamp"
    rm -rf -- extracted ./*.deb modules.list
    cd - >/dev/null
    say "kernel: extracted $version and $(wc -l <"$kernel/lib/modules/$version/modules.dep") modules ($(took "$step"))"
}

kernel_have="$(sed -n 2p "$kernel/.stamp" 2>/dev/null || true)"
if ((check_only)); then
    [[ "$kernel_have" == "$kernel_want" && -f "$kernel/vmlinuz" ]] || stale+=("the guest kernel")
else
    package="$(kernel_package)"
    if [[ -z "$package" ]]; then
        apt_update
        package="$(kernel_package)"
    fi
    [[ -n "$package" ]] || die "apt-cache knows no linux-image-6.12-amd64 (bookworm-security)"
    if [[ "$(head -n1 "$kernel/.stamp" 2>/dev/null || true)" != "$package" \
        || "$kernel_have" != "$kernel_want" || ! -f "$kernel/vmlinuz" ]]; then
        apt_update
        build_kernel "$package"
    fi
fi

# --- udevd and udevadm, extracted ------------------------------------------------------------

udev="$cache/udev"
udev_want="rules: ${udev_rules[*]}"

build_udev() {
    local version=$1 step=$SECONDS rule
    cd -- "$work"
    apt_download "udev=$version"
    mkdir extracted
    dpkg-deb -x ./udev_*.deb extracted
    rm -rf -- "$udev"
    mkdir -p "$udev/bin" "$udev/rules.d"
    cp extracted/bin/udevadm "$udev/bin/"
    ln -s udevadm "$udev/bin/systemd-udevd" # udevadm is udevd when called so
    for rule in "${udev_rules[@]}"; do
        cp "extracted/lib/udev/rules.d/$rule" "$udev/rules.d/"
    done
    printf '%s\n%s\n' "$version" "$udev_want" >"$udev/.stamp"
    rm -rf -- extracted ./*.deb
    cd - >/dev/null
    say "udev: extracted udevadm and systemd-udevd $version ($(took "$step"))"
}

udev_have="$(sed -n 2p "$udev/.stamp" 2>/dev/null || true)"
if ((check_only)); then
    [[ "$udev_have" == "$udev_want" && -x "$udev/bin/udevadm" ]] || stale+=("udevd")
elif [[ "$udev_have" != "$udev_want" || ! -x "$udev/bin/udevadm" ]]; then
    apt_update
    version="$(apt-cache policy udev | awk '/Candidate:/ { print $2 }')"
    [[ -n "$version" && "$version" != "(none)" ]] || die "apt-cache knows no udev package"
    # udevadm's libraries (udev's own dependencies), without installing udev itself.
    mapfile -t libraries < <(apt-cache depends "udev=$version" \
        | awk '/ Depends: lib/ && $2 != "libudev1" { print $2 }')
    mapfile -t missing < <(missing_packages "${libraries[@]}")
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
    build_udev "$version"
fi

# --- the initramfs ---------------------------------------------------------------------------

initramfs="$cache/initramfs.cpio.gz"
kernel_version="$(cat "$kernel/version" 2>/dev/null || true)"
initramfs_want="$(
    {
        cat "$here/guest/init.sh"
        sha256sum /bin/busybox 2>/dev/null || true
        printf '%s\n' "$kernel_version" "${boot_modules[@]}"
    } | hash_of
)"

build_initramfs() {
    local step=$SECONDS tree="$work/initramfs"
    local module file name
    mkdir -p "$tree"/{bb,modules,proc,sys,dev,usr,etc,tmp,run,var,root}
    ln -s usr/bin "$tree/bin"
    ln -s usr/sbin "$tree/sbin"
    ln -s usr/lib "$tree/lib"
    ln -s usr/lib64 "$tree/lib64"
    cp /bin/busybox "$tree/bb/busybox"
    cp "$here/guest/init.sh" "$tree/init"
    chmod 755 "$tree/init"
    : >"$tree/modules/order"
    for module in "${boot_modules[@]}"; do
        modprobe -d "$kernel" -S "$kernel_version" --show-depends "$module" \
            | awk '$1 == "insmod" { print $2 }'
    done | while read -r file; do
        name="$(basename -- "$file" .ko)"
        grep -qx "$name" "$tree/modules/order" && continue
        cp "$file" "$tree/modules/$name.ko"
        printf '%s\n' "$name" >>"$tree/modules/order"
    done
    (cd "$tree" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$initramfs.tmp"
    mv "$initramfs.tmp" "$initramfs"
    printf '%s\n' "$initramfs_want" >"$initramfs.stamp"
    say "initramfs: built $(du -h "$initramfs" | cut -f1) ($(took "$step"))"
}

if [[ "$(cat "$initramfs.stamp" 2>/dev/null || true)" != "$initramfs_want" \
    || ! -f "$initramfs" || -z "$kernel_version" ]]; then
    if ((check_only)); then
        stale+=("the initramfs")
    else
        build_initramfs
    fi
fi

# --- the guest's virtualenv with the project ---------------------------------------------------

venv="$cache/venv"
# What the project's distribution is built from (as pyproject.toml's packages.find says).
project_files() (
    cd -- "$root"
    printf '%s\n' pyproject.toml README.md LICENSE
    find core tui -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort
)
venv_want="$(
    {
        /usr/bin/python3 -VV 2>/dev/null || true
        project_files | (cd -- "$root" && xargs sha256sum)
    } | hash_of
)"

build_venv() {
    local step=$SECONDS source="$work/project"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf -- "$venv"
        /usr/bin/python3 -m venv "$venv"
    fi
    # A copy, so that building the wheel leaves no build/ or egg-info in the work tree.
    mkdir -p "$source"
    project_files | (cd -- "$root" && tar -c -T -) | tar -x -C "$source"
    "$venv/bin/python" -m pip uninstall --quiet --yes espdfu-tui >/dev/null 2>&1 || true
    # The core too: the app requires it at their one version, which no package index has.
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install "$source/core" "$source" \
        >"$work/pip.log" 2>&1 || {
        cat "$work/pip.log" >&2
        die "pip could not install the project into $venv"
    }
    "$venv/bin/python" -c 'import espdfu.sim.receiver, libusb_package' \
        || die "the project was installed into $venv but cannot be imported"
    printf '%s\n' "$venv_want" >"$venv/.stamp"
    say "venv: installed the project into $venv ($(took "$step"))"
}

if [[ "$(cat "$venv/.stamp" 2>/dev/null || true)" != "$venv_want" ]]; then
    if ((check_only)); then
        if [[ -f "$venv/.stamp" ]]; then
            stale+=("the guest venv (the project's sources changed)")
        else
            stale+=("the guest venv")
        fi
    else
        build_venv
    fi
fi

if ((check_only)); then
    if ((${#stale[@]})); then
        say "not ready: $(printf '%s; ' "${stale[@]}")run bash tests/realusb/setup.sh (as root)"
        exit 1
    fi
    say "ready in $cache"
    exit 0
fi
say "ready in $cache ($(took "$started") in all)"
