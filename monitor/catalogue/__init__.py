"""OpenRouter's endpoints catalogue of the monitored models.

Pure: `listing` (the endpoints API's document as bounded, sanitised values), `diff` (two
listings → change events), `views` (the terminal table). I/O: `api` (one GET per model, with
the key), `watch` (the daemon's periodic reading, stored by `monitor.storage.catalogue`).
"""
