"""Faces in photos: find them, align them to a model's canonical crop, and carry the crop's
motion back into the whole photo.

* ``detect``: ``detect_faces``, every face with five landmarks (YuNet through OpenCV, weights
  shipped as package data).
* ``align``: ``CanonicalCrop``, the similarity that brings a face there, ``crop_face``.
* ``inplace``: ``PhotoAnimation``, a photo's frames with its faces moving and everything else
  still.
"""
