"""Disk images: what an uploaded file really is, whether it is safe, and making it bootable.

``inspect`` reads a file with oslo.utils' format inspector (never trusting its name or
what the uploader says) and turns that into a verdict with pure functions; ``qemu_img`` runs
qemu-img with an explicit format under CPU, memory and time limits; ``pipeline`` chains
them: vet, convert VHD/VHDX to qcow2, re-inspect the result.
"""
