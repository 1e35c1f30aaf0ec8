"""Upkeep of the store and the host: what `distrokit cache` does (list, measure, collect, remove, export,
check) and `distrokit doctor` (the host tools distrokit drives, and KVM).

Takes the store folder and gives its contents by area, garbage collection against usage records, and
a check of every entry against its key; the host tools found or missing. It knows every area of the
store, so it sits above `rootfs`, `outputs` and `guest`; it never imports `tasks` or `cli`.
"""
