"""OpenRouter's endpoints catalogue of the monitored models, as pure values: `listing` (the
endpoints API's document as bounded, sanitised values) and `diff` (two listings → change
events). The I/O around it lives beside the package so that storage, alerts and reports can
import these values without importing back: `catalogue_api` (one GET per model, with the key),
`catalogue_watch` (the daemon's periodic reading, stored by `monitor.storage.catalogue`),
`catalogue_views` (the terminal table of `provmon catalogue`).
"""
