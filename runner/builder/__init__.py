"""The image builder (no click): Dockerfiles, the build context, the build
cache and what steps and commits do to an image.
"""
