"""Faces in photos: find them, align them to a model's canonical crop, and carry the crop's
motion back into the whole photo (docs/faces.md).

* ``detect``: ``detect_faces``, every face with five landmarks (YuNet through OpenCV, its
  weights shipped as package data).
* ``align``: ``CanonicalCrop``, the similarity that brings a face there, ``crop_face``.
* ``inplace``: ``PhotoAnimation``, a photo's frames with its faces moving and everything else
  still.
* ``photo``: ``animate_photo(s)`` with a trained model, ``fit_photos`` for two photos of one
  person.
* ``evaluate``: ``evaluate_photos``, a face model on a folder of photos.
* ``sequences``: ``evaluate_sequences``, animation paths against real video (CK+).

The submodules are imported by name (``from jwarp.faces.photo import animate_photo``): this
package imports nothing itself, so OpenCV and JAX load only when used.
"""
