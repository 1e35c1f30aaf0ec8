#!/bin/sh
# swap.sh --path /var/FILE --size N[K|M|G] [--condition ...] [--debug]: LinuxKit's swap command line.
set -e
path= size= conditions= encrypt= debug=
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) debug=1; set -x ;;
    --path) path=$2; shift ;;
    --size) size=$2; shift ;;
    --encrypt) encrypt=1 ;;
    --condition) conditions="$conditions $2"; shift ;;
    *) echo "swap: unknown option $1"; exit 1 ;;
  esac
  shift
done
[ -n "$path" ] || { echo "swap: --path <file> must be given"; exit 1; }
case "$path" in /var/?*) ;; *) echo "swap: --path must be under /var"; exit 1 ;; esac
[ -n "$size" ] || { echo "swap: --size <size> must be given"; exit 1; }

bytes() {
  case "$1" in
    *G) echo $(( ${1%G} * 1024 * 1024 * 1024 )) ;;
    *M) echo $(( ${1%M} * 1024 * 1024 )) ;;
    *K) echo $(( ${1%K} * 1024 )) ;;
    *) echo "$1" ;;
  esac
}

# A condition not met ends the container: with exit 1 when it is marked required (:true), else 0.
for condition in $conditions; do
  IFS=: read -r kind first second third <<EOC
$condition
EOC
  case "$kind" in
    part)
      grep -qs " $first " /proc/mounts || { [ "$second" = true ] && exit 1; exit 0; } ;;
    partsize)
      have=$(( $(df -k "$first" | tail -1 | awk '{print $2}') * 1024 ))
      [ "$have" -ge "$(bytes "$second")" ] || { [ "$third" = true ] && exit 1; exit 0; } ;;
    *) echo "swap: unknown condition $condition"; exit 1 ;;
  esac
done

mkdir -p "$(dirname "$path")"
dd if=/dev/zero of="$path" bs=1024 count=$(( $(bytes "$size") / 1024 )) 2>/dev/null
chmod 0600 "$path"
device=$path
if [ -n "$encrypt" ]; then
  # cryptsetup attaches the file to a free loop device itself, freed again when the mapping goes
  mkdir -p /run/cryptsetup
  device=/dev/mapper/swapfile
  cryptsetup open --type plain --key-file /dev/urandom --key-size 256 --cipher aes-cbc-essiv:sha256 \
    --offset 0 "$path" swapfile
fi
mkswap "$device" >/dev/null
swapon "$device"
[ -n "$debug" ] && cat /proc/swaps
echo "swap: $path ($size) is on${encrypt:+, encrypted as $device}"
