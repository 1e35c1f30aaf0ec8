"""Stage 7, the guest: booting outputs in QEMU and living with the instance.

Takes output files and run options and gives a running machine: the boot mode read from the artefact,
the QEMU and machine a kernel needs, instance state folders, the console, instance metadata, virtiofs
shares and a boot timeline. Imports only the shared helpers; knows nothing of specs, the store or
doit, so booting never loads the builder.
"""
