"""Stage 2, the store: OCI blobs by digest, names pointing at manifests, and how they get there.

Takes image references (from `spec`) and gives stored images: manifests, configs and layer blobs,
several platforms under one name, pulls and pushes through skopeo with our retry loop, the shared
registry cache, usage records and build stamps. Imports only `spec` and the shared helpers; never
what reads layers (`rootfs`), writes media (`outputs`) or runs tasks (`tasks`).
"""
