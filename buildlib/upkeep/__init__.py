"""The store's upkeep: what `distrokit cache` does (list, measure, collect, remove, export, check).

Takes the store folder and gives its contents by area, garbage collection against usage records, and
a check of every entry against its key. It knows every area of the store, so it sits above `rootfs`
and `outputs`; it never imports `tasks` or `cli`.
"""
