"""The image and face work that the client's photo check and the emulator share.

One implementation of the photo check, imported by both sides: the client's check of local
photos before upload (:mod:`aiportrait._local.preflight`) and the emulator's ``check`` and ``train``
(:mod:`aiportrait.emulator._work`). Nothing here imports the emulator or the client's layers
above it.

``verdicts``, ``limits``, ``sources`` and ``threads`` need only the standard library, so both
sides import them at module level. ``images`` (Pillow, numpy), ``face_engine`` (dlib, OpenCV)
and ``check`` need the ``emulator`` extra and are imported inside functions, on first use:

```
 verdicts     the service's verdict codes and messages; Verdict (one photo's result)
 limits       the sizes a photo is read and decoded within; the pixel budget of a request
 sources      a photo's bytes, or why there are none
 threads      the process-wide thread pool and face engine the image work runs on
 images       decoding within a pixel budget (EXIF orientation applied), encoding
 face_engine  face detection, landmarks and identity descriptors (dlib)
 check        a photo examined alone, then the set judged together
```
"""
