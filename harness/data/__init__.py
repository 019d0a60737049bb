"""Task data: streams of tasks sharing inputs, loading and tokenization (``streams``), task
cards (``cards``, ``cardload``, ``cardspec``, ``taskdir``) and the UTF-8 text-file rule."""
