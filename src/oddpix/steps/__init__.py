"""One module per DVC stage, each with one function: read the stage's inputs, call the library, write the
outputs atomically. The click scripts in ``stages/`` parse paths and call these; the logic lives in the
modules named for what they do (``data``, ``preprocess``, ``models``, ``density``, ``thresholds``,
``metrics``, ``plots``). One module per stage lets each DVC stage depend on exactly the code it runs."""
