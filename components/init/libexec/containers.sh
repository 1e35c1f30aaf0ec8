# Helpers of distrokit's container runtime, sourced by the scripts beside it (busybox sh).
LIBEXEC=${DISTROKIT_LIBEXEC:-/usr/libexec/distrokit}
CONTAINERS=/containers
STATE=${DISTROKIT_STATE:-/run/distrokit}
mkdir -p "$STATE"

say() { echo "distrokit: $*"; }

# mark PHASE: a `distrokit-timeline: UPTIME PHASE` line when the boot is timed (see /init).
mark() { [ -n "$distrokit_timeline" ] && read -r up _ </proc/uptime && echo "distrokit-timeline: $up $1"; }

# The name a bundle folder stands for: containers/onboot/001-dhcpcd is dhcpcd.
container_name() { basename "$1" | sed 's/^[0-9]*-//'; }

# flat FILE: the JSON file as PATH<TAB>VALUE lines (see json-flat); nothing when it is missing.
flat() { [ -f "$1" ] && awk -f "$LIBEXEC/json-flat" "$1"; }

# field FLAT KEY: the value at KEY.
field() { printf '%s\n' "$1" | awk -F '\t' -v k="$2" '$1 == k { print substr($0, length(k) + 2); exit }'; }

# items FLAT KEY: the values of the array at KEY, one a line.
items() {
  printf '%s\n' "$1" | awk -F '\t' -v p="$2." \
    'index($1, p) == 1 && substr($1, length(p) + 1) ~ /^[0-9]+$/ { print substr($0, length($1) + 2) }'
}

# count FLAT KEY: how many entries the array of objects at KEY has.
count() {
  printf '%s\n' "$1" | awk -F '\t' -v p="$2." \
    'index($1, p) == 1 { split(substr($1, length(p) + 1), a, "."); if (a[1] + 1 > n) n = a[1] + 1 } END { print n + 0 }'
}

# needs_post BUNDLE: true when runtime.json asks for work between create and start (interfaces, bindNS).
needs_post() { flat "$1/runtime.json" | grep -q -e '^interfaces\.' -e '^bindNS\.[a-z]*	.'; }

# alive NAME: the container's first process (its pid file, written at create) still runs.
alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

uptime_seconds() { cut -d. -f1 /proc/uptime; }

have_runc() {
  command -v runc >/dev/null && return 0
  say "containers/ holds bundles but runc is missing: add @pkg:../components/runc to the spec's init"
  return 1
}

# bundles SECTION: the bundle folders of containers/SECTION, in order.
bundles() {
  for bundle in "$CONTAINERS/$1"/*; do
    [ -f "$bundle/config.json" ] && echo "$bundle"
  done
}
