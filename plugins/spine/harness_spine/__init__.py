"""Spine MRI report tasks for harness: cervical and lumbar pathologies per vertebral level.

See ``plugin.py`` for the hooks, ``generator.py`` for the synthetic corpus, ``userdata.py``
for the annotated-report file format and ``segmenter.py`` for report -> level snippets.
"""

__version__ = "0.1.0"
