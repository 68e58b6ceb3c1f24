"""The image and face work that the client's photo check and the emulator share."""
