"""Stage 1, the spec: YAML text in, frozen dataclasses out.

Takes spec files (LinuxKit's schema, several merged as LinuxKit merges them) and gives a `Spec` whose
every problem carries file:line:column; image references are parsed here too. Knows nothing of images,
the store or doit: it imports only the shared helpers (errors, fsutil, arch, epoch).
"""
