"""Stage 4, the root file system: layers indexed, merged, and cut into parts.

Takes stored images and a `Spec` and gives the root as parts (kernel modules, init, each container's
bundle, files, the SBOM): each layer indexed once by digest, merged with OCI whiteouts, each container
laid out as LinuxKit lays it out. Imports `spec`, `store` and `debian`; never `outputs`, `guest` or
`tasks`.
"""
