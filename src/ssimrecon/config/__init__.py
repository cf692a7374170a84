"""The experiment config: validated once before any job (:mod:`.check`), handed to each stage as one
JSON string per command and parsed into typed settings (:mod:`.sections`, :mod:`.stages`)."""
