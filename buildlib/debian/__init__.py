"""Stage 3, Debian: component images built from Debian packages into the store.

Takes a component recipe (component.yml) and gives an image in the store: packages fetched with apt
for any architecture (never installed), unpacked with dpkg-deb, kept to their ELF closure and the
kernel modules asked for. Imports `spec` (recipes are checked like specs) and `store`; never
`rootfs`, `outputs`, `guest` or `tasks`.
"""
