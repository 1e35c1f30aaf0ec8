"""distrokit: build minimal, bootable Linux distributions from LinuxKit-style YAML specs."""

__version__ = "0.1.0"
