"""Local photos: reading and cleaning them, checking them on this machine, uploading
them (to the emulator's bucket or OSS), and batch items that hold them."""
